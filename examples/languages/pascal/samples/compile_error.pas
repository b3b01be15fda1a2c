begin
  writeln(undefinedName);
end.
