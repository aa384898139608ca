"""The forwarding engines a SUT can run besides the kernel's own router, named after their
``--engine`` values: :mod:`~vrlab.engines.ebpf` (the shared eBPF engine) and
:mod:`~vrlab.engines.userspace` (the numpy engine process)."""
