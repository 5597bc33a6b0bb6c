//! Test support: the Redis server `scripts/services.sh` starts (standing in for DragonflyDB),
//! prefixes no other test uses, and a raw connection to look at what the crate wrote.
#![allow(dead_code)]

use adp_dragonfly::Dragonfly;
use redis::aio::MultiplexedConnection;
use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};

const DEFAULT_ENV_FILE: &str = "/var/tmp/adplatform-services/env";

/// `ADP_TEST_REDIS` from the environment, else from the env file `scripts/services.sh start`
/// writes. Missing is a failure, not a skip.
pub fn redis_url() -> String {
    if let Ok(url) = std::env::var("ADP_TEST_REDIS") {
        return url;
    }
    let file = std::env::var("ADP_SERVICES_ENV").unwrap_or_else(|_| DEFAULT_ENV_FILE.to_string());
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| {
        panic!(
            "ADP_TEST_REDIS is not set and the services env file {file} cannot be read ({e}): \
             run `scripts/services.sh start` (or `scripts/services.sh start-redis` and \
             ADP_TEST_REDIS=redis://127.0.0.1:16379) first; scripts/test.sh does"
        )
    });
    text.lines()
        .filter_map(|l| l.split_once('='))
        .find(|(k, _)| *k == "ADP_TEST_REDIS")
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_else(|| panic!("{file} has no ADP_TEST_REDIS: run `scripts/services.sh start` again"))
}

/// A key prefix no other test (or test run) uses.
pub fn unique_prefix(name: &str) -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let salt = RandomState::new().hash_one((nanos, std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed)));
    format!("adpt-{name}-{salt:016x}")
}

pub async fn connect(prefix: &str) -> Dragonfly {
    let url = redis_url();
    Dragonfly::connect(&url, prefix).await.unwrap_or_else(|e| panic!("connect to {url}: {e}"))
}

pub async fn raw() -> MultiplexedConnection {
    let client = redis::Client::open(redis_url()).expect("redis url");
    client.get_multiplexed_async_connection().await.expect("raw connection")
}

/// A hash as field → integer value.
pub async fn hash(con: &mut MultiplexedConnection, key: &str) -> HashMap<String, i64> {
    let fields: HashMap<String, String> = redis::cmd("HGETALL").arg(key).query_async(con).await.expect("HGETALL");
    fields.into_iter().map(|(k, v)| (k, v.parse().unwrap_or_else(|_| panic!("{key} {v}")))).collect()
}

pub async fn ttl(con: &mut MultiplexedConnection, key: &str) -> i64 {
    redis::cmd("TTL").arg(key).query_async(con).await.expect("TTL")
}
