/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * xsknet_common.h - what the XDP program (hard-IRQ stage) and user space
 * both read. The Rust side mirrors these definitions in
 * userspace/src/xdp.rs; a unit test there parses this file and fails when
 * the two drift apart. Append to the enum and struct; never reorder.
 */
#ifndef XSKNET_COMMON_H
#define XSKNET_COMMON_H

#include <linux/types.h>

/* Map names, as user space looks them up in the object file. */
#define XSKNET_CONFIG_MAP "xsknet_config"
#define XSKNET_XSKS_MAP "xsks_map"
#define XSKNET_STATS_MAP "xsknet_stats"

/* Entries in xsks_map: one AF_XDP socket per rx queue, key = rx_queue_index. */
#define XSKNET_MAX_QUEUES 64

/*
 * The single entry (key 0) of the BPF_MAP_TYPE_ARRAY xsknet_config,
 * written by user space before the program is attached.
 */
struct xsknet_config {
	__u32 ipv4_addr; /* our address, network byte order; 0 = not configured: pass all */
	__u32 flags;     /* XSKNET_F_* */
};

/* flags: drop the frames that are ours (XDP_DROP) instead of redirecting
 * them. The benchmark's ceiling: what the path costs up to the XDP program. */
#define XSKNET_F_DROP (1u << 0)

/*
 * Indices into the BPF_MAP_TYPE_PERCPU_ARRAY xsknet_stats (__u64 per CPU).
 * XSKNET_STAT_RX counts every frame the program sees; each frame then lands
 * in exactly one of the other counters, so RX is their sum.
 */
enum xsknet_stat {
	XSKNET_STAT_RX,              /* every frame the program ran on */
	XSKNET_STAT_REDIRECT_IPV4,   /* IPv4 to our address, handed to the XSK */
	XSKNET_STAT_REDIRECT_ARP,    /* ARP asking for our address, handed to the XSK */
	XSKNET_STAT_PASS_NOT_OURS,   /* the kernel's: other address, IPv6, VLAN, other ethertype */
	XSKNET_STAT_PASS_NO_SOCKET,  /* ours, but no XSK registered on this rx queue */
	XSKNET_STAT_PASS_MALFORMED,  /* too short to tell whose it is */
	XSKNET_STAT_DROP,            /* ours, dropped because XSKNET_F_DROP is set */
	XSKNET_STAT__MAX,
};

#endif /* XSKNET_COMMON_H */
