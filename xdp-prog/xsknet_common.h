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
#define XSKNET_GUARD_CONFIG_MAP "guard_config"
#define XSKNET_GUARD_ALLOW_MAP "guard_allow"
#define XSKNET_GUARD_BLOCK_MAP "guard_block"
#define XSKNET_GUARD_RULE_HITS_MAP "guard_rule_hits"
#define XSKNET_GUARD_STATS_MAP "guard_stats"
#define XSKNET_GUARD_SOURCES_MAP "guard_sources"
#define XSKNET_GUARD_TIGHT_MAP "guard_tight"
#define XSKNET_GUARD_GLOBAL_MAP "guard_global"
#define XSKNET_GUARD_HEAVY_MAP "guard_heavy"
#define XSKNET_KERNEL_ADDRS_MAP "kernel_addrs"

/* Entries in xsks_map: one AF_XDP socket per rx queue, key = rx_queue_index. */
#define XSKNET_MAX_QUEUES 64

/*
 * The single entry (key 0) of the BPF_MAP_TYPE_ARRAY xsknet_config,
 * written by user space before the program is attached.
 */
struct xsknet_config {
	__u32 ipv4_addr; /* our address, network byte order; 0 = not configured: pass all */
	__u32 flags;     /* XSKNET_F_* */
	__u8 mac[6];     /* the interface's MAC; until written, no unicast frame is ours */
	__u16 pad;
};

/* Entries of the BPF_MAP_TYPE_HASH kernel_addrs: key an IPv4 address
 * (network byte order), value unused (__u8). */
#define XSKNET_KERNEL_ADDRS_MAX 256

/* flags: drop the frames that are ours (XDP_DROP) instead of redirecting
 * them. The benchmark's ceiling: what the path costs up to the XDP program. */
#define XSKNET_F_DROP (1u << 0)
/* flags: run the guard (guard_config) on the frames that are ours, before
 * they are redirected. Off: the guard costs this one test. */
#define XSKNET_F_GUARD (1u << 1)
/* flags: leave to the kernel (XDP_PASS) the IPv4 frames to an address in
 * kernel_addrs, the limited broadcast or a multicast group, and the ARP
 * frames whose target is in kernel_addrs (--pass-kernel-addrs: a NIC
 * shared with the host's own addresses). */
#define XSKNET_F_PASS_KERNEL_ADDRS (1u << 2)

/*
 * Indices into the BPF_MAP_TYPE_PERCPU_ARRAY xsknet_stats (__u64 per CPU).
 * XSKNET_STAT_RX counts every frame the program sees; each frame then lands
 * in exactly one of the other counters, so RX is their sum.
 */
enum xsknet_stat {
	XSKNET_STAT_RX,              /* every frame the program ran on */
	XSKNET_STAT_REDIRECT_IPV4,   /* IPv4 to our MAC, broadcast or multicast, handed to the XSK */
	XSKNET_STAT_REDIRECT_ARP,    /* ARP to our MAC, broadcast or multicast, handed to the XSK */
	XSKNET_STAT_PASS_NOT_OURS,   /* the kernel's: IPv6, VLAN, other ethertype; unconfigured */
	XSKNET_STAT_PASS_NO_SOCKET,  /* ours, but no XSK registered on this rx queue */
	XSKNET_STAT_PASS_MALFORMED,  /* shorter than an Ethernet header */
	XSKNET_STAT_DROP,            /* ours, dropped because XSKNET_F_DROP is set */
	XSKNET_STAT_GUARD_DROP,      /* ours, dropped by the guard (guard_stats says why) */
	XSKNET_STAT_PASS_OTHER_HOST, /* IPv4 or ARP to another host's unicast MAC */
	XSKNET_STAT_PASS_KERNEL_ADDR, /* to a kernel address (XSKNET_F_PASS_KERNEL_ADDRS) */
	XSKNET_STAT__MAX,
};

/* ---- The guard (XSKNET_F_GUARD) ----------------------------------------- */

/* Entries of the LPM tries guard_allow and guard_block together: each rule
 * holds one slot of guard_rule_hits. */
#define XSKNET_GUARD_MAX_RULES 1024
/* Entries of the LRU hash guard_sources (one per source address seen). */
#define XSKNET_GUARD_MAX_SOURCES 65536
/* Entries of the hash guard_tight (sources under a tightened limit). */
#define XSKNET_GUARD_MAX_TIGHT 4096

/* One token bucket's settings. A token is one packet (or one byte for the
 * byte limit); the program keeps them in nano-tokens so that a refill is
 * elapsed_ns * rate, with no division in the program. */
struct xsknet_guard_bucket_cfg {
	__u64 rate;    /* tokens per second; 0 = no limit */
	__u64 burst;   /* tokens a full bucket holds (at most 1e9) */
	__u64 fill_ns; /* ns to fill an empty bucket: ceil(burst * 1e9 / rate) */
};

/* One token bucket's state: nano-tokens left at last_ns (bpf_ktime_get_ns).
 * Zeroed state is a full bucket (last_ns = 0 is long ago). */
struct xsknet_guard_bucket {
	__u64 tokens;
	__u64 last_ns;
};

/* Slots of the heavy-hitter table: 1 << XSKNET_GUARD_HEAVY_BITS. */
#define XSKNET_GUARD_HEAVY_BITS 8
#define XSKNET_GUARD_HEAVY_SLOTS 256
_Static_assert(XSKNET_GUARD_HEAVY_SLOTS == 1 << XSKNET_GUARD_HEAVY_BITS, "heavy slots");

