"""The virtual-router platform: routers declared in a file, each with a control-plane guest, all
forwarded by one shared engine in the host (the paper's future work)."""
