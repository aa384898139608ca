"""The shared forwarding engine's eBPF program: one program, every router, constant cost.

Attached at the ingress of every router port, every punt link from a guest, and every shared
uplink (tcx where frames arrive to be forwarded, a tc filter elsewhere: ``EbpfEngine.attach``).
Per frame:

1. ``ports[ifindex]`` says which router owns the port and which kernel routing table is its FIB
   (one array load, whatever the number of routers). On a shared uplink the destination MAC
   picks the router's port instead (``macs[dst mac]``): the frame never goes through the
   macvlan layer, which measurement showed costs a fifth of the forwarding rate; frames for no
   port's MAC (broadcasts, ARP) go on to the kernel and reach the macvlan ports as usual;
2. frames a router does not fast-path (not IPv4, not for our MAC, IP options, TTL <= 1,
   multicast, no neighbour yet, addressed to the router itself) are *punted* to the router's
   guest over its punt link: the guest's kernel then does what a router's slow path does
   (ARP, ICMP errors, local delivery to the control plane, and forwarding the odd frame);
3. a per-router packet-rate share is enforced in the same pass (a counter per ~1 ms slot),
   for the routers that have one (a flag in the port entry: the others skip its lookup);
4. ``bpf_fib_lookup(DIRECT | TBID)`` looks the destination up in the router's own table only:
   no policy rules are walked, so the cost does not grow with the number of routers, and two
   routers' overlapping prefixes never meet;
5. the egress port must belong to the same router (isolation even against a wrong route);
6. MACs rewritten, TTL decremented, checksum updated incrementally as the kernel's
   ``ip_decrease_ttl`` does, then ``bpf_redirect`` to the egress port.

Frames a guest sends out (control-plane traffic and its slow path) come back over the punt link
and are redirected out of the router port it stands for.

Counters are per router and reason in a per-CPU array, so the hot path never contends."""

from __future__ import annotations

from vrlab.engines.ebpf.bpf import DW, Asm, B, H, Map, W

# __sk_buff offsets (include/uapi/linux/bpf.h)
SKB_PKT_TYPE, SKB_PROTOCOL, SKB_IFINDEX, SKB_DATA, SKB_DATA_END = 4, 16, 40, 76, 80
# helpers
MAP_LOOKUP, KTIME_GET_NS, REDIRECT, FIB_LOOKUP = 1, 5, 23, 69
FIB_DIRECT, FIB_TBID = 1, 8
TC_ACT_OK, TC_ACT_SHOT = 0, 2
ETH_P_IP_BE = 0x0008  # htons(0x0800) as the little-endian load of skb->protocol reads it

# entry kinds in the ports map
KIND_PORT, KIND_PUNT, KIND_UPLINK = 1, 2, 3
#: a port entry (ports map by ifindex, macs map by MAC), 32 bytes:
#: kind, table, router, peer (punt link of a port / port of a punt link), self (the port's
#: ifindex, the FIB lookup's input device), lower (send out of this device instead of the
#: port: a macvlan port's uplink, so the frame skips the macvlan layer), flags, one word spare.
#: Kind 0 is no entry (the ports map is an array: every index has a value).
ENTRY = "=IIIIIIII"
ENTRY_SIZE = 32
ENTRY_FLAGS = 24
FLAG_POLICED = 1  # the router has a share: look up its police entry

#: counter slots per router, in this order
EBPF_REASONS = ("forwarded", "punted", "from_guest", "no_route", "policed", "isolation", "error")
FORWARDED, PUNTED, FROM_GUEST, NO_ROUTE, POLICED, ISOLATION, ERROR = range(len(EBPF_REASONS))
SLOTS = 8  # per router in the stats map (a power of two: the key is router << 3 | reason)
#: The share is enforced per slot of 2**20 ns (~1.05 ms).
POLICE_SLOT_SHIFT = 20

# stack layout (offsets from r10)
P = -64  # struct bpf_fib_lookup, 64 bytes
KEY = -68
SKEY = -72
MKEY = -80  # a MAC as an 8-byte key


def _lookup(a: Asm, m: Map, key: int) -> None:
    """r0 = the map's value for the key stored at r10 + ``key`` (or 0). Clobbers r1-r5."""
    a.ld_map(1, m)
    a.mov(2, 10)
    a.alu64("add", 2, key)
    a.call(MAP_LOOKUP)


