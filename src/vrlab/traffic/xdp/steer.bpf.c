// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * vrlab's receive steering for the SUT's ingress port: an XDP program that
 * hands every frame to the SUT's CPU through a cpumap entry.
 *
 * A veth's receive poll runs on the CPU that sent into it, so with the XDP
 * generator the SUT's ingress poll runs on the generator's CPU, and that CPU
 * would build every frame's socket buffer for the SUT. Here the poll only
 * queues each frame (an xdp_frame, no socket buffer yet) for the cpumap
 * entry's kernel thread on the SUT's CPU, which builds the buffer and runs
 * the SUT's whole receive path there, as a NIC's receive poll on the SUT's
 * own machine would. The entry's queue is set by user space (the kernel
 * allows up to 16384 frames).
 *
 * steer[0] holds the CPU; a frame whose CPU has no entry is passed on here
 * (XDP_PASS), as it would be with no program at all.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define MAX_CPUS 64

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

SEC("xdp")
int steer_rx(struct xdp_md *ctx)
{
	__u32 zero = 0;
	__u32 *cpu = bpf_map_lookup_elem(&steer, &zero);

	if (!cpu)
		return XDP_PASS;
	return bpf_redirect_map(&cpus, *cpu, XDP_PASS);
}

char LICENSE[] SEC("license") = "GPL";
