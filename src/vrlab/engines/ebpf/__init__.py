"""The shared eBPF forwarding engine: the program, its maps and the syscalls that load and
attach it. One engine forwards for every virtual router, each frame looked up in its own
router's kernel table."""
