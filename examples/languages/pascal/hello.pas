begin
  writeln('Hello, world!');
end.
