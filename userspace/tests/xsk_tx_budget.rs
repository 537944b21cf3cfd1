//! Copy mode's transmit budget on a veth pair: one kick of the tx ring sends all
//! the ring holds, not 32 of it (`XDP_MAX_TX_SKB_BUDGET`, net/xdp/xsk.c, Linux
//! ≥ 6.17: `__xsk_generic_xmit` stops at `max_tx_budget`, `TX_BATCH_SIZE` 32
//! by default). Needs root (skips otherwise, fails under `CI`); on an older
//! kernel it checks that the socket says 32.

use std::sync::Arc;
use std::time::{Duration, Instant};

use xsknet::netdevice::{Desc, NetDevice};
use xsknet::testing::{self, NetNsPair};
use xsknet::umem::Umem;
use xsknet::xsk::{BindMode, XskConfig, XskDevice, TX_BATCH_SIZE};

const FRAMES: u32 = 256;

#[test]
fn one_kick_sends_the_whole_tx_ring_in_copy_mode() {
    if !testing::require_root("one_kick_sends_the_whole_tx_ring_in_copy_mode") {
        return;
    }
    let pair = NetNsPair::new().expect("veth pair");
    let (umem, pool) = Umem::new(2 * FRAMES, 2048).expect("umem");
    let umem = Arc::new(umem);
    let ifname = pair.ifname().to_string();
    let u = umem.clone();
    let mut dev = testing::in_netns(pair.ns(), move || {
        let mut cfg = XskConfig::new(&ifname, 0);
        cfg.bind_mode = BindMode::Copy;
        cfg.set_ring_sizes(2 * FRAMES);
        XskDevice::open(u, &cfg)
    })
    .expect("AF_XDP socket in copy mode");
    if dev.tx_budget() == TX_BATCH_SIZE {
        eprintln!("one_kick_sends_the_whole_tx_ring_in_copy_mode: this kernel has no XDP_MAX_TX_SKB_BUDGET (< 6.17): 32 a kick");
        return;
    }
    assert_eq!(dev.tx_budget(), 2 * FRAMES, "the tx ring's size");
    // 256 broadcast frames of a local experimental EtherType: the peer's kernel drops
    // them, which frees each skb and puts its frame on the completion ring.
    let mut batch: Vec<Desc> = (0..FRAMES as usize)
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
    assert_eq!(dev.tx_kicks(), 1);
    let mut free = Vec::new();
    let t0 = Instant::now();
    while free.len() < FRAMES as usize && t0.elapsed() < Duration::from_secs(5) {
        dev.complete(&mut free);
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(free.len(), FRAMES as usize, "every frame sent and completed");
    // With 32 a kick, the completions would have kicked 7 times more.
    assert_eq!(dev.tx_kicks(), 1, "one kick sent all {FRAMES}");
}
