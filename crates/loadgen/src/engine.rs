//! engine: drives the load and owns all of its network I/O. One current-thread tokio runtime
//! per load thread (optionally pinned to a CPU); the connections are split across the threads
//! and each is its own keep-alive HTTP/1.1 connection sending decide or bid requests back to
//! back (closed loop) or on a fixed schedule (open loop, latency from the intended send time,
//! so no coordinated omission). Served ads are followed with impression and click callbacks,
//! bids with win, billing and loss notices, on a per-thread keep-alive pool. State is per
//! thread (no locks on the request path) and merged once at the end; the live counters for the
//! progress bar and the timeline are per-thread atomics ([`crate::live`]).

use crate::live::{Monitor, ThreadLive};
use crate::report::{distribution, new_histogram, CallbackCounts, Counts, Latency, Report, MAX_LATENCY_US};
use crate::scenario::{CallbacksSpec, DelaySpec, Scenario, TargetKind, Traffic};
use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Empty, Full};
use hyper::client::conn::http1;
use hyper::header::{HeaderValue, CONTENT_ENCODING, CONTENT_TYPE, HOST};
use hyper::{Method, Request, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::Deserialize;
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// How requests are paced.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mode {
    /// Every connection sends its next request as soon as the previous one is answered.
    Closed,
    /// Requests go out at `rate` per second in total, on a fixed schedule per connection.
    Open { rate: f64 },
}

/// When the measured window ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// After this long (warm-up not included).
    Duration(Duration),
    /// After this many requests (warm-up requests not included).
    Requests(u64),
}

/// Everything a run needs.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// `http://host:port` of the ad server.
    pub target: String,
    pub scenario: Scenario,
    pub mode: Mode,
    pub connections: usize,
    /// Load threads (at most `connections`).
    pub threads: usize,
    pub stop: Stop,
    pub warmup: Duration,
    /// Longest wait for any one response.
    pub timeout: Duration,
    /// Pin load thread i to CPU `cpus[i % len]`; empty: no pinning.
    pub cpus: Vec<usize>,
    /// Draw a progress bar on stderr (only when stderr is a terminal).
    pub progress: bool,
    /// Seed of the traffic model's random choices (None: from the clock).
    pub seed: Option<u64>,
}

impl RunConfig {
    pub fn new(target: impl Into<String>, scenario: Scenario) -> RunConfig {
        RunConfig {
            target: target.into(),
            scenario,
            mode: Mode::Closed,
            connections: 16,
            threads: 1,
            stop: Stop::Duration(Duration::from_secs(10)),
            warmup: Duration::from_secs(1),
            timeout: Duration::from_secs(10),
            cpus: Vec::new(),
            progress: false,
            seed: None,
        }
    }
}

/// Why a run could not be made.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Scenario(#[from] crate::scenario::ScenarioError),
    #[error("target `{target}`: {message}")]
    Target { target: String, message: String },
    #[error("{0}")]
    Settings(String),
    #[error("cannot start a load thread: {0}")]
    Thread(std::io::Error),
    #[error("cannot pin a load thread to cpu {0} (is it online and allowed?)")]
    Pin(usize),
    #[error("a load thread panicked")]
    Panicked,
}

/// Where requests go: scheme http, a host and a port.
#[derive(Clone, Debug)]
struct Target {
    authority: String,
}

fn parse_target(target: &str) -> Result<Target, LoadError> {
    let bad = |message: &str| LoadError::Target { target: target.to_string(), message: message.to_string() };
    let uri: Uri = target.parse().map_err(|_| bad("not a URL such as http://127.0.0.1:8080"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some(_) => return Err(bad("only http:// is supported")),
        None => return Err(bad("give the scheme, e.g. http://127.0.0.1:8080")),
    }
    let Some(authority) = uri.authority() else { return Err(bad("no host")) };
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(bad("give only scheme, host and port; the path comes from the scenario (target.path)"));
    }
    let authority = match authority.port_u16() {
        Some(_) => authority.as_str().to_string(),
        None => format!("{}:80", authority.host()),
    };
    Ok(Target { authority })
}

