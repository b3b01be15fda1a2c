spin :: Int -> Int
spin n = if n < 0 then n else spin (n + 1)

main :: IO ()
main = print (spin 1)
