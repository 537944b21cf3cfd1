//! Copy mode's transmit budget on a veth pair: with `XskConfig::max_tx_budget`
//! at the tx ring's size, one kick sends all the ring holds; without it, 32 a
//! kick (`XDP_MAX_TX_SKB_BUDGET`, net/xdp/xsk.c, Linux ≥ 6.17:
//! `__xsk_generic_xmit` stops at `max_tx_budget`, `TX_BATCH_SIZE` 32 by
//! default). Needs root (skips otherwise, fails under `CI`); on an older kernel
//! it checks that the socket says 32.

use std::sync::Arc;
use std::time::{Duration, Instant};

use xsknet::netdevice::{Desc, NetDevice};
use xsknet::testing::{self, NetNsPair};
use xsknet::umem::{FramePool, Umem};
use xsknet::xsk::{BindMode, XskConfig, XskDevice, TX_BATCH_SIZE};

const FRAMES: u32 = 256;

/// A copy-mode socket on the pair's first veth with `budget`; `FRAMES` broadcast frames
/// of a local experimental EtherType on its tx ring in one batch (the peer's kernel drops
/// them, which frees each skb and puts its frame on the completion ring), completions read
/// until all are back. The socket's budget and its kicks.
fn send_all(pair: &NetNsPair, umem: &Arc<Umem>, pool: &FramePool, budget: Option<u32>) -> (u32, u64) {
    let ifname = pair.ifname().to_string();
    let u = umem.clone();
    let mut dev = testing::in_netns(pair.ns(), move || {
        let mut cfg = XskConfig::new(&ifname, 0);
        cfg.bind_mode = BindMode::Copy;
        cfg.set_ring_sizes(2 * FRAMES);
        cfg.max_tx_budget = budget;
        XskDevice::open(u, &cfg)
    })
    .expect("AF_XDP socket in copy mode");
    let mut batch: Vec<Desc> = (0..FRAMES)
        .map(|i| {
            let mut frame = pool.get().expect("a free frame");
            let b = umem.frame_mut(&mut frame);
            b[..6].copy_from_slice(&[0xff; 6]);
            b[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x01]);
            b[12..14].copy_from_slice(&0x88b5u16.to_be_bytes());
            b[14..60].fill(i as u8);
            Desc { frame, offset: 0, len: 60, nr_frags: 0 }
        })
        .collect();
    assert_eq!(dev.transmit(&mut batch), FRAMES as usize);
    assert_eq!(dev.tx_kicks(), 1, "one kick when the batch is posted");
    let mut free = Vec::new();
    let t0 = Instant::now();
    while free.len() < FRAMES as usize && t0.elapsed() < Duration::from_secs(5) {
        dev.complete(&mut free);
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(free.len(), FRAMES as usize, "every frame sent and completed");
    for f in free {
        pool.put(f);
    }
    (dev.tx_budget(), dev.tx_kicks())
}

#[test]
fn one_kick_sends_the_whole_tx_ring_with_the_budget_32_a_kick_without() {
    if !testing::require_root("one_kick_sends_the_whole_tx_ring_with_the_budget_32_a_kick_without") {
        return;
    }
    let pair = NetNsPair::new().expect("veth pair");
    let (umem, pool) = Umem::new(2 * FRAMES, 2048).expect("umem");
    let umem = Arc::new(umem);
    // The kernel's default: the completions kick again while the ring holds frames.
    let (budget, kicks) = send_all(&pair, &umem, &pool, None);
    assert_eq!(budget, TX_BATCH_SIZE);
    assert!(kicks >= u64::from(FRAMES / TX_BATCH_SIZE), "32 a kick: {kicks} kicks");
    let (budget, kicks) = send_all(&pair, &umem, &pool, Some(2 * FRAMES));
    if budget == TX_BATCH_SIZE {
        eprintln!("this kernel has no XDP_MAX_TX_SKB_BUDGET (< 6.17): 32 a kick");
        return;
    }
    assert_eq!(budget, 2 * FRAMES, "the tx ring's size");
    assert_eq!(kicks, 1, "one kick sent all {FRAMES}");
}