/* One slot of the heavy-hitter table: a source and its guard_sources counts
 * when last seen. */
struct xsknet_guard_heavy {
	__u32 addr; /* network byte order */
	__u32 pad;
	__u64 rx_packets;
	__u64 rx_bytes;
};

/* The single entry (key 0) of the BPF_MAP_TYPE_ARRAY guard_heavy: the
 * heaviest sources, read by user space in one lookup. A source hashes to
 * one slot; it takes the slot when it is the slot's source or has sent more
 * packets than the slot's source had. */
struct xsknet_guard_heavy_table {
	struct xsknet_guard_heavy slot[XSKNET_GUARD_HEAVY_SLOTS];
};

/* The protocols with a global limit: indices into guard_global and into
 * xsknet_guard_config.global. */
enum xsknet_guard_proto {
	XSKNET_GUARD_PROTO_UDP,
	XSKNET_GUARD_PROTO_TCP,
	XSKNET_GUARD_PROTO_ICMP,
	XSKNET_GUARD_PROTO_ARP,
	XSKNET_GUARD_PROTO_OTHER, /* any other IPv4 protocol */
	XSKNET_GUARD_PROTO__MAX,
};

/* The single entry (key 0) of the BPF_MAP_TYPE_ARRAY guard_config. */
struct xsknet_guard_config {
	__u32 flags; /* XSKNET_GUARD_F_* */
	__u32 pad;
	struct xsknet_guard_bucket_cfg src_pps;   /* per source, packets */
	struct xsknet_guard_bucket_cfg src_bytes; /* per source, bytes of the frame */
	struct xsknet_guard_bucket_cfg src_syn;   /* per source, TCP SYN without ACK */
	struct xsknet_guard_bucket_cfg global[XSKNET_GUARD_PROTO__MAX]; /* packets */
};

/* guard flags: drop malformed IPv4 (ip_rcv_core()'s checks) at XDP. */
#define XSKNET_GUARD_F_DROP_MALFORMED (1u << 0)
/* guard flags: guard_tight has entries; look sources up in it. */
#define XSKNET_GUARD_F_TIGHT (1u << 1)

/* Key of guard_allow and guard_block (BPF_MAP_TYPE_LPM_TRIE): the value is
 * the rule's slot in guard_rule_hits (__u32). */
struct xsknet_guard_prefix {
	__u32 prefixlen; /* 0 to 32 */
	__u32 addr;      /* network byte order */
};

/* Value of the BPF_MAP_TYPE_LRU_HASH guard_sources, key = source address
 * (network byte order): the source's buckets and what it sent. Shared by
 * the CPUs, updated without atomics: two CPUs racing on one source may
 * both take the same token or lose an increment, so the buckets and the
 * counts are approximate under such a race. A source's frames usually
 * arrive on one rx queue (RSS hashes the flow), hence on one CPU. */
struct xsknet_guard_source {
	struct xsknet_guard_bucket pps;
	struct xsknet_guard_bucket bytes;
	struct xsknet_guard_bucket syn;
	struct xsknet_guard_bucket tight;
	__u64 rx_packets; /* frames seen from the source (all, passed or not) */
	__u64 rx_bytes;   /* their bytes, Ethernet header included */
};

/*
 * Indices into the BPF_MAP_TYPE_PERCPU_ARRAY guard_stats (__u64 per CPU).
 * Each frame the guard looks at lands in exactly one: passed, passed by the
 * allowlist, or dropped for one reason.
 */
enum xsknet_guard_stat {
	XSKNET_GUARD_PASS,                    /* passed every check */
	XSKNET_GUARD_PASS_ALLOW,              /* allowlisted source: no check made */
	XSKNET_GUARD_DROP_BLOCK,              /* blocklisted source */
	XSKNET_GUARD_DROP_MALFORMED_VERSION,  /* IPv4: version is not 4 */
	XSKNET_GUARD_DROP_MALFORMED_IHL,      /* IPv4: IHL < 5 */
	XSKNET_GUARD_DROP_MALFORMED_HDR_LEN,  /* IPv4: IHL * 4 longer than the frame */
	XSKNET_GUARD_DROP_MALFORMED_CSUM,     /* IPv4: bad header checksum */
	XSKNET_GUARD_DROP_MALFORMED_TRUNCATED, /* IPv4: tot_len past the frame */
	XSKNET_GUARD_DROP_MALFORMED_TOT_LEN,  /* IPv4: tot_len < IHL * 4 */
	XSKNET_GUARD_DROP_TIGHT,              /* over the source's tightened limit */
	XSKNET_GUARD_DROP_SRC_PPS,            /* over the per-source packet rate */
	XSKNET_GUARD_DROP_SRC_BYTES,          /* over the per-source byte rate */
	XSKNET_GUARD_DROP_SYN,                /* over the per-source SYN rate */
	XSKNET_GUARD_DROP_GLOBAL_UDP,         /* over the global UDP rate */
	XSKNET_GUARD_DROP_GLOBAL_TCP,         /* over the global TCP rate */
	XSKNET_GUARD_DROP_GLOBAL_ICMP,        /* over the global ICMP rate */
	XSKNET_GUARD_DROP_GLOBAL_ARP,         /* over the global ARP rate */
	XSKNET_GUARD_DROP_GLOBAL_OTHER,       /* over the global rate of other IPv4 */
	XSKNET_GUARD_STAT__MAX,
};

#endif /* XSKNET_COMMON_H */
