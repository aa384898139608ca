"""vrlab: virtual routers on one Linux host, built with real kernel networking and measured
with the method of Egi et al., *Evaluating Xen for Router Virtualization*."""

__version__ = "0.1.0"