def _count(a: Asm, stats: Map, reason: int) -> None:
    """stats[router << 3 | reason] += 1 (this CPU's slot). Clobbers r0-r5."""
    a.mov(1, 8)
    a.alu64("add", 1, reason)
    a.stx(W, 10, SKEY, 1)
    _lookup(a, stats, SKEY)
    done = f"counted_{len(a.insns)}"
    a.jmp("jeq", 0, 0, done)
    a.ldx(DW, 1, 0, 0)
    a.alu64("add", 1, 1)
    a.stx(DW, 0, 0, 1)
    a.label(done)


def _packet(a: Asm, fail: str) -> None:
    """r2 = data, r3 = data_end, with Ethernet + IPv4 headers proven in bounds."""
    a.ldx(W, 2, 6, SKB_DATA)
    a.ldx(W, 3, 6, SKB_DATA_END)
    a.mov(1, 2)
    a.alu64("add", 1, 34)
    a.jmpr("jgt", 1, 3, fail)


def build(ports: Map, stats: Map, police: Map, macs: Map) -> bytes:
    """Registers kept across calls: r6 ctx, r7 the ingress port's entry, r8 router << 3,
    r9 the router's police entry, then the device to send out of."""
    a = Asm()
    a.mov(6, 1)
    a.ldx(W, 1, 6, SKB_IFINDEX)
    a.stx(W, 10, KEY, 1)
    _lookup(a, ports, KEY)
    a.jmp("jeq", 0, 0, "pass")
    a.mov(7, 0)
    a.ldx(W, 1, 7, 0)  # kind
    a.jmp("jeq", 1, 0, "pass")  # not one of the engine's devices
    a.jmp("jeq", 1, KIND_UPLINK, "uplink")
    a.ldx(W, 8, 7, 8)  # router
    a.alu64("lsh", 8, 3)
    a.jmp("jeq", 1, KIND_PUNT, "from_guest")

    # ---- what the fast path does not handle goes to the guest
    a.ldx(W, 1, 6, SKB_PKT_TYPE)
    a.jmp("jne", 1, 0, "punt")  # broadcast, multicast, not our MAC
    a.ja("ip_checks")

    # ---- a shared uplink: the destination MAC names the router's port
    a.label("uplink")
    a.ldx(W, 2, 6, SKB_DATA)
    a.ldx(W, 3, 6, SKB_DATA_END)
    a.mov(1, 2)
    a.alu64("add", 1, 14)
    a.jmpr("jgt", 1, 3, "pass")
    a.movi(1, 0)
    a.stx(DW, 10, MKEY, 1)
    a.ldx(W, 1, 2, 0)
    a.stx(W, 10, MKEY, 1)
    a.ldx(H, 1, 2, 4)
    a.stx(H, 10, MKEY + 4, 1)
    _lookup(a, macs, MKEY)
    a.jmp("jeq", 0, 0, "pass")  # no port's MAC: the kernel (and macvlan) take it
    a.mov(7, 0)
    a.ldx(W, 8, 7, 8)
    a.alu64("lsh", 8, 3)

    a.label("ip_checks")
    a.ldx(W, 1, 6, SKB_PROTOCOL)
    a.jmp("jne", 1, ETH_P_IP_BE, "punt")  # ARP and the rest
    _packet(a, "punt")
    a.ldx(B, 1, 2, 14)
    a.jmp("jne", 1, 0x45, "punt")  # IP options, or not IPv4 after all
    a.ldx(B, 1, 2, 22)
    a.jmp("jle", 1, 1, "punt")  # TTL expires here: the guest sends the ICMP error
    a.ldx(B, 1, 2, 30)
    a.jmp("jge", 1, 224, "punt")  # multicast and class E: control plane (OSPF) or drop

    # ---- the router's share
    a.ldx(W, 1, 7, ENTRY_FLAGS)
    a.jmp("jeq", 1, 0, "lookup")  # no share
    a.mov(1, 8)
    a.alu64("rsh", 1, 3)
    a.stx(W, 10, KEY, 1)
    _lookup(a, police, KEY)
    a.jmp("jeq", 0, 0, "lookup")
    a.mov(9, 0)
    a.ldx(DW, 1, 9, 16)  # limit per slot; 0 = no limit
    a.jmp("jeq", 1, 0, "lookup")
    a.call(KTIME_GET_NS)
    a.alu64("rsh", 0, POLICE_SLOT_SHIFT)
    a.ldx(DW, 1, 9, 0)
    a.jmpr("jeq", 1, 0, "same_slot")
    a.stx(DW, 9, 0, 0)  # a new slot: restart the count (a race here only blurs one slot)
    a.st(DW, 9, 8, 0)
    a.label("same_slot")
    a.movi(1, 1)
    a.atomic_add(DW, 9, 8, 1, fetch=True)  # r1 = frames already admitted in this slot
    a.ldx(DW, 2, 9, 16)
    a.jmpr("jge", 1, 2, "policed")

    # ---- the router's own table
    a.label("lookup")
    a.movi(1, 0)
    for off in range(P, 0, 8):
        a.stx(DW, 10, off, 1)
    a.st(B, 10, P + 0, 2)  # AF_INET
    _packet(a, "error")
    a.ldx(B, 1, 2, 23)
    a.stx(B, 10, P + 1, 1)  # l4 protocol
    a.ldx(B, 1, 2, 15)
    a.stx(B, 10, P + 12, 1)  # tos
    a.ldx(W, 1, 2, 26)
    a.stx(W, 10, P + 16, 1)  # source
    a.ldx(W, 1, 2, 30)
    a.stx(W, 10, P + 32, 1)  # destination
    a.ldx(W, 1, 7, 16)  # the port's own ifindex (on an uplink: the macvlan's, not the uplink's)
    a.stx(W, 10, P + 8, 1)
    a.ldx(W, 1, 7, 4)  # the router's table id
    a.stx(W, 10, P + 48, 1)
    a.mov(1, 6)
    a.mov(2, 10)
    a.alu64("add", 2, P)
    a.movi(3, 64)
    a.movi(4, FIB_DIRECT | FIB_TBID)
    a.call(FIB_LOOKUP)
    a.jmp("jeq", 0, 0, "found")
    a.jmp("jeq", 0, 7, "punt")  # no neighbour yet: the guest resolves it (and the agent copies)
    a.jmp("jeq", 0, 4, "punt")  # local, broadcast, or no table yet
    a.jmp("jeq", 0, 8, "punt")  # too big for the egress MTU: the guest sends the ICMP
    a.jmp("jle", 0, 3, "no_route")  # blackhole, unreachable, prohibit
    a.ja("error")

    # ---- the egress port must be the same router's
    a.label("found")
    a.ldx(W, 1, 10, P + 8)
    a.stx(W, 10, KEY, 1)
    _lookup(a, ports, KEY)
    a.jmp("jeq", 0, 0, "isolation")
    a.ldx(W, 1, 0, 0)
    a.jmp("jne", 1, KIND_PORT, "isolation")
    a.ldx(W, 1, 0, 8)
    a.ldx(W, 2, 7, 8)
    a.jmpr("jne", 1, 2, "isolation")
    a.ldx(W, 9, 0, 20)  # out of the uplink under a macvlan port, else the port itself
    a.jmp("jne", 9, 0, "send_ready")
    a.ldx(W, 9, 10, P + 8)
    a.label("send_ready")

    # ---- rewrite and send
    _packet(a, "error")
    for i in range(0, 6, 2):
        a.ldx(H, 1, 10, P + 58 + i)  # dmac
        a.stx(H, 2, i, 1)
        a.ldx(H, 1, 10, P + 52 + i)  # smac
        a.stx(H, 2, 6 + i, 1)
    a.ldx(H, 1, 2, 24)  # checksum, as ip_decrease_ttl: check += htons(0x0100), end-around carry
    a.alu64("add", 1, 1)
    a.jmp("jlt", 1, 0xFFFF, "csum_done")
    a.alu64("add", 1, 1)
    a.label("csum_done")
    a.stx(H, 2, 24, 1)
    a.ldx(B, 1, 2, 22)
    a.alu64("sub", 1, 1)
    a.stx(B, 2, 22, 1)
    _count(a, stats, FORWARDED)
    a.mov(1, 9)
    a.movi(2, 0)
    a.call(REDIRECT)
    a.exit()

    # ---- to the other end: the guest (punt), or out of the port (from the guest)
    a.label("punt")
    _count(a, stats, PUNTED)
    a.ja("to_peer")
    a.label("from_guest")
    _count(a, stats, FROM_GUEST)
    a.label("to_peer")
    a.ldx(W, 1, 7, 12)
    a.movi(2, 0)
    a.call(REDIRECT)
    a.exit()

    for name, reason in (("no_route", NO_ROUTE), ("policed", POLICED),
                         ("isolation", ISOLATION), ("error", ERROR)):
        a.label(name)
        _count(a, stats, reason)
        a.movi(0, TC_ACT_SHOT)
        a.exit()

    a.label("pass")
    a.movi(0, TC_ACT_OK)
    a.exit()
    return a.assemble()
