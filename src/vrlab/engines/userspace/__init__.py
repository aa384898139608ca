"""The userspace forwarding engine (``--engine userspace``): forwards batches of frames with
numpy instead of the kernel.

It exists to compare against the kernel's forwarding path with one codebase we can instrument
and change; the paper's question (what virtualisation costs a router) needs a forwarding path
whose per-packet work we control. Modules, from the inside out:

* :mod:`.lpm`: one IPv4 routing table's longest-prefix match (DIR-24-8 in numpy);
* :mod:`.fib`: every router's IPv4 table fused, one lookup for a mixed batch;
* :mod:`.lpm6`: the IPv6 longest-prefix match, every router's table at once (sorted arrays);
* :mod:`.forward`: the pure batch pipeline, IPv4 and IPv6 (checks, lookup, TTL or hop
  limit, checksum, MACs); :mod:`.reasons`: its drop reasons and exact per-frame checks;
* :mod:`.config`: what an engine forwards for (JSON);
* :mod:`.rings`, :mod:`.process`: the process and its frame I/O;
* :mod:`.counters`, :mod:`.launch`: starting it, reading its counters;
* :mod:`.fromplan`: configs from vrlab plans; :mod:`.framezoo`, :mod:`.framezoo6`: labelled
  test frames.

This file imports nothing, so ``vrlab.engines.userspace.lpm`` stays cheap to import.
"""
