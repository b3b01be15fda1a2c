main :: IO ()
main = do
  let xs = [1 ..] :: [Integer]
  print (length xs + fromIntegral (sum xs))
