var n: int64;
begin
  n := 0;
  while n >= 0 do n := (n + 1) and high(int64);
  writeln(n);
end.
