let rec grow acc = grow (Array.make 1_000_000 1 :: acc)
let () = ignore (grow [])
