//! The replay guard and CTR statistics against a real Redis server.

mod common;

use adp_dragonfly::{CtrStats, ReplayGuard};
use common::{connect, hash, raw, ttl, unique_prefix};

#[tokio::test]
async fn first_use_is_true_once_then_false() {
    let prefix = unique_prefix("replay");
    let guard = ReplayGuard::new(&connect(&prefix).await);
    assert!(guard.first_use("imp:abc", 30).await.expect("first"));
    assert!(!guard.first_use("imp:abc", 30).await.expect("second"));
    assert!(!guard.first_use("imp:abc", 30).await.expect("third"));
    assert!(guard.first_use("imp:abd", 30).await.expect("another key"));

    let mut con = raw().await;
    let left = ttl(&mut con, &format!("{prefix}:rg:imp:abc")).await;
    assert!((28..=30).contains(&left), "ttl {left}");

    let firsts = guard.first_use_many(&["clk:1", "clk:2", "clk:1", "imp:abc"], 600).await.expect("many");
    assert_eq!(firsts, vec![true, true, false, false]);
    assert!(!guard.first_use("clk:2", 600).await.expect("again"));
    assert_eq!(guard.first_use_many(&[], 600).await.expect("none"), Vec::<bool>::new());

    // a TTL of 0 is taken as 1 s: the key does not stay forever
    assert!(guard.first_use("short", 0).await.expect("short"));
    assert_eq!(ttl(&mut con, &format!("{prefix}:rg:short")).await, 1);
}

#[tokio::test]
async fn ctr_counts_round_trip() {
    let prefix = unique_prefix("ctr");
    let ctr = CtrStats::new(&connect(&prefix).await);
    ctr.add(&[("cr-1", 10, 1), ("cr-2", 5, 0)]).await.expect("add");
    ctr.add(&[("cr-1", 3, 2), ("cr-3", 0, 0)]).await.expect("add");
    ctr.add(&[]).await.expect("add nothing");
    let loaded = ctr.load(&["cr-1", "cr-2", "cr-3", "cr-1"]).await.expect("load");
    assert_eq!(loaded, vec![(13, 3), (5, 0), (0, 0), (13, 3)]);
    assert_eq!(ctr.load(&[]).await.expect("load nothing"), Vec::new());

    let mut con = raw().await;
    let stored = hash(&mut con, &format!("{prefix}:ctr:{{cr-1}}")).await;
    assert_eq!((stored["i"], stored["c"]), (13, 3));
    assert_eq!(stored.len(), 2);
}
