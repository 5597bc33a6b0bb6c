//! adplatform: the binary's edge — command line, configuration, wiring of adapters into roles,
//! and the subcommands. `main.rs` only parses arguments and calls `run`.

pub mod config;

use adp_domain::{CatalogStore, EventSink, KeyStatus, Kind, Role};
use adp_engine::pacing::PacingConfig;
use adp_events::{DeliveryRollup, FsyncPolicy, KafkaForwarder, LocalLog, LogConfig};
use adp_server::bidder::{BillOn, RtbSettings};
use adp_server::conversions::AttributionSettings;
use adp_server::serving::{follow_catalog, run_pacing, GeoSettings, RestartRecovery, Serving, ServingSettings};
use adp_server::tracking::UrlSigner;
use adp_server::{auth, demo, net, AppState, HttpSettings};
use adp_store::frequency::InProcessFrequency;
use adp_store::SqliteStore;
use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand, ValueEnum};
use config::{Config, Overrides};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "adplatform",
    version,
    about = "A fast self-hosted ad platform: ad serving, OpenRTB bidding, tracking and reporting"
)]
pub struct Cli {
    /// TOML config file (see config/adplatform.example.toml)
    #[arg(long, global = true, env = "ADP_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the platform: every role's HTTP routes on one address (embedded mode)
    Serve(ServeArgs),
    /// Apply catalog store schema migrations (or, with --clickhouse, the ClickHouse schema) and exit
    Migrate(MigrateArgs),
    /// Read events from Kafka and write them into ClickHouse until stopped (SIGTERM / Ctrl-C)
    Ingest,
    /// Validate the configuration and print it with secrets redacted
    CheckConfig,
    /// Manage API keys directly in the catalog store
    Apikey {
        #[command(subcommand)]
        command: ApikeyCommand,
    },
    /// Play a traffic scenario against a running ad server and report throughput and latency
    Loadtest(LoadtestArgs),
}

/// CPUs to pin load threads to, as given to `--cpus`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpuList(pub Vec<usize>);

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum LoadMode {
    /// N connections, each sending as soon as its last request was answered
    #[default]
    Closed,
    /// A constant arrival rate (--rate); latency counted from the intended send time
    Open,
}

#[derive(Args, Debug)]
pub struct LoadtestArgs {
    /// Base URL of the ad server, e.g. http://127.0.0.1:8080
    #[arg(long)]
    pub target: String,
    /// Scenario file (TOML), e.g. bench/scenarios/direct-web.toml
    #[arg(long)]
    pub scenario: PathBuf,
    /// Length of the measured window, e.g. 5s, 500ms, 2m (default 10s)
    #[arg(long, value_parser = adp_loadgen::parse_duration, conflicts_with = "requests")]
    pub duration: Option<Duration>,
    /// Stop after this many measured requests instead of after a duration
    #[arg(long)]
    pub requests: Option<u64>,
    /// Warm-up before measuring; its requests are sent but not in the results
    #[arg(long, value_parser = adp_loadgen::parse_duration, default_value = "1s")]
    pub warmup: Duration,
    #[arg(long, value_enum, default_value_t = LoadMode::Closed)]
    pub mode: LoadMode,
    /// Keep-alive connections to the target
    #[arg(long, default_value_t = 16)]
    pub connections: usize,
    /// Requests per second in open-loop mode
    #[arg(long)]
    pub rate: Option<f64>,
    /// Load threads, each with its own runtime; connections are split across them
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Pin load threads to these CPUs, e.g. 2,3 or 4-7 (thread i on the i-th CPU listed)
    #[arg(long, value_parser = |s: &str| adp_loadgen::parse_cpus(s).map(CpuList))]
    pub cpus: Option<CpuList>,
    /// Longest wait for one response
    #[arg(long, value_parser = adp_loadgen::parse_duration, default_value = "10s")]
    pub timeout: Duration,
    /// Seed of the scenario's random choices, for repeatable traffic
    #[arg(long)]
    pub seed: Option<u64>,
    /// Write the report as JSON to this file
    #[arg(long)]
    pub report_json: Option<PathBuf>,
    /// Write the report as Markdown to this file
    #[arg(long)]
    pub report_md: Option<PathBuf>,
    /// Plot throughput and latency over time and the latency distribution to this file (.svg or .png)
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// No progress bar on stderr (it is drawn only when stderr is a terminal anyway)
    #[arg(long, visible_alias = "quiet")]
    pub no_progress: bool,
}

#[derive(Args, Debug, Default)]
pub struct ServeArgs {
    /// Address to listen on, e.g. 127.0.0.1:8080 (port 0 picks a free port)
    #[arg(long)]
    pub listen: Option<String>,
    #[command(flatten)]
    pub data_dir: DataDirArg,
    /// Seed a demo catalog when the catalog is empty
    #[arg(long)]
    pub demo: bool,
    /// Install this bootstrap admin key (also: env ADP_ADMIN_KEY)
    #[arg(long)]
    pub admin_key: Option<String>,
    /// Roles to run: all, or a comma-separated subset of decide, bid, track, api, ingest
    /// (subsets need mode = "distributed"; also: server.roles, ADP_SERVER_ROLES)
    #[arg(long)]
    pub roles: Option<String>,
}

