// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * vrlab's counting sink: a program on the sink's port that counts each frame
 * against its router and drops it. At tc ingress (tcx, or a clsact filter
 * where tcx is missing) it takes socket buffers; at XDP it takes the frames a
 * SUT that forwards at XDP sends as they are, before any socket buffer is
 * built for them (a veth's poll runs on the sender's CPU, so at tc the SUT's
 * CPU would build one per frame for the sink). One counting body serves both.
 *
 * Per frame: the destination is looked up in an LPM trie of the routers'
 * prefixes (prefix -> router slot, the router's index + 1): IPv4 in one
 * trie, IPv6 in another beside it (a router of a dual-stack run has a prefix
 * in each, both mapping to its slot), and that slot of a per-CPU array
 * counts it; a frame to no router (or neither IPv4 nor IPv6) counts in slot
 * 0 ("other"). With flow counting on, a UDP frame of either family also
 * counts in a per-CPU LRU hash keyed by its addresses and ports (IPv4
 * addresses as IPv4-mapped IPv6 ones, ::ffff:a.b.c.d, so one key fits both).
 * IPv6 frames are read without extension headers: the UDP header must follow
 * the fixed header, as in every frame the generator sends. Then TC_ACT_SHOT
 * or XDP_DROP: the sink never hands a frame to the IP layer.
 *
 * The timed programs also time each stamped frame first (latency.h), in the
 * same run: the latency probe and the counter in one program, since a second
 * program on the hook would cost every frame its own dispatch. Their
 * histograms map is sized by user space (one entry when frames go untimed).
 */
#include <linux/bpf.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "latency.h"

#define ETH_HLEN 14
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define IPPROTO_UDP 17
#define TC_ACT_SHOT 2
#define OTHER 0 /* the slot of frames to no router */

/* the routers' prefixes; the key's address is in network order */
struct route_key {
	__u32 prefixlen;
	__u32 addr;
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct route_key);
	__type(value, __u32);
} routes SEC(".maps");

/* the routers' IPv6 prefixes, as routes holds the IPv4 ones */
struct route6_key {
	__u32 prefixlen;
	__u8 addr[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct route6_key);
	__type(value, __u32);
} routes6 SEC(".maps");

/* frames per slot: "other", then one per router; max_entries set by user space */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} counts SEC(".maps");

/* addresses and ports in network order, as they are in the frame; an IPv4
 * address as an IPv4-mapped IPv6 one */
struct flow_key {
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport;
	__u16 dport;
};

/* frames per flow; sized by user space (one entry when flows are not counted) */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_PERCPU_HASH);
	__uint(max_entries, 1);
	__type(key, struct flow_key);
	__type(value, __u64);
} flows SEC(".maps");

struct iphdr_min {
	__u8 ver_ihl;
	__u8 tos;
	__u16 tot_len;
	__u16 id;
	__u16 frag_off;
	__u8 ttl;
	__u8 protocol;
	__u16 check;
	__u32 saddr;
	__u32 daddr;
};

struct ipv6hdr_min {
	__u32 ver_tc_flow;
	__u16 payload_len;
	__u8 nexthdr;
	__u8 hop_limit;
	__u8 saddr[16];
	__u8 daddr[16];
};

static __always_inline void count_slot(__u32 slot)
{
	__u64 *c = bpf_map_lookup_elem(&counts, &slot);

	if (c)
		*c += 1;
}

/* the flow of an IPv4 (ip4) or an IPv6 (ip6) frame: exactly one is set */
static __always_inline void count_flow(struct iphdr_min *ip4, struct ipv6hdr_min *ip6,
				       void *data_end)
{
	struct flow_key k = {};
	__u64 one = 1, *c;
	__u16 *ports;

	if (ip4) {
		__u32 ihl = (ip4->ver_ihl & 0x0f) * 4;

		if (ip4->protocol != IPPROTO_UDP || ihl < sizeof(*ip4) || ihl > 60)
			return;
		ports = (void *)ip4 + ihl;
		k.saddr[10] = k.saddr[11] = 0xff;
		k.daddr[10] = k.daddr[11] = 0xff;
		__builtin_memcpy(&k.saddr[12], &ip4->saddr, 4);
		__builtin_memcpy(&k.daddr[12], &ip4->daddr, 4);
	} else if (ip6) {
		if (ip6->nexthdr != IPPROTO_UDP)
			return;
		ports = (void *)(ip6 + 1);
		__builtin_memcpy(k.saddr, ip6->saddr, 16);
		__builtin_memcpy(k.daddr, ip6->daddr, 16);
	} else {
		return;
	}
	if ((void *)(ports + 2) > data_end)
		return;
	k.sport = ports[0];
	k.dport = ports[1];
	c = bpf_map_lookup_elem(&flows, &k);
	if (c)
		*c += 1;
	else /* a per-CPU value: this CPU's slot starts at 1, the others at 0 */
		bpf_map_update_elem(&flows, &k, &one, BPF_ANY);
}

