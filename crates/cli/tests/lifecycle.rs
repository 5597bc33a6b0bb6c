//! The process as an operator meets it: restart keeps data, SIGTERM stops cleanly, the demo
//! catalog fills every demo placement, and every subcommand has help and works.

mod common;

use common::{bin, Server, ADMIN_KEY};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::process::Command;

#[tokio::test]
async fn data_survives_a_restart_and_sigterm_stops_cleanly() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    let mut first = Server::start_in(&dir, &[]);
    let admin = first.admin();
    common::seed_advertiser(&admin, "a1").await;
    let key = admin.post("/api/v1/api-keys", &json!({"name": "a1", "role": "advertiser", "advertiser_id": "a1"})).await;
    let secret = key.body["key"].as_str().expect("key").to_string();
    let before_li = admin.get("/api/v1/line-items/a1-li1").await.body;
    let before_version = admin.get("/api/v1/catalog/version").await.body["version"].clone();
    assert!(first.terminate(), "SIGTERM must stop the server with exit status 0");

    let second = Server::start_in(&dir, &[]);
    let admin = second.admin();
    assert_eq!(admin.get("/api/v1/line-items/a1-li1").await.body, before_li, "objects survive a restart");
    assert_eq!(admin.get("/api/v1/catalog/version").await.body["version"], before_version);
    let adv = second.client(Some(&secret));
    assert_eq!(adv.get("/api/v1/campaigns/a1-c1").await.status, StatusCode::OK, "API keys survive a restart");
    let keys = admin.list_all("/api/v1/api-keys").await;
    assert_eq!(keys.len(), 2, "the bootstrap key is installed once, not per start: {keys:?}");
}

#[tokio::test]
async fn health_and_readiness() {
    let server = Server::start(&[]);
    let c = server.client(None);
    assert_eq!(c.get("/healthz").await.body["status"], "ok");
    let ready = c.get("/readyz").await;
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(ready.body["status"], "ready");
    assert_eq!(ready.body["checks"]["catalog_store"]["reachable"], true);
    assert_eq!(
        ready.body["checks"]["catalog_store"]["schema_version"],
        ready.body["checks"]["catalog_store"]["expected_schema_version"]
    );
}

fn fits(creative: &Value, placement: &Value) -> bool {
    let formats = placement["formats"].as_array().cloned().unwrap_or_default();
    let format = match creative["content"].as_object().and_then(|m| m.keys().next()).map(String::as_str) {
        Some("banner_html" | "banner_image") => "banner",
        Some("vast") => "video",
        Some("native") => "native",
        _ => return false,
    };
    if !formats.contains(&json!(format)) {
        return false;
    }
    format != "banner"
        || creative["sizes"]
            .as_array()
            .is_some_and(|s| s.iter().any(|sz| placement["sizes"].as_array().is_some_and(|p| p.contains(sz))))
}

#[tokio::test]
async fn demo_catalog_fills_every_demo_placement_and_is_seeded_once() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    let mut server = Server::spawn(&dir, &["--demo"], &[]);
    let banner = server.stdout.join("\n");
    let key = server
        .stdout
        .iter()
        .find_map(|l| l.trim().strip_prefix("admin key (shown once): "))
        .expect("the demo prints an admin key")
        .to_string();
    assert!(banner.contains("curl"), "the demo prints example commands: {banner}");
    let c = server.client(Some(&key));

    let creatives = c.list_all("/api/v1/creatives").await;
    let line_items = c.list_all("/api/v1/line-items").await;
    assert!(creatives.iter().all(|cr| cr["approval"] == "approved"), "demo creatives are approved");
    assert!(line_items.iter().any(|li| li["targeting"].is_object()), "some demo line items are targeted");
    assert!(
        line_items.iter().any(|li| li["channels"].as_array().is_some_and(|ch| ch.contains(&json!("rtb")))),
        "some are RTB-enabled"
    );
    for (id, format) in [("demo-mrec", "banner"), ("demo-leaderboard", "banner"), ("demo-video", "video")] {
        let p = c.get(&format!("/api/v1/placements/{id}")).await;
        assert_eq!(p.status, StatusCode::OK, "{id}");
        assert!(p.body["formats"].as_array().is_some_and(|f| f.contains(&json!(format))), "{id} takes {format}");
        // An untargeted line item with budget whose creative fits: a request with no attributes fills it.
        let fillers: Vec<&Value> = line_items
            .iter()
            .filter(|li| li["targeting"].is_null() && li["priority"] != "house")
            .filter(|li| {
                li["creatives"].as_array().is_some_and(|cs| {
                    cs.iter().any(|a| creatives.iter().any(|cr| cr["id"] == a["creative_id"] && fits(cr, &p.body)))
                })
            })
            .collect();
        assert!(!fillers.is_empty(), "no untargeted line item fills {id}");
        assert!(
            fillers.iter().all(|li| li["budget"]["daily_micros"].as_i64().unwrap_or(0) >= 1_000_000_000),
            "ample budget for {id}"
        );
    }
    let p = c.get("/api/v1/placements/demo-mrec").await.body;
    assert_eq!(p["sizes"], json!([{"w": 300, "h": 250}]));
    let p = c.get("/api/v1/placements/demo-leaderboard").await.body;
    assert_eq!(p["sizes"], json!([{"w": 728, "h": 90}]));
    assert_eq!(c.get("/api/v1/placements/demo-video").await.body["video"]["placement"], "instream");

    let version = c.get("/api/v1/catalog/version").await.body["version"].clone();
    assert!(server.terminate());
    let again = Server::spawn(&dir, &["--demo"], &[]);
    assert!(again.stdout.join("\n").contains("already present"), "{:?}", again.stdout);
    let c = again.client(Some(&key));
    assert_eq!(c.get("/api/v1/catalog/version").await.body["version"], version, "a second --demo start seeds nothing");
}