#[derive(Args, Debug, Default)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub data_dir: DataDirArg,
    /// Create or upgrade the ClickHouse analytics schema ([clickhouse] url, database) instead of
    /// the catalog, and drop raw events older than clickhouse.ttl_days
    #[arg(long)]
    pub clickhouse: bool,
    /// Create or upgrade the catalog keyspace on ScyllaDB ([scylla] nodes, keyspace,
    /// replication), whatever store.backend says
    #[arg(long, conflicts_with = "clickhouse")]
    pub scylla: bool,
    /// With --scylla: print the CQL it would run and touch nothing
    #[arg(long, requires = "scylla")]
    pub dry_run: bool,
}

#[derive(Args, Debug, Default)]
pub struct DataDirArg {
    /// Data directory holding the catalog database
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum RoleArg {
    Admin,
    Advertiser,
}

#[derive(Subcommand, Debug)]
pub enum ApikeyCommand {
    /// Create a key; its secret is printed once
    Create {
        #[arg(long, value_enum)]
        role: RoleArg,
        /// The advertiser an advertiser key belongs to
        #[arg(long)]
        advertiser: Option<String>,
        /// A label to tell keys apart
        #[arg(long, default_value = "cli")]
        name: String,
        /// Print the result as JSON
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        data_dir: DataDirArg,
    },
    /// List keys (never their secrets)
    List {
        #[arg(long)]
        advertiser: Option<String>,
        #[command(flatten)]
        data_dir: DataDirArg,
    },
    /// Revoke a key by id
    Revoke {
        id: String,
        #[command(flatten)]
        data_dir: DataDirArg,
    },
}

fn load_config(cli: &Cli, env: &BTreeMap<String, String>, overrides: &Overrides) -> anyhow::Result<Config> {
    let text = match &cli.config {
        Some(path) => {
            Some(std::fs::read_to_string(path).with_context(|| format!("cannot read config file {}", path.display()))?)
        }
        None => None,
    };
    let path = cli.config.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
    let file = text.as_deref().map(|t| (path.as_str(), t));
    Ok(config::load(file, env, overrides)?)
}

fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log.level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    // A second init (tests running several commands in one process) is harmless.
    let _ = if config.log.format == "json" { builder.json().try_init() } else { builder.try_init() };
}

/// The `[scylla]` section as the driver adapter takes it.
fn scylla_config(config: &Config) -> anyhow::Result<adp_scylla::ScyllaConfig> {
    let c = &config.scylla;
    let replication =
        c.replication.parse::<adp_scylla::Replication>().map_err(|e| anyhow::anyhow!("scylla.replication: {e}"))?;
    let cfg = adp_scylla::ScyllaConfig {
        nodes: c.nodes.split(',').map(str::trim).filter(|n| !n.is_empty()).map(str::to_string).collect(),
        keyspace: c.keyspace.clone(),
        replication,
        local_datacenter: (!c.local_dc.is_empty()).then(|| c.local_dc.clone()),
        username: (!c.username.is_empty()).then(|| c.username.clone()),
        password: (!c.password.is_empty()).then(|| c.password.clone()),
        ..adp_scylla::ScyllaConfig::default()
    };
    cfg.validate().map_err(|e| anyhow::anyhow!("[scylla]: {e}"))?;
    Ok(cfg)
}

async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn CatalogStore>> {
    if config.store.backend == "scylla" {
        let cfg = scylla_config(config)?;
        let store = adp_scylla::ScyllaStore::connect(&cfg)
            .await
            .map_err(|e| anyhow::anyhow!("scylla ({}): {e}", config.scylla.nodes))?;
        let health = store.health().await;
        if !health.ready() {
            bail!(
                "scylla ({}): the catalog keyspace {} is not ready (schema {} of {}{}); run `adplatform migrate --scylla`",
                config.scylla.nodes,
                cfg.keyspace,
                health.schema_version,
                health.expected_schema_version,
                health.error.map(|e| format!(", {e}")).unwrap_or_default()
            );
        }
        return Ok(Arc::new(store));
    }
    let store = open_sqlite(config)?;
    store.migrate().await.context("cannot migrate the catalog store")?;
    Ok(Arc::new(store))
}

/// The SQLite catalog: `store.sqlite_path`, or `catalog.sqlite` in the data dir.
fn open_sqlite(config: &Config) -> anyhow::Result<SqliteStore> {
    match config.store.sqlite_path.trim() {
        "" => SqliteStore::open_in_dir(&config.server.data_dir)
            .with_context(|| format!("cannot open the catalog in {}", config.server.data_dir.display())),
        path => SqliteStore::open(std::path::Path::new(path))
            .with_context(|| format!("cannot open the catalog file {path} (store.sqlite_path)")),
    }
}

