#include <stdexcept>
#include <cstdlib>
int main() { std::exit(3); }