fn run(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let out = Command::new(bin())
        .args(args)
        .envs(env.iter().copied())
        .env("ADP_LOG_LEVEL", "warn")
        .output()
        .expect("run adplatform");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn every_subcommand_has_help() {
    for args in [
        vec!["--help"],
        vec!["serve", "--help"],
        vec!["migrate", "--help"],
        vec!["check-config", "--help"],
        vec!["apikey", "--help"],
        vec!["apikey", "create", "--help"],
        vec!["apikey", "list", "--help"],
        vec!["apikey", "revoke", "--help"],
    ] {
        let (ok, out, _) = run(&args, &[]);
        assert!(ok && out.contains("Usage: adplatform"), "{args:?}: {out}");
    }
    let (_, out, _) = run(&["--help"], &[]);
    for cmd in ["serve", "migrate", "check-config", "apikey"] {
        assert!(out.contains(cmd), "top-level help lists {cmd}");
    }
}

#[test]
fn check_config_prints_effective_values_redacted_and_names_bad_keys() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = tmp.path().join("c.toml");
    std::fs::write(&file, "[server]\nlisten = \"127.0.0.1:9999\"\n").expect("write");
    let f = file.to_str().expect("path");
    let (ok, out, err) = run(
        &["--config", f, "check-config"],
        &[("ADP_ADMIN_KEY", "super-secret-admin-key"), ("ADP_LOG_FORMAT", "json")],
    );
    assert!(ok, "{err}");
    assert!(out.contains("listen = \"127.0.0.1:9999\""), "{out}");
    assert!(out.contains("format = \"json\""), "{out}");
    assert!(!out.contains("super-secret-admin-key") && out.contains("<redacted>"), "{out}");
    let (ok, _, err) = run(&["check-config"], &[("ADP_SERVER_MAX_BODY_BYTES", "many")]);
    assert!(!ok && err.contains("server.max_body_bytes"), "{err}");
    std::fs::write(&file, "[store]\nbakend = \"sqlite\"\n").expect("write");
    let (ok, _, err) = run(&["--config", f, "check-config"], &[]);
    assert!(!ok && err.contains("store.bakend"), "{err}");
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/adplatform.example.toml");
    let (ok, _, err) = run(&["--config", example, "check-config"], &[]);
    assert!(ok, "the example config is valid: {err}");
}

#[tokio::test]
async fn migrate_and_apikey_commands_work_on_the_data_dir() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    let d = dir.to_str().expect("path");
    let (ok, out, err) = run(&["migrate", "--data-dir", d], &[]);
    assert!(ok && out.contains("schema at version"), "{out}{err}");
    assert!(dir.join("catalog.sqlite").exists());

    let (ok, _, err) =
        run(&["apikey", "create", "--role", "advertiser", "--advertiser", "nobody", "--data-dir", d], &[]);
    assert!(!ok && err.contains("does not exist"), "{err}");
    let (ok, out, err) = run(&["apikey", "create", "--role", "admin", "--name", "ops", "--json", "--data-dir", d], &[]);
    assert!(ok, "{err}");
    let created: Value = serde_json::from_str(out.trim()).expect("json output");
    let secret = created["key"].as_str().expect("key").to_string();

    let server = Server::spawn(&dir, &[], &[]);
    let c = server.client(Some(&secret));
    assert_eq!(c.get("/api/v1/advertisers").await.status, StatusCode::OK, "a CLI-created key works against the server");
    common::seed_advertiser(&c, "a1").await;
    let (ok, out, err) = run(&["apikey", "create", "--role", "advertiser", "--advertiser", "a1", "--data-dir", d], &[]);
    assert!(ok, "{err}");
    let adv_secret = out.lines().find(|l| l.starts_with("adp_")).expect("secret line").to_string();
    assert_eq!(server.client(Some(&adv_secret)).get("/api/v1/campaigns/a1-c1").await.status, StatusCode::OK);

    let (ok, out, _) = run(&["apikey", "list", "--data-dir", d], &[]);
    assert!(ok && out.lines().count() == 2, "{out}");
    let id = created["id"].as_str().expect("id");
    let (ok, out, _) = run(&["apikey", "revoke", id, "--data-dir", d], &[]);
    assert!(ok && out.contains("revoked"), "{out}");
    assert_eq!(
        c.get("/api/v1/advertisers").await.status,
        StatusCode::UNAUTHORIZED,
        "revoked from the CLI, refused by the server"
    );
    let _ = ADMIN_KEY;
}

#[test]
fn serve_reports_a_bad_listen_address_by_key() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let d = tmp.path().to_str().expect("path");
    let (ok, _, err) = run(&["serve", "--listen", "not-an-address", "--data-dir", d], &[]);
    assert!(!ok && err.contains("server.listen"), "{err}");
    let (ok, _, err) = run(&["serve", "--data-dir", d, "--admin-key", "short"], &[]);
    assert!(!ok && err.contains("auth.admin_key"), "{err}");
}
