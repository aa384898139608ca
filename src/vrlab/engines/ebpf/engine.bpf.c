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
 * 2. What a router does not fast-path (not IPv4, not to the port's MAC, IP
 *    options, TTL <= 1, multicast, no neighbour yet, addressed to the router
 *    itself, too big) is punted to the router's guest over its punt link:
 *    the guest's kernel does what a router's slow path does (ARP, ICMP
 *    errors, the control plane's own traffic).
 * 3. A router with a share is held to it in the same pass: a count per
 *    ~1 ms slot in its police entry (a flag in the port entry: the others
 *    skip the lookup).
 * 4. bpf_fib_lookup(DIRECT | TBID) looks in the router's own table only: no
 *    policy rules are walked, so the cost does not grow with the number of
 *    routers, and two routers' overlapping prefixes never meet.
 * 5. The egress device must be a port of the same router (isolation even
 *    against a wrong route).
 * 6. MACs rewritten, TTL decremented with the checksum updated as the
 *    kernel's ip_decrease_ttl does, then bpf_redirect.
 *
 * Frames a guest sends (control-plane traffic and its slow path) come back
 * over the punt link and leave by the router port it stands for. Counters
 * are per router and reason in a per-CPU array: the hot path never
 * contends.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "engine.h"

#define AF_INET 2

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

static __always_inline int forward(void *ctx, void *data, void *data_end, __u32 ifindex,
				   const struct hook v)
{
	struct ethhdr *eth = data;
	struct iphdr *iph = data + sizeof(*eth);
	struct bpf_fib_lookup fib = {};
	struct port_entry *e, *out;
	__u32 key = ifindex, egress;
	__u64 mac = 0;
	long rc;

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
	if (!mac_is(eth->h_dest, e->mac) || eth->h_proto != bpf_htons(ETH_P_IP))
		return to_peer(e, REASON_PUNTED); /* broadcast, not ours, ARP and the rest */
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
	switch (rc) {
	case BPF_FIB_LKUP_RET_SUCCESS:
		break;
	case BPF_FIB_LKUP_RET_NO_NEIGH:    /* the guest resolves it, the agent copies it */
	case BPF_FIB_LKUP_RET_NOT_FWDED:   /* local, broadcast, or no table yet */
	case BPF_FIB_LKUP_RET_FRAG_NEEDED: /* the guest sends the ICMP error */
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

	key = fib.ifindex;
	out = bpf_map_lookup_elem(&ports, &key);
	if (!out || out->kind != KIND_PORT || out->router != e->router) {
		count(e->router, REASON_ISOLATION);
		return v.drop;
	}
	egress = out->lower ? out->lower : fib.ifindex;

	__builtin_memcpy(eth->h_dest, fib.dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, fib.smac, ETH_ALEN);
	decrease_ttl(iph);
	count(e->router, REASON_FORWARDED);
	return bpf_redirect(egress, 0);
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
