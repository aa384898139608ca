"""The shared eBPF forwarding engine: its program in C (one source, an XDP and a tc hook), the
layouts it shares with Python, and the maps and attachments that make it run. One engine
forwards for every virtual router, each frame looked up in its own router's kernel table."""
