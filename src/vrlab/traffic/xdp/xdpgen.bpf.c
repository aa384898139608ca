// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * vrlab's XDP traffic generator, run with BPF_PROG_RUN in live-frames mode
 * (BPF_F_TEST_XDP_LIVE_FRAMES, Linux 5.18+).
 *
 * The kernel builds each frame from the template user space passes to
 * bpf_prog_test_run_opts(), runs the program on it, and turns XDP_TX into a
 * redirect out of the ingress device (the tg veth): the frames then go down
 * the XDP transmit path (ndo_xdp_xmit) with no socket, no skb and no qdisc.
 * That is why this path outruns AF_PACKET + sendmmsg several times over.
 *
 * Why the headers are written on every run: live frames live in pages the
 * kernel recycles without copying the template in again. A receiver that
 * turns a frame into an skb (a SUT that routes it: TTL, MACs, and the skb
 * headers it pushes in front) hands the page back changed, and the next
 * frame sent from that page would carry the change. So the program copies
 * the first HDR_BYTES (Ethernet, IPv4 and UDP headers, and the start of the
 * payload) from the template of the next flow, up to byte 74 when
 * config.hdr_bytes says the frames are IPv6-sized (an IPv6 frame's Ethernet,
 * IPv6 and UDP headers end at byte 62, the smallest IPv6 frame at 74), and up
 * to byte 76 when they are at least the smallest timed IPv6 frame (the probe
 * payload after IPv6's headers ends there): frames of different flows, and of
 * both IP versions in the dual-stack mix, are interleaved one by one, and
 * every frame leaves as user space built it.
 *
 * Why a generator frame is told apart by its metadata: every BPF_PROG_RUN
 * with repeat > 1 adds the program to the kernel's XDP dispatcher and
 * removes it afterwards, and each change waits for an RCU grace period
 * (about 25 ms per call here), unless the program is already there. User
 * space keeps it there by attaching this same program to the tg veth in
 * generic mode while it sends. Frames the veth really receives have no
 * metadata and are passed up untouched; the generator's templates are run
 * with META_BYTES of metadata, which the kernel restores for every run.
 *
 * Why frames carry a timestamp: with config.stamp_every set, the program
 * writes bpf_ktime_get_ns() into the first 8 bytes of the UDP payload (the
 * template holds zeros there) and updates the UDP checksum for it (RFC 1624),
 * so the frame stays valid. It stamps whole rounds over the flows, one round
 * in stamp_every, so every flow (and router) is sampled alike and the
 * probe's cost stays bounded at high rates; the others leave with a zero
 * stamp, which the probe passes over. The EtherType says where the UDP
 * payload starts: byte 42 in an IPv4 frame, byte 62 in an IPv6 one (no
 * extension headers: user space builds none). An IPv6 frame is stamped only
 * when it is long enough to hold the probe payload there (76 bytes; the
 * smallest IPv6 frame, 74, holds 12 of its 14 bytes and leaves unstamped).
 * The sink's latency probe (latency.h) reads the stamp on the same clock.
 * The stamp is taken
 * when the program runs; the kernel hands the frames to the veth in batches
 * (batch_size), so a frame waits there for at most one batch's worth of
 * runs, which the latency includes.
 *
 * xdpgen_drop is the cheapest possible receiver for tests and benchmarks: a
 * veth only accepts XDP frames while its peer runs NAPI, which an attached
 * XDP program turns on.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define MAX_FLOWS 1024
#define HDR_BYTES 60 /* the smallest frame: 14 + 20 + 8 + 18 */
#define HDR6_BYTES 74 /* the smallest IPv6 frame: 14 + 40 + 8 + 12 */
#define HDR_MAX 76 /* the smallest timed IPv6 frame: 14 + 40 + 8 + 14 */
#define ETH_TYPE_OFF 12
#define META_BYTES 4
#define UDP_CSUM_OFF 40 /* 14 + 20 + 6 */
#define STAMP_OFF 42 /* the UDP payload */
#define UDP6_CSUM_OFF 60 /* 14 + 40 + 6 */
#define STAMP6_OFF 62 /* the UDP payload after IPv6's fixed header */

struct header {
	__u8 bytes[HDR_MAX];
};

struct config {
	__u32 flows; /* templates in use, 1..MAX_FLOWS */
	__u32 stamp_every; /* 0: no stamps; N (a power of 2): stamp one round of flows in N */
	__u32 hdr_bytes; /* HDR_BYTES, HDR6_BYTES or HDR_MAX: how much to rewrite */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_FLOWS);
	__type(key, __u32);
	__type(value, struct header);
} templates SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct config);
} config SEC(".maps");

