/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * The layouts the shared engine's BPF program and vrlab's Python side both
 * use: the one definition of each. engine.bpf.c includes this file, and
 * vrlab.engines.ebpf.layout parses it (vrlab.bpf.cheader), so a field added
 * here is seen by both; tests/unit/test_engine_program.py checks the parse
 * against the compiled object's BTF.
 *
 * Keep to what that parser reads: "#define NAME number", enums of names
 * (with "= number" where needed) and structs of __u8/__u16/__u32/__u64
 * fields or arrays of them.
 */
#ifndef VRLAB_ENGINE_H
#define VRLAB_ENGINE_H

/* the ports map is an array indexed by interface index */
#define MAX_IFINDEX 16384
/* routers: police entries, and counter slots per router */
#define MAX_ROUTERS 1024
/* ports on shared uplinks, found by destination MAC */
#define MAX_PORTS 4096
/* counter slots per router: the stats key is router * SLOTS + reason */
#define SLOTS 8
/* a share is enforced per slot of 2**POLICE_SLOT_SHIFT ns (~1.05 ms) */
#define POLICE_SLOT_SHIFT 20
/* CPUs the XDP hook can hand frames on to (the cpus map) */
#define MAX_CPUS 64
/* port_entry.flags: the router has a share, so its police entry is read */
#define FLAG_POLICED 1

/* port_entry.kind; KIND_NONE is an unused slot of the ports array */
enum entry_kind {
	KIND_NONE,
	KIND_PORT,
	KIND_PUNT,
	KIND_UPLINK,
};

/* the per-router counters, in the order `vrlab status` shows them */
enum reason {
	REASON_FORWARDED,
	REASON_PUNTED,
	REASON_FROM_GUEST,
	REASON_NO_ROUTE,
	REASON_POLICED,
	REASON_ISOLATION,
	REASON_ERROR,
};

/*
 * What the engine knows of one of its devices: the ports map's value by
 * ifindex, and the macs map's value by destination MAC for a port on a
 * shared uplink (the frame never goes through the macvlan layer).
 */
struct port_entry {
	__u32 kind;
	__u32 table;   /* the router's kernel routing table: its FIB */
	__u32 router;  /* index of the router: its counters and police entry */
	__u32 peer;    /* a port's punt link, or a punt link's port */
	__u32 fib_in;  /* the FIB lookup's input device */
	__u32 lower;   /* send out of this device instead (a macvlan port's uplink) */
	__u32 flags;
	__u8 mac[6];   /* the port's MAC: frames to any other are punted */
	__u8 pad[2];
};

/* A router's share: frames admitted in the current slot, up to limit. */
struct police_entry {
	__u64 slot;   /* ktime >> POLICE_SLOT_SHIFT of the current slot */
	__u64 count;  /* frames admitted in it */
	__u64 limit;  /* frames per slot; 0: no limit */
	__u64 spare;
};

#endif
