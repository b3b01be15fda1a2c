#include <cstdio>
int main() { static char line[65536]; for (auto& c : line) c = 'x'; for (;;) fwrite(line, 1, sizeof line, stdout); }
