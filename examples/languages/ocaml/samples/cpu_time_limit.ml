let rec spin n = if n >= 0 then spin ((n + 1) land max_int) else n
let () = print_int (spin 0)