/// Runs a parsed command line with the given environment.
pub async fn run(cli: Cli, env: BTreeMap<String, String>) -> anyhow::Result<()> {
    match &cli.command {
        Command::Serve(args) => {
            let overrides = Overrides {
                listen: args.listen.clone(),
                data_dir: args.data_dir.data_dir.clone(),
                admin_key: args.admin_key.clone(),
                demo: args.demo,
                roles: args.roles.clone(),
            };
            let config = load_config(&cli, &env, &overrides)?;
            init_logging(&config);
            serve(config, shutdown_signal()).await
        }
        Command::Migrate(MigrateArgs { scylla: true, dry_run, data_dir, .. }) => {
            let overrides = Overrides { data_dir: data_dir.data_dir.clone(), ..Default::default() };
            let config = load_config(&cli, &env, &overrides)?;
            init_logging(&config);
            let cfg = scylla_config(&config)?;
            if *dry_run {
                for statement in adp_scylla::ddl(&cfg).map_err(|e| anyhow::anyhow!("scylla: {e}"))? {
                    println!("{statement};");
                }
                return Ok(());
            }
            let store = adp_scylla::ScyllaStore::connect(&cfg)
                .await
                .map_err(|e| anyhow::anyhow!("scylla ({}): {e}", config.scylla.nodes))?;
            let version = store.migrate().await.map_err(|e| anyhow::anyhow!("scylla migration failed: {e}"))?;
            println!("scylla catalog schema at version {version} in keyspace {}", cfg.keyspace);
            Ok(())
        }
        Command::Migrate(MigrateArgs { clickhouse: true, data_dir, .. }) => {
            let overrides = Overrides { data_dir: data_dir.data_dir.clone(), ..Default::default() };
            let config = load_config(&cli, &env, &overrides)?;
            init_logging(&config);
            migrate_clickhouse(&config).await
        }
        Command::Ingest => {
            let config = load_config(&cli, &env, &Overrides::default())?;
            init_logging(&config);
            ingest(&config, shutdown_signal()).await
        }
        Command::Migrate(MigrateArgs { data_dir: dir, .. }) => {
            let overrides = Overrides { data_dir: dir.data_dir.clone(), ..Default::default() };
            let config = load_config(&cli, &env, &overrides)?;
            init_logging(&config);
            let store = open_sqlite(&config)?;
            let version = store.migrate().await?;
            println!("catalog schema at version {version} in {}", store.path().display());
            Ok(())
        }
        Command::Loadtest(args) => loadtest(args).await,
        Command::CheckConfig => {
            let config = load_config(&cli, &env, &Overrides::default())?;
            if let Some(geo) = open_geo(&config)? {
                println!("# geo database {}: {}", geo.path().display(), geo.database_type());
            }
            println!("# configuration is valid; effective values (secrets redacted):");
            print!("{}", config.to_redacted_toml());
            Ok(())
        }
        Command::Apikey { command } => apikey(&cli, &env, command).await,
    }
}

async fn apikey(cli: &Cli, env: &BTreeMap<String, String>, command: &ApikeyCommand) -> anyhow::Result<()> {
    let dir = match command {
        ApikeyCommand::Create { data_dir, .. }
        | ApikeyCommand::List { data_dir, .. }
        | ApikeyCommand::Revoke { data_dir, .. } => data_dir.data_dir.clone(),
    };
    let config = load_config(cli, env, &Overrides { data_dir: dir, ..Default::default() })?;
    init_logging(&config);
    let store = open_store(&config).await?;
    match command {
        ApikeyCommand::Create { role, advertiser, name, json, .. } => {
            let role = match role {
                RoleArg::Admin => Role::Admin,
                RoleArg::Advertiser => Role::Advertiser,
            };
            match (role, advertiser) {
                (Role::Admin, Some(_)) => bail!("an admin key belongs to no advertiser: drop --advertiser"),
                (Role::Advertiser, None) => bail!("an advertiser key needs --advertiser ID"),
                (Role::Advertiser, Some(adv)) => {
                    if store.get(Kind::Advertiser, adv).await?.is_none() {
                        bail!("advertiser `{adv}` does not exist");
                    }
                }
                (Role::Admin, None) => {}
            }
            let secret = auth::generate_secret();
            let key = auth::create_key(store.as_ref(), &secret, name, role, advertiser.clone()).await?;
            if *json {
                let mut v = serde_json::to_value(&key)?;
                v["key"] = serde_json::Value::from(secret);
                println!("{v}");
            } else {
                println!(
                    "created API key {} (role {:?}{})",
                    key.id,
                    key.role,
                    advertiser.as_deref().map(|a| format!(", advertiser {a}")).unwrap_or_default()
                );
                println!("{secret}");
                println!("store it now: the key is not shown again");
            }
            Ok(())
        }
        ApikeyCommand::List { advertiser, .. } => {
            let mut after: Option<String> = None;
            loop {
                let page = store.list_api_keys(advertiser.as_deref(), after.as_deref(), 500).await?;
                for k in &page.items {
                    println!(
                        "{}\t{:?}\t{}\t{}\t{:?}\t{}",
                        k.id,
                        k.role,
                        k.advertiser_id.as_deref().unwrap_or("-"),
                        k.prefix,
                        k.status,
                        k.name
                    );
                }
                match page.next_after {
                    Some(n) => after = Some(n),
                    None => return Ok(()),
                }
            }
        }
        ApikeyCommand::Revoke { id, .. } => {
            let Some(mut key) = store.get_api_key(id).await? else { bail!("no API key `{id}`") };
            if key.status == KeyStatus::Revoked {
                println!("API key {id} was already revoked");
                return Ok(());
            }
            let version = key.version;
            key.status = KeyStatus::Revoked;
            key.updated_at = chrono_now();
            store.update_api_key(key, version).await?;
            println!("revoked API key {id}");
            Ok(())
        }
    }
}

