// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * xsknet.bpf.c - the hard-IRQ stage of xsknet.
 *
 * Linux keeps the hard IRQ handler tiny: note that packets wait and leave the
 * real work to the softirq. This program is the same: a bounds-checked look at
 * the Ethernet header, the decision "ours or the kernel's", and a
 * bpf_redirect_map() into the AF_XDP socket bound to the rx queue the frame
 * came in on. Ours is decided by EtherType and destination MAC, as the
 * kernel's own packet_type handlers would take the frame: every IPv4 and ARP
 * frame to the interface's MAC, to broadcast or to a multicast group the NIC
 * let in. Another host's unicast frames (PACKET_OTHERHOST, which ip_rcv_core()
 * and arp_rcv() drop), IPv6, VLAN-tagged and other EtherTypes stay with the
 * kernel. Nothing is validated here (IP version, IHL, checksums, lengths,
 * addresses): like Linux's ip_rcv(), xsknet's softirq loop in user space
 * checks those and counts every drop by reason, so the counters match what
 * nstat shows for the kernel. With XSKNET_F_PASS_KERNEL_ADDRS (a NIC shared
 * with the host) frames to the kernel's own addresses, the limited broadcast
 * and multicast groups also stay with the kernel: one more header read.
 *
 * The guard (XSKNET_F_GUARD, off by default) is the exception, made for
 * floods: before a frame that is ours costs a copy into the UMEM, it is
 * checked against an allowlist and a blocklist by source prefix, per-source
 * and global token buckets, and (if asked) ip_rcv_core()'s header checks.
 * What it drops never reaches the softirq, so the softirq's counters
 * (IpInHdrErrors, IpInCsumErrors, IpInTruncatedPkts) no longer see those
 * frames: guard_stats counts them instead, by reason.
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
#include <linux/in.h>
#include <linux/tcp.h>
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
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XSKNET_KERNEL_ADDRS_MAX);
	__type(key, __u32);
	__type(value, __u8);
} kernel_addrs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XSKNET_STAT__MAX);
	__type(key, __u32);
	__type(value, __u64);
} xsknet_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xsknet_guard_config);
} guard_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, XSKNET_GUARD_MAX_RULES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct xsknet_guard_prefix);
	__type(value, __u32);
} guard_allow SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, XSKNET_GUARD_MAX_RULES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct xsknet_guard_prefix);
	__type(value, __u32);
} guard_block SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XSKNET_GUARD_MAX_RULES);
	__type(key, __u32);
	__type(value, __u64);
} guard_rule_hits SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XSKNET_GUARD_STAT__MAX);
	__type(key, __u32);
	__type(value, __u64);
} guard_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, XSKNET_GUARD_MAX_SOURCES);
	__type(key, __u32);
	__type(value, struct xsknet_guard_source);
} guard_sources SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XSKNET_GUARD_MAX_TIGHT);
	__type(key, __u32);
	__type(value, struct xsknet_guard_bucket_cfg);
} guard_tight SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, XSKNET_GUARD_PROTO__MAX);
	__type(key, __u32);
	__type(value, struct xsknet_guard_bucket);
} guard_global SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xsknet_guard_heavy_table);
} guard_heavy SEC(".maps");

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

/* The sender's address, in network byte order (ar_sip is unaligned). */
static __always_inline __u32 arp_sip(const struct arp_eth_ipv4 *arp)
{
	__u32 sip;

	__builtin_memcpy(&sip, arp->ar_sip, sizeof(sip));
	return sip;
}

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

/* Adds one to slot `key` of a BPF_MAP_TYPE_PERCPU_ARRAY of __u64. */
static __always_inline void bump(void *percpu_array, __u32 key)
{
	__u64 *value = bpf_map_lookup_elem(percpu_array, &key);

	/* Per-CPU slot: no other CPU writes it, no atomic needed. */
	if (value)
		*value += 1;
}

static __always_inline void count(enum xsknet_stat stat)
{
	bump(&xsknet_stats, stat);
}

static __always_inline int pass(enum xsknet_stat why)
{
	count(why);
	return XDP_PASS;
}

