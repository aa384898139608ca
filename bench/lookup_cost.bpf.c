// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * One bpf_fib_lookup as the shared engine makes it (DIRECT | TBID, in one
 * router's own table), for bench/lookup_cost.py to time with BPF_PROG_RUN.
 *
 * The engine itself cannot be timed in a loop: it rewrites the frame, so
 * from the second run on the frame is no longer addressed to a port and takes
 * another path. These programs leave the frame alone, so a million runs of
 * one call all do the same work: `lookup` the engine's query and the lookup,
 * `baseline` the same query without the lookup (what the loop itself costs).
 * Both return XDP_PASS only when the work went as planned, so user space can
 * refuse to time a failed lookup.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define AF_INET 2
#define AF_INET6 10
#define UDP 17

/* What to look up: the engine's port entry and a frame's addresses. */
struct query {
	__u32 family;
	__u32 ifindex; /* the port's fib_in */
	__u32 table;   /* the router's table */
	__u32 tot_len; /* the frame's IP length, as the engine passes it at XDP */
	__u8 src[16];  /* IPv4: the first four bytes */
	__u8 dst[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct query);
} queries SEC(".maps");

static __always_inline int prepare(struct bpf_fib_lookup *fib)
{
	__u32 zero = 0;
	struct query *q = bpf_map_lookup_elem(&queries, &zero);

	if (!q)
		return -1;
	fib->family = q->family;
	fib->l4_protocol = UDP;
	fib->tot_len = q->tot_len;
	fib->ifindex = q->ifindex;
	fib->tbid = q->table;
	if (q->family == AF_INET) {
		__builtin_memcpy(&fib->ipv4_src, q->src, 4);
		__builtin_memcpy(&fib->ipv4_dst, q->dst, 4);
	} else {
		__builtin_memcpy(fib->ipv6_src, q->src, 16);
		__builtin_memcpy(fib->ipv6_dst, q->dst, 16);
	}
	return 0;
}

SEC("xdp")
int lookup(struct xdp_md *ctx)
{
	struct bpf_fib_lookup fib = {};

	if (prepare(&fib))
		return XDP_ABORTED;
	if (bpf_fib_lookup(ctx, &fib, sizeof(fib), BPF_FIB_LOOKUP_DIRECT | BPF_FIB_LOOKUP_TBID) !=
	    BPF_FIB_LKUP_RET_SUCCESS)
		return XDP_DROP;
	return XDP_PASS;
}

SEC("xdp")
int baseline(struct xdp_md *ctx)
{
	struct bpf_fib_lookup fib = {};

	if (prepare(&fib))
		return XDP_ABORTED;
	/* as if &fib went to a helper: the compiler keeps the whole struct, zeroing included */
	asm volatile("" : : "r"(&fib) : "memory");
	return fib.ifindex && fib.tbid ? XDP_PASS : XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";
