//! Faults in the event pipeline under load, through the real binary: `serve --demo` forwarding
//! to a Kafka-API broker (Tansu) → `adplatform ingest` → ClickHouse 18.16 (the analytics
//! testkit's). Eight clients ask for ads and fire their impression and click trackers the whole
//! time; (a) the broker goes away for 20 s and comes back, (c) `serve` is killed with SIGKILL and
//! started again on its data dir. Afterwards ClickHouse counts exactly the impressions and clicks
//! the clients were answered for (204 / 302), holds no event twice, and its report equals the
//! embedded one row for row (issue 6). ClickHouse down and a killed ingest are
//! crates/analytics/tests/clickhouse_ingest.rs and ingest_crash.rs.

mod common;

use adp_analytics::report::{Dimension, Metric, ReportFilters, ReportQuery, ReportRow, Totals};
use adp_analytics::testkit::{free_port, tansu_binary, ClickHouseServer, TansuBroker};
use adp_analytics::{ClickHouse, ClickHouseSettings};
use chrono::{Duration as ChronoDuration, DurationRound, TimeDelta, Utc};
use common::{Server, ADMIN_KEY};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::io::ErrorKind;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

/// Concurrent ad clients.
const CLIENTS: usize = 8;
/// Load phases: before the fault, while it lasts, after it.
const BEFORE: usize = 0;
const DURING: usize = 1;
const AFTER: usize = 2;
const PHASES: [&str; 3] = ["before", "during", "after"];

/// One test at a time: each runs a ClickHouse server, a broker, serve, ingest and eight clients,
/// which is all a 2-core machine has.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn path_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.find('/').map(|i| rest[i..].to_string()).unwrap_or_default()
}

// --- the broker that goes away -------------------------------------------------------------

/// A TCP relay on the port clients know the broker by. Closed, the broker is gone for them:
/// new connections are refused and open ones cut. The broker behind it keeps what it holds, as a
/// Redpanda restart does (Tansu here keeps its data in memory, so killing it would lose the
/// events it confirmed and the ingest had not read yet).
struct Relay {
    port: u16,
    upstream: u16,
    open: Option<RelayOpen>,
}

struct RelayOpen {
    stop: Arc<AtomicBool>,
    links: Arc<Mutex<Vec<TcpStream>>>,
    acceptor: std::thread::JoinHandle<()>,
}

impl Relay {
    fn open(&mut self) {
        assert!(self.open.is_none(), "the relay is open");
        let deadline = Instant::now() + Duration::from_secs(10);
        let listener = loop {
            match TcpListener::bind(("127.0.0.1", self.port)) {
                Ok(l) => break l,
                Err(e) => {
                    assert!(Instant::now() < deadline, "cannot listen on {} again: {e}", self.port);
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        };
        listener.set_nonblocking(true).expect("nonblocking listener");
        let stop = Arc::new(AtomicBool::new(false));
        let links: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let upstream = self.upstream;
        let acceptor = {
            let (stop, links) = (Arc::clone(&stop), Arc::clone(&links));
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let client = match listener.accept() {
                        Ok((client, _)) => client,
                        Err(e) if e.kind() == ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(5));
                            continue;
                        }
                        Err(_) => continue,
                    };
                    let Ok(broker) = TcpStream::connect(("127.0.0.1", upstream)) else { continue };
                    for s in [&client, &broker] {
                        let _ = s.set_nonblocking(false);
                        let _ = s.set_nodelay(true);
                    }
                    pipe(&client, &broker);
                    pipe(&broker, &client);
                    let mut links = links.lock().unwrap_or_else(PoisonError::into_inner);
                    links.extend([client, broker]);
                }
                // The listener closes here: connections are refused from now on.
            })
        };
        self.open = Some(RelayOpen { stop, links, acceptor });
    }

    fn close(&mut self) {
        let Some(open) = self.open.take() else { return };
        open.stop.store(true, Ordering::Relaxed);
        let _ = open.acceptor.join();
        for link in open.links.lock().unwrap_or_else(PoisonError::into_inner).drain(..) {
            let _ = link.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.close();
    }
}

