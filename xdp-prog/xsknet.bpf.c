// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * xsknet.bpf.c - the hard-IRQ stage of xsknet.
 *
 * Linux keeps the hard IRQ handler tiny: note that packets wait and leave the
 * real work to the softirq. This program is the same: a bounds-checked look at
 * the Ethernet header and at most one header behind it, the decision "ours or
 * the kernel's", and a bpf_redirect_map() into the AF_XDP socket bound to the
 * rx queue the frame came in on. It does not validate anything it does not
 * need for that decision (IP version, IHL, checksums, lengths): like Linux's
 * ip_rcv(), xsknet's softirq loop in user space checks those and counts every
 * drop by reason, so the counters match what nstat shows for the kernel.
 *
 * Header parsing follows xdp-tools' headers/xdp/parsing_helpers.h: a cursor
 * that only moves forward after a bounds check against data_end.
 *
 * Minimum kernel: 5.9 (XDP through bpf_link; bpf_redirect_map() falling back
 * to the action in its flags argument needs 5.3).
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "xsknet_common.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* From <linux/if_arp.h>, which drags in libc headers a BPF build lacks. */
#ifndef ARPHRD_ETHER
#define ARPHRD_ETHER 1
#endif

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xsknet_config);
} xsknet_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, XSKNET_MAX_QUEUES);
	__type(key, __u32);
	__type(value, __u32);
} xsks_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XSKNET_STAT__MAX);
	__type(key, __u32);
	__type(value, __u64);
} xsknet_stats SEC(".maps");

/* The body of an Ethernet/IPv4 ARP packet (RFC 826), 28 bytes. Only the
 * fixed part is in <linux/if_arp.h> (struct arphdr); the addresses are
 * spelled out here.
 * Byte arrays keep the layout free of padding; ar_tip sits at offset 24. */
struct arp_eth_ipv4 {
	__be16 ar_hrd;
	__be16 ar_pro;
	__u8 ar_hln;
	__u8 ar_pln;
	__be16 ar_op;
	__u8 ar_sha[ETH_ALEN];
	__u8 ar_sip[4];
	__u8 ar_tha[ETH_ALEN];
	__be32 ar_tip;
};
_Static_assert(sizeof(struct arp_eth_ipv4) == 28, "ARP body must be 28 bytes");

/* Parsing cursor, as in xdp-tools' parsing_helpers.h. */
struct hdr_cursor {
	void *pos;
};

/* Returns the ethertype in network byte order, or -1 if the frame is
 * shorter than an Ethernet header. VLAN tags are not looked through:
 * xsknet does not speak 802.1Q, so tagged frames are the kernel's. */
static __always_inline int parse_ethhdr(struct hdr_cursor *nh, void *data_end,
					struct ethhdr **ethhdr)
{
	struct ethhdr *eth = nh->pos;

	if ((void *)(eth + 1) > data_end)
		return -1;
	nh->pos = eth + 1;
	*ethhdr = eth;
	return eth->h_proto;
}

static __always_inline void count(enum xsknet_stat stat)
{
	__u32 key = stat;
	__u64 *value = bpf_map_lookup_elem(&xsknet_stats, &key);

	/* Per-CPU slot: no other CPU writes it, no atomic needed. */
	if (value)
		*value += 1;
}

static __always_inline int pass(enum xsknet_stat why)
{
	count(why);
	return XDP_PASS;
}

/* Hand the frame to the AF_XDP socket registered for this rx queue. With
 * no socket there, bpf_redirect_map() returns the action in its flags
 * (XDP_PASS) and the kernel keeps the frame, as it would without xsknet. */
static __always_inline int redirect(struct xdp_md *ctx, const struct xsknet_config *cfg,
				    enum xsknet_stat ok)
{
	long action;

	if (cfg->flags & XSKNET_F_DROP) {
		count(XSKNET_STAT_DROP);
		return XDP_DROP;
	}
	action = bpf_redirect_map(&xsks_map, ctx->rx_queue_index, XDP_PASS);

	count(action == XDP_REDIRECT ? ok : XSKNET_STAT_PASS_NO_SOCKET);
	return action;
}

SEC("xdp")
int xsknet_xdp(struct xdp_md *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	struct hdr_cursor nh = { .pos = (void *)(long)ctx->data };
	const struct xsknet_config *cfg;
	struct arp_eth_ipv4 *arp;
	struct ethhdr *eth;
	struct iphdr *iph;
	__u32 key = 0;
	int eth_type;

	count(XSKNET_STAT_RX);

	cfg = bpf_map_lookup_elem(&xsknet_config, &key);
	if (!cfg || cfg->ipv4_addr == 0)
		return pass(XSKNET_STAT_PASS_NOT_OURS);

	eth_type = parse_ethhdr(&nh, data_end, &eth);
	if (eth_type < 0)
		return pass(XSKNET_STAT_PASS_MALFORMED);

	switch (eth_type) {
	case bpf_htons(ETH_P_IP):
		iph = nh.pos;
		/* Only the fixed 20 bytes are needed to read daddr; version,
		 * IHL, lengths and checksum are the softirq's to check. */
		if ((void *)(iph + 1) > data_end)
			return pass(XSKNET_STAT_PASS_MALFORMED);
		if (iph->daddr != cfg->ipv4_addr)
			return pass(XSKNET_STAT_PASS_NOT_OURS);
		return redirect(ctx, cfg, XSKNET_STAT_REDIRECT_IPV4);

	case bpf_htons(ETH_P_ARP):
		arp = nh.pos;
		if ((void *)(arp + 1) > data_end)
			return pass(XSKNET_STAT_PASS_MALFORMED);
		/* The target address is only at offset 24 for Ethernet/IPv4
		 * ARP; anything else is not a question about our address. */
		if (arp->ar_hrd != bpf_htons(ARPHRD_ETHER) ||
		    arp->ar_pro != bpf_htons(ETH_P_IP) ||
		    arp->ar_hln != ETH_ALEN || arp->ar_pln != 4)
			return pass(XSKNET_STAT_PASS_NOT_OURS);
		if (arp->ar_tip != cfg->ipv4_addr)
			return pass(XSKNET_STAT_PASS_NOT_OURS);
		return redirect(ctx, cfg, XSKNET_STAT_REDIRECT_ARP);

	case bpf_htons(ETH_P_8021Q):
	case bpf_htons(ETH_P_8021AD):
	case bpf_htons(ETH_P_IPV6):
	default:
		return pass(XSKNET_STAT_PASS_NOT_OURS);
	}
}