/// Shared by every load thread; written only through atomics.
struct Shared {
    mode: Mode,
    connections: usize,
    start: Instant,
    warmup_end: Instant,
    /// End of the measured window in duration mode.
    deadline: Option<Instant>,
    /// Measured requests left in request-count mode.
    tickets: Option<AtomicU64>,
    live: Vec<ThreadLive>,
}

impl Shared {
    fn claim_ticket(&self) -> bool {
        match &self.tickets {
            None => true,
            Some(t) => t.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1)).is_ok(),
        }
    }
}

/// What one load thread measured.
struct ThreadStats {
    measured: Counts,
    total: Counts,
    latency: Histogram<u64>,
    last_measured_done: Option<Instant>,
}

impl ThreadStats {
    fn new() -> ThreadStats {
        ThreadStats {
            measured: Counts::default(),
            total: Counts::default(),
            latency: new_histogram(),
            last_measured_done: None,
        }
    }

    fn phases(&mut self, measured: bool) -> impl Iterator<Item = &mut Counts> {
        let ThreadStats { measured: m, total, .. } = self;
        std::iter::once(total).chain(measured.then_some(m))
    }
}

#[derive(Clone, Copy)]
enum CallbackKind {
    Impression,
    Click,
    Win,
    Billing,
    Loss,
}

#[derive(Deserialize)]
struct DecideResponse {
    decisions: Vec<Decision>,
}

#[derive(Deserialize)]
struct Decision {
    ad: Option<Ad>,
}

#[derive(Deserialize)]
struct Ad {
    impression_url: String,
    click_url: String,
}

/// The parts of an OpenRTB bid response the exchange side acts on (`adm` is skipped).
#[derive(Deserialize)]
struct BidResponseBody {
    #[serde(default)]
    id: String,
    #[serde(default)]
    seatbid: Vec<SeatBidBody>,
    #[serde(default)]
    bidid: Option<String>,
    #[serde(default)]
    cur: Option<String>,
}

#[derive(Deserialize)]
struct SeatBidBody {
    #[serde(default)]
    bid: Vec<BidBody>,
    #[serde(default)]
    seat: Option<String>,
}

#[derive(Deserialize)]
struct BidBody {
    #[serde(default)]
    id: String,
    #[serde(default)]
    impid: String,
    price: f64,
    nurl: Option<String>,
    burl: Option<String>,
    lurl: Option<String>,
    adid: Option<String>,
}

impl BidResponseBody {
    fn bid_count(&self) -> usize {
        self.seatbid.iter().map(|s| s.bid.len()).sum()
    }
}

/// What a request was answered with.
enum Answer {
    /// A status without a body we act on (a no-bid 204, an error status).
    Status(u16),
    /// A decide response: the ads it served.
    Ads(Vec<Ad>),
    /// A bid response.
    Bids(BidResponseBody),
}

impl Answer {
    fn status(&self) -> u16 {
        match self {
            Answer::Status(s) => *s,
            Answer::Ads(_) | Answer::Bids(_) => 200,
        }
    }
}

/// The auction-level values of a bid's notice macros.
struct Auction {
    id: String,
    bid_id: String,
    seat: String,
    currency: String,
}