/// `adplatform migrate --clickhouse`: creates or upgrades the analytics schema, applies retention.
async fn migrate_clickhouse(config: &Config) -> anyhow::Result<()> {
    let settings = config.clickhouse_settings()?;
    let ch = adp_analytics::ClickHouse::connect(&settings)?;
    let ttl_days = u32::try_from(config.clickhouse.ttl_days).unwrap_or(u32::MAX);
    let report = adp_analytics::migrate(&ch, &adp_analytics::MigrateSettings { ttl_days })
        .await
        .with_context(|| format!("cannot migrate the ClickHouse schema at {}", settings.url))?;
    println!(
        "clickhouse schema at version {} in database {} ({}; {} expired day partitions dropped)",
        report.version,
        settings.database,
        match report.applied.as_slice() {
            [] => "already up to date".to_string(),
            v => format!("applied {v:?}"),
        },
        report.dropped_partitions.len()
    );
    Ok(())
}

/// `adplatform ingest`: Kafka → ClickHouse until `shutdown` resolves; counters are logged every
/// 10 seconds and at the end.
pub async fn ingest(config: &Config, shutdown: impl std::future::Future<Output = ()>) -> anyhow::Result<()> {
    ingest_counted(config, Arc::new(adp_analytics::IngestCounters::default()), shutdown).await
}

/// [`ingest`] counting into `counters` (the ingest role shows them in `/metrics`).
async fn ingest_counted(
    config: &Config,
    counters: Arc<adp_analytics::IngestCounters>,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let settings = config.ingest_settings()?;
    let watch = Arc::clone(&counters);
    let reporter = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(10));
        tick.tick().await;
        loop {
            tick.tick().await;
            let s = watch.snapshot();
            tracing::info!(
                consumed = s.consumed,
                inserted = s.inserted,
                duplicates_skipped = s.duplicates_skipped,
                batches = s.batches,
                insert_errors = s.insert_errors,
                lag = s.lag,
                offset_gaps = s.offset_gaps,
                gap_retries = s.gap_retries,
                "ingest progress"
            );
        }
    });
    tracing::info!(topic = %settings.topic, clickhouse = %settings.clickhouse.url, "ingest running");
    let result = adp_analytics::run_ingest_with(settings, counters, shutdown).await;
    reporter.abort();
    let snapshot = result.context("ingest failed")?;
    println!("{}", serde_json::to_string(&snapshot)?);
    Ok(())
}

/// `adplatform loadtest`: runs the load generator on threads of its own and writes the report
/// (and the plot).
async fn loadtest(args: &LoadtestArgs) -> anyhow::Result<()> {
    let scenario = adp_loadgen::Scenario::load(&args.scenario)?;
    if let Some(path) = &args.plot {
        // A bad file name is said before the run, not after it.
        adp_loadgen::PlotFormat::from_path(path)?;
    }
    let mode = match (args.mode, args.rate) {
        (LoadMode::Closed, None) => adp_loadgen::Mode::Closed,
        (LoadMode::Closed, Some(_)) => bail!("--rate sets the arrival rate of --mode open; closed loop has none"),
        (LoadMode::Open, Some(rate)) => adp_loadgen::Mode::Open { rate },
        (LoadMode::Open, None) => bail!("--mode open needs --rate REQUESTS_PER_SECOND"),
    };
    let stop = match (args.requests, args.duration) {
        (Some(n), _) => adp_loadgen::Stop::Requests(n),
        (None, d) => adp_loadgen::Stop::Duration(d.unwrap_or(Duration::from_secs(10))),
    };
    let config = adp_loadgen::RunConfig {
        target: args.target.trim_end_matches('/').to_string(),
        scenario,
        mode,
        connections: args.connections,
        threads: args.threads,
        stop,
        warmup: args.warmup,
        timeout: args.timeout,
        cpus: args.cpus.clone().map(|c| c.0).unwrap_or_default(),
        progress: !args.no_progress,
        seed: args.seed,
    };
    // The load threads block: keep them off this runtime's workers.
    let report = tokio::task::spawn_blocking(move || adp_loadgen::run(config)).await.context("load test aborted")??;
    let markdown = report.to_markdown();
    if let Some(path) = &args.report_json {
        let json = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, json + "\n").with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(path) = &args.report_md {
        std::fs::write(path, &markdown).with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(path) = &args.plot {
        adp_loadgen::write_plot(&report, path)?;
    }
    println!("{markdown}");
    Ok(())
}

fn chrono_now() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for ctrl-c");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown signal received; finishing in-flight requests");
}

