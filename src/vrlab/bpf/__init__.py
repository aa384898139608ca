"""The BPF toolchain vrlab's C programs share: clang builds them at first use (cached), libbpf
loads them through ctypes, and their headers' layouts are read back in Python."""