/* Counts the frame at data..data_end, of EtherType ``proto`` (network order). */
static __always_inline void count_frame(void *data, void *data_end, __u16 proto,
					int with_flows)
{
	struct route6_key key6;
	struct route_key key;
	struct ipv6hdr_min *ip6;
	struct iphdr_min *ip;
	__u32 *router;

	if (proto == bpf_htons(ETH_P_IPV6)) {
		ip6 = data + ETH_HLEN;
		if ((void *)(ip6 + 1) > data_end)
			goto no_router;
		if (with_flows)
			count_flow(NULL, ip6, data_end);
		key6.prefixlen = 128;
		__builtin_memcpy(key6.addr, ip6->daddr, 16);
		router = bpf_map_lookup_elem(&routes6, &key6);
	} else if (proto == bpf_htons(ETH_P_IP)) {
		ip = data + ETH_HLEN;
		if ((void *)(ip + 1) > data_end)
			goto no_router;
		if (with_flows)
			count_flow(ip, NULL, data_end);
		key.prefixlen = 32;
		key.addr = ip->daddr;
		router = bpf_map_lookup_elem(&routes, &key);
	} else {
		goto no_router;
	}
	if (router) {
		count_slot(*router);
		return;
	}
no_router:
	count_slot(OTHER);
}

/*
 * A socket buffer whose IP header is not all in its linear part (none of the
 * testbed's are) is made linear that far first, at a cost only to such
 * frames.
 */
static __always_inline int sink_skb(struct __sk_buff *skb, int with_flows, int timed)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	__u32 need = ETH_HLEN;

	if (skb->protocol == bpf_htons(ETH_P_IP))
		need += sizeof(struct iphdr_min);
	else if (skb->protocol == bpf_htons(ETH_P_IPV6))
		need += sizeof(struct ipv6hdr_min);
	if (data + need > data_end) {
		if (bpf_skb_pull_data(skb, need) < 0) {
			count_slot(OTHER);
			return TC_ACT_SHOT;
		}
		data = (void *)(long)skb->data;
		data_end = (void *)(long)skb->data_end;
	}
	if (timed)
		time_frame_at(data, data_end, skb->protocol);
	count_frame(data, data_end, skb->protocol, with_flows);
	return TC_ACT_SHOT;
}

static __always_inline int sink_xdp(struct xdp_md *ctx, int with_flows, int timed)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u16 proto;

	if (data + ETH_HLEN > data_end) {
		count_slot(OTHER);
		return XDP_DROP;
	}
	proto = *(__u16 *)(data + 12);
	if (timed)
		time_frame_at(data, data_end, proto);
	count_frame(data, data_end, proto, with_flows);
	return XDP_DROP;
}

/* The programs user space picks from: flows counted or not, frames timed or not, per hook. */
#define SINK_TC(name, flows, timed)                       \
	SEC("tc") int name(struct __sk_buff *skb)         \
	{                                                 \
		return sink_skb(skb, flows, timed);       \
	}
#define SINK_XDP(name, flows, timed)                      \
	SEC("xdp") int name(struct xdp_md *ctx)           \
	{                                                 \
		return sink_xdp(ctx, flows, timed);       \
	}

SINK_TC(sink_count, 0, 0)
SINK_TC(sink_count_flows, 1, 0)
SINK_TC(sink_count_timed, 0, 1)
SINK_TC(sink_count_flows_timed, 1, 1)
SINK_XDP(sink_xdp_count, 0, 0)
SINK_XDP(sink_xdp_count_flows, 1, 0)
SINK_XDP(sink_xdp_count_timed, 0, 1)
SINK_XDP(sink_xdp_count_flows_timed, 1, 1)

char LICENSE[] SEC("license") = "Dual BSD/GPL";