/// The tracking signing keys: configured ones, else one generated once and kept in the data dir.
fn signing_keys(config: &Config) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let configured = config.signing_keys().map_err(|e| anyhow::anyhow!("tracking.signing_keys: {e}"))?;
    if !configured.is_empty() {
        return Ok(configured);
    }
    let path = config.server.data_dir.join("tracking.key");
    let secret = match std::fs::read_to_string(&path) {
        Ok(s) if s.trim().len() >= 32 => s.trim().to_string(),
        Ok(_) => bail!("{} is too short to be a signing key; delete it to generate a new one", path.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let s = auth::generate_secret();
            let mut f = std::fs::OpenOptions::new().write(true).create_new(true).open(&path)?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
            }
            f.write_all(s.as_bytes())?;
            f.sync_all()?;
            s
        }
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    Ok(vec![("local".to_string(), secret.into_bytes())])
}

fn log_config(config: &Config) -> LogConfig {
    let fsync = match config.events.fsync.as_str() {
        "always" => FsyncPolicy::Always,
        "never" => FsyncPolicy::Never,
        _ => FsyncPolicy::EveryMillis(config.events.fsync_interval_ms),
    };
    LogConfig {
        segment_bytes: config.events.segment_bytes,
        fsync,
        queue_capacity: config.events.queue_capacity as usize,
    }
}