/// Copies `from` to `to` on a thread of its own until either side ends.
fn pipe(from: &TcpStream, to: &TcpStream) {
    let (Ok(mut from), Ok(mut to)) = (from.try_clone(), to.try_clone()) else { return };
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from, &mut to);
        let _ = to.shutdown(Shutdown::Write);
    });
}

/// A Tansu broker of this test's own that advertises the relay's port, so that every client
/// (serve's forwarder, the ingest) reaches it only through the relay.
struct RelayedBroker {
    tansu: Child,
    relay: Relay,
    log: tempfile::TempDir,
}

impl RelayedBroker {
    fn start() -> RelayedBroker {
        let inner = free_port();
        let outer = loop {
            let p = free_port();
            if p != inner {
                break p;
            }
        };
        let log = tempfile::Builder::new().prefix("adp-faults-tansu-").tempdir().expect("tempdir");
        let out = std::fs::File::create(log.path().join("tansu.log")).expect("tansu log");
        let err = out.try_clone().expect("tansu log");
        let tansu = Command::new(tansu_binary())
            .args(["broker", "--listener-url", &format!("tcp://127.0.0.1:{inner}")])
            .args(["--advertised-listener-url", &format!("tcp://127.0.0.1:{outer}")])
            .args(["--storage-engine", "memory://tansu/"])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("start tansu");
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", inner)).is_err() {
            assert!(Instant::now() < deadline, "tansu did not listen within 30 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut relay = Relay { port: outer, upstream: inner, open: None };
        relay.open();
        RelayedBroker { tansu, relay, log }
    }

    fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.relay.port)
    }

    fn go_away(&mut self) {
        self.relay.close();
        assert!(TcpStream::connect(("127.0.0.1", self.relay.port)).is_err(), "the broker's port still answers");
    }

    fn come_back(&mut self) {
        self.relay.open();
    }

    /// Panics, with the end of its log, if Tansu itself has exited.
    fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.tansu.try_wait() {
            let log = std::fs::read_to_string(self.log.path().join("tansu.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            panic!("tansu exited with {status}:\n{}", tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
        }
    }
}

impl Drop for RelayedBroker {
    fn drop(&mut self) {
        self.relay.close();
        let _ = self.tansu.kill();
        let _ = self.tansu.wait();
    }
}

// --- the pipeline --------------------------------------------------------------------------

/// ClickHouse with the schema, an ingest following the broker, and the data dir serve runs on.
struct Rig {
    ch_server: ClickHouseServer,
    ch: ClickHouse,
    brokers: String,
    prefix: &'static str,
    database: &'static str,
    ingest: Option<Child>,
    data_dir: PathBuf,
    _tmp: tempfile::TempDir,
}

impl Rig {
    fn start(brokers: &str, prefix: &'static str, database: &'static str) -> Rig {
        let ch_server = ClickHouseServer::start();
        let tmp = tempfile::tempdir().expect("tmp");
        let mut rig = Rig {
            ch: ClickHouse::connect(&ClickHouseSettings {
                url: ch_server.url(),
                database: database.into(),
                ..ClickHouseSettings::default()
            })
            .expect("clickhouse client"),
            ch_server,
            brokers: brokers.to_string(),
            prefix,
            database,
            ingest: None,
            data_dir: tmp.path().join("data"),
            _tmp: tmp,
        };
        let out = rig.adplatform(&["migrate", "--clickhouse"]).output().expect("migrate");
        assert!(out.status.success(), "migrate: {}", String::from_utf8_lossy(&out.stderr));
        let ingest = rig.adplatform(&["ingest"]).stdout(Stdio::piped()).spawn().expect("spawn ingest");
        rig.ingest = Some(ingest);
        rig
    }