/// Replaces the OpenRTB notice macros in `url` (`${AUCTION_PRICE}`, `${AUCTION_LOSS}`, the
/// ids and the currency); unknown macros stay as they are.
fn fill_macros(url: &str, price: &str, loss: Option<&str>, auction: &Auction, bid: &BidBody) -> String {
    let mut out = String::with_capacity(url.len() + 16);
    let mut rest = url;
    while let Some(at) = rest.find("${") {
        out.push_str(&rest[..at]);
        let Some(end) = rest[at..].find('}') else {
            rest = &rest[at..];
            break;
        };
        let name = &rest[at + 2..at + end];
        let value = match name {
            "AUCTION_PRICE" => Some(price),
            "AUCTION_LOSS" => loss,
            "AUCTION_ID" => Some(auction.id.as_str()),
            "AUCTION_BID_ID" => Some(auction.bid_id.as_str()),
            "AUCTION_SEAT_ID" => Some(auction.seat.as_str()),
            "AUCTION_CURRENCY" => Some(auction.currency.as_str()),
            "AUCTION_IMP_ID" => Some(bid.impid.as_str()),
            "AUCTION_AD_ID" => Some(bid.adid.as_deref().unwrap_or(bid.id.as_str())),
            _ => None,
        };
        out.push_str(value.unwrap_or(&rest[at..=at + end]));
        rest = &rest[at + end + 1..];
    }
    out.push_str(rest);
    out
}

/// A CPM as exchanges write it in notices: two decimals, rounded down (a clearing price never
/// exceeds what it is derived from) or up.
fn price_text(cpm: f64, up: bool) -> String {
    let cents = cpm * 100.0;
    let cents = if up { (cents - 1e-6).ceil() } else { (cents + 1e-6).floor() };
    format!("{:.2}", cents.max(0.0) / 100.0)
}

/// One load thread's state, shared by its connections and callbacks (single-threaded).
struct ThreadCtx {
    no: usize,
    shared: Arc<Shared>,
    target: Target,
    path: String,
    kind: TargetKind,
    traffic: Traffic,
    callbacks: CallbacksSpec,
    timeout: Duration,
    seed: u64,
    pool: Client<HttpConnector, Empty<Bytes>>,
    stats: RefCell<ThreadStats>,
    callbacks_in_flight: Cell<usize>,
}

type Conn = http1::SendRequest<Full<Bytes>>;

impl ThreadCtx {
    async fn connect(&self) -> Result<Conn, &'static str> {
        let stream = tokio::net::TcpStream::connect(&self.target.authority).await.map_err(|_| "connect")?;
        let _ = stream.set_nodelay(true);
        let (sender, conn) = http1::handshake(TokioIo::new(stream)).await.map_err(|_| "connect")?;
        tokio::task::spawn_local(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }

    /// Sends one decide or bid request on this connection, reconnecting when it was closed.
    async fn send(&self, conn: &mut Option<Conn>, body: Vec<u8>, gzip: bool) -> Result<(u16, Bytes), &'static str> {
        let mut sender = match conn.take() {
            Some(s) if !s.is_closed() => s,
            _ => self.connect().await?,
        };
        if sender.ready().await.is_err() {
            // Closed by the server while idle: one fresh connection.
            sender = self.connect().await?;
            sender.ready().await.map_err(|_| "connect")?;
        }
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(self.path.as_str())
            .header(HOST, self.target.authority.as_str())
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|_| "request")?;
        if self.kind == TargetKind::Openrtb {
            req.headers_mut().insert("x-openrtb-version", HeaderValue::from_static("2.6"));
        }
        if gzip {
            req.headers_mut().insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        let resp = sender.send_request(req).await.map_err(|_| "io")?;
        let status = resp.status().as_u16();
        let keep =
            !resp.headers().get(hyper::header::CONNECTION).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
        let body = resp.into_body().collect().await.map_err(|_| "io")?.to_bytes();
        if keep {
            *conn = Some(sender);
        }
        Ok((status, body))
    }

    /// Fetches a tracking URL on the callback pool, from the target (the URL's path and query;
    /// its host is the server's public URL, which may not be reachable from here). Redirects
    /// are not followed: a click answers 302.
    async fn callback(&self, kind: CallbackKind, url: &str, measured: bool) {
        let pq = url.parse::<Uri>().ok().and_then(|u| u.path_and_query().map(|pq| pq.as_str().to_string()));
        let uri = pq.and_then(|pq| format!("http://{}{pq}", self.target.authority).parse::<Uri>().ok());
        let result = match uri {
            None => Err("bad_url"),
            Some(uri) => {
                self.count_callback(kind, measured, |c| c.sent += 1);
                let req = async {
                    let resp = self.pool.get(uri).await.map_err(|_| "io")?;
                    let status = resp.status().as_u16();
                    resp.into_body().collect().await.map_err(|_| "io")?;
                    Ok::<u16, &'static str>(status)
                };
                tokio::time::timeout(self.timeout, req).await.unwrap_or(Err("timeout"))
            }
        };
        self.count_callback(kind, measured, |c| match result {
            Ok(status) => *c.statuses.entry(status).or_default() += 1,
            Err(e) => *c.errors.entry(e.to_string()).or_default() += 1,
        });
    }

    fn count_callback(&self, kind: CallbackKind, measured: bool, f: impl Fn(&mut CallbackCounts)) {
        let mut stats = self.stats.borrow_mut();
        for counts in stats.phases(measured) {
            f(match kind {
                CallbackKind::Impression => &mut counts.impressions,
                CallbackKind::Click => &mut counts.clicks,
                CallbackKind::Win => &mut counts.win_notices,
                CallbackKind::Billing => &mut counts.billing_notices,
                CallbackKind::Loss => &mut counts.loss_notices,
            });
        }
    }
}

