//! config: defaults that need no file, then a TOML file, then `ADP_...` environment
//! variables, then command-line flags. The environment is passed in as a map, so loading is
//! testable without touching the process environment. Errors name the key at fault.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

pub const ENV_PREFIX: &str = "ADP_";
/// Environment variables with the prefix that are not config keys.
const RESERVED_ENV: &[&str] = &["ADP_CONFIG"];
/// Short aliases: variable → key.
const ENV_ALIASES: &[(&str, &str)] = &[("ADP_ADMIN_KEY", "auth.admin_key")];
/// Keys whose values are never printed.
const SECRET_KEYS: &[&str] =
    &["auth.admin_key", "tracking.signing_keys", "clickhouse.password", "scylla.password", "dragonfly.url"];

/// The roles one process can run (`server.roles`).
pub const ROLES: &[&str] = &["decide", "bid", "track", "api", "ingest"];

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `embedded`: every role in one process on SQLite and local state. `distributed`: the
    /// roles in `server.roles` on the shared data plane (catalog store, Dragonfly, Kafka,
    /// ClickHouse).
    pub mode: String,
    pub server: ServerConfig,
    pub auth: AuthConfig,
    pub store: StoreConfig,
    pub log: LogConfig,
    pub demo: DemoConfig,
    pub serving: ServingConfig,
    pub tracking: TrackingConfig,
    pub events: EventsConfig,
    pub frequency: FrequencyConfig,
    pub rtb: RtbConfig,
    pub conversions: ConversionsConfig,
    pub geo: GeoConfig,
    pub kafka: KafkaConfig,
    pub clickhouse: ClickHouseConfig,
    pub scylla: ScyllaConfig,
    pub dragonfly: DragonflyConfig,
}

/// The catalog on ScyllaDB (`store.backend = "scylla"`).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScyllaConfig {
    /// Contact points, `host:port[,host:port...]`.
    pub nodes: String,
    pub keyspace: String,
    /// NetworkTopologyStrategy replication, `DC:RF[,DC:RF...]`.
    pub replication: String,
    /// The datacenter whose replicas are preferred; empty: any.
    pub local_dc: String,
    pub username: String,
    /// Secret.
    pub password: String,
}

impl std::fmt::Debug for ScyllaConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScyllaConfig")
            .field("nodes", &self.nodes)
            .field("keyspace", &self.keyspace)
            .field("replication", &self.replication)
            .field("local_dc", &self.local_dc)
            .field("username", &self.username)
            .field("password", &if self.password.is_empty() { "" } else { "<redacted>" })
            .finish()
    }
}

impl Default for ScyllaConfig {
    fn default() -> Self {
        ScyllaConfig {
            nodes: "127.0.0.1:9042".into(),
            keyspace: "adplatform".into(),
            replication: "datacenter1:3".into(),
            local_dc: String::new(),
            username: String::new(),
            password: String::new(),
        }
    }
}

/// Shared counters on DragonflyDB (Redis protocol) in distributed mode: frequency caps,
/// budget leases, replay guards, CTR statistics.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DragonflyConfig {
    /// `redis://[user:password@]host:port[/db]`. Secret (it may carry a password).
    pub url: String,
    /// Prefix of every key.
    pub prefix: String,
    /// Budget a serving process leases per line item at a time, in micros. The worst-case
    /// overspend of a budget is (serving processes) × this.
    pub lease_slice_micros: u64,
    /// A lease not renewed for this long is reclaimed (its process is taken for dead).
    pub lease_ttl_ms: u64,
    /// Milliseconds between lease renewals (which also bring back the shared spend).
    pub renew_ms: u64,
    /// Milliseconds between CTR statistics exchanges.
    pub ctr_sync_ms: u64,
}

impl std::fmt::Debug for DragonflyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DragonflyConfig")
            .field("url", &if self.url.is_empty() { "" } else { "<redacted>" })
            .field("prefix", &self.prefix)
            .field("lease_slice_micros", &self.lease_slice_micros)
            .field("lease_ttl_ms", &self.lease_ttl_ms)
            .field("renew_ms", &self.renew_ms)
            .field("ctr_sync_ms", &self.ctr_sync_ms)
            .finish()
    }
}

impl Default for DragonflyConfig {
    fn default() -> Self {
        DragonflyConfig {
            url: String::new(),
            prefix: "adp".into(),
            lease_slice_micros: 1_000_000,
            lease_ttl_ms: 10_000,
            renew_ms: 200,
            ctr_sync_ms: 2_000,
        }
    }
}

/// Analytics in ClickHouse: `adplatform ingest` (Kafka → ClickHouse), `adplatform migrate
/// --clickhouse` and the reports read from there.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClickHouseConfig {
    /// HTTP endpoint, e.g. `http://127.0.0.1:8123`; empty: off.
    pub url: String,
    pub database: String,
    pub user: String,
    /// Secret.
    pub password: String,
    /// Days of raw events kept (whole days are dropped); 0 = forever. Rollups are kept.
    pub ttl_days: u64,
    /// The ingest writes a batch when it holds this many events (larger batches, larger
    /// ClickHouse parts, fewer merges)...
    pub batch_rows: u64,
    /// ...or when its first event waited this long.
    pub batch_ms: u64,
    /// The ingest sends each batch as this many INSERTs at once (1–16): one INSERT runs on one
    /// ClickHouse thread.
    pub parallel_inserts: u64,
    /// LZ4-compress the ingest's inserts: less network, more CPU on both ends (off pays when
    /// ClickHouse is on the same host or a fast link).
    pub compress_inserts: bool,
    /// How long the ingest re-reads a hole in a partition's offsets (a fetch that jumped over
    /// offsets) before it accepts it, counts it and logs it; 0 accepts at once.
    pub gap_wait_ms: u64,
    /// The ClickHouse cluster (one shard, N replicas) the migration creates replicated tables
    /// `ON CLUSTER`; empty: a single server.
    pub cluster: String,
}

impl std::fmt::Debug for ClickHouseConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClickHouseConfig")
            .field("url", &self.url)
            .field("database", &self.database)
            .field("user", &self.user)
            .field("password", &if self.password.is_empty() { "" } else { "<redacted>" })
            .field("ttl_days", &self.ttl_days)
            .field("batch_rows", &self.batch_rows)
            .field("batch_ms", &self.batch_ms)
            .field("parallel_inserts", &self.parallel_inserts)
            .field("compress_inserts", &self.compress_inserts)
            .field("gap_wait_ms", &self.gap_wait_ms)
            .field("cluster", &self.cluster)
            .finish()
    }
}

