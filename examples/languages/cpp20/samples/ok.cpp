#include <iostream>
#include <span>
consteval int one() { return 1; }
int main() { long long v[2]; std::cin >> v[0] >> v[1]; std::span<long long> s(v); std::cout << s[0] * one() + s[1] << "\n"; }
