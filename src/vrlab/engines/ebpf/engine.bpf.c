// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * The shared forwarding engine: one program, every router, constant cost.
 * Modelled on the kernel's samples/bpf/xdp_fwd_kern.c, with a router per
 * device and the router's own routing table.
 *
 * One body, two hooks: vrlab_engine_xdp runs in XDP (before the kernel has
 * built a socket buffer: the fast devices when the platform's hook is xdp),
 * vrlab_engine_tc at tc ingress (tcx or a clsact filter: the fast devices
 * when the hook is tc, and always the slow devices, punt links and macvlan
 * ports, whose frames the kernel has turned into socket buffers anyway).
 * Per frame:
 *
 * 1. ports[ifindex] says which router owns the device and which kernel
 *    table is its FIB: one array load, whatever the number of routers. On a
 *    shared uplink the destination MAC picks the router's port instead
 *    (macs[dst mac]); frames for no port's MAC (broadcasts, ARP) go on to
 *    the kernel and reach the macvlan ports as usual.
 * 2. What a router does not fast-path (neither IPv4 nor IPv6, not to the
 *    port's MAC, IPv4 options, IPv6 extension headers, TTL or hop limit
 *    <= 1, multicast, link-local, ICMPv6 other than echo, no neighbour yet,
 *    addressed to the router itself, too big) is punted to the router's
 *    guest over its punt link: the guest's kernel does what a router's slow
 *    path does (ARP, neighbour discovery, ICMP and ICMPv6 errors, the control
 *    plane's own traffic).
 * 3. A router with a share is held to it in the same pass: a count per
 *    ~1 ms slot in its police entry (a flag in the port entry: the others
 *    skip the lookup).
 * 4. bpf_fib_lookup(DIRECT | TBID) looks in the router's own table only
 *    (AF_INET or AF_INET6: one table holds both families): no policy rules
 *    are walked, so the cost does not grow with the number of routers, and
 *    two routers' overlapping prefixes never meet.
 * 5. The egress device must be a port of the same router (isolation even
 *    against a wrong route).
 * 6. MACs rewritten, TTL decremented with the checksum updated as the
 *    kernel's ip_decrease_ttl does (IPv6: the hop limit, no checksum), then
 *    bpf_redirect.
 *
 * Frames a guest sends (control-plane traffic and its slow path) come back
 * over the punt link and leave by the router port it stands for. Counters
 * are per router and reason in a per-CPU array: the hot path never
 * contends.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "engine.h"

#define AF_INET 2
#define AF_INET6 10
/* IPv6 next headers the fast path looks at (include/net/ipv6.h has them, not the uapi) */
#define NH_HOP 0
#define NH_TCP 6
#define NH_UDP 17
#define NH_ROUTING 43
#define NH_FRAGMENT 44
#define NH_AUTH 51
#define NH_ICMPV6 58
#define NH_DEST 60
#define NH_MOBILITY 135
#define NH_HIP 139
#define NH_SHIM6 140
#define ICMPV6_ECHO_REQUEST 128
#define ICMPV6_ECHO_REPLY 129

_Static_assert(REASON_ERROR < SLOTS, "every reason needs a counter slot");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_IFINDEX);
	__type(key, __u32);
	__type(value, struct port_entry);
} ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_PORTS);
	__type(key, __u64); /* the MAC in its first six bytes, then zeros */
	__type(value, struct port_entry);
} macs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MAX_ROUTERS * SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_ROUTERS);
	__type(key, __u32);
	__type(value, struct police_entry);
} police SEC(".maps");

/*
 * Where XDP runs decides which CPU forwards: a veth's receive poll runs on
 * the CPU of whoever sent into it. When user space sets steer[0] to a
 * CPU + 1, vrlab_engine_xdp only hands each frame on to that CPU (a cpumap
 * entry with a queue of its own), where vrlab_engine_cpumap forwards it:
 * what RPS does for the tc hook, and a deeper queue than the veth's ring of
 * 256 frames for bursts to wait in.
 */
struct {
	__uint(type, BPF_MAP_TYPE_CPUMAP);
	__uint(max_entries, MAX_CPUS);
	__type(key, __u32);
	__type(value, struct bpf_cpumap_val);
} cpus SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} steer SEC(".maps");