    /// The binary with only this test's `ADP_` variables.
    fn adplatform(&self, args: &[&str]) -> Command {
        let mut c = Command::new(common::bin());
        for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("ADP_")) {
            c.env_remove(k);
        }
        c.args(args)
            .env("ADP_CLICKHOUSE_URL", self.ch_server.url())
            .env("ADP_CLICKHOUSE_DATABASE", self.database)
            .env("ADP_CLICKHOUSE_BATCH_MS", "100")
            .env("ADP_KAFKA_BROKERS", &self.brokers)
            .env("ADP_KAFKA_TOPIC_PREFIX", self.prefix)
            .env("ADP_LOG_LEVEL", "warn");
        c
    }

    /// `serve --demo` forwarding to the broker, on the rig's data dir (the same on every start).
    fn serve(&self) -> Server {
        Server::spawn(
            &self.data_dir,
            &["--demo", "--admin-key", ADMIN_KEY],
            &[("ADP_KAFKA_BROKERS", &self.brokers), ("ADP_KAFKA_TOPIC_PREFIX", self.prefix)],
        )
    }

    async fn stored_events(&self) -> u64 {
        let sql = format!("SELECT count() FROM {}", self.ch.table("events"));
        let rows = self.ch.fetch_tsv(&sql).await.unwrap_or_default();
        rows.first().and_then(|r| r.first()).and_then(|v| v.parse().ok()).unwrap_or(0)
    }

    /// Waits until events flow all the way into ClickHouse.
    async fn wait_flowing(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.stored_events().await == 0 {
            assert!(Instant::now() < deadline, "no event reached ClickHouse within 60 s");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Raw rows minus distinct event ids: 0 when no event is stored twice.
    async fn raw_duplicates(&self) -> (u64, u64) {
        let sql = format!("SELECT count(), count() - uniqExact(event_id) FROM {}", self.ch.table("events"));
        let rows = self.ch.fetch_tsv(&sql).await.expect("count raw events");
        let n = |i: usize| rows[0][i].parse::<u64>().expect("a count");
        (n(0), n(1))
    }

    /// Stops the ingest with SIGTERM and prints its final counters.
    fn stop_ingest(&mut self) {
        let Some(child) = self.ingest.take() else { return };
        let pid = child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let out = child.wait_with_output().expect("wait for the ingest");
        eprintln!("ingest stopped ({}): {}", out.status, String::from_utf8_lossy(&out.stdout).trim());
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        if let Some(mut c) = self.ingest.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

// --- the load ------------------------------------------------------------------------------

/// What the clients did in one phase.
#[derive(Clone, Copy, Debug, Default)]
struct Tally {
    /// Decide requests answered 200, and the placements they asked for and got filled.
    decides: u64,
    requests: u64,
    filled: u64,
    /// Decide requests answered otherwise, or not at all.
    decide_failures: u64,
    decide_unanswered: u64,
    /// Trackers answered 204 (impressions) and 302 (clicks): acknowledged.
    impressions: u64,
    clicks: u64,
    /// Trackers answered with another status (nothing counted) or not at all (see `uncertain`).
    tracker_refused: u64,
    tracker_unanswered: u64,
}

impl Tally {
    fn add(&mut self, o: &Tally) {
        self.decides += o.decides;
        self.requests += o.requests;
        self.filled += o.filled;
        self.decide_failures += o.decide_failures;
        self.decide_unanswered += o.decide_unanswered;
        self.impressions += o.impressions;
        self.clicks += o.clicks;
        self.tracker_refused += o.tracker_refused;
        self.tracker_unanswered += o.tracker_unanswered;
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tracker {
    Impression,
    Click,
}

impl Tracker {
    fn acknowledged(self) -> StatusCode {
        match self {
            Tracker::Impression => StatusCode::NO_CONTENT,
            Tracker::Click => StatusCode::FOUND,
        }
    }
}

#[derive(Debug, Default)]
struct Worked {
    phases: [Tally; 3],
    /// Trackers sent without an answer: counted or not, the client cannot tell (yet).
    uncertain: Vec<(Tracker, String)>,
    /// Statuses of refused requests (a sample).
    refusals: Vec<String>,
}

impl Worked {
    fn total(&self) -> Tally {
        let mut t = Tally::default();
        self.phases.iter().for_each(|p| t.add(p));
        t
    }
}

/// Where the clients send their requests, and when they stop.
struct Load {
    base: RwLock<String>,
    phase: AtomicUsize,
    stop: AtomicBool,
}

impl Load {
    fn base(&self) -> String {
        self.base.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn set_base(&self, base: &str) {
        *self.base.write().unwrap_or_else(PoisonError::into_inner) = base.to_string();
    }

    fn set_phase(&self, phase: usize) {
        self.phase.store(phase, Ordering::Relaxed);
    }
}

struct Clients {
    load: Arc<Load>,
    tasks: Vec<tokio::task::JoinHandle<Worked>>,
}

impl Clients {
    fn start(base: &str) -> Clients {
        let load =
            Arc::new(Load { base: RwLock::new(base.to_string()), phase: AtomicUsize::new(BEFORE), stop: false.into() });
        let tasks = (0..CLIENTS).map(|i| tokio::spawn(client(Arc::clone(&load), i))).collect();
        Clients { load, tasks }
    }

    async fn stop(self) -> Worked {
        self.load.stop.store(true, Ordering::Relaxed);
        let mut all = Worked::default();
        for t in self.tasks {
            let w = t.await.expect("client task");
            for (a, b) in all.phases.iter_mut().zip(&w.phases) {
                a.add(b);
            }
            all.uncertain.extend(w.uncertain);
            all.refusals.extend(w.refusals.into_iter().take(5));
        }
        all
    }
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .expect("http client")
}

/// One ad client: decide for two placements with a fresh user id, fire the impression of every
/// ad it gets and the click of every fourth, until told to stop.
async fn client(load: Arc<Load>, worker: usize) -> Worked {
    let http = http_client();
    let mut w = Worked::default();
    let mut n = 0u64;
    while !load.stop.load(Ordering::Relaxed) {
        n += 1;
        let phase = load.phase.load(Ordering::Relaxed);
        let base = load.base();
        let body = json!({"placements": [{"id": "demo-mrec"}, {"id": "demo-leaderboard"}],
                          "user": {"id": format!("faults-{worker}-{n}")},
                          "geo": {"country": if n.is_multiple_of(3) { "DE" } else { "US" }}});
        let decided = match http.post(format!("{base}/v1/decide")).json(&body).send().await {
            Ok(r) if r.status() == StatusCode::OK => r.json::<Value>().await.map_err(|_| None),
            Ok(r) => Err(Some(r.status())),
            Err(_) => Err(None),
        };
        let t = &mut w.phases[phase];
        let decided = match decided {
            Ok(d) => d,
            Err(status) => {
                match status {
                    Some(s) => {
                        t.decide_failures += 1;
                        w.refusals.push(format!("decide: {s}"));
                    }
                    None => t.decide_unanswered += 1,
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        t.decides += 1;
        let decisions = decided["decisions"].as_array().cloned().unwrap_or_default();
        t.requests += decisions.len() as u64;
        for (j, d) in decisions.iter().enumerate() {
            let ad = &d["ad"];
            if ad.is_null() {
                continue;
            }
            t.filled += 1;
            let mut fire = vec![(Tracker::Impression, path_of(ad["impression_url"].as_str().unwrap_or_default()))];
            if (n + j as u64).is_multiple_of(4) {
                fire.push((Tracker::Click, path_of(ad["click_url"].as_str().unwrap_or_default())));
            }
            for (kind, path) in fire {
                match http.get(format!("{base}{path}")).send().await {
                    Ok(r) if r.status() == kind.acknowledged() => match kind {
                        Tracker::Impression => t.impressions += 1,
                        Tracker::Click => t.clicks += 1,
                    },
                    Ok(r) => {
                        t.tracker_refused += 1;
                        w.refusals.push(format!("{kind:?}: {}", r.status()));
                        break;
                    }
                    Err(_) => {
                        t.tracker_unanswered += 1;
                        w.uncertain.push((kind, path));
                        break;
                    }
                }
            }
        }
    }
    w
}

/// Sends the trackers that got no answer again: an acknowledgement now, or 409 (the server
/// already counted it: it was in its log before the answer was lost), settles each one.
/// Returns the impressions and clicks this adds to the acknowledged ones.
async fn settle_uncertain(base: &str, uncertain: &[(Tracker, String)]) -> (u64, u64, u64) {
    let http = http_client();
    let (mut impressions, mut clicks, mut already) = (0, 0, 0);
    for (kind, path) in uncertain {
        let status = http.get(format!("{base}{path}")).send().await.expect("tracker sent again").status();
        if status == StatusCode::CONFLICT {
            already += 1;
        } else {
            assert_eq!(status, kind.acknowledged(), "{kind:?} sent again: {path}");
        }
        match kind {
            Tracker::Impression => impressions += 1,
            Tracker::Click => clicks += 1,
        }
    }
    (impressions, clicks, already)
}

// --- the reports ---------------------------------------------------------------------------

/// What ClickHouse must count once everything arrived; `None`: not known exactly.
#[derive(Debug)]
struct Expected {
    impressions: i64,
    clicks: i64,
    decisions: Option<i64>,
    requests: Option<i64>,
}

impl Expected {
    fn met_by(&self, t: &Totals) -> bool {
        t.impressions == self.impressions
            && t.clicks == self.clicks
            && self.decisions.is_none_or(|d| d == t.decisions)
            && self.requests.is_none_or(|r| r == t.requests)
    }
}

fn report_window() -> (chrono::DateTime<Utc>, chrono::DateTime<Utc>) {
    let now = Utc::now();
    let to = now.duration_trunc(TimeDelta::hours(1)).unwrap_or(now) + ChronoDuration::hours(1);
    (to - ChronoDuration::hours(3), to)
}

/// The ClickHouse rows as the embedded report's CSV writes them.
fn csv(dims: &[Dimension], rows: &[ReportRow]) -> String {
    let header: Vec<&str> = dims.iter().map(|d| d.name()).chain(Metric::ALL.iter().map(|m| m.name())).collect();
    let mut out = header.join(",");
    out.push('\n');
    for r in rows {
        let mut fields = r.labels(chrono_tz::UTC);
        for m in Metric::ALL {
            fields.push(match r.metric(m) {
                adp_analytics::MetricValue::Count(n) | adp_analytics::MetricValue::Micros(n) => n.to_string(),
                adp_analytics::MetricValue::Ratio(x) => x.map_or(String::new(), |x| format!("{x:.6}")),
            });
        }
        out.push_str(&fields.join(","));
        out.push('\n');
    }
    out
}

/// The report by `dims` from ClickHouse (rows and CSV) and from serve's embedded rollup (CSV).
async fn both_reports(ch: &ClickHouse, base: &str, dims: &[Dimension]) -> (Vec<ReportRow>, String, String) {
    let (from, to) = report_window();
    let q = ReportQuery {
        from,
        to,
        time_zone: chrono_tz::UTC,
        dimensions: dims.to_vec(),
        metrics: Metric::ALL.to_vec(),
        filters: ReportFilters::default(),
    };
    let names: Vec<&str> = dims.iter().map(|d| d.name()).collect();
    let url = format!(
        "{base}/api/v1/reports?from={}&to={}&dimensions={}&format=csv",
        from.format("%Y-%m-%dT%H:%M:%SZ"),
        to.format("%Y-%m-%dT%H:%M:%SZ"),
        names.join(",")
    );
    let embedded =
        http_client().get(url).bearer_auth(ADMIN_KEY).send().await.expect("embedded report").text().await.expect("csv");
    let rows = adp_analytics::query(ch, &q).await.unwrap_or_default();
    let from_ch = csv(dims, &rows);
    (rows, from_ch, embedded)
}

/// Waits (up to `timeout`) until ClickHouse counts what is expected and its reports by line item
/// and in total equal the embedded ones; returns the ClickHouse totals and how long that took.
async fn converge(rig: &Rig, base: &str, expected: &Expected, timeout: Duration) -> (Totals, Duration) {
    let started = Instant::now();
    loop {
        let (totals, ch_total, embedded_total) = both_reports(&rig.ch, base, &[]).await;
        let (_, ch_by_li, embedded_by_li) = both_reports(&rig.ch, base, &[Dimension::LineItem]).await;
        let totals = totals.first().map(|r| r.totals).unwrap_or_default();
        if expected.met_by(&totals) && ch_total == embedded_total && ch_by_li == embedded_by_li {
            return (totals, started.elapsed());
        }
        assert!(
            started.elapsed() < timeout,
            "after {timeout:?}: expected {expected:?}\nclickhouse {totals:?}\n\
             by line item, embedded:\n{embedded_by_li}clickhouse:\n{ch_by_li}\
             in total, embedded:\n{embedded_total}clickhouse:\n{ch_total}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn kafka_stats(server: &Server) -> Value {
    let stats = server.admin().get("/api/v1/serving/stats").await.body;
    assert!(stats["kafka"].is_object(), "serve forwards to kafka: {stats}");
    stats
}

/// Waits until serve's forwarder has every event of its log confirmed by the broker.
async fn wait_forwarded(server: &Server) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let stats = kafka_stats(server).await;
        let k = &stats["kafka"];
        if k["queued"] == 0 && k["in_flight"] == 0 && k["broker_up"] == true {
            return stats;
        }
        assert!(Instant::now() < deadline, "the forwarder did not catch up: {k}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Everything forwarded and stored: ClickHouse still counts exactly `expected` a little later
/// (nothing arrives twice late), and no event id is stored twice.
async fn assert_settled(rig: &Rig, server: &Server, expected: &Expected) -> (u64, Value) {
    let stats = wait_forwarded(server).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (totals, _) = converge(rig, &server.base, expected, Duration::from_secs(30)).await;
    assert!(expected.met_by(&totals), "{expected:?} vs {totals:?}");
    let (raw, duplicates) = rig.raw_duplicates().await;
    assert_eq!(duplicates, 0, "{duplicates} of {raw} raw events are stored twice");
    (raw, stats)
}

fn print_tallies(test: &str, w: &Worked) {
    for (name, t) in PHASES.iter().zip(&w.phases) {
        eprintln!("{test}: {name}: {t:?}");
    }
    if !w.refusals.is_empty() {
        eprintln!("{test}: refusals (sample): {:?}", &w.refusals[..w.refusals.len().min(10)]);
    }
}

// --- the faults ----------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_down_for_20s_under_load_loses_and_duplicates_nothing() {
    const TEST: &str = "broker_down_for_20s";
    let _one = ONE_AT_A_TIME.lock().await;
    let started = Instant::now();
    let mut broker = RelayedBroker::start();
    let mut rig = Rig::start(&broker.brokers(), "adpfaultsa", "adp_faults_a");
    let server = rig.serve();
    let clients = Clients::start(&server.base);
    rig.wait_flowing().await;
    tokio::time::sleep(Duration::from_secs(3)).await;

    // The broker goes away for 20 s under load: serve keeps answering, events wait in its log.
    clients.load.set_phase(DURING);
    broker.go_away();
    let outage = Instant::now();
    let mut noticed: Option<Duration> = None;
    let mut waiting = 0u64;
    while outage.elapsed() < Duration::from_secs(20) {
        let stats = kafka_stats(&server).await;
        if stats["kafka"]["broker_up"] == false {
            noticed.get_or_insert(outage.elapsed());
            waiting = waiting.max(stats["kafka"]["queued"].as_u64().unwrap_or(0));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    broker.assert_running();
    clients.load.set_phase(AFTER);
    broker.come_back();
    let back = Instant::now();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let worked = clients.stop().await;
    print_tallies(TEST, &worked);

    let during = &worked.phases[DURING];
    let during_total = during.decides + during.decide_failures + during.decide_unanswered;
    let imp_total = during.impressions + during.tracker_refused + during.tracker_unanswered;
    assert!(during.decides > 50 && during.impressions > 50, "load while the broker was away: {during:?}");
    assert!(during.decides * 100 >= during_total * 99, "decide answered while the broker was away: {during:?}");
    assert!(during.impressions * 100 >= imp_total * 99, "impressions acknowledged while it was away: {during:?}");
    let noticed = noticed.expect("serve's forwarder never reported the broker down");
    assert!(waiting > 0, "no event waited in the log during the outage");

    let total = worked.total();
    assert_eq!(total.decide_unanswered, 0, "every decide is answered (else its decisions are unknown)");
    let (more_imps, more_clicks, already) = settle_uncertain(&server.base, &worked.uncertain).await;
    let expected = Expected {
        impressions: (total.impressions + more_imps) as i64,
        clicks: (total.clicks + more_clicks) as i64,
        decisions: Some(total.filled as i64),
        requests: Some(total.requests as i64),
    };
    let (totals, took) = converge(&rig, &server.base, &expected, Duration::from_secs(120)).await;
    let converged = back.elapsed();
    let (raw, stats) = assert_settled(&rig, &server, &expected).await;
    let kafka = &stats["kafka"];
    assert_eq!(kafka["dropped"], 0, "{kafka}");
    assert_eq!(stats["events_rejected"], 0, "{stats}");
    assert!(kafka["spilled"].as_u64() > Some(0), "events waited in the log: {kafka}");
    assert!(kafka["replayed"].as_u64() > Some(0), "events replayed after the outage: {kafka}");
    rig.stop_ingest();

    eprintln!(
        "{TEST}: acknowledged {} impressions and {} clicks ({} settled again, {already} already counted), \
         {} decisions, {} requests; clickhouse {} impressions, {} clicks, {} decisions, {} requests, {raw} raw \
         events, 0 stored twice",
        expected.impressions,
        expected.clicks,
        worked.uncertain.len(),
        total.filled,
        total.requests,
        totals.impressions,
        totals.clicks,
        totals.decisions,
        totals.requests
    );
    eprintln!(
        "{TEST}: outage noticed after {:.1} s, up to {waiting} events waited; converged {:.1} s after the broker \
         came back ({:.1} s after the load stopped); forwarder {kafka}",
        noticed.as_secs_f64(),
        converged.as_secs_f64(),
        took.as_secs_f64()
    );
    eprintln!("{TEST}: {:.1} s in all", started.elapsed().as_secs_f64());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_serve_mid_load_then_restart_loses_and_duplicates_nothing() {
    const TEST: &str = "kill_9_of_serve";
    let _one = ONE_AT_A_TIME.lock().await;
    let started = Instant::now();
    let mut broker = TansuBroker::start();
    let mut rig = Rig::start(&broker.brokers(), "adpfaultsc", "adp_faults_c");
    let server = rig.serve();
    let clients = Clients::start(&server.base);
    rig.wait_flowing().await;
    tokio::time::sleep(Duration::from_secs(3)).await;

    // kill -9 mid-load (Server's drop is SIGKILL), then the same data dir again.
    let before = kafka_stats(&server).await;
    clients.load.set_phase(DURING);
    drop(server);
    let killed = Instant::now();
    let server = tokio::task::block_in_place(|| rig.serve());
    let down_for = killed.elapsed();
    clients.load.set_base(&server.base);
    clients.load.set_phase(AFTER);
    let restarted = kafka_stats(&server).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let worked = clients.stop().await;
    print_tallies(TEST, &worked);

    let total = worked.total();
    let after = &worked.phases[AFTER];
    assert!(worked.phases[BEFORE].impressions > 50, "load before the kill: {:?}", worked.phases[BEFORE]);
    assert!(after.impressions > 50 && after.clicks > 0, "load after the restart: {after:?}");
    assert_eq!(total.tracker_refused, 0, "no tracker is refused: {:?}", worked.refusals);
    let (more_imps, more_clicks, already) = settle_uncertain(&server.base, &worked.uncertain).await;
    // Decide does not wait for its events to be written, so decisions made just before the kill
    // may be gone with it: ClickHouse must equal the embedded report there, not the client.
    let expected = Expected {
        impressions: (total.impressions + more_imps) as i64,
        clicks: (total.clicks + more_clicks) as i64,
        decisions: None,
        requests: None,
    };
    let (totals, took) = converge(&rig, &server.base, &expected, Duration::from_secs(120)).await;
    let (raw, stats) = assert_settled(&rig, &server, &expected).await;
    let kafka = &stats["kafka"];
    assert_eq!(kafka["dropped"], 0, "{kafka}");
    // The restarted forwarder began at its cursor, behind the end of the log it found.
    assert!(kafka["replayed"].as_u64() > Some(0), "events replayed from the local log: {kafka}");
    broker.assert_running();
    rig.stop_ingest();

    eprintln!(
        "{TEST}: acknowledged {} impressions and {} clicks ({} trackers unanswered at the kill: {already} \
         already counted, the rest counted when sent again); clickhouse {} impressions, {} clicks, {} decisions \
         (clients saw {}), {raw} raw events, 0 stored twice",
        expected.impressions,
        expected.clicks,
        worked.uncertain.len(),
        totals.impressions,
        totals.clicks,
        totals.decisions,
        total.filled
    );
    eprintln!(
        "{TEST}: forwarder before the kill {}; after the restart {}; at the end {kafka}",
        before["kafka"], restarted["kafka"]
    );
    eprintln!(
        "{TEST}: serve back {:.1} s after the kill; converged {:.1} s after the load stopped; {:.1} s in all",
        down_for.as_secs_f64(),
        took.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}
