//! Roles and distributed-mode wiring that need no full cluster: the Scylla DDL, start-up errors
//! naming the missing dependency, and a process serving only the routes of its roles. The full
//! distributed behaviour is crates/cli/tests/distributed.rs.

mod common;

use adp_analytics::testkit::{free_port, TansuBroker};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn adplatform(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut c = Command::new(common::bin());
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("ADP_")) {
        c.env_remove(k);
    }
    c.args(args).envs(env.iter().copied()).env("ADP_LOG_LEVEL", "warn");
    c
}

#[test]
fn migrate_scylla_dry_run_prints_network_topology_cql() {
    let out = adplatform(
        &["migrate", "--scylla", "--dry-run"],
        &[("ADP_SCYLLA_KEYSPACE", "adp_prod"), ("ADP_SCYLLA_REPLICATION", "dc1:3,dc2:2")],
    )
    .output()
    .expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let cql = String::from_utf8_lossy(&out.stdout);
    let keyspace = cql.lines().find(|l| l.contains("CREATE KEYSPACE")).expect("a CREATE KEYSPACE statement");
    assert!(keyspace.contains("adp_prod") && keyspace.contains("NetworkTopologyStrategy"), "{keyspace}");
    assert!(keyspace.contains("'dc1': 3") && keyspace.contains("'dc2': 2"), "{keyspace}");
    assert!(cql.matches("CREATE TABLE").count() >= 5, "{cql}");
    // A keyspace name that would inject CQL is refused before anything is printed.
    let bad =
        adplatform(&["migrate", "--scylla", "--dry-run"], &[("ADP_SCYLLA_KEYSPACE", "a; DROP")]).output().expect("run");
    assert!(!bad.status.success());
    assert!(bad.stdout.is_empty(), "nothing printed for a bad keyspace");
}

#[test]
fn a_role_subset_needs_distributed_mode() {
    let dir = tempfile::tempdir().expect("tmp");
    let out = adplatform(
        &["serve", "--roles", "decide", "--listen", "127.0.0.1:0", "--data-dir", dir.path().to_str().expect("utf-8")],
        &[],
    )
    .output()
    .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("server.roles") && err.contains("distributed"), "{err}");
}

#[test]
fn unreachable_dragonfly_is_named_at_start_up() {
    let broker = TansuBroker::start();
    let dir = tempfile::tempdir().expect("tmp");
    let closed = format!("redis://127.0.0.1:{}", free_port());
    let brokers = broker.brokers();
    let started = Instant::now();
    let out = adplatform(
        &[
            "serve",
            "--roles",
            "decide,track",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            dir.path().to_str().expect("utf-8"),
        ],
        &[
            ("ADP_MODE", "distributed"),
            ("ADP_KAFKA_BROKERS", &brokers),
            ("ADP_KAFKA_TOPIC_PREFIX", "adproles"),
            ("ADP_DRAGONFLY_URL", &closed),
            ("ADP_TRACKING_SIGNING_KEYS", "k1:0123456789abcdef0123456789abcdef"),
        ],
    )
    .stdout(Stdio::null())
    .output()
    .expect("run");
    assert!(!out.status.success(), "a serving process without Dragonfly must not start");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("dragonfly"), "the error names the dependency: {err}");
    assert!(started.elapsed() < Duration::from_secs(60), "fails promptly");
}

#[tokio::test]
async fn an_api_only_process_serves_the_api_and_not_the_hot_path() {
    let broker = TansuBroker::start();
    let dir = tempfile::tempdir().expect("tmp");
    let brokers = broker.brokers();
    let server = common::Server::spawn(
        &dir.path().join("data"),
        &["--roles", "api", "--admin-key", common::ADMIN_KEY],
        &[("ADP_MODE", "distributed"), ("ADP_KAFKA_BROKERS", &brokers), ("ADP_KAFKA_TOPIC_PREFIX", "adpapionly")],
    );
    let http = reqwest::Client::new();
    let get = |path: &str| http.get(format!("{}{path}", server.base)).bearer_auth(common::ADMIN_KEY).send();
    let ready: serde_json::Value = get("/readyz").await.expect("readyz").json().await.expect("json");
    assert_eq!(ready["roles"], serde_json::json!(["api"]), "{ready}");
    assert_eq!(get("/api/v1/line-items").await.expect("api").status(), 200);
    let version: serde_json::Value = get("/api/v1/catalog/version").await.expect("version").json().await.expect("json");
    assert!(version["serving_version"].is_null(), "an API process serves no snapshot: {version}");
    for path in ["/v1/decide", "/v1/t/imp", "/openrtb2/bid"] {
        assert_eq!(get(path).await.expect("hot path").status(), 404, "{path} is not served by the api role");
    }
}
