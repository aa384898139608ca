// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * vrlab's latency probe at the sink, for the nftables sink: a tc ingress
 * program (tcx, or a clsact filter where tcx is missing) on the sink's port
 * that times each stamped frame (latency.h) and passes every frame on
 * (TCX_NEXT, which is TC_ACT_UNSPEC) to the nftables sink's netdev ingress
 * hook, which runs after tc's. The tc BPF sink times frames in its own
 * program instead (sink.bpf.c's timed programs).
 */
#include "latency.h"

#define TC_NEXT -1

SEC("tc")
int latency_probe(struct __sk_buff *skb)
{
	time_frame(skb);
	return TC_NEXT;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
