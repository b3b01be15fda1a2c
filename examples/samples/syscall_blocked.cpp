#include <sys/syscall.h>
#include <unistd.h>
int main() { return syscall(SYS_bpf, 0, 0, 0); }  // bpf(2), which the default policy forbids