struct position {
	__u32 flow; /* the next flow */
	__u32 round; /* rounds over all flows so far */
};

/* per CPU: a test run stays on the CPU that started it */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct position);
} cursor SEC(".maps");

/*
 * The stamp replaces 8 zero bytes, so the checksum only gains the stamp's
 * four 16-bit words (RFC 1624, eqn. 3, with m = 0). Ones' complement sums do
 * not depend on byte order, so the words are added as they lie in memory.
 */
static __always_inline void stamp(void *data, __u32 csum_off, __u32 stamp_off)
{
	__u64 now = bpf_ktime_get_ns();
	__u16 w[4], csum;
	__u32 sum;

	__builtin_memcpy(w, &now, sizeof(now));
	__builtin_memcpy(&csum, data + csum_off, sizeof(csum));
	sum = (__u16)~csum;
	sum += w[0];
	sum += w[1];
	sum += w[2];
	sum += w[3];
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	csum = (__u16)~sum;
	if (csum == 0)
		csum = 0xffff; /* UDP: 0 would mean "no checksum" */
	__builtin_memcpy(data + stamp_off, &now, sizeof(now));
	__builtin_memcpy(data + csum_off, &csum, sizeof(csum));
}

SEC("xdp")
int xdpgen_tx(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	void *meta = (void *)(long)ctx->data_meta;
	__u32 zero = 0, flow;
	struct position *next;
	struct config *cfg;
	struct header *hdr;

	if (meta + META_BYTES > data)
		return XDP_PASS;
	cfg = bpf_map_lookup_elem(&config, &zero);
	next = bpf_map_lookup_elem(&cursor, &zero);
	if (!cfg || !next || cfg->flows == 0)
		return XDP_ABORTED;
	flow = next->flow;
	if (flow >= cfg->flows) {
		flow = 0;
		next->round += 1;
	}
	next->flow = flow + 1;
	hdr = bpf_map_lookup_elem(&templates, &flow);
	if (!hdr || data + HDR_BYTES > data_end)
		return XDP_ABORTED;
	__builtin_memcpy(data, hdr->bytes, HDR_BYTES);
	if (cfg->hdr_bytes >= HDR6_BYTES) {
		if (data + HDR6_BYTES > data_end)
			return XDP_ABORTED;
		__builtin_memcpy(data + HDR_BYTES, hdr->bytes + HDR_BYTES,
				 HDR6_BYTES - HDR_BYTES);
	}
	if (cfg->hdr_bytes >= HDR_MAX) {
		if (data + HDR_MAX > data_end)
			return XDP_ABORTED;
		__builtin_memcpy(data + HDR6_BYTES, hdr->bytes + HDR6_BYTES,
				 HDR_MAX - HDR6_BYTES);
	}
	if (!cfg->stamp_every || (next->round & (cfg->stamp_every - 1)))
		return XDP_TX;
	/* the EtherType in network order: 0x0800 IPv4, 0x86dd IPv6 */
	if (((__u8 *)data)[ETH_TYPE_OFF] == 0x08 && ((__u8 *)data)[ETH_TYPE_OFF + 1] == 0x00)
		stamp(data, UDP_CSUM_OFF, STAMP_OFF);
	else if (((__u8 *)data)[ETH_TYPE_OFF] == 0x86 &&
		 ((__u8 *)data)[ETH_TYPE_OFF + 1] == 0xdd && data + HDR_MAX <= data_end)
		stamp(data, UDP6_CSUM_OFF, STAMP6_OFF);
	return XDP_TX;
}

SEC("xdp")
int xdpgen_drop(struct xdp_md *ctx)
{
	return XDP_DROP;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
