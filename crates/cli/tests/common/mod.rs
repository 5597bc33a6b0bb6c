//! A real `adplatform serve` process on a loopback port of its own, and an HTTP client for it.
#![allow(dead_code)]

use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub const ADMIN_KEY: &str = "test-admin-key-0123456789";

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_adplatform")
}

/// The geo database of the test services (see `adp_geoip::testkit::mmdb_path`).
pub fn geoip_mmdb() -> String {
    adp_geoip::testkit::mmdb_path()
}

pub struct Server {
    child: Option<Child>,
    pub base: String,
    pub data_dir: PathBuf,
    pub stdout: Vec<String>,
    _tmp: Option<tempfile::TempDir>,
}

impl Server {
    /// Starts a server on a fresh data dir with the test admin key.
    pub fn start(extra: &[&str]) -> Server {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("data");
        let mut s = Server::start_in(&dir, extra);
        s._tmp = Some(tmp);
        s
    }

    /// Starts a server on `data_dir` (kept by the caller) with the test admin key.
    pub fn start_in(data_dir: &Path, extra: &[&str]) -> Server {
        let mut args = vec!["--admin-key", ADMIN_KEY];
        args.extend_from_slice(extra);
        Server::spawn(data_dir, &args, &[])
    }

    /// Starts `adplatform serve` on `data_dir` with exactly these extra arguments and env.
    pub fn spawn(data_dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Server {
        let dir = data_dir.to_str().expect("utf-8 path");
        let mut args = vec!["serve", "--listen", "127.0.0.1:0", "--data-dir", dir];
        args.extend_from_slice(extra);
        let mut cmd = Command::new(bin());
        // The tests' own variables (ADP_TEST_...) are not config keys: the server would refuse them.
        for (k, _) in std::env::vars_os().filter(|(k, _)| k.to_string_lossy().starts_with("ADP_TEST_")) {
            cmd.env_remove(k);
        }
        let mut child = cmd
            .args(&args)
            .env("ADP_LOG_LEVEL", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn adplatform");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut lines = Vec::new();
        let base = loop {
            match rx.recv_timeout(Duration::from_secs(30)) {
                Ok(line) => {
                    let found = line.strip_prefix("adplatform listening on ").map(str::to_string);
                    lines.push(line);
                    if let Some(b) = found {
                        break b;
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    panic!("server did not report its address; output so far: {lines:?}");
                }
            }
        };
        // Collect the rest of the banner briefly.
        while let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            lines.push(line);
        }
        Server { child: Some(child), base, data_dir: data_dir.to_path_buf(), stdout: lines, _tmp: None }
    }

    /// `serve --demo` on a fresh data dir with one serving thread and request batching
    /// (`server.batch_requests`) on or off.
    pub fn one_thread_demo(batch: bool) -> Server {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut s = Server::spawn(
            &tmp.path().join("data"),
            &["--admin-key", ADMIN_KEY, "--demo"],
            &[("ADP_SERVER_THREADS", "1"), ("ADP_SERVER_BATCH_REQUESTS", if batch { "true" } else { "false" })],
        );
        s._tmp = Some(tmp);
        s
    }

    pub fn client(&self, key: Option<&str>) -> Client {
        Client { http: reqwest::Client::new(), base: self.base.clone(), key: key.map(str::to_string) }
    }

    pub fn admin(&self) -> Client {
        self.client(Some(ADMIN_KEY))
    }

    /// Sends SIGTERM and returns whether the process exited successfully.
    pub fn terminate(&mut self) -> bool {
        let Some(mut child) = self.child.take() else { return false };
        let pid = child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().map(|s| s.success()).unwrap_or(false);
        assert!(sent, "could not signal the server");
        for _ in 0..200 {
            if let Ok(Some(status)) = child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        false
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub struct Client {
    http: reqwest::Client,
    pub base: String,
    key: Option<String>,
}

pub struct Resp {
    pub status: StatusCode,
    pub body: Value,
    pub headers: reqwest::header::HeaderMap,
}

impl Resp {
    /// The `error.code` and `error.field` of an error body.
    pub fn error(&self) -> (String, String) {
        let e = &self.body["error"];
        (e["code"].as_str().unwrap_or_default().to_string(), e["field"].as_str().unwrap_or_default().to_string())
    }
}

impl Client {
    pub async fn send(&self, method: Method, path: &str, body: Option<&Value>) -> Resp {
        let mut req = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(k) = &self.key {
            req = req.bearer_auth(k);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("body");
        let body =
            if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
        Resp { status, body, headers }
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.send(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Resp {
        self.send(Method::POST, path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: &Value) -> Resp {
        self.send(Method::PATCH, path, Some(body)).await
    }

    pub async fn archive(&self, path: &str) -> Resp {
        self.send(Method::POST, &format!("{path}/archive"), None).await
    }

    /// Creates an object and returns its body, failing the test on anything but 201.
    pub async fn create(&self, segment: &str, body: Value) -> Value {
        let r = self.post(&format!("/api/v1/{segment}"), &body).await;
        assert_eq!(r.status, StatusCode::CREATED, "create {segment}: {}", r.body);
        r.body
    }

    /// Every item of a list, following cursors.
    pub async fn list_all(&self, path_and_query: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let sep = if path_and_query.contains('?') { '&' } else { '?' };
        let mut next: Option<String> = None;
        loop {
            let path = match &next {
                Some(c) => format!("{path_and_query}{sep}cursor={c}"),
                None => path_and_query.to_string(),
            };
            let r = self.get(&path).await;
            assert_eq!(r.status, StatusCode::OK, "list {path}: {}", r.body);
            out.extend(r.body["items"].as_array().cloned().unwrap_or_default());
            match r.body["next_cursor"].as_str() {
                Some(c) => next = Some(c.to_string()),
                None => return out,
            }
        }
    }
}

/// A small catalog: one advertiser with a campaign, creative and line item; one publisher
/// with a site and placement. Returns the advertiser id.
pub async fn seed_advertiser(c: &Client, adv: &str) -> String {
    c.create(
        "advertisers",
        serde_json::json!({"id": adv, "name": format!("{adv} inc"), "domains": [format!("{adv}.example")]}),
    )
    .await;
    c.create(
        "campaigns",
        serde_json::json!({"id": format!("{adv}-c1"), "advertiser_id": adv, "name": "c1",
        "start": "2026-01-01T00:00:00Z", "end": "2027-01-01T00:00:00Z"}),
    )
    .await;
    c.create("creatives", serde_json::json!({"id": format!("{adv}-cr1"), "advertiser_id": adv, "name": "cr1",
        "content": {"banner_image": {"image_url": format!("https://cdn.{adv}.example/a.png")}},
        "sizes": [{"w": 300, "h": 250}], "click_url": format!("https://{adv}.example/"), "landing_domain": format!("{adv}.example")})).await;
    c.create(
        "line-items",
        serde_json::json!({"id": format!("{adv}-li1"), "campaign_id": format!("{adv}-c1"), "name": "li1",
        "start": "2026-02-01T00:00:00Z", "rate_micros": 1_500_000, "budget": {"daily_micros": 10_000_000},
        "creatives": [{"creative_id": format!("{adv}-cr1")}]}),
    )
    .await;
    adv.to_string()
}

/// After round `round` (of 20, counting from 0) of concurrent decide or bid requests, `sent` in
/// all, with the serving stats `st`: with batching off no batch may have formed; with it on, true
/// (stop) once some batch held two or more requests, and a failure after the last round if none did.
pub fn batched_enough(st: &Value, sent: u64, round: u32, batch: bool) -> bool {
    let batches = st["batches"].as_u64().expect("batches");
    if !batch {
        assert_eq!(batches, 0, "batching is off: {st}");
        return false;
    }
    if round >= 1 && batches > 0 && batches < sent {
        println!("batched: {sent} requests in {batches} batches");
        return true;
    }
    assert!(round < 19, "20 rounds of 48 concurrent requests and never two in one batch: {st}");
    false
}
