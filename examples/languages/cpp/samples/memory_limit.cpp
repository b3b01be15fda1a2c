#include <cstring>
#include <vector>
int main() {
    std::vector<char*> hog;
    for (;;) { char* p = new char[16 << 20]; std::memset(p, 1, 16 << 20); hog.push_back(p); }
}