/* What differs between the hooks: their verdicts, and the MTU check. */
struct hook {
	int pass;
	int drop;
	/*
	 * Whether bpf_fib_lookup checks the MTU against the IP header's length.
	 * At tc it is left to check the socket buffer itself, which knows a GSO
	 * buffer is cut into segments that fit (its header says 64 KB).
	 */
	int tot_len;
};

static __always_inline void count(__u32 router, __u32 reason)
{
	__u32 key = router * SLOTS + reason;
	__u64 *n = bpf_map_lookup_elem(&stats, &key);

	if (n)
		*n += 1;
}

static __always_inline int to_peer(const struct port_entry *e, __u32 reason)
{
	count(e->router, reason);
	return bpf_redirect(e->peer, 0);
}

static __always_inline int mac_is(const __u8 *a, const __u8 *b)
{
	return ((a[0] ^ b[0]) | (a[1] ^ b[1]) | (a[2] ^ b[2]) | (a[3] ^ b[3]) |
		(a[4] ^ b[4]) | (a[5] ^ b[5])) == 0;
}

/* Whether the router's share admits one more frame in this slot. */
static __always_inline int admitted(const struct port_entry *e)
{
	struct police_entry *p;
	__u64 now;
	__u32 key;

	if (!(e->flags & FLAG_POLICED))
		return 1;
	key = e->router;
	p = bpf_map_lookup_elem(&police, &key);
	if (!p || p->limit == 0)
		return 1;
	now = bpf_ktime_get_ns() >> POLICE_SLOT_SHIFT;
	if (p->slot != now) { /* a new slot: a race here only blurs one slot */
		p->slot = now;
		p->count = 0;
	}
	return __sync_fetch_and_add(&p->count, 1) < p->limit;
}

/* ip_decrease_ttl of include/net/ip.h */
static __always_inline void decrease_ttl(struct iphdr *iph)
{
	__u32 check = iph->check;

	check += bpf_htons(0x0100);
	iph->check = (__sum16)(check + (check >= 0xFFFF));
	iph->ttl--;
}

/*
 * What a lookup's answer means for the frame: a verdict to return at once
 * (>= 0), or -1 to forward it out of *egress, a port of the same router.
 */
static __always_inline long answered(const struct port_entry *e, long rc,
				     const struct bpf_fib_lookup *fib, const struct hook v,
				     __u32 *egress)
{
	struct port_entry *out;
	__u32 key;

	switch (rc) {
	case BPF_FIB_LKUP_RET_SUCCESS:
		break;
	case BPF_FIB_LKUP_RET_NO_NEIGH:    /* the guest resolves it, the agent copies it */
	case BPF_FIB_LKUP_RET_NOT_FWDED:   /* local, broadcast, or no table yet */
	case BPF_FIB_LKUP_RET_FRAG_NEEDED: /* the guest sends the ICMP error */
	case BPF_FIB_LKUP_RET_FWD_DISABLED: /* the engine runs no IPv6: the guest forwards */
		return to_peer(e, REASON_PUNTED);
	case BPF_FIB_LKUP_RET_BLACKHOLE:
	case BPF_FIB_LKUP_RET_UNREACHABLE:
	case BPF_FIB_LKUP_RET_PROHIBIT:
		count(e->router, REASON_NO_ROUTE);
		return v.drop;
	default:
		count(e->router, REASON_ERROR);
		return v.drop;
	}

	key = fib->ifindex;
	out = bpf_map_lookup_elem(&ports, &key);
	if (!out || out->kind != KIND_PORT || out->router != e->router) {
		count(e->router, REASON_ISOLATION);
		return v.drop;
	}
	*egress = out->lower ? out->lower : fib->ifindex;
	return -1;
}