/// Runs the server until `shutdown` resolves: every role on embedded defaults, or (distributed
/// mode) the roles in `server.roles` against the shared data plane.
pub async fn serve(
    config: Config,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let roles = config.roles()?;
    let distributed = config.mode == "distributed";
    let has = |r: &str| roles.contains(&r);
    let serving_role = has("decide") || has("bid") || has("track");
    let store = open_store(&config).await?;
    let mut state = AppState::new(Arc::clone(&store)).await?.with_roles(roles.clone());

    let mut demo_key = None;
    let mut seeded = 0;
    if has("api") {
        if !config.auth.admin_key.is_empty() {
            let key = auth::install_bootstrap_key(store.as_ref(), &config.auth.admin_key)
                .await
                .map_err(|e| anyhow::anyhow!("auth.admin_key: {e}"))?;
            tracing::info!(key_id = %key.id, "bootstrap admin key installed");
        }
        if config.demo.enabled {
            seeded = demo::seed_if_empty(&state.catalog, store.as_ref())
                .await
                .map_err(|e| anyhow::anyhow!("demo catalog: {} ({})", e.message, e.code))?;
            if seeded > 0 && config.auth.admin_key.is_empty() {
                let secret = auth::generate_secret();
                auth::create_key(store.as_ref(), &secret, "demo admin", Role::Admin, None).await?;
                demo_key = Some(secret);
            }
        }
    }

    let addr = config.listen_addr()?;
    let threads = match config.server.threads {
        0 => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        n => n as usize,
    };
    let listeners = net::bind(addr, threads).with_context(|| format!("cannot listen on {addr} (server.listen)"))?;
    let local = listeners[0].local_addr()?;

    let mut background = Vec::new();
    let mut log = None;
    let mut forwarder = None;
    let mut catalog_subscriber = None;
    if serving_role {
        // The serving roles: events to the durable local log feeding the delivery rollups.
        let rollup = Arc::new(DeliveryRollup::new());
        let recovery = Arc::new(RestartRecovery::new(Arc::clone(&rollup), config.serving.tracking_ttl_secs as i64));
        let opened = Arc::new(
            LocalLog::open(config.server.data_dir.join("events"), log_config(&config), Arc::clone(&recovery) as _)
                .context("cannot open the event log")?,
        );
        recovery.replay_done();
        tracing::info!(replayed = opened.replayed(), "event log opened");
        let serving = Arc::new(build_serving(&config, local, Arc::clone(&opened) as _, rollup)?);
        let changes = state.feed().subscribe();
        if distributed && !has("api") {
            // Changes made by the API processes arrive on the bus; bridged into the local feed.
            let feed = state.feed().clone();
            let bus = config.kafka_forwarder()?;
            let subscriber = tokio::task::spawn_blocking(move || {
                adp_events::CatalogSubscriber::start(&bus, Duration::from_secs(10), move |change| feed.publish(change))
            })
            .await?
            .map_err(|e| anyhow::anyhow!("kafka ({}): {e}", config.kafka.brokers))?;
            catalog_subscriber = Some(subscriber);
        }
        serving.refresh(store.as_ref()).await.context("cannot build the first catalog snapshot")?;
        serving.restore(&recovery);
        if distributed {
            let shared = Arc::new(connect_shared(&config).await?);
            serving.set_shared(Arc::clone(&shared));
            // One lease round before serving: budgeted line items start with a grant.
            shared.renew_leases(&serving).await;
            background
                .push(tokio::spawn(adp_server::distributed::run_leases(Arc::clone(&serving), Arc::clone(&shared))));
            background.push(tokio::spawn(adp_server::distributed::run_bookings(Arc::clone(&shared))));
            background
                .push(tokio::spawn(adp_server::distributed::run_ctr_sync(Arc::clone(&serving), Arc::clone(&shared))));
            let probe = Arc::clone(&shared);
            state = state.with_ready_check(adp_server::ReadyCheck {
                name: "dragonfly",
                required: true,
                check: Arc::new(move || {
                    let probe = Arc::clone(&probe);
                    Box::pin(async move { probe.ping().await })
                }),
            });
        }
        state = state.with_serving(Arc::clone(&serving));
        // With kafka.brokers set, every event the log commits is forwarded to the broker.
        if !config.kafka.brokers.trim().is_empty() {
            let started = KafkaForwarder::start(opened.watermark(), config.kafka_forwarder()?).with_context(|| {
                format!("cannot start the kafka forwarder (kafka.brokers = {})", config.kafka.brokers)
            })?;
            let stats = started.stats_handle();
            state = state.with_kafka_stats(Arc::new(move || serde_json::to_value(stats.stats()).unwrap_or_default()));
            forwarder = Some(started);
        }
        background.push(tokio::spawn(follow_catalog(Arc::clone(&serving), Arc::clone(&store), changes)));
        background.push(tokio::spawn(run_pacing(Arc::clone(&serving))));
        log = Some(opened);
    }
    if distributed && has("api") {
        background.push(spawn_catalog_publisher(&config, &state).await?);
    }
    if distributed && has("api") && !config.clickhouse.url.trim().is_empty() {
        state = state.with_report_backend(clickhouse_reports(&config)?);
    }
    if distributed && (has("ingest") || has("api")) && !config.clickhouse.url.trim().is_empty() {
        let settings = config.clickhouse_settings()?;
        let ch = Arc::new(adp_analytics::ClickHouse::connect(&settings)?);
        if has("ingest") {
            // A clear start-up error rather than a process that is up but cannot write.
            ch.version().await.map_err(|e| anyhow::anyhow!("clickhouse ({}): {e}", settings.url))?;
        }
        state = state.with_ready_check(adp_server::ReadyCheck {
            name: "clickhouse",
            required: has("ingest"),
            check: Arc::new(move || {
                let ch = Arc::clone(&ch);
                Box::pin(async move { ch.version().await.map(|_| ()).map_err(|e| e.to_string()) })
            }),
        });
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut ingest_task = None;
    if has("ingest") && distributed {
        let ingest_config = config.clone();
        let mut stop = stop_rx.clone();
        let counters = Arc::new(adp_analytics::IngestCounters::default());
        let (lag, inserted, gaps) = (Arc::clone(&counters), Arc::clone(&counters), Arc::clone(&counters));
        state = state
            .with_gauge(adp_server::GaugeHook {
                name: "adp_ingest_lag_messages",
                help: "messages in the events topic not yet written to ClickHouse",
                read: Arc::new(move || i64::try_from(lag.snapshot().lag).unwrap_or(i64::MAX)),
            })
            .with_gauge(adp_server::GaugeHook {
                name: "adp_ingest_inserted_events",
                help: "rows this ingest process wrote to ClickHouse since it started (events, and the request of each decision that stands for one)",
                read: Arc::new(move || i64::try_from(inserted.snapshot().inserted).unwrap_or(i64::MAX)),
            })
            .with_gauge(adp_server::GaugeHook {
                name: "adp_ingest_offset_gaps",
                help: "holes in partition offsets this ingest process accepted after re-reading (events lost if the broker had acknowledged them)",
                read: Arc::new(move || i64::try_from(gaps.snapshot().offset_gaps).unwrap_or(i64::MAX)),
            });
        ingest_task = Some(tokio::spawn(async move {
            let signal = async move {
                let _ = stop.wait_for(|s| *s).await;
            };
            if let Err(e) = ingest_counted(&ingest_config, counters, signal).await {
                tracing::error!(error = %format!("{e:#}"), "ingest role failed");
            }
        }));
    }

    print_banner(&config, local, threads, seeded, demo_key.as_deref());

    let http = HttpSettings {
        max_body_bytes: config.server.max_body_bytes as usize,
        batch_requests: config.server.batch_requests,
    };
    let state_serving = state.serving.clone();
    let dispatcher = net::Dispatcher::new(state, &http, &roles);
    let cores = net::spawn_cores(listeners, dispatcher, stop_rx, config.geo.use_client_addr);
    shutdown.await;
    let _ = stop_tx.send(true);
    let grace = Duration::from_secs(config.server.shutdown_grace_secs);
    let joined = tokio::task::spawn_blocking(move || {
        for c in cores {
            match c.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "serving thread failed"),
                Err(_) => tracing::error!("serving thread panicked"),
            }
        }
    });
    if tokio::time::timeout(grace, joined).await.is_err() {
        tracing::warn!(grace_secs = grace.as_secs(), "in-flight requests did not finish in time");
    }
    for task in background {
        task.abort();
    }
    if let Some(serving) = state_serving.as_ref() {
        if let Some(shared) = serving.shared() {
            // Leases go back at once; others may spend them without waiting for expiry.
            let _ = tokio::time::timeout(Duration::from_secs(3), shared.release_leases(serving)).await;
        }
    }
    drop(catalog_subscriber);
    if let Some(task) = ingest_task {
        let _ = tokio::time::timeout(grace, task).await;
    }
    if let Some(log) = log {
        // Everything accepted reaches the disk before we exit.
        if let Err(e) = log.flush() {
            tracing::error!(error = %e, "event log flush failed at shutdown");
        }
        if let Some(forwarder) = forwarder {
            // What the broker has not confirmed by then stays in the log for the next start.
            let wait = grace.min(Duration::from_secs(5));
            match tokio::task::spawn_blocking(move || forwarder.stop(wait)).await {
                Ok(stats) => tracing::info!(kafka = ?stats, "kafka forwarder stopped"),
                Err(e) => tracing::error!(error = %e, "kafka forwarder failed to stop"),
            }
        }
        tracing::info!(events = ?log.stats(), "stopped");
    }
    Ok(())
}

