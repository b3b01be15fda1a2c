import ctypes
ctypes.CDLL(None).syscall(321, 0, 0, 0)  # bpf(2), which the default policy forbids