static __always_inline int forward4(void *ctx, struct ethhdr *eth, void *data_end,
				    const struct port_entry *e, const struct hook v)
{
	struct iphdr *iph = (void *)(eth + 1);
	struct bpf_fib_lookup fib = {};
	__u32 egress = 0;
	long rc;

	if ((void *)(iph + 1) > data_end)
		return to_peer(e, REASON_PUNTED);
	if (iph->version != 4 || iph->ihl != 5 || iph->ttl <= 1)
		return to_peer(e, REASON_PUNTED); /* options; TTL expiring: the guest sends ICMP */
	if ((bpf_ntohl(iph->daddr) >> 28) >= 0xE)
		return to_peer(e, REASON_PUNTED); /* multicast, class E: control plane or drop */

	if (!admitted(e)) {
		count(e->router, REASON_POLICED);
		return v.drop;
	}

	fib.family = AF_INET;
	fib.l4_protocol = iph->protocol;
	fib.tos = iph->tos;
	if (v.tot_len)
		fib.tot_len = bpf_ntohs(iph->tot_len);
	fib.ipv4_src = iph->saddr;
	fib.ipv4_dst = iph->daddr;
	fib.ifindex = e->fib_in;
	fib.tbid = e->table;
	rc = bpf_fib_lookup(ctx, &fib, sizeof(fib), BPF_FIB_LOOKUP_DIRECT | BPF_FIB_LOOKUP_TBID);
	rc = answered(e, rc, &fib, v, &egress);
	if (rc >= 0)
		return rc;

	__builtin_memcpy(eth->h_dest, fib.dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, fib.smac, ETH_ALEN);
	decrease_ttl(iph);
	count(e->router, REASON_FORWARDED);
	return bpf_redirect(egress, 0);
}

/* fe80::/10: an address of one link, never forwarded */
static __always_inline int link_local6(const struct in6_addr *a)
{
	return a->in6_u.u6_addr8[0] == 0xfe && (a->in6_u.u6_addr8[1] & 0xc0) == 0x80;
}

/* Whether an IPv6 next header is an extension header (RFC 8200 4, and 7045's list). */
static __always_inline int extension6(__u8 nh)
{
	return nh == NH_HOP || nh == NH_ROUTING || nh == NH_FRAGMENT || nh == NH_AUTH ||
	       nh == NH_DEST || nh == NH_MOBILITY || nh == NH_HIP || nh == NH_SHIM6 ||
	       nh == 253 || nh == 254;
}

static __always_inline int forward6(void *ctx, struct ethhdr *eth, void *data_end,
				    const struct port_entry *e, const struct hook v)
{
	struct ipv6hdr *ip6h = (void *)(eth + 1);
	struct bpf_fib_lookup fib = {};
	__u32 egress = 0;
	__u8 *l4;
	long rc;

	if ((void *)(ip6h + 1) > data_end)
		return to_peer(e, REASON_PUNTED);
	if (ip6h->version != 6 || ip6h->hop_limit <= 1)
		return to_peer(e, REASON_PUNTED); /* hop limit expiring: the guest sends ICMPv6 */
	if (ip6h->daddr.in6_u.u6_addr8[0] == 0xff || link_local6(&ip6h->daddr) ||
	    link_local6(&ip6h->saddr))
		return to_peer(e, REASON_PUNTED); /* multicast (ND, MLD), one link's own */
	if (extension6(ip6h->nexthdr))
		return to_peer(e, REASON_PUNTED); /* the guest's kernel walks the chain */
	if (ip6h->nexthdr == NH_ICMPV6) {
		l4 = (void *)(ip6h + 1);
		if ((void *)(l4 + 1) > data_end)
			return to_peer(e, REASON_PUNTED);
		if (*l4 != ICMPV6_ECHO_REQUEST && *l4 != ICMPV6_ECHO_REPLY)
			return to_peer(e, REASON_PUNTED); /* errors, neighbour discovery, MLD */
	}

	if (!admitted(e)) {
		count(e->router, REASON_POLICED);
		return v.drop;
	}

	fib.family = AF_INET6;
	fib.l4_protocol = ip6h->nexthdr;
	/* traffic class and flow label: the first word without its version */
	fib.flowinfo = *(__be32 *)ip6h & bpf_htonl(0x0FFFFFFF);
	if (v.tot_len)
		fib.tot_len = bpf_ntohs(ip6h->payload_len) + sizeof(*ip6h);
	__builtin_memcpy(fib.ipv6_src, &ip6h->saddr, sizeof(fib.ipv6_src));
	__builtin_memcpy(fib.ipv6_dst, &ip6h->daddr, sizeof(fib.ipv6_dst));
	fib.ifindex = e->fib_in;
	fib.tbid = e->table;
	rc = bpf_fib_lookup(ctx, &fib, sizeof(fib), BPF_FIB_LOOKUP_DIRECT | BPF_FIB_LOOKUP_TBID);
	rc = answered(e, rc, &fib, v, &egress);
	if (rc >= 0)
		return rc;

	__builtin_memcpy(eth->h_dest, fib.dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, fib.smac, ETH_ALEN);
	ip6h->hop_limit--;
	count(e->router, REASON_FORWARDED);
	return bpf_redirect(egress, 0);
}