impl Default for ClickHouseConfig {
    fn default() -> Self {
        ClickHouseConfig {
            url: String::new(),
            database: "adplatform".into(),
            user: "default".into(),
            password: String::new(),
            ttl_days: 400,
            batch_rows: 500_000,
            batch_ms: 1000,
            parallel_inserts: adp_analytics::ingest::PARALLEL_INSERTS as u64,
            compress_inserts: true,
            gap_wait_ms: adp_analytics::gaps::GAP_WAIT_MS,
            cluster: String::new(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// Kafka-API brokers (Redpanda) the event log is forwarded to, `host:port[,host:port...]`;
    /// empty: off (events stay in the local log only).
    pub brokers: String,
    /// Events go to the topic `<topic_prefix>.events`.
    pub topic_prefix: String,
    /// Partitions of the topic when the forwarder creates it.
    pub partitions: u64,
    /// Replicas of each partition when the forwarder creates the topic (3 on a Redpanda cluster).
    pub replication_factor: u64,
    /// Milliseconds the producer waits to fill a batch.
    pub linger_ms: u64,
    /// Batch compression: `lz4`, `snappy` or `none`.
    pub compression: String,
    /// Most events in one Kafka message (1..=10000; 1 sends one event per message). The
    /// forwarder packs the events of a partition read in one round.
    pub events_per_message: u64,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            brokers: String::new(),
            topic_prefix: "adp".into(),
            partitions: 12,
            replication_factor: 1,
            linger_ms: 10,
            compression: "lz4".into(),
            events_per_message: 64,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConversionsConfig {
    /// Seconds after a click during which a conversion is credited to it.
    pub click_window_secs: u64,
    /// Seconds after an impression for view-through credit; 0 = off.
    pub view_window_secs: u64,
    /// Clicks and impressions remembered for attribution, at most.
    pub max_touches: u64,
    /// Append adp_click=<click id> to landing URLs on the click redirect.
    pub append_click_id: bool,
}

impl Default for ConversionsConfig {
    fn default() -> Self {
        ConversionsConfig {
            click_window_secs: 30 * 86_400,
            view_window_secs: 0,
            max_touches: 2_000_000,
            append_click_id: true,
        }
    }
}

/// Geo from IP: requests that name no country are placed by their IP address.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GeoConfig {
    /// A MaxMind DB file (GeoIP2/GeoLite2 Country or City, or ip-location-db); empty: no lookup.
    pub mmdb_path: String,
    /// Decide requests without `device.ip`: look up the TCP peer's address.
    pub use_client_addr: bool,
    /// With `use_client_addr`: the first `X-Forwarded-For` entry instead of the peer (the
    /// server sits behind a proxy that sets it).
    pub trust_forwarded_for: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RtbConfig {
    /// Our seat id in bid responses (`wseat`/`bseat` are checked against it).
    pub seat: String,
    /// The platform currency: budgets, rates and reports are in it.
    pub currency: String,
    /// Static exchange rates `CODE:RATE,...` (units per 1 of the first/base currency) for
    /// bidding in other currencies and reading foreign floors; empty: the platform currency only.
    pub fx: String,
    /// Which notice books spend: `billing` (burl) or `win` (nurl).
    pub bill_on: String,
    /// No bid: `204` (HTTP 204, no body) or `nbr` (HTTP 200 with a BidResponse carrying nbr).
    pub no_bid: String,
    /// Milliseconds kept back from tmax for the network.
    pub network_allowance_ms: u64,
    /// Most bids per imp (from different line items).
    pub max_bids_per_imp: u64,
    /// Leave adm out of bids and answer the win notice with the markup instead.
    pub adm_in_win_notice: bool,
}

impl Default for RtbConfig {
    fn default() -> Self {
        RtbConfig {
            seat: "adplatform".into(),
            currency: "USD".into(),
            fx: String::new(),
            bill_on: "billing".into(),
            no_bid: "204".into(),
            network_allowance_ms: 20,
            max_bids_per_imp: 1,
            adm_in_win_notice: false,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServingConfig {
    /// Base URL of tracking links; empty means `http://<server.listen>`.
    pub public_url: String,
    /// Seconds a tracking URL stays valid (at most 900).
    pub tracking_ttl_secs: u64,
    /// Most placements one decide request may carry.
    pub max_placements: u64,
    /// Seconds between full catalog reloads (changes are applied at once anyway).
    pub catalog_reload_secs: u64,
    /// Seconds between pacing throttle updates.
    pub pacing_interval_secs: u64,
    /// Counted tracking URLs remembered until they expire; sustains this / tracking_ttl_secs
    /// impressions and clicks per second (about 40 bytes each).
    pub replay_guard_entries: u64,
}

impl Default for ServingConfig {
    fn default() -> Self {
        ServingConfig {
            public_url: String::new(),
            tracking_ttl_secs: 900,
            max_placements: 16,
            catalog_reload_secs: 30,
            pacing_interval_secs: 5,
            replay_guard_entries: 4_000_000,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrackingConfig {
    /// Comma-separated `id:secret` signing keys, the first active. Empty: a key is generated once
    /// and kept in `<data_dir>/tracking.key`. Secret.
    pub signing_keys: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventsConfig {
    /// `always` (fsync every batch), `interval` (every `fsync_interval_ms`) or `never`.
    pub fsync: String,
    pub fsync_interval_ms: u64,
    /// Events the queue holds before refusing (never blocking the hot path).
    pub queue_capacity: u64,
    pub segment_bytes: u64,
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig {
            fsync: "interval".into(),
            fsync_interval_ms: 100,
            queue_capacity: 65_536,
            segment_bytes: 64 * 1024 * 1024,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FrequencyConfig {
    /// Most (user, cap, window) counters kept in memory.
    pub max_entries: u64,
}

impl Default for FrequencyConfig {
    fn default() -> Self {
        FrequencyConfig { max_entries: 2_000_000 }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub listen: String,
    pub data_dir: PathBuf,
    pub max_body_bytes: u64,
    /// How long in-flight requests get to finish after SIGTERM / Ctrl-C.
    pub shutdown_grace_secs: u64,
    /// Serving threads, one runtime and listener each; 0 = one per core.
    pub threads: u64,
    /// Roles this process runs: `all`, or a comma-separated subset of decide, bid, track,
    /// api, ingest (distributed mode).
    pub roles: String,
    /// Answer decide and bid requests in batches: each serving thread parses and decides the
    /// requests that arrived in one wake-up back to back, then sends the answers. Embedded mode
    /// only (a distributed server reads its counters over the network, request by request).
    pub batch_requests: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Bootstrap admin key installed at start (at least 16 characters). Secret.
    pub admin_key: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// `sqlite`: the catalog file `catalog.sqlite` in the data dir (or `sqlite_path`);
    /// `scylla`: ScyllaDB ([scylla]).
    pub backend: String,
    /// The SQLite catalog file; empty: `<data_dir>/catalog.sqlite`. Processes on one machine
    /// may share it (local cluster).
    pub sqlite_path: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A tracing filter, e.g. `info` or `info,adp_server=debug`.
    pub level: String,
    /// `text` or `json`.
    pub format: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DemoConfig {
    /// Seed the demo catalog when the catalog is empty.
    pub enabled: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            mode: "embedded".into(),
            server: ServerConfig::default(),
            auth: AuthConfig::default(),
            store: StoreConfig::default(),
            log: LogConfig::default(),
            demo: DemoConfig::default(),
            serving: ServingConfig::default(),
            tracking: TrackingConfig::default(),
            events: EventsConfig::default(),
            frequency: FrequencyConfig::default(),
            rtb: RtbConfig::default(),
            conversions: ConversionsConfig::default(),
            geo: GeoConfig::default(),
            kafka: KafkaConfig::default(),
            clickhouse: ClickHouseConfig::default(),
            scylla: ScyllaConfig::default(),
            dragonfly: DragonflyConfig::default(),
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:8080".into(),
            data_dir: PathBuf::from("./adplatform-data"),
            max_body_bytes: 1024 * 1024,
            shutdown_grace_secs: 10,
            threads: 0,
            roles: "all".into(),
            batch_requests: true,
        }
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig { backend: "sqlite".into(), sqlite_path: String::new() }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig { level: "info".into(), format: "text".into() }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {message}")]
    File { path: String, message: String },
    #[error("config file {path} is not valid TOML: {message}")]
    Syntax { path: String, message: String },
    #[error("config key `{key}`{source_note}: {message}")]
    Key { key: String, source_note: String, message: String },
    #[error("unknown environment variable {var}: no config key `{key}`; known keys: {known}")]
    UnknownEnv { var: String, key: String, known: String },
}

fn key_error(key: &str, source_note: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Key { key: key.into(), source_note: source_note.into(), message: message.into() }
}

/// Command-line overrides, applied last.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub admin_key: Option<String>,
    pub demo: bool,
    pub roles: Option<String>,
}

/// Dotted paths of every scalar key, with their default values.
fn leaf_keys(value: &toml::Value, prefix: &str, out: &mut BTreeMap<String, toml::Value>) {
    match value {
        toml::Value::Table(t) => {
            for (k, v) in t {
                let p = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                leaf_keys(v, &p, out);
            }
        }
        other => {
            out.insert(prefix.to_string(), other.clone());
        }
    }
}

fn env_name(key: &str) -> String {
    format!("{ENV_PREFIX}{}", key.replace('.', "_").to_ascii_uppercase())
}

fn set_path(root: &mut toml::Value, key: &str, v: toml::Value) {
    let mut cur = root;
    let mut parts = key.split('.').peekable();
    while let Some(part) = parts.next() {
        let toml::Value::Table(t) = cur else { return };
        if parts.peek().is_none() {
            t.insert(part.to_string(), v);
            return;
        }
        cur = t.entry(part.to_string()).or_insert_with(|| toml::Value::Table(Default::default()));
    }
}

/// Converts an environment string to the type the key's default has.
fn typed(raw: &str, like: &toml::Value, key: &str, var: &str) -> Result<toml::Value, ConfigError> {
    let note = format!(" (from {var})");
    match like {
        toml::Value::Integer(_) => raw
            .trim()
            .parse::<i64>()
            .map(toml::Value::Integer)
            .map_err(|_| key_error(key, &note, format!("`{raw}` is not an integer"))),
        toml::Value::Boolean(_) => match raw.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(toml::Value::Boolean(true)),
            "false" | "0" | "no" | "off" => Ok(toml::Value::Boolean(false)),
            _ => Err(key_error(key, &note, format!("`{raw}` is not a boolean (true/false)"))),
        },
        _ => Ok(toml::Value::String(raw.to_string())),
    }
}

/// Loads the config: `file` is `(path, contents)` when a file was given.
pub fn load(
    file: Option<(&str, &str)>,
    env: &BTreeMap<String, String>,
    overrides: &Overrides,
) -> Result<Config, ConfigError> {
    let defaults = toml::Value::try_from(Config::default())
        .map_err(|e| key_error("", "", format!("defaults do not serialise: {e}")))?;
    let mut known = BTreeMap::new();
    leaf_keys(&defaults, "", &mut known);

    let mut merged = match file {
        Some((path, text)) => {
            let table: toml::Table = text.parse().map_err(|e: toml::de::Error| ConfigError::Syntax {
                path: path.into(),
                message: e.message().to_string(),
            })?;
            toml::Value::Table(table)
        }
        None => toml::Value::Table(Default::default()),
    };

    for (var, raw) in env.iter().filter(|(k, _)| k.starts_with(ENV_PREFIX)) {
        if RESERVED_ENV.contains(&var.as_str()) {
            continue;
        }
        let key = ENV_ALIASES
            .iter()
            .find(|(alias, _)| alias == var)
            .map(|(_, key)| key.to_string())
            .or_else(|| known.keys().find(|k| env_name(k) == *var).cloned());
        let Some(key) = key else {
            let guess = var[ENV_PREFIX.len()..].to_ascii_lowercase();
            return Err(ConfigError::UnknownEnv {
                var: var.clone(),
                key: guess,
                known: known.keys().map(|k| env_name(k)).collect::<Vec<_>>().join(", "),
            });
        };
        let like = known.get(&key).cloned().unwrap_or(toml::Value::String(String::new()));
        set_path(&mut merged, &key, typed(raw, &like, &key, var)?);
    }

    if let Some(l) = &overrides.listen {
        set_path(&mut merged, "server.listen", toml::Value::String(l.clone()));
    }
    if let Some(d) = &overrides.data_dir {
        set_path(&mut merged, "server.data_dir", toml::Value::String(d.display().to_string()));
    }
    if let Some(k) = &overrides.admin_key {
        set_path(&mut merged, "auth.admin_key", toml::Value::String(k.clone()));
    }
    if overrides.demo {
        set_path(&mut merged, "demo.enabled", toml::Value::Boolean(true));
    }
    if let Some(r) = &overrides.roles {
        set_path(&mut merged, "server.roles", toml::Value::String(r.clone()));
    }

    let config: Config = serde_path_to_error::deserialize(merged).map_err(|e| {
        let key = e.path().to_string();
        let inner = e.into_inner();
        let msg = inner.message().to_string();
        key_error(&key, "", msg)
    })?;
    config.validate()?;
    Ok(config)
}

impl Config {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !matches!(self.mode.as_str(), "embedded" | "distributed") {
            return Err(key_error("mode", "", format!("`{}` is not a mode; use embedded or distributed", self.mode)));
        }
        let roles = self.roles()?;
        if self.mode == "embedded" && roles.len() != ROLES.len() {
            return Err(key_error(
                "server.roles",
                "",
                "embedded mode runs every role in one process; set mode = \"distributed\" to run a subset",
            ));
        }
        if self.mode == "distributed" {
            self.validate_distributed(&roles)?;
        }
        self.listen_addr()?;
        if self.server.data_dir.as_os_str().is_empty() {
            return Err(key_error("server.data_dir", "", "must not be empty"));
        }
        if !(1024..=64 * 1024 * 1024).contains(&self.server.max_body_bytes) {
            return Err(key_error("server.max_body_bytes", "", "must be between 1024 and 67108864"));
        }
        if self.server.shutdown_grace_secs > 600 {
            return Err(key_error("server.shutdown_grace_secs", "", "must be at most 600"));
        }
        if !self.auth.admin_key.is_empty() && self.auth.admin_key.len() < adp_server::auth::MIN_KEY_LEN {
            return Err(key_error(
                "auth.admin_key",
                "",
                format!("must be at least {} characters", adp_server::auth::MIN_KEY_LEN),
            ));
        }
        if !matches!(self.store.backend.as_str(), "sqlite" | "scylla") {
            return Err(key_error(
                "store.backend",
                "",
                format!("`{}` is not a store backend; use sqlite or scylla", self.store.backend),
            ));
        }
        if self.store.backend == "scylla" && self.mode != "distributed" {
            return Err(key_error(
                "store.backend",
                "",
                "scylla is the distributed mode's store; set mode = \"distributed\"",
            ));
        }
        if self.server.threads > 256 {
            return Err(key_error("server.threads", "", "must be at most 256 (0 = one per core)"));
        }
        if !(1..=900).contains(&self.serving.tracking_ttl_secs) {
            return Err(key_error("serving.tracking_ttl_secs", "", "must be 1..=900 (the pending-spend window)"));
        }
        if !(1..=64).contains(&self.serving.max_placements) {
            return Err(key_error("serving.max_placements", "", "must be 1..=64"));
        }
        if self.serving.replay_guard_entries < 1000 {
            return Err(key_error("serving.replay_guard_entries", "", "must be at least 1000"));
        }
        if self.serving.catalog_reload_secs == 0 || self.serving.pacing_interval_secs == 0 {
            return Err(key_error("serving.pacing_interval_secs", "", "intervals must be at least 1 second"));
        }
        let url = &self.serving.public_url;
        if !(url.is_empty() || url.starts_with("http://") || url.starts_with("https://")) {
            return Err(key_error("serving.public_url", "", "must be an http(s) URL"));
        }
        self.signing_keys().map_err(|m| key_error("tracking.signing_keys", "", m))?;
        if !matches!(self.events.fsync.as_str(), "always" | "interval" | "never") {
            return Err(key_error("events.fsync", "", "must be always, interval or never"));
        }
        if self.events.queue_capacity == 0 || self.events.segment_bytes < 4096 {
            return Err(key_error(
                "events.queue_capacity",
                "",
                "queue must hold at least 1 event and segments be at least 4096 bytes",
            ));
        }
        if self.rtb.seat.is_empty() || self.rtb.seat.len() > 64 {
            return Err(key_error("rtb.seat", "", "1 to 64 characters"));
        }
        if self.rtb.currency.len() != 3 || !self.rtb.currency.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(key_error("rtb.currency", "", "a three-letter upper-case ISO 4217 code, e.g. USD"));
        }
        if let Err(e) = adp_openrtb::FxTable::parse(&self.rtb.fx) {
            return Err(key_error("rtb.fx", "", e.to_string()));
        }
        if !matches!(self.rtb.bill_on.as_str(), "billing" | "win") {
            return Err(key_error("rtb.bill_on", "", "billing or win"));
        }
        if !matches!(self.rtb.no_bid.as_str(), "204" | "nbr") {
            return Err(key_error("rtb.no_bid", "", "204 or nbr"));
        }
        if !(1..=16).contains(&self.rtb.max_bids_per_imp) {
            return Err(key_error("rtb.max_bids_per_imp", "", "1 to 16"));
        }
        if self.rtb.network_allowance_ms > 10_000 {
            return Err(key_error("rtb.network_allowance_ms", "", "at most 10000"));
        }
        if !(60..=90 * 86_400).contains(&self.conversions.click_window_secs) {
            return Err(key_error("conversions.click_window_secs", "", "60 seconds to 90 days"));
        }
        if self.conversions.view_window_secs > 30 * 86_400 {
            return Err(key_error("conversions.view_window_secs", "", "at most 30 days (0 = off)"));
        }
        if self.conversions.max_touches < 1000 {
            return Err(key_error("conversions.max_touches", "", "must be at least 1000"));
        }
        if self.frequency.max_entries < 1000 {
            return Err(key_error("frequency.max_entries", "", "must be at least 1000"));
        }
        self.validate_geo()?;
        if !self.kafka.brokers.trim().is_empty() {
            self.kafka_forwarder()?;
        }
        self.validate_clickhouse()?;
        if !matches!(self.log.format.as_str(), "text" | "json") {
            return Err(key_error("log.format", "", "must be `text` or `json`"));
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            return Err(key_error(
                "log.level",
                "",
                format!("`{}` is not a tracing filter (e.g. info, debug, info,adp_server=debug)", self.log.level),
            ));
        }
        Ok(())
    }

    /// `[geo]`: the database file must exist (it is read and checked when a server starts, and
    /// by `check-config`); the client-address switches need a database.
    fn validate_geo(&self) -> Result<(), ConfigError> {
        if self.geo.trust_forwarded_for && !self.geo.use_client_addr {
            return Err(key_error("geo.trust_forwarded_for", "", "only applies with geo.use_client_addr = true"));
        }
        let path = self.geo.mmdb_path.trim();
        if path.is_empty() {
            if self.geo.use_client_addr {
                return Err(key_error("geo.use_client_addr", "", "needs geo.mmdb_path (the database to look up in)"));
            }
            return Ok(());
        }
        match std::fs::metadata(path) {
            Ok(m) if m.is_file() => Ok(()),
            Ok(_) => Err(key_error("geo.mmdb_path", "", format!("{path} is not a file"))),
            Err(e) => Err(key_error(
                "geo.mmdb_path",
                "",
                format!("cannot read {path}: {e} (scripts/fetch-geoip.sh fetches a free database)"),
            )),
        }
    }

    /// The configured tracking signing keys as `(id, secret)`; empty when none are set.
    pub fn signing_keys(&self) -> Result<Vec<(String, Vec<u8>)>, String> {
        let mut out = Vec::new();
        for part in self.tracking.signing_keys.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (id, secret) = part.split_once(':').ok_or("each key is written id:secret")?;
            if id.is_empty() || id.len() > 16 || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(format!("key id `{id}` must be 1 to 16 letters or digits"));
            }
            if secret.len() < 16 {
                return Err(format!("the secret of key `{id}` must be at least 16 characters"));
            }
            out.push((id.to_string(), secret.as_bytes().to_vec()));
        }
        Ok(out)
    }

    fn validate_clickhouse(&self) -> Result<(), ConfigError> {
        let c = &self.clickhouse;
        if !(c.url.is_empty() || c.url.starts_with("http://") || c.url.starts_with("https://")) {
            return Err(key_error(
                "clickhouse.url",
                "",
                "an http(s) URL such as http://127.0.0.1:8123, or empty (off)",
            ));
        }
        if let Err(m) = adp_analytics::store::check_identifier(&c.database) {
            return Err(key_error("clickhouse.database", "", m));
        }
        if c.ttl_days > 100_000 {
            return Err(key_error("clickhouse.ttl_days", "", "at most 100000 (0 = keep raw events forever)"));
        }
        if !(1..=1_000_000).contains(&c.batch_rows) {
            return Err(key_error("clickhouse.batch_rows", "", "1 to 1000000"));
        }
        if !(1..=60_000).contains(&c.batch_ms) {
            return Err(key_error("clickhouse.batch_ms", "", "1 to 60000"));
        }
        if !(1..=16).contains(&c.parallel_inserts) {
            return Err(key_error("clickhouse.parallel_inserts", "", "1 to 16"));
        }
        if c.gap_wait_ms > 600_000 {
            return Err(key_error("clickhouse.gap_wait_ms", "", "0 to 600000"));
        }
        if !c.cluster.is_empty() {
            if let Err(m) = adp_analytics::store::check_cluster_name(&c.cluster) {
                return Err(key_error("clickhouse.cluster", "", m));
            }
        }
        Ok(())
    }

    /// Where ClickHouse is; an error when `clickhouse.url` is not set.
    pub fn clickhouse_settings(&self) -> Result<adp_analytics::ClickHouseSettings, ConfigError> {
        let c = &self.clickhouse;
        if c.url.trim().is_empty() {
            return Err(key_error("clickhouse.url", "", "is not set (ADP_CLICKHOUSE_URL, e.g. http://127.0.0.1:8123)"));
        }
        Ok(adp_analytics::ClickHouseSettings {
            url: c.url.trim().to_string(),
            database: c.database.clone(),
            user: c.user.clone(),
            password: c.password.clone(),
            cluster: c.cluster.clone(),
        })
    }

    /// The settings of `adplatform ingest`: `[clickhouse]` and the brokers and topic of `[kafka]`.
    pub fn ingest_settings(&self) -> Result<adp_analytics::IngestSettings, ConfigError> {
        let clickhouse = self.clickhouse_settings()?;
        let brokers = self.kafka.brokers.trim();
        if brokers.is_empty() {
            return Err(key_error(
                "kafka.brokers",
                "",
                "is not set: the ingest reads events from Kafka (ADP_KAFKA_BROKERS)",
            ));
        }
        let prefix = &self.kafka.topic_prefix;
        Ok(adp_analytics::IngestSettings {
            clickhouse,
            brokers: brokers.to_string(),
            topic: format!("{prefix}.events"),
            group_id: format!("{prefix}-ingest"),
            batch_rows: self.clickhouse.batch_rows as usize,
            batch_ms: self.clickhouse.batch_ms,
            ttl_days: u32::try_from(self.clickhouse.ttl_days).unwrap_or(u32::MAX),
            client_settings: Vec::new(),
            parallel_inserts: self.clickhouse.parallel_inserts as usize,
            compress_inserts: self.clickhouse.compress_inserts,
            gap_wait_ms: self.clickhouse.gap_wait_ms,
        })
    }

    /// The Kafka forwarder's settings (whether or not `kafka.brokers` is set).
    pub fn kafka_forwarder(&self) -> Result<adp_events::ForwarderConfig, ConfigError> {
        let k = &self.kafka;
        let int = |key: &str, v: u64| i32::try_from(v).map_err(|_| key_error(key, "", "is too large"));
        let config = adp_events::ForwarderConfig {
            brokers: k.brokers.trim().to_string(),
            topic_prefix: k.topic_prefix.clone(),
            partitions: int("kafka.partitions", k.partitions)?,
            replication_factor: int("kafka.replication_factor", k.replication_factor)?,
            linger_ms: k.linger_ms,
            compression: k.compression.parse().map_err(|e: String| key_error("kafka.compression", "", e))?,
            events_per_message: usize::try_from(k.events_per_message).unwrap_or(usize::MAX),
            ..adp_events::ForwarderConfig::default()
        };
        match config.validate() {
            Err(adp_events::ForwarderError::InvalidConfig { field, message }) => {
                Err(key_error(&format!("kafka.{field}"), "", message))
            }
            _ => Ok(config),
        }
    }

    /// The roles this process runs, in the order of [`ROLES`].
    pub fn roles(&self) -> Result<Vec<&'static str>, ConfigError> {
        let raw = self.server.roles.trim();
        if raw.is_empty() || raw == "all" {
            return Ok(ROLES.to_vec());
        }
        let mut wanted = Vec::new();
        for part in raw.split(',').map(str::trim) {
            match ROLES.iter().find(|r| **r == part) {
                Some(r) => wanted.push(*r),
                None => {
                    return Err(key_error(
                        "server.roles",
                        "",
                        format!("`{part}` is not a role; roles are all or a list of {}", ROLES.join(", ")),
                    ))
                }
            }
        }
        Ok(ROLES.iter().copied().filter(|r| wanted.contains(r)).collect())
    }

    fn validate_distributed(&self, roles: &[&str]) -> Result<(), ConfigError> {
        let serving = roles.iter().any(|r| matches!(*r, "decide" | "bid" | "track"));
        if self.kafka.brokers.trim().is_empty() {
            return Err(key_error(
                "kafka.brokers",
                "",
                "distributed mode needs the Kafka-API brokers (events and catalog changes travel there)",
            ));
        }
        if serving && self.tracking.signing_keys.trim().is_empty() {
            return Err(key_error(
                "tracking.signing_keys",
                "",
                "distributed serving needs signing keys shared by every process (a URL signed by one is checked by another)",
            ));
        }
        if serving && self.dragonfly.url.trim().is_empty() {
            return Err(key_error(
                "dragonfly.url",
                "",
                "distributed serving needs DragonflyDB (shared caps, budgets and replay guards)",
            ));
        }
        let df = &self.dragonfly.url;
        if !(df.is_empty() || df.starts_with("redis://") || df.starts_with("rediss://")) {
            return Err(key_error("dragonfly.url", "", "must be a redis:// or rediss:// URL"));
        }
        if roles.contains(&"ingest") && self.clickhouse.url.trim().is_empty() {
            return Err(key_error("clickhouse.url", "", "the ingest role writes to ClickHouse: set its URL"));
        }
        if self.dragonfly.lease_slice_micros == 0 || self.dragonfly.renew_ms == 0 || self.dragonfly.ctr_sync_ms == 0 {
            return Err(key_error("dragonfly.lease_slice_micros", "", "slice and intervals must be positive"));
        }
        if self.dragonfly.lease_ttl_ms < 2 * self.dragonfly.renew_ms {
            return Err(key_error("dragonfly.lease_ttl_ms", "", "must be at least twice dragonfly.renew_ms"));
        }
        if self.store.backend == "scylla" && self.scylla.nodes.trim().is_empty() {
            return Err(key_error("scylla.nodes", "", "the scylla store needs contact points"));
        }
        Ok(())
    }

    pub fn listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.server.listen.parse().map_err(|_| {
            key_error("server.listen", "", format!("`{}` is not an address such as 127.0.0.1:8080", self.server.listen))
        })
    }

    /// The effective config as TOML, secrets redacted.
    pub fn to_redacted_toml(&self) -> String {
        let mut v = match toml::Value::try_from(self) {
            Ok(v) => v,
            Err(e) => return format!("# cannot render config: {e}\n"),
        };
        for key in SECRET_KEYS {
            let mut leaves = BTreeMap::new();
            leaf_keys(&v, "", &mut leaves);
            if let Some(toml::Value::String(s)) = leaves.get(*key) {
                if !s.is_empty() {
                    set_path(&mut v, key, toml::Value::String("<redacted>".into()));
                }
            }
        }
        toml::to_string_pretty(&v).unwrap_or_else(|e| format!("# cannot render config: {e}\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults_need_no_file() {
        let c = load(None, &env(&[]), &Overrides::default()).expect("defaults");
        assert_eq!(c, Config::default());
        assert_eq!(c.listen_addr().expect("addr").port(), 8080);
    }

    #[test]
    fn file_then_env_then_flags() {
        let file = "[server]\nlisten = \"127.0.0.1:9000\"\ndata_dir = \"/var/lib/adp\"\n[log]\nlevel = \"debug\"\n";
        let e = env(&[
            ("ADP_SERVER_LISTEN", "0.0.0.0:9100"),
            ("ADP_DEMO_ENABLED", "true"),
            ("PATH", "/bin"),
            ("ADP_CONFIG", "x"),
        ]);
        let c = load(Some(("f.toml", file)), &e, &Overrides::default()).expect("load");
        assert_eq!(c.server.listen, "0.0.0.0:9100", "env beats file");
        assert_eq!(c.server.data_dir, PathBuf::from("/var/lib/adp"), "file beats default");
        assert_eq!(c.log.level, "debug");
        assert!(c.demo.enabled);
        let flags = Overrides { listen: Some("127.0.0.1:1".into()), ..Default::default() };
        let c = load(Some(("f.toml", file)), &e, &flags).expect("load");
        assert_eq!(c.server.listen, "127.0.0.1:1", "flags beat env");
    }

    #[test]
    fn errors_name_the_key() {
        let err =
            load(Some(("f.toml", "[server]\nlisen = \"x\"\n")), &env(&[]), &Overrides::default()).expect_err("typo");
        assert!(err.to_string().contains("server.lisen"), "{err}");
        let err = load(None, &env(&[("ADP_SERVER_MAX_BODY_BYTES", "lots")]), &Overrides::default()).expect_err("int");
        assert!(
            err.to_string().contains("server.max_body_bytes") && err.to_string().contains("ADP_SERVER_MAX_BODY_BYTES"),
            "{err}"
        );
        let err = load(None, &env(&[("ADP_SERVER_LISTEN", "nowhere")]), &Overrides::default()).expect_err("addr");
        assert!(err.to_string().contains("server.listen"), "{err}");
        let err = load(None, &env(&[("ADP_SERVR_LISTEN", "x")]), &Overrides::default()).expect_err("unknown env");
        assert!(matches!(err, ConfigError::UnknownEnv { ref var, .. } if var == "ADP_SERVR_LISTEN"), "{err}");
        let err = load(Some(("f.toml", "[server]\nmax_body_bytes = \"big\"\n")), &env(&[]), &Overrides::default())
            .expect_err("type");
        assert!(err.to_string().contains("server.max_body_bytes"), "{err}");
        let err = load(Some(("f.toml", "[server\n")), &env(&[]), &Overrides::default()).expect_err("syntax");
        assert!(matches!(err, ConfigError::Syntax { .. }), "{err}");
    }

    #[test]
    fn admin_key_alias_and_redaction() {
        let c = load(None, &env(&[("ADP_ADMIN_KEY", "a-very-secret-admin-key")]), &Overrides::default()).expect("load");
        assert_eq!(c.auth.admin_key, "a-very-secret-admin-key");
        let shown = c.to_redacted_toml();
        assert!(!shown.contains("a-very-secret-admin-key") && shown.contains("<redacted>"), "{shown}");
        let err = load(None, &env(&[("ADP_AUTH_ADMIN_KEY", "short")]), &Overrides::default()).expect_err("short key");
        assert!(err.to_string().contains("auth.admin_key"), "{err}");
    }

    #[test]
    fn kafka_is_off_by_default_and_checked_when_on() {
        let c = load(None, &env(&[]), &Overrides::default()).expect("defaults");
        assert!(c.kafka.brokers.is_empty());
        let c = load(
            None,
            &env(&[("ADP_KAFKA_BROKERS", "127.0.0.1:9092"), ("ADP_KAFKA_PARTITIONS", "3")]),
            &Overrides::default(),
        )
        .expect("kafka on");
        let f = c.kafka_forwarder().expect("forwarder config");
        assert_eq!((f.brokers.as_str(), f.partitions, f.topic().as_str()), ("127.0.0.1:9092", 3, "adp.events"));
        assert_eq!(f.events_per_message, 64);
        for (var, value, key) in [
            ("ADP_KAFKA_COMPRESSION", "gzip", "kafka.compression"),
            ("ADP_KAFKA_PARTITIONS", "0", "kafka.partitions"),
            ("ADP_KAFKA_TOPIC_PREFIX", "a b", "kafka.topic_prefix"),
            ("ADP_KAFKA_LINGER_MS", "100000", "kafka.linger_ms"),
            ("ADP_KAFKA_EVENTS_PER_MESSAGE", "0", "kafka.events_per_message"),
        ] {
            let err = load(None, &env(&[("ADP_KAFKA_BROKERS", "127.0.0.1:9092"), (var, value)]), &Overrides::default())
                .expect_err(var);
            assert!(err.to_string().contains(key), "{var}: {err}");
        }
    }

    #[test]
    fn clickhouse_is_off_by_default_and_checked_when_on() {
        let c = load(None, &env(&[]), &Overrides::default()).expect("defaults");
        assert!(c.clickhouse.url.is_empty());
        assert!(c.clickhouse_settings().is_err(), "no url: no ClickHouse");
        let c = load(
            None,
            &env(&[
                ("ADP_CLICKHOUSE_URL", "http://127.0.0.1:8123"),
                ("ADP_CLICKHOUSE_PASSWORD", "sekrit-password"),
                ("ADP_KAFKA_BROKERS", "127.0.0.1:9092"),
            ]),
            &Overrides::default(),
        )
        .expect("clickhouse on");
        let s = c.ingest_settings().expect("ingest settings");
        assert_eq!(
            (s.topic.as_str(), s.batch_rows, s.clickhouse.password.as_str()),
            ("adp.events", 500_000, "sekrit-password")
        );
        assert_eq!((s.parallel_inserts, s.compress_inserts), (2, true), "ingest insert defaults");
        let tuned = load(
            None,
            &env(&[
                ("ADP_CLICKHOUSE_URL", "http://127.0.0.1:8123"),
                ("ADP_KAFKA_BROKERS", "127.0.0.1:9092"),
                ("ADP_CLICKHOUSE_PARALLEL_INSERTS", "3"),
                ("ADP_CLICKHOUSE_COMPRESS_INSERTS", "false"),
            ]),
            &Overrides::default(),
        )
        .expect("tuned ingest");
        let t = tuned.ingest_settings().expect("ingest settings");
        assert_eq!((t.parallel_inserts, t.compress_inserts), (3, false), "ingest insert settings from the environment");
        let shown = c.to_redacted_toml();
        assert!(!shown.contains("sekrit-password"), "{shown}");
        assert!(!format!("{:?}", c.clickhouse).contains("sekrit-password"));
        for (var, value, key) in [
            ("ADP_CLICKHOUSE_URL", "tcp://x", "clickhouse.url"),
            ("ADP_CLICKHOUSE_DATABASE", "a-b", "clickhouse.database"),
            ("ADP_CLICKHOUSE_BATCH_ROWS", "0", "clickhouse.batch_rows"),
            ("ADP_CLICKHOUSE_PARALLEL_INSERTS", "0", "clickhouse.parallel_inserts"),
            ("ADP_CLICKHOUSE_PARALLEL_INSERTS", "17", "clickhouse.parallel_inserts"),
            ("ADP_CLICKHOUSE_BATCH_MS", "0", "clickhouse.batch_ms"),
            ("ADP_CLICKHOUSE_GAP_WAIT_MS", "600001", "clickhouse.gap_wait_ms"),
        ] {
            let err = load(None, &env(&[(var, value)]), &Overrides::default()).expect_err(var);
            assert!(err.to_string().contains(key), "{var}: {err}");
        }
    }

    #[test]
    fn clickhouse_cluster_is_a_plain_name_carried_to_the_analytics_settings() {
        let c = load(None, &env(&[]), &Overrides::default()).expect("defaults");
        assert!(c.clickhouse.cluster.is_empty(), "a single server by default");
        let on = |cluster: &str| {
            load(
                None,
                &env(&[("ADP_CLICKHOUSE_URL", "http://127.0.0.1:8123"), ("ADP_CLICKHOUSE_CLUSTER", cluster)]),
                &Overrides::default(),
            )
        };
        let c = on("adplatform").expect("cluster");
        assert_eq!(c.clickhouse_settings().expect("settings").cluster, "adplatform");
        assert_eq!(on("prod-eu.1").expect("dots and dashes").clickhouse.cluster, "prod-eu.1");
        for bad in ["bad'name", "a b", "a`b", "{cluster}"] {
            let err = on(bad).expect_err(bad);
            assert!(err.to_string().contains("clickhouse.cluster"), "{bad}: {err}");
            assert_eq!(key_of(err), "clickhouse.cluster");
        }
    }

    #[test]
    fn geo_is_off_by_default_and_a_missing_database_names_the_key_and_path() {
        let c = load(None, &env(&[]), &Overrides::default()).expect("defaults");
        assert_eq!(c.geo, GeoConfig::default());
        let err = load(None, &env(&[("ADP_GEO_MMDB_PATH", "/nonexistent/GeoLite2-City.mmdb")]), &Overrides::default())
            .expect_err("missing file");
        let msg = err.to_string();
        assert!(msg.starts_with("config key `geo.mmdb_path`: cannot read /nonexistent/GeoLite2-City.mmdb"), "{msg}");
        let dir = tempfile::tempdir().expect("tempdir");
        let err =
            load(None, &env(&[("ADP_GEO_MMDB_PATH", dir.path().to_str().expect("utf-8"))]), &Overrides::default())
                .expect_err("a directory");
        assert_eq!(key_of(err), "geo.mmdb_path");
        let file = dir.path().join("geo.mmdb");
        std::fs::write(&file, b"checked when opened").expect("write");
        let file = file.to_str().expect("utf-8");
        let c = load(
            None,
            &env(&[
                ("ADP_GEO_MMDB_PATH", file),
                ("ADP_GEO_USE_CLIENT_ADDR", "true"),
                ("ADP_GEO_TRUST_FORWARDED_FOR", "1"),
            ]),
            &Overrides::default(),
        )
        .expect("geo on");
        assert!(c.geo.use_client_addr && c.geo.trust_forwarded_for);
        let err = load(None, &env(&[("ADP_GEO_USE_CLIENT_ADDR", "true")]), &Overrides::default()).expect_err("no db");
        assert_eq!(key_of(err), "geo.use_client_addr");
        let err = load(
            None,
            &env(&[("ADP_GEO_MMDB_PATH", file), ("ADP_GEO_TRUST_FORWARDED_FOR", "true")]),
            &Overrides::default(),
        )
        .expect_err("forwarded-for alone");
        assert_eq!(key_of(err), "geo.trust_forwarded_for");
    }

    #[test]
    fn example_file_is_valid_and_documents_every_key() {
        let text = include_str!("../../../config/adplatform.example.toml");
        let c = load(Some(("example", text)), &env(&[]), &Overrides::default()).expect("example loads");
        assert_eq!(c.mode, "embedded");
        let mut keys = BTreeMap::new();
        leaf_keys(&toml::Value::try_from(Config::default()).expect("defaults"), "", &mut keys);
        for key in keys.keys() {
            let leaf = key.rsplit('.').next().unwrap_or(key);
            assert!(text.contains(leaf), "example config does not mention `{key}`");
            assert!(text.contains(&env_name(key)), "example config does not name {}", env_name(key));
        }
    }

    fn key_of(err: ConfigError) -> String {
        match err {
            ConfigError::Key { key, .. } => key,
            other => panic!("expected a key error, got {other}"),
        }
    }

    #[test]
    fn roles_and_distributed_mode_are_checked_naming_the_key() {
        let no = Overrides::default();
        let c = load(None, &env(&[]), &no).expect("defaults");
        assert_eq!(c.roles().expect("roles"), ROLES.to_vec(), "all roles by default");
        let subset = Overrides { roles: Some("track, decide".into()), ..Overrides::default() };
        // A subset needs distributed mode...
        assert_eq!(key_of(load(None, &env(&[]), &subset).expect_err("embedded subset")), "server.roles");
        assert_eq!(
            key_of(load(None, &env(&[("ADP_SERVER_ROLES", "decide,billing")]), &no).expect_err("unknown role")),
            "server.roles"
        );
        // ...which needs its data plane, each named when missing.
        let base = [("ADP_MODE", "distributed"), ("ADP_SERVER_ROLES", "decide,track")];
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut v = base.to_vec();
            v.extend_from_slice(extra);
            load(None, &env(&v), &no)
        };
        assert_eq!(key_of(with(&[]).expect_err("no brokers")), "kafka.brokers");
        assert_eq!(key_of(with(&[("ADP_KAFKA_BROKERS", "k:9092")]).expect_err("no keys")), "tracking.signing_keys");
        let keys = ("ADP_TRACKING_SIGNING_KEYS", "k1:0123456789abcdef0123456789abcdef");
        assert_eq!(key_of(with(&[("ADP_KAFKA_BROKERS", "k:9092"), keys]).expect_err("no dragonfly")), "dragonfly.url");
        assert_eq!(
            key_of(
                with(&[("ADP_KAFKA_BROKERS", "k:9092"), keys, ("ADP_DRAGONFLY_URL", "http://x")]).expect_err("bad url")
            ),
            "dragonfly.url"
        );
        let ok = with(&[("ADP_KAFKA_BROKERS", "k:9092"), keys, ("ADP_DRAGONFLY_URL", "redis://127.0.0.1:6379")])
            .expect("a valid distributed serving config");
        assert_eq!(ok.roles().expect("roles"), vec!["decide", "track"], "in the canonical order");
        // The ingest role needs ClickHouse; the API role alone needs no Dragonfly.
        let ingest = load(
            None,
            &env(&[("ADP_MODE", "distributed"), ("ADP_SERVER_ROLES", "ingest"), ("ADP_KAFKA_BROKERS", "k:9092")]),
            &no,
        );
        assert_eq!(key_of(ingest.expect_err("no clickhouse")), "clickhouse.url");
        load(
            None,
            &env(&[("ADP_MODE", "distributed"), ("ADP_SERVER_ROLES", "api"), ("ADP_KAFKA_BROKERS", "k:9092")]),
            &no,
        )
        .expect("api only");
        // Scylla is the distributed store.
        assert_eq!(
            key_of(load(None, &env(&[("ADP_STORE_BACKEND", "scylla")]), &no).expect_err("embedded scylla")),
            "store.backend"
        );
        assert_eq!(key_of(load(None, &env(&[("ADP_MODE", "clustered")]), &no).expect_err("mode")), "mode");
    }
}
