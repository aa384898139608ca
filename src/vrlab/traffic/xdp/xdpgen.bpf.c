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
 * Why the marker: every BPF_PROG_RUN with repeat > 1 adds the program to the
 * kernel's XDP dispatcher and removes it afterwards, and each change waits
 * for an RCU grace period (about 25 ms per call here), unless the program is
 * already in the dispatcher. User space keeps it there by attaching this same
 * program to the tg veth in generic mode for as long as it sends. Frames the
 * veth really receives carry no metadata and are passed up untouched; only
 * the generator's templates carry XDPGEN_MAGIC as their 4 bytes of metadata.
 *
 * xdpgen_drop is the cheapest possible receiver for tests and benchmarks: a
 * veth only accepts XDP frames while its peer runs NAPI, which an attached
 * XDP program turns on.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

/* "vrlg", in the host's byte order on both sides */
#define XDPGEN_MAGIC 0x76726c67

SEC("xdp")
int xdpgen_tx(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	__u32 *meta = (void *)(long)ctx->data_meta;

	if ((void *)(meta + 1) > data)
		return XDP_PASS;
	return *meta == XDPGEN_MAGIC ? XDP_TX : XDP_PASS;
}

SEC("xdp")
int xdpgen_drop(struct xdp_md *ctx)
{
	return XDP_DROP;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
