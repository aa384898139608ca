// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * vrlab's counting sink: a tc ingress program (tcx, or a clsact filter where
 * tcx is missing) on the sink's port that counts each frame against its
 * router and drops it.
 *
 * Per frame: the IPv4 destination is looked up in an LPM trie of the
 * routers' prefixes (prefix -> router slot, the router's index + 1), and
 * that slot of a per-CPU array counts it; a frame to no router (or not IPv4
 * at all) counts in slot 0 ("other"). With flow counting on, an
 * IPv4/UDP frame also counts in a per-CPU LRU hash keyed by its addresses and
 * ports. Then TC_ACT_SHOT: the sink never hands a frame to the IP layer.
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

/* frames per slot: "other", then one per router; max_entries set by user space */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} counts SEC(".maps");

/* addresses and ports in network order, as they are in the frame */
struct flow_key {
	__u32 saddr;
	__u32 daddr;
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

static __always_inline void count_slot(__u32 slot)
{
	__u64 *c = bpf_map_lookup_elem(&counts, &slot);

	if (c)
		*c += 1;
}

static __always_inline void count_flow(struct iphdr_min *ip, void *data_end)
{
	__u32 ihl = (ip->ver_ihl & 0x0f) * 4;
	__u16 *ports = (void *)ip + ihl;
	struct flow_key k;
	__u64 one = 1, *c;

	if (ip->protocol != IPPROTO_UDP || ihl < sizeof(*ip) || ihl > 60)
		return;
	if ((void *)(ports + 2) > data_end)
		return;
	k.saddr = ip->saddr;
	k.daddr = ip->daddr;
	k.sport = ports[0];
	k.dport = ports[1];
	c = bpf_map_lookup_elem(&flows, &k);
	if (c)
		*c += 1;
	else /* a per-CPU value: this CPU's slot starts at 1, the others at 0 */
		bpf_map_update_elem(&flows, &k, &one, BPF_ANY);
}

/*
 * A frame whose IP header is not all in the linear part of its skb (none of
 * the testbed's are) is made linear that far first, at a cost only to such
 * frames.
 */
static __always_inline int sink(struct __sk_buff *skb, int with_flows)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct route_key key;
	struct iphdr_min *ip;
	__u32 *router;

	if (skb->protocol != bpf_htons(ETH_P_IP))
		goto no_router;
	if (data + ETH_HLEN + sizeof(*ip) > data_end) {
		if (bpf_skb_pull_data(skb, ETH_HLEN + sizeof(*ip)) < 0)
			goto no_router;
		data = (void *)(long)skb->data;
		data_end = (void *)(long)skb->data_end;
		if (data + ETH_HLEN + sizeof(*ip) > data_end)
			goto no_router;
	}
	ip = data + ETH_HLEN;
	if (with_flows)
		count_flow(ip, data_end);
	key.prefixlen = 32;
	key.addr = ip->daddr;
	router = bpf_map_lookup_elem(&routes, &key);
	if (router) {
		count_slot(*router);
		return TC_ACT_SHOT;
	}
no_router:
	count_slot(OTHER);
	return TC_ACT_SHOT;
}

SEC("tc")
int sink_count(struct __sk_buff *skb)
{
	return sink(skb, 0);
}

SEC("tc")
int sink_count_flows(struct __sk_buff *skb)
{
	return sink(skb, 1);
}

SEC("tc")
int sink_count_timed(struct __sk_buff *skb)
{
	time_frame(skb);
	return sink(skb, 0);
}

SEC("tc")
int sink_count_flows_timed(struct __sk_buff *skb)
{
	time_frame(skb);
	return sink(skb, 1);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
