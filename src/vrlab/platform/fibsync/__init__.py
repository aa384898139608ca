"""The FIB sync agent of the shared forwarding engine: each router's engine table mirrors the main
table of its guest, and each engine port's neighbour table mirrors the guest port's; what a
router may not install is refused. ``python -m vrlab.platform.fibsync CONFIG`` runs it.

Why an agent: the control planes (static routes, BIRD) run in guest namespaces and write their
guests' main tables, but the packets are forwarded in one engine namespace by a BPF program that
looks routes up in one kernel table per router (``bpf_fib_lookup`` with
``BPF_FIB_LOOKUP_DIRECT | BPF_FIB_LOOKUP_TBID``). The engine's ports have no addresses, so the
engine cannot resolve next hops itself: the guest resolves, the agent copies the result.

How (each part in its module):

* Per guest one netlink socket, subscribed to route, neighbour and link changes before the
  first dump, so nothing between the dump and the events is missed (``agent``). Sockets are
  opened by setns into the namespace and back, in the agent's own thread, fast for 256 routers
  (``netlink``).
* Changes are read as they come, coalesced per key, the last event winning (``router``),
  checked against the router's rules (``rules``) and its limit (``state``), and written to the
  engine in batches: many messages per sendmsg, no per-route round trip (``writer``,
  ``netlink``), with a fast struct codec (``codec``: pyroute2's parsing costs 40-65 µs per
  route, measured, too slow for 100,000 routes in 2 s).
* Every engine route carries protocol ``RTPROT_FIBSYNC`` (118) and every engine neighbour
  NDA_PROTOCOL 118: a resync deletes only what carries it.
* A resync (start, restart, overrun, a port changed, SIGHUP) dumps guest and engine and writes
  only the difference (``resync``, ``engine``).
* Stopping (SIGTERM) leaves the engine as it is: forwarding goes on while the agent restarts
  (``daemon``).
* The route limit (``state``): the excess is refused and logged once per route, and waits; when
  a mirrored route goes, the oldest waiting one is admitted in the same batch.
* Neighbours of the guest's ports in a state with a valid lladdr are written to the engine port
  as NUD_PERMANENT; the entry goes when the guest's goes, fails or becomes incomplete.

Refusals, resyncs and engine errors go to a JSON-lines log (``eventlog``); a status file says
per router how many routes are mirrored and refused (``status``). Engine write failures are
logged and never fatal: the key is left absent and retried at its next change or resync.

The engine namespace needs its loopback up: onlink gateways are checked against the local
table, and a namespace without any address has none (the kernel then refuses every gateway
route with "Nexthop has invalid gateway"; the agent logs a warning)."""