static __always_inline int forward(void *ctx, void *data, void *data_end, __u32 ifindex,
				   const struct hook v)
{
	struct ethhdr *eth = data;
	struct port_entry *e;
	__u32 key = ifindex;
	__u64 mac = 0;

	e = bpf_map_lookup_elem(&ports, &key);
	if (!e || e->kind == KIND_NONE)
		return v.pass; /* not one of the engine's devices */
	if (e->kind == KIND_PUNT)
		return to_peer(e, REASON_FROM_GUEST);
	if ((void *)(eth + 1) > data_end)
		return e->kind == KIND_UPLINK ? v.pass : to_peer(e, REASON_PUNTED);
	if (e->kind == KIND_UPLINK) {
		__builtin_memcpy(&mac, eth->h_dest, ETH_ALEN);
		e = bpf_map_lookup_elem(&macs, &mac);
		if (!e)
			return v.pass; /* no port's MAC: the kernel and macvlan take it */
	}
	if (!mac_is(eth->h_dest, e->mac))
		return to_peer(e, REASON_PUNTED); /* broadcast, multicast, not ours */
	if (eth->h_proto == bpf_htons(ETH_P_IP))
		return forward4(ctx, eth, data_end, e, v);
	if (eth->h_proto == bpf_htons(ETH_P_IPV6))
		return forward6(ctx, eth, data_end, e, v);
	return to_peer(e, REASON_PUNTED); /* ARP and the rest */
}

static __always_inline int forward_xdp(struct xdp_md *ctx)
{
	const struct hook v = { .pass = XDP_PASS, .drop = XDP_DROP, .tot_len = 1 };

	return forward(ctx, (void *)(long)ctx->data, (void *)(long)ctx->data_end,
		       ctx->ingress_ifindex, v);
}

SEC("xdp")
int vrlab_engine_xdp(struct xdp_md *ctx)
{
	__u32 zero = 0, *cpu = bpf_map_lookup_elem(&steer, &zero);

	if (cpu && *cpu) /* no entry for that CPU: pass the frame to the kernel */
		return bpf_redirect_map(&cpus, *cpu - 1, XDP_PASS);
	return forward_xdp(ctx);
}

/* the forwarding half of a steered frame, on the CPU it was handed to */
SEC("xdp/cpumap")
int vrlab_engine_cpumap(struct xdp_md *ctx)
{
	return forward_xdp(ctx);
}

SEC("tc")
int vrlab_engine_tc(struct __sk_buff *skb)
{
	const struct hook v = { .pass = TC_ACT_OK, .drop = TC_ACT_SHOT, .tot_len = 0 };

	return forward(skb, (void *)(long)skb->data, (void *)(long)skb->data_end, skb->ifindex, v);
}

/*
 * Whether this kernel's bpf_fib_lookup knows BPF_FIB_LOOKUP_TBID (Linux
 * 6.5+): older ones refuse the flag with -EINVAL when the program runs, not
 * when it loads, so user space runs this once (BPF_PROG_RUN) before it
 * trusts the engine. XDP_PASS: known; XDP_ABORTED: not.
 */
SEC("xdp")
int vrlab_probe_tbid(struct xdp_md *ctx)
{
	struct bpf_fib_lookup fib = {};

	fib.family = AF_INET;
	fib.ifindex = ctx->ingress_ifindex;
	fib.tbid = 254; /* main */
	if (bpf_fib_lookup(ctx, &fib, sizeof(fib), BPF_FIB_LOOKUP_DIRECT | BPF_FIB_LOOKUP_TBID) < 0)
		return XDP_ABORTED;
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
