var p: pbyte;
begin
  while true do
  begin
    getmem(p, 16 shl 20);
    fillchar(p^, 16 shl 20, 1);
  end;
end.