fn delay<R: Rng>(rng: &mut R, d: DelaySpec) -> Duration {
    Duration::from_millis(if d.max > d.min { rng.random_range(d.min..=d.max) } else { d.min })
}

/// Follows one served ad: maybe its impression, after a delay; then maybe its click.
fn follow_ad(ctx: &Rc<ThreadCtx>, rng: &mut SmallRng, ad: Ad, measured: bool) {
    let c = &ctx.callbacks;
    if c.impression_rate <= 0.0 || !rng.random_bool(c.impression_rate) {
        return;
    }
    let imp_delay = delay(rng, c.impression_delay_ms);
    let click = c.click_rate > 0.0 && rng.random_bool(c.click_rate);
    let click_delay = delay(rng, c.click_delay_ms);
    ctx.callbacks_in_flight.set(ctx.callbacks_in_flight.get() + 1);
    let ctx = Rc::clone(ctx);
    tokio::task::spawn_local(async move {
        tokio::time::sleep(imp_delay).await;
        ctx.callback(CallbackKind::Impression, &ad.impression_url, measured).await;
        if click {
            tokio::time::sleep(click_delay).await;
            ctx.callback(CallbackKind::Click, &ad.click_url, measured).await;
        }
        ctx.callbacks_in_flight.set(ctx.callbacks_in_flight.get().saturating_sub(1));
    });
}

/// Follows one bid as an exchange would: it wins the auction (at `win_rate`) and then its win
/// notice and, once the ad renders, its billing notice are fetched; or it loses and its loss
/// notice is fetched. Each at its configured rate and delay.
fn follow_bid(ctx: &Rc<ThreadCtx>, rng: &mut SmallRng, auction: &Auction, bid: BidBody, measured: bool) {
    let c = &ctx.callbacks;
    let chance = |rng: &mut SmallRng, p: f64| p > 0.0 && rng.random_bool(p);
    let mut steps: Vec<(Duration, CallbackKind, String)> = Vec::with_capacity(2);
    if chance(rng, c.win_rate) {
        let price = price_text(bid.price * c.clearing_price_ratio, false);
        // The steps wait one after the other: billing comes its delay after the win.
        let mut wait = delay(rng, c.win_delay_ms);
        if let Some(nurl) = bid.nurl.as_deref().filter(|_| chance(rng, c.win_notice_rate)) {
            steps.push((wait, CallbackKind::Win, fill_macros(nurl, &price, None, auction, &bid)));
            wait = Duration::ZERO;
        }
        if let Some(burl) = bid.burl.as_deref().filter(|_| chance(rng, c.billing_rate)) {
            let wait = wait + delay(rng, c.billing_delay_ms);
            steps.push((wait, CallbackKind::Billing, fill_macros(burl, &price, None, auction, &bid)));
        }
    } else if let Some(lurl) = bid.lurl.as_deref().filter(|_| chance(rng, c.loss_notice_rate)) {
        // Lost to a higher bid (loss reason 102): the price is the winner's.
        let price = price_text(bid.price * c.loss_price_ratio, true);
        steps.push((
            delay(rng, c.loss_delay_ms),
            CallbackKind::Loss,
            fill_macros(lurl, &price, Some("102"), auction, &bid),
        ));
    }
    if steps.is_empty() {
        return;
    }
    ctx.callbacks_in_flight.set(ctx.callbacks_in_flight.get() + 1);
    let ctx = Rc::clone(ctx);
    tokio::task::spawn_local(async move {
        for (wait, kind, url) in steps {
            tokio::time::sleep(wait).await;
            ctx.callback(kind, &url, measured).await;
        }
        ctx.callbacks_in_flight.set(ctx.callbacks_in_flight.get().saturating_sub(1));
    });
}

