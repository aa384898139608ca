"""A fast generator path: frames built by the kernel from a template and sent by an XDP program
run with BPF_PROG_RUN in live-frames mode (Linux 5.18+), several times AF_PACKET's rate on a veth.

``build`` compiles the BPF program with the shared toolchain (:mod:`vrlab.bpf`: clang, cached by
source and compiler; libbpf through ctypes), ``live`` paces the sender like
:mod:`vrlab.traffic.generator` does, and ``pair`` builds the two-namespace link its tests and
benchmark send on."""