/// The serving roles' state: settings from the config, signing keys, frequency caps.
fn build_serving(
    config: &Config,
    local: std::net::SocketAddr,
    events: Arc<dyn EventSink>,
    rollup: Arc<DeliveryRollup>,
) -> anyhow::Result<Serving> {
    let public_url = match config.serving.public_url.trim_end_matches('/') {
        "" => format!("http://{local}"),
        url => url.to_string(),
    };
    let settings = ServingSettings {
        public_url,
        tracking_ttl_secs: config.serving.tracking_ttl_secs as i64,
        max_placements: config.serving.max_placements as usize,
        catalog_reload_secs: config.serving.catalog_reload_secs,
        pacing: PacingConfig {
            update_interval_secs: config.serving.pacing_interval_secs as u32,
            ..PacingConfig::default()
        },
        replay_guard_entries: config.serving.replay_guard_entries as usize,
        rtb: RtbSettings {
            seat: config.rtb.seat.clone(),
            currency: config.rtb.currency.clone(),
            fx: adp_openrtb::FxTable::parse(&config.rtb.fx).map_err(|e| anyhow::anyhow!("rtb.fx: {e}"))?,
            bill_on: if config.rtb.bill_on == "win" { BillOn::Win } else { BillOn::Billing },
            no_bid_with_nbr: config.rtb.no_bid == "nbr",
            network_allowance_ms: config.rtb.network_allowance_ms,
            max_bids_per_imp: config.rtb.max_bids_per_imp as usize,
            adm_in_win_notice: config.rtb.adm_in_win_notice,
        },
        attribution: AttributionSettings {
            click_window_secs: config.conversions.click_window_secs,
            view_window_secs: config.conversions.view_window_secs,
            max_touches: config.conversions.max_touches,
            append_click_id: config.conversions.append_click_id,
        },
        geo: GeoSettings {
            use_client_addr: config.geo.use_client_addr,
            trust_forwarded_for: config.geo.trust_forwarded_for,
        },
    };
    let signer = UrlSigner::new(signing_keys(config)?).map_err(|e| anyhow::anyhow!("tracking.signing_keys: {e}"))?;
    let freq = Arc::new(InProcessFrequency::new(config.frequency.max_entries as usize, 64));
    let serving = Serving::new(settings, signer, freq, events, rollup);
    Ok(match open_geo(config)? {
        Some(geo) => serving.with_geo(Arc::new(geo)),
        None => serving,
    })
}

/// The `[geo]` database, read and checked; `None` when `geo.mmdb_path` is empty.
fn open_geo(config: &Config) -> anyhow::Result<Option<adp_geoip::MmdbGeo>> {
    let path = config.geo.mmdb_path.trim();
    if path.is_empty() {
        return Ok(None);
    }
    let geo = adp_geoip::MmdbGeo::open(path).map_err(|e| anyhow::anyhow!("{e} (geo.mmdb_path)"))?;
    tracing::info!(path, database_type = geo.database_type(), built = geo.build_epoch(), "geo database loaded");
    Ok(Some(geo))
}

/// The shared counters of distributed serving, on DragonflyDB.
async fn connect_shared(config: &Config) -> anyhow::Result<adp_server::distributed::Shared> {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "proc".into());
    let host: String = host.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').take(40).collect();
    let settings = adp_server::distributed::SharedSettings {
        proc_id: format!("{host}-{}", &uuid::Uuid::now_v7().simple().to_string()[20..]),
        lease_slice_micros: i64::try_from(config.dragonfly.lease_slice_micros).unwrap_or(i64::MAX),
        lease_ttl_ms: i64::try_from(config.dragonfly.lease_ttl_ms).unwrap_or(i64::MAX),
        renew_ms: config.dragonfly.renew_ms,
        ctr_sync_ms: config.dragonfly.ctr_sync_ms,
    };
    let redacted = config.dragonfly.url.split('@').next_back().unwrap_or_default().to_string();
    adp_server::distributed::Shared::connect(&config.dragonfly.url, &config.dragonfly.prefix, settings)
        .await
        .map_err(|e| anyhow::anyhow!("{e} (dragonfly.url = …{redacted})"))
}