/// Waits until `at` without the timer's lateness counting as server latency: tokio's timer
/// wakes up to a millisecond late, so sleep to a millisecond before and yield the rest.
async fn wait_until(at: Instant) {
    const TIMER_SLACK: Duration = Duration::from_millis(1);
    if let Some(early) = at.checked_sub(TIMER_SLACK).filter(|e| *e > Instant::now()) {
        tokio::time::sleep_until(early.into()).await;
    }
    while Instant::now() < at {
        tokio::task::yield_now().await;
    }
}

/// One connection's loop.
async fn run_connection(ctx: Rc<ThreadCtx>, conn_no: usize) {
    let shared = Arc::clone(&ctx.shared);
    let mut rng = SmallRng::seed_from_u64(ctx.seed ^ (conn_no as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let (offset, interval) = match shared.mode {
        Mode::Open { rate } => (conn_no as f64 / rate, shared.connections as f64 / rate),
        Mode::Closed => (0.0, 0.0),
    };
    let live = &shared.live[ctx.no];
    let rtb = ctx.kind == TargetKind::Openrtb;
    // Connect before the start, so that no measured request pays for the handshake.
    let mut conn: Option<Conn> = ctx.connect().await.ok();
    tokio::time::sleep_until(shared.start.into()).await;
    for k in 0u64.. {
        let intended = match shared.mode {
            Mode::Closed => Instant::now(),
            Mode::Open { .. } => shared.start + Duration::from_secs_f64(offset + k as f64 * interval),
        };
        if shared.deadline.is_some_and(|d| intended >= d) {
            break;
        }
        if matches!(shared.mode, Mode::Open { .. }) {
            wait_until(intended).await;
        }
        let measured = intended >= shared.warmup_end;
        if measured && !shared.claim_ticket() {
            break;
        }
        let req = ctx.traffic.sample(&mut rng);
        let sent = Instant::now();
        let result =
            tokio::time::timeout(ctx.timeout, ctx.send(&mut conn, req.body, req.gzip)).await.unwrap_or_else(|_| {
                conn = None;
                Err("timeout")
            });
        let done = Instant::now();
        let outcome = match result {
            Ok((200, body)) if rtb => match serde_json::from_slice::<BidResponseBody>(&body) {
                Ok(r) => Ok(Answer::Bids(r)),
                Err(_) => Err("invalid_response"),
            },
            Ok((200, body)) => match serde_json::from_slice::<DecideResponse>(&body) {
                Ok(r) => Ok(Answer::Ads(r.decisions.into_iter().filter_map(|d| d.ad).collect())),
                Err(_) => Err("invalid_response"),
            },
            Ok((status, _)) => Ok(Answer::Status(status)),
            Err(e) => Err(e),
        };
        // An exchange stops waiting at tmax, counted from when it sent the request.
        let late = outcome.is_ok() && req.tmax_ms.is_some_and(|t| done.duration_since(sent) > Duration::from_millis(t));
        let us = done.saturating_duration_since(intended).as_micros().min(u128::from(MAX_LATENCY_US)) as u64;
        {
            let mut stats = ctx.stats.borrow_mut();
            if measured {
                stats.latency.saturating_record(us.max(1));
                stats.last_measured_done = Some(done);
            }
            for c in stats.phases(measured) {
                c.requests += 1;
                c.placements_requested += req.placements as u64;
                match &outcome {
                    Ok(answer) => {
                        *c.statuses.entry(answer.status()).or_default() += 1;
                        match answer {
                            Answer::Ads(ads) => c.placements_filled += ads.len() as u64,
                            Answer::Bids(r) => match r.bid_count() {
                                0 => c.no_bids += 1,
                                n => {
                                    c.bid_responses += 1;
                                    c.bids += n as u64;
                                }
                            },
                            Answer::Status(204) if rtb => c.no_bids += 1,
                            Answer::Status(_) => {}
                        }
                        c.late += u64::from(late);
                    }
                    Err(e) => *c.errors.entry(e.to_string()).or_default() += 1,
                }
            }
        }
        live.record(us.max(1), outcome.is_err(), measured);
        match outcome {
            Ok(Answer::Ads(ads)) => {
                for ad in ads {
                    follow_ad(&ctx, &mut rng, ad, measured);
                }
            }
            Ok(Answer::Bids(r)) => {
                let BidResponseBody { id, seatbid, bidid, cur } = r;
                for seat in seatbid {
                    let auction = Auction {
                        id: id.clone(),
                        bid_id: bidid.clone().unwrap_or_default(),
                        seat: seat.seat.unwrap_or_default(),
                        currency: cur.clone().unwrap_or_else(|| "USD".into()),
                    };
                    for bid in seat.bid {
                        follow_bid(&ctx, &mut rng, &auction, bid, measured);
                    }
                }
            }
            _ => {}
        }
    }
}

struct ThreadPlan {
    no: usize,
    connections: Vec<usize>,
    cpu: Option<usize>,
}

fn load_thread(
    plan: ThreadPlan,
    shared: Arc<Shared>,
    cfg: &RunConfig,
    target: Target,
    traffic: Traffic,
    seed: u64,
) -> Result<ThreadStats, LoadError> {
    if let Some(cpu) = plan.cpu {
        let core = core_affinity::get_core_ids().and_then(|ids| ids.into_iter().find(|c| c.id == cpu));
        if !core.is_some_and(core_affinity::set_for_current) {
            return Err(LoadError::Pin(cpu));
        }
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(LoadError::Thread)?;
    let local = tokio::task::LocalSet::new();
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let pool = Client::builder(TokioExecutor::new()).build(connector);
    let max_callback_delay = cfg.scenario.callbacks.max_delay();
    let ctx = Rc::new(ThreadCtx {
        no: plan.no,
        shared,
        target,
        path: cfg.scenario.target.path.clone(),
        kind: cfg.scenario.target.kind,
        traffic,
        callbacks: cfg.scenario.callbacks.clone(),
        timeout: cfg.timeout,
        seed,
        pool,
        stats: RefCell::new(ThreadStats::new()),
        callbacks_in_flight: Cell::new(0),
    });
    let run_ctx = Rc::clone(&ctx);
    local.block_on(&rt, async move {
        let tasks: Vec<_> = plan
            .connections
            .iter()
            .map(|c| tokio::task::spawn_local(run_connection(Rc::clone(&run_ctx), *c)))
            .collect();
        for t in tasks {
            let _ = t.await;
        }
        // Callbacks of the last ads are still on their way: let them finish (each is bounded
        // by its delays and two timeouts).
        let give_up = Instant::now() + max_callback_delay + run_ctx.timeout * 2 + Duration::from_secs(1);
        while run_ctx.callbacks_in_flight.get() > 0 && Instant::now() < give_up {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    drop(local);
    let stats = ctx.stats.replace(ThreadStats::new());
    Ok(stats)
}

/// How often the progress bar moves.
const PROGRESS_EVERY: Duration = Duration::from_millis(200);

/// Runs a load test and returns its report.
pub fn run(cfg: RunConfig) -> Result<Report, LoadError> {
    let target = parse_target(&cfg.target)?;
    let traffic = Traffic::new(&cfg.scenario)?;
    if cfg.connections == 0 {
        return Err(LoadError::Settings("connections: at least 1".into()));
    }
    if let Mode::Open { rate } = cfg.mode {
        if !(rate.is_finite() && rate > 0.0) {
            return Err(LoadError::Settings("rate: open loop needs a rate above 0 requests per second".into()));
        }
    }
    match cfg.stop {
        Stop::Duration(d) if d.is_zero() => return Err(LoadError::Settings("duration: above 0".into())),
        Stop::Requests(0) => return Err(LoadError::Settings("requests: at least 1".into())),
        _ => {}
    }
    preflight(&target, &cfg.target)?;
    let threads = cfg.threads.clamp(1, cfg.connections);
    let seed = cfg.seed.unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
    });
    // Leave the threads a moment to start so that the first scheduled requests are not late.
    let start = Instant::now() + Duration::from_millis(20);
    let warmup_end = start + cfg.warmup;
    let shared = Arc::new(Shared {
        mode: cfg.mode,
        connections: cfg.connections,
        start,
        warmup_end,
        deadline: match cfg.stop {
            Stop::Duration(d) => Some(warmup_end + d),
            Stop::Requests(_) => None,
        },
        tickets: match cfg.stop {
            Stop::Requests(n) => Some(AtomicU64::new(n)),
            Stop::Duration(_) => None,
        },
        live: (0..threads).map(|_| ThreadLive::default()).collect(),
    });

    let (tx, rx) = mpsc::channel();
    let mut handles = Vec::with_capacity(threads);
    for no in 0..threads {
        let plan = ThreadPlan {
            no,
            connections: (no..cfg.connections).step_by(threads).collect(),
            cpu: (!cfg.cpus.is_empty()).then(|| cfg.cpus[no % cfg.cpus.len()]),
        };
        let (shared, cfg2, target, traffic, tx) =
            (Arc::clone(&shared), cfg.clone(), target.clone(), traffic.clone(), tx.clone());
        let seed = seed.wrapping_add(no as u64);
        let handle = std::thread::Builder::new()
            .name(format!("loadgen-{no}"))
            .spawn(move || {
                let _ = tx.send(load_thread(plan, shared, &cfg2, target, traffic, seed));
            })
            .map_err(LoadError::Thread)?;
        handles.push(handle);
    }
    drop(tx);

    let mut results = Vec::with_capacity(threads);
    let mut monitor = Monitor::new(cfg.progress, start, cfg.warmup, cfg.stop);
    loop {
        let wait = monitor.next_sample().min(Instant::now() + PROGRESS_EVERY);
        match rx.recv_timeout(wait.saturating_duration_since(Instant::now())) {
            Ok(r) => {
                results.push(r);
                if results.len() == threads {
                    break;
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => monitor.poll(&shared.live),
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    let timeline = monitor.finish(&shared.live);
    for h in handles {
        if h.join().is_err() {
            return Err(LoadError::Panicked);
        }
    }
    if results.len() != threads {
        return Err(LoadError::Panicked);
    }
    let mut measured = Counts::default();
    let mut total = Counts::default();
    let mut latency = new_histogram();
    let mut last_done: Option<Instant> = None;
    for r in results {
        let s = r?;
        measured.merge(&s.measured);
        total.merge(&s.total);
        let _ = latency.add(&s.latency);
        last_done = last_done.max(s.last_measured_done);
    }
    let duration_secs = last_done.map_or(0.0, |d| d.saturating_duration_since(warmup_end).as_secs_f64());
    let throughput_rps = if duration_secs > 0.0 { measured.requests as f64 / duration_secs } else { 0.0 };
    Ok(Report {
        scenario: cfg.scenario.name.clone(),
        target: cfg.target.clone(),
        mode: match cfg.mode {
            Mode::Closed => "closed".into(),
            Mode::Open { .. } => "open".into(),
        },
        connections: cfg.connections,
        threads,
        rate: match cfg.mode {
            Mode::Open { rate } => Some(rate),
            Mode::Closed => None,
        },
        warmup_secs: cfg.warmup.as_secs_f64(),
        duration_secs,
        throughput_rps,
        latency: Latency::from_histogram(&latency),
        kind: cfg.scenario.target.kind,
        fill_rate: measured.fill_rate(),
        bid_rate: measured.bid_rate(),
        measured,
        total,
        latency_distribution: distribution(&latency),
        timeline,
    })
}

/// Fails fast, with a clear message, when nothing listens at the target.
fn preflight(target: &Target, raw: &str) -> Result<(), LoadError> {
    use std::net::ToSocketAddrs;
    let fail = |message: String| LoadError::Target { target: raw.to_string(), message };
    let addrs: Vec<_> = target.authority.to_socket_addrs().map_err(|e| fail(format!("cannot resolve: {e}")))?.collect();
    let mut last = None;
    for a in &addrs {
        match std::net::TcpStream::connect_timeout(a, Duration::from_secs(3)) {
            Ok(_) => return Ok(()),
            Err(e) => last = Some(e),
        }
    }
    Err(fail(match last {
        Some(e) => format!("cannot connect: {e}"),
        None => "resolves to no address".into(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_checked() {
        assert_eq!(parse_target("http://127.0.0.1:8080").map(|t| t.authority).ok().as_deref(), Some("127.0.0.1:8080"));
        assert_eq!(parse_target("http://localhost/").map(|t| t.authority).ok().as_deref(), Some("localhost:80"));
        for bad in ["127.0.0.1:8080", "https://127.0.0.1:8080", "http://127.0.0.1:8080/v1/decide", "::"] {
            assert!(parse_target(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn notice_macros_are_filled_and_prices_written_in_cents() {
        let auction =
            Auction { id: "req-1".into(), bid_id: "resp-9".into(), seat: "adplatform".into(), currency: "EUR".into() };
        let bid = BidBody {
            id: "b1".into(),
            impid: "2".into(),
            price: 2.5,
            nurl: None,
            burl: None,
            lurl: None,
            adid: Some("cr-7".into()),
        };
        let url = "http://h:1/v1/rtb/loss?p=x&s=y&price=${AUCTION_PRICE}&loss=${AUCTION_LOSS}&i=${AUCTION_IMP_ID}\
                   &a=${AUCTION_ID}&b=${AUCTION_BID_ID}&c=${AUCTION_CURRENCY}&d=${AUCTION_AD_ID}&s2=${AUCTION_SEAT_ID}\
                   &u=${UNKNOWN}&t=${";
        let filled = fill_macros(url, "2.88", Some("102"), &auction, &bid);
        assert_eq!(
            filled,
            "http://h:1/v1/rtb/loss?p=x&s=y&price=2.88&loss=102&i=2&a=req-1&b=resp-9&c=EUR&d=cr-7&s2=adplatform\
             &u=${UNKNOWN}&t=${"
        );
        // A win notice has no loss reason to fill.
        assert_eq!(fill_macros("x?l=${AUCTION_LOSS}", "1", None, &auction, &bid), "x?l=${AUCTION_LOSS}");
        assert_eq!(price_text(2.5 * 0.8, false), "2.00");
        assert_eq!(price_text(1.2, false), "1.20");
        assert_eq!(price_text(2.125, false), "2.12");
        assert_eq!(price_text(2.125, true), "2.13");
        assert_eq!(price_text(2.5 * 1.15, true), "2.88");
        assert_eq!(price_text(0.004, false), "0.00");
    }
}