static __always_inline int drop(enum xsknet_stat why)
{
	count(why);
	return XDP_DROP;
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


/* ---- The guard ----------------------------------------------------------- */

#define NSEC_PER_SEC 1000000000ULL

enum guard_verdict {
	GUARD_PASS,
	GUARD_DROP,
};

static __always_inline void count_guard(enum xsknet_guard_stat stat)
{
	bump(&guard_stats, stat);
}

static __always_inline int guard_drop(enum xsknet_guard_stat why)
{
	count_guard(why);
	return GUARD_DROP;
}

/* Takes `cost` nano-tokens from bucket `b` if it holds them, after refilling
 * it for the time since it was last touched. Returns 1 if taken. The state
 * is written without atomics: two CPUs racing on one bucket may both take
 * from the same tokens, so a shared bucket is approximate by at most a
 * frame per race. */
static __always_inline int bucket_take(struct xsknet_guard_bucket *b,
				       const struct xsknet_guard_bucket_cfg *c,
				       __u64 now, __u64 cost)
{
	__u64 full = c->burst * NSEC_PER_SEC;
	__u64 elapsed = now - b->last_ns;
	__u64 tokens;

	/* Past fill_ns the bucket is full whatever it held: this also keeps
	 * elapsed * rate below full, with no overflow. */
	if (elapsed >= c->fill_ns) {
		tokens = full;
	} else {
		tokens = b->tokens + elapsed * c->rate;
		if (tokens > full)
			tokens = full;
	}
	b->last_ns = now;
	if (tokens < cost) {
		b->tokens = tokens;
		return 0;
	}
	b->tokens = tokens - cost;
	return 1;
}

/* The rule slot of the longest prefix of `trie` holding `saddr`, counted
 * in guard_rule_hits; 1 if there is one. */
static __always_inline int rule_hit(void *trie, __u32 saddr)
{
	struct xsknet_guard_prefix key = { .prefixlen = 32, .addr = saddr };
	__u32 *slot = bpf_map_lookup_elem(trie, &key);

	if (!slot)
		return 0;
	bump(&guard_rule_hits, *slot);
	return 1;
}

/* Notes a source's counts in its slot of the heavy-hitter table (Knuth's
 * multiplicative hash, top bits), taking the slot from a lighter source. */
static __always_inline void heavy_note(__u32 saddr, const struct xsknet_guard_source *src)
{
	struct xsknet_guard_heavy_table *table;
	struct xsknet_guard_heavy *slot;
	__u32 key = 0;

	table = bpf_map_lookup_elem(&guard_heavy, &key);
	if (!table)
		return;
	slot = &table->slot[(saddr * 2654435761u) >> (32 - XSKNET_GUARD_HEAVY_BITS)];
	if (slot->addr == saddr || src->rx_packets > slot->rx_packets) {
		slot->addr = saddr;
		slot->rx_packets = src->rx_packets;
		slot->rx_bytes = src->rx_bytes;
	}
}

/* ip_rcv_core()'s checks (net/ipv4/ip_input.c), in its order, on an IPv4
 * header whose fixed 20 bytes are in the frame: the reason to drop, or
 * XSKNET_GUARD_PASS. Fragments are not malformed. */
static __always_inline enum xsknet_guard_stat ipv4_malformed(struct iphdr *iph, void *data_end)
{
	__u32 avail = (__u32)((long)data_end - (long)iph);
	__u32 hlen = iph->ihl * 4;
	__u32 tot_len = bpf_ntohs(iph->tot_len);
	__u16 *word = (__u16 *)iph;
	__u32 sum = 0;
	int i;

	if (iph->version != 4)
		return XSKNET_GUARD_DROP_MALFORMED_VERSION;
	if (iph->ihl < 5)
		return XSKNET_GUARD_DROP_MALFORMED_IHL;
	if (hlen > avail)
		return XSKNET_GUARD_DROP_MALFORMED_HDR_LEN;
	/* RFC 1071 one's complement sum over the header, at most 60 bytes. */
#pragma unroll
	for (i = 0; i < 30; i++) {
		if (i >= iph->ihl * 2)
			break;
		if ((void *)(word + i + 1) > data_end)
			return XSKNET_GUARD_DROP_MALFORMED_HDR_LEN;
		sum += word[i];
	}
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	if ((__u16)~sum != 0)
		return XSKNET_GUARD_DROP_MALFORMED_CSUM;
	if (tot_len > avail)
		return XSKNET_GUARD_DROP_MALFORMED_TRUNCATED;
	if (tot_len < hlen)
		return XSKNET_GUARD_DROP_MALFORMED_TOT_LEN;
	return XSKNET_GUARD_PASS;
}

/* Whether the IPv4 packet is a TCP SYN without ACK (the first fragment
 * only: later fragments have no TCP header). */
static __always_inline int is_syn(struct iphdr *iph, void *data_end)
{
	struct tcphdr *th;
	__u32 hlen;

	if (iph->protocol != IPPROTO_TCP || (iph->frag_off & bpf_htons(0x1fff)))
		return 0;
	hlen = (iph->ihl & 0xf) * 4;
	if (hlen < sizeof(*iph))
		return 0;
	th = (void *)iph + hlen;
	if ((void *)(th + 1) > data_end)
		return 0;
	return th->syn && !th->ack;
}

static __always_inline enum xsknet_guard_stat global_drop(__u32 proto)
{
	switch (proto) {
	case XSKNET_GUARD_PROTO_UDP:
		return XSKNET_GUARD_DROP_GLOBAL_UDP;
	case XSKNET_GUARD_PROTO_TCP:
		return XSKNET_GUARD_DROP_GLOBAL_TCP;
	case XSKNET_GUARD_PROTO_ICMP:
		return XSKNET_GUARD_DROP_GLOBAL_ICMP;
	case XSKNET_GUARD_PROTO_ARP:
		return XSKNET_GUARD_DROP_GLOBAL_ARP;
	default:
		return XSKNET_GUARD_DROP_GLOBAL_OTHER;
	}
}

/* The rate limits, in the order: tightened, per-source packets, bytes and
 * SYNs, then the protocol's global limit. A frame dropped by a later
 * bucket has already taken its token from the earlier ones. */
static __always_inline int guard_limits(const struct xsknet_guard_config *gc, __u32 saddr,
					__u64 len, __u32 proto, int syn)
{
	struct xsknet_guard_source *src, fresh = {};
	const struct xsknet_guard_bucket_cfg *g;
	struct xsknet_guard_bucket_cfg *tight;
	struct xsknet_guard_bucket *bucket;
	__u32 key = proto;
	__u64 now = 0;

	if (proto >= XSKNET_GUARD_PROTO__MAX)
		return GUARD_PASS;
	g = &gc->global[proto];
	/* The clock is read only when a bucket will be: it is a third of
	 * what the guard costs a frame otherwise. */
	if (gc->src_pps.rate || gc->src_bytes.rate || (syn && gc->src_syn.rate) ||
	    (gc->flags & XSKNET_GUARD_F_TIGHT) || g->rate)
		now = bpf_ktime_get_ns();

	src = bpf_map_lookup_elem(&guard_sources, &saddr);
	if (!src) {
		/* Zeroed buckets are full. Another CPU may have inserted it
		 * meanwhile: BPF_NOEXIST keeps its entry. */
		bpf_map_update_elem(&guard_sources, &saddr, &fresh, BPF_NOEXIST);
		src = bpf_map_lookup_elem(&guard_sources, &saddr);
	}
	if (src) {
		src->rx_packets += 1;
		src->rx_bytes += len;
		heavy_note(saddr, src);
		if (gc->flags & XSKNET_GUARD_F_TIGHT) {
			tight = bpf_map_lookup_elem(&guard_tight, &saddr);
			if (tight && tight->rate && !bucket_take(&src->tight, tight, now, NSEC_PER_SEC))
				return guard_drop(XSKNET_GUARD_DROP_TIGHT);
		}
		if (gc->src_pps.rate && !bucket_take(&src->pps, &gc->src_pps, now, NSEC_PER_SEC))
			return guard_drop(XSKNET_GUARD_DROP_SRC_PPS);
		if (gc->src_bytes.rate &&
		    !bucket_take(&src->bytes, &gc->src_bytes, now, len * NSEC_PER_SEC))
			return guard_drop(XSKNET_GUARD_DROP_SRC_BYTES);
		if (syn && gc->src_syn.rate && !bucket_take(&src->syn, &gc->src_syn, now, NSEC_PER_SEC))
			return guard_drop(XSKNET_GUARD_DROP_SYN);
	}
	if (g->rate) {
		bucket = bpf_map_lookup_elem(&guard_global, &key);
		if (bucket && !bucket_take(bucket, g, now, NSEC_PER_SEC))
			return guard_drop(global_drop(proto));
	}
	return GUARD_PASS;
}

static __always_inline const struct xsknet_guard_config *guard_cfg(void)
{
	__u32 key = 0;

	return bpf_map_lookup_elem(&guard_config, &key);
}

/* The guard for a frame that is ours, from source `saddr`: the allowlist
 * first (an allowlisted source is never dropped), then the blocklist, the
 * header checks (`iph` is NULL for ARP) and the rate limits. */
static __always_inline int guard(struct xdp_md *ctx, __u32 saddr, struct iphdr *iph, __u32 proto,
				 const int frags)
{
	void *data_end = (void *)(long)ctx->data_end;
	const struct xsknet_guard_config *gc = guard_cfg();
	/* A multi-buffer frame's bytes: the linear part and its frags. */
	__u64 len = frags ? bpf_xdp_get_buff_len(ctx) : ctx->data_end - ctx->data;
	enum xsknet_guard_stat why;
	int syn = 0;

	if (!gc)
		return GUARD_PASS;
	if (rule_hit(&guard_allow, saddr)) {
		count_guard(XSKNET_GUARD_PASS_ALLOW);
		return GUARD_PASS;
	}
	if (rule_hit(&guard_block, saddr))
		return guard_drop(XSKNET_GUARD_DROP_BLOCK);
	if (iph) {
		if (gc->flags & XSKNET_GUARD_F_DROP_MALFORMED) {
			why = ipv4_malformed(iph, data_end);
			if (why != XSKNET_GUARD_PASS)
				return guard_drop(why);
		}
		syn = is_syn(iph, data_end);
	}
	if (guard_limits(gc, saddr, len, proto, syn) == GUARD_DROP)
		return GUARD_DROP;
	count_guard(XSKNET_GUARD_PASS);
	return GUARD_PASS;
}

static __always_inline __u32 ipv4_proto(const struct iphdr *iph)
{
	switch (iph->protocol) {
	case IPPROTO_UDP:
		return XSKNET_GUARD_PROTO_UDP;
	case IPPROTO_TCP:
		return XSKNET_GUARD_PROTO_TCP;
	case IPPROTO_ICMP:
		return XSKNET_GUARD_PROTO_ICMP;
	default:
		return XSKNET_GUARD_PROTO_OTHER;
	}
}

/* Whether the frame to `dst` is another host's: a unicast MAC that is not
 * the interface's (eth_type_trans() calls it PACKET_OTHERHOST, and both
 * ip_rcv_core() and arp_rcv() drop it). Broadcast and multicast frames are
 * taken: the NIC's filter already chose which groups reach the host. */
static __always_inline int other_host(const struct ethhdr *eth, const struct xsknet_config *cfg)
{
	if (eth->h_dest[0] & 1)
		return 0;
	return ((eth->h_dest[0] ^ cfg->mac[0]) | (eth->h_dest[1] ^ cfg->mac[1]) |
		(eth->h_dest[2] ^ cfg->mac[2]) | (eth->h_dest[3] ^ cfg->mac[3]) |
		(eth->h_dest[4] ^ cfg->mac[4]) | (eth->h_dest[5] ^ cfg->mac[5])) != 0;
}

/* Whether an IPv4 frame to `daddr` is the kernel's under
 * XSKNET_F_PASS_KERNEL_ADDRS: an address in kernel_addrs (the interface's
 * own kernel addresses and their subnet broadcasts), the limited broadcast,
 * or a multicast group (IGMP, mDNS and DHCP stay with the host). */
static __always_inline int kernel_ipv4(__u32 daddr)
{
	if (daddr == 0xffffffff || (daddr & bpf_htonl(0xf0000000)) == bpf_htonl(0xe0000000))
		return 1;
	return bpf_map_lookup_elem(&kernel_addrs, &daddr) != NULL;
}

/* The guard for a frame too short for its source address: the header checks
 * (if on) drop it as one whose header runs past the frame; otherwise the
 * limits of source 0.0.0.0 apply. */
static __always_inline int guard_short(struct xdp_md *ctx, int ipv4)
{
	const struct xsknet_guard_config *gc = guard_cfg();

	if (ipv4 && gc && (gc->flags & XSKNET_GUARD_F_DROP_MALFORMED))
		return guard_drop(XSKNET_GUARD_DROP_MALFORMED_HDR_LEN);
	return guard(ctx, 0, NULL, ipv4 ? XSKNET_GUARD_PROTO_OTHER : XSKNET_GUARD_PROTO_ARP, 0);
}

/* The program, in two builds: `xsknet_xdp` (section "xdp") and
 * `xsknet_xdp_frags` (section "xdp.frags", loaded with BPF_F_XDP_HAS_FRAGS:
 * it may see a frame in several buffers, and a veth whose MTU needs more than
 * a page per frame takes only such a program; include/uapi/linux/bpf.h,
 * drivers/net/veth.c veth_xdp_set). Both read only the headers, which lie in
 * the first buffer, between data and data_end. */
static __always_inline int xsknet_rx(struct xdp_md *ctx, const int frags)
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
		if (other_host(eth, cfg))
			return pass(XSKNET_STAT_PASS_OTHER_HOST);
		iph = nh.pos;
		/* Too short to read: the softirq counts it (IpInHdrErrors). */
		if ((void *)(iph + 1) > data_end) {
			if ((cfg->flags & XSKNET_F_GUARD) && guard_short(ctx, 1) == GUARD_DROP)
				return drop(XSKNET_STAT_GUARD_DROP);
			return redirect(ctx, cfg, XSKNET_STAT_REDIRECT_IPV4);
		}
		if ((cfg->flags & XSKNET_F_PASS_KERNEL_ADDRS) && kernel_ipv4(iph->daddr))
			return pass(XSKNET_STAT_PASS_KERNEL_ADDR);
		if ((cfg->flags & XSKNET_F_GUARD) &&
		    guard(ctx, iph->saddr, iph, ipv4_proto(iph), frags) == GUARD_DROP)
			return drop(XSKNET_STAT_GUARD_DROP);
		return redirect(ctx, cfg, XSKNET_STAT_REDIRECT_IPV4);

	case bpf_htons(ETH_P_ARP):
		if (other_host(eth, cfg))
			return pass(XSKNET_STAT_PASS_OTHER_HOST);
		arp = nh.pos;
		/* Every ARP that arp_rcv() looks at is the softirq's, malformed
		 * or for other hardware included: it counts them. */
		if ((void *)(arp + 1) > data_end ||
		    arp->ar_hrd != bpf_htons(ARPHRD_ETHER) ||
		    arp->ar_pro != bpf_htons(ETH_P_IP) ||
		    arp->ar_hln != ETH_ALEN || arp->ar_pln != 4) {
			if ((cfg->flags & XSKNET_F_GUARD) && guard_short(ctx, 0) == GUARD_DROP)
				return drop(XSKNET_STAT_GUARD_DROP);
			return redirect(ctx, cfg, XSKNET_STAT_REDIRECT_ARP);
		}
		if ((cfg->flags & XSKNET_F_PASS_KERNEL_ADDRS) &&
		    bpf_map_lookup_elem(&kernel_addrs, &arp->ar_tip))
			return pass(XSKNET_STAT_PASS_KERNEL_ADDR);
		if ((cfg->flags & XSKNET_F_GUARD) &&
		    guard(ctx, arp_sip(arp), NULL, XSKNET_GUARD_PROTO_ARP, frags) == GUARD_DROP)
			return drop(XSKNET_STAT_GUARD_DROP);
		return redirect(ctx, cfg, XSKNET_STAT_REDIRECT_ARP);

	/* IPv6 (neighbour discovery included), VLAN tags, everything else:
	 * xsknet speaks none of them, the host keeps them. */
	case bpf_htons(ETH_P_8021Q):
	case bpf_htons(ETH_P_8021AD):
	case bpf_htons(ETH_P_IPV6):
	default:
		return pass(XSKNET_STAT_PASS_NOT_OURS);
	}
}

SEC("xdp")
int xsknet_xdp(struct xdp_md *ctx)
{
	return xsknet_rx(ctx, 0);
}

SEC("xdp.frags")
int xsknet_xdp_frags(struct xdp_md *ctx)
{
	return xsknet_rx(ctx, 1);
}