/// The API role of a distributed deployment publishes every committed catalog change on the
/// bus, where the serving processes pick it up.
async fn spawn_catalog_publisher(config: &Config, state: &AppState) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let bus = config.kafka_forwarder()?;
    let brokers = config.kafka.brokers.clone();
    let publisher =
        tokio::task::spawn_blocking(move || adp_events::CatalogPublisher::new(&bus, Duration::from_secs(10)))
            .await?
            .map_err(|e| anyhow::anyhow!("kafka ({brokers}): {e}"))?;
    let publisher = Arc::new(publisher);
    let mut changes = state.feed().subscribe();
    Ok(tokio::spawn(async move {
        loop {
            let change = match changes.recv().await {
                Ok(c) => c,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "catalog publisher fell behind; serving processes catch up by reload");
                    continue;
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            };
            let p = Arc::clone(&publisher);
            let version = change.version;
            match tokio::task::spawn_blocking(move || p.publish(&change, Duration::from_secs(5))).await {
                Ok(Ok(())) => tracing::debug!(version, "catalog change published"),
                Ok(Err(e)) => {
                    tracing::warn!(version, error = %e, "catalog change not published; serving processes catch up by reload")
                }
                Err(e) => tracing::error!(error = %e, "catalog publisher task failed"),
            }
        }
    }))
}

/// Reports answered by ClickHouse (the API role in distributed mode).
fn clickhouse_reports(config: &Config) -> anyhow::Result<adp_server::ReportBackend> {
    let settings = config.clickhouse_settings()?;
    let ch = Arc::new(
        adp_analytics::ClickHouse::connect(&settings)
            .with_context(|| format!("cannot set up the ClickHouse client for {}", settings.url))?,
    );
    Ok(Arc::new(move |q| {
        let ch = Arc::clone(&ch);
        Box::pin(async move { adp_analytics::query(&ch, &q).await.map_err(|e| format!("clickhouse: {e}")) })
    }))
}

fn print_banner(config: &Config, local: std::net::SocketAddr, threads: usize, seeded: usize, demo_key: Option<&str>) {
    let mut out = std::io::stdout().lock();
    let base = format!("http://{local}");
    let _ = writeln!(out, "adplatform listening on {base}");
    let _ = writeln!(
        out,
        "  mode {} · {threads} serving threads · data dir {}",
        config.mode,
        config.server.data_dir.display()
    );
    if config.demo.enabled {
        if seeded > 0 {
            let _ =
                writeln!(out, "  demo catalog seeded ({seeded} objects; placements {})", demo::PLACEMENTS.join(", "));
        } else {
            let _ = writeln!(out, "  demo catalog already present (catalog not empty)");
        }
        let key = match (demo_key, config.auth.admin_key.is_empty()) {
            (Some(k), _) => {
                let _ = writeln!(out, "  admin key (shown once): {k}");
                k.to_string()
            }
            (None, false) => "<your --admin-key>".to_string(),
            (None, true) => {
                let _ = writeln!(out, "  no admin key shown: use the one printed at first start, or `adplatform apikey create --role admin`");
                "<admin key>".to_string()
            }
        };
        let _ = writeln!(out, "\n  try:");
        let _ = writeln!(out, "    export ADP_KEY='{key}'");
        let _ = writeln!(out, "    curl -s {base}/readyz");
        let _ = writeln!(out, "    curl -s {base}/v1/decide -d '{{\"placements\":[{{\"id\":\"demo-mrec\"}},{{\"id\":\"demo-leaderboard\"}},{{\"id\":\"demo-video\"}}],\"user\":{{\"id\":\"u1\"}}}}'");
        let _ = writeln!(out, "    curl -s -H \"Authorization: Bearer $ADP_KEY\" {base}/api/v1/reports/delivery");
        let _ = writeln!(out, "    curl -s -H \"Authorization: Bearer $ADP_KEY\" {base}/api/v1/line-items");
        let _ = writeln!(out, "    curl -s -H \"Authorization: Bearer $ADP_KEY\" {base}/api/v1/placements/demo-mrec");
        let _ = writeln!(
            out,
            "    curl -s -H \"Authorization: Bearer $ADP_KEY\" -H 'Content-Type: application/json' -X PATCH \\\n      -d '{{\"version\": 1, \"rate_micros\": 3000000}}' {base}/api/v1/line-items/demo-acme-ron"
        );
        let _ = writeln!(out, "    curl -s {base}/api/v1/openapi.json | head -c 300");
    }
    let _ = out.flush();
}
