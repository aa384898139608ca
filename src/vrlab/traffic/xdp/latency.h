// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * The latency probe's work on one frame, shared by the probe's own program
 * (latency.bpf.c, in front of the nftables sink) and the BPF sink's timed
 * programs (sink.bpf.c, at tc or XDP), which time a frame and count it in one
 * program run: a second program on the same hook costs every frame its own
 * dispatch.
 *
 * The XDP generator (xdpgen.bpf.c) writes bpf_ktime_get_ns() into the UDP
 * payload of the frames it stamps; generator and sink share that clock (one
 * host, CLOCK_MONOTONIC), so now - stamp is the one-way latency, not a round
 * trip halved. The difference goes into the frame's router's histogram, a
 * per-CPU array of counts with HdrHistogram's own bucket layout (lowest 1 ns,
 * highest 2^34 - 1 ns, 2 significant digits): user space adds the CPUs'
 * counts and hands them to the hdrhistogram package index for index, so no
 * histogram arithmetic of vrlab's own decides a percentile.
 *
 * Payload layout (bytes after the UDP header, see vrlab.traffic.frames):
 * 0..7 the stamp (host order; 0 = not stamped), 8..9 the router's index
 * (network order), 10..13 the magic "vrlt". IPv4 and IPv6 frames carry it
 * alike: at byte 42 after a 20-byte IPv4 header, at byte 62 after IPv6's
 * fixed header. Only a UDP frame is read (IPv4 protocol 17 with no options,
 * IPv6 next header 17: the generator sends no IPv6 extension headers); any
 * other frame is counted by the sink but never timed.
 */
#ifndef VRLAB_LATENCY_H
#define VRLAB_LATENCY_H

#include <linux/bpf.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#define PAYLOAD_OFF 42 /* 14 + 20 + 8 */
#define PAYLOAD6_OFF 62 /* 14 + 40 + 8 */
#define IP_VER_IHL_OFF 14 /* 0x45: IPv4, a 20-byte header */
#define IP_PROTO_OFF 23 /* 14 + 9 */
#define IP6_NEXTHDR_OFF 20 /* 14 + 6 */
#define PROTO_UDP 17
#define PROBE_ETH_IP 0x0800 /* EtherTypes, compared with skb->protocol (network order) */
#define PROBE_ETH_IPV6 0x86DD
#define SUB_HALF_MAG 7 /* HdrHistogram: 2 significant digits, 256 sub-buckets */
#define SUB_HALF (1 << SUB_HALF_MAG)
#define SUB_MASK 255ULL
#define COUNTS_LEN 3584 /* (27 buckets + 1) * 128, for 2^34 - 1 ns */
#define HIGHEST ((1ULL << 34) - 1)
#define MAGIC 0x746c7276 /* "vrlt" read as a little-endian u32 */

struct hist {
	__u64 counts[COUNTS_LEN];
};

/* per router (its index in the stamp); max_entries set by user space */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct hist);
} hists SEC(".maps");

struct probe {
	__u64 stamp;
	__u8 router[2];
	__u32 magic;
} __attribute__((packed));

static __always_inline __u32 bit_length(__u64 v)
{
	__u32 n = 0;

	if (v >> 32) { v >>= 32; n += 32; }
	if (v >> 16) { v >>= 16; n += 16; }
	if (v >> 8) { v >>= 8; n += 8; }
	if (v >> 4) { v >>= 4; n += 4; }
	if (v >> 2) { v >>= 2; n += 2; }
	if (v >> 1) { v >>= 1; n += 1; }
	return n + (__u32)v;
}

/* HdrHistogram's counts index of v (unit magnitude 0) */
static __always_inline __u32 counts_index(__u64 v)
{
	__u32 bucket, sub;

	if (v > HIGHEST)
		v = HIGHEST;
	bucket = bit_length(v | SUB_MASK) - (SUB_HALF_MAG + 1);
	sub = (__u32)(v >> bucket);
	return ((bucket + 1) << SUB_HALF_MAG) + sub - SUB_HALF;
}

/*
 * The probe at ``off`` (the UDP payload) if the frame is long enough for it
 * and its protocol byte at ``proto_off`` says UDP; NULL otherwise.
 * ``off`` and ``proto_off`` are constants in each caller, so the verifier
 * sees fixed offsets.
 */
static __always_inline struct probe *probe_at(void *data, void *data_end, __u32 off,
					      __u32 proto_off)
{
	struct probe *p = data + off;

	if ((void *)(p + 1) > data_end)
		return NULL;
	if (((__u8 *)data)[proto_off] != PROTO_UDP)
		return NULL;
	return p;
}

/*
 * Times the frame at data..data_end if it carries a stamp. Direct packet
 * access, and an early return for a frame without one: at high rates the
 * generator stamps only some frames, and the others must cost next to
 * nothing. ``proto`` is the frame's EtherType in network order, as the
 * caller already has it (skb->protocol at tc, the Ethernet header at XDP),
 * so the frame's own bytes are read only where the probe would be.
 */
static __always_inline void time_frame_at(void *data, void *data_end, __u16 proto)
{
	struct probe *p;
	__u64 stamp, now, d;
	struct hist *h;
	__u32 router, idx;

	if (proto == bpf_htons(PROBE_ETH_IP)) {
		p = probe_at(data, data_end, PAYLOAD_OFF, IP_PROTO_OFF);
		if (!p || ((__u8 *)data)[IP_VER_IHL_OFF] != 0x45)
			return;
	} else if (proto == bpf_htons(PROBE_ETH_IPV6)) {
		p = probe_at(data, data_end, PAYLOAD6_OFF, IP6_NEXTHDR_OFF);
		if (!p)
			return;
	} else {
		return;
	}
	stamp = p->stamp;
	if (stamp == 0 || p->magic != MAGIC)
		return;
	now = bpf_ktime_get_ns();
	d = now > stamp ? now - stamp : 0;
	router = ((__u32)p->router[0] << 8) | p->router[1];
	h = bpf_map_lookup_elem(&hists, &router);
	if (!h)
		return;
	idx = counts_index(d);
	if (idx < COUNTS_LEN)
		h->counts[idx] += 1;
}

/*
 * A socket buffer's frame: one whose first bytes are not in the linear part
 * (none of the testbed's are) goes untimed.
 */
static __always_inline void time_frame(struct __sk_buff *skb)
{
	time_frame_at((void *)(long)skb->data, (void *)(long)skb->data_end, skb->protocol);
}

#endif /* VRLAB_LATENCY_H */
