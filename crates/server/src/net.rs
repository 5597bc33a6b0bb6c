//! net: thread-per-core serving. One OS thread per core, each with its own single-threaded
//! tokio runtime and its own SO_REUSEPORT listener on the same address, so the kernel spreads
//! connections across cores and no request crosses a thread. Nothing here is shared but the
//! immutable router state.

use crate::error::ApiError;
use crate::serving_http::{ClientIp, QueuedBid};
use crate::{http_metrics, AppState, HttpSettings};
use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use axum::http::HeaderValue;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::response::IntoResponse;
use axum::response::Response;
use axum::Router;
use futures_util::FutureExt;
use http_body_util::{BodyExt, Either, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use socket2::{Domain, Protocol, Socket, Type};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, watch};
use tower::Service;

fn listener(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    #[cfg(unix)]
    socket.set_reuse_port(true)?;
    socket.set_tcp_nodelay(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    Ok(socket.into())
}

/// Binds `n` listeners on `addr` (a port of 0 is resolved once, then shared).
pub fn bind(addr: SocketAddr, n: usize) -> std::io::Result<Vec<std::net::TcpListener>> {
    if addr.port() != 0 {
        // SO_REUSEPORT would let a second server (a stale one, a typo'd config) share the port
        // and half the traffic without a word: a plain bind first says whether it is taken.
        drop(std::net::TcpListener::bind(addr)?);
    }
    let first = listener(addr)?;
    let actual = first.local_addr()?;
    let mut out = vec![first];
    for _ in 1..n.max(1) {
        out.push(listener(actual)?);
    }
    Ok(out)
}

/// What a serving thread answers: the two hot routes directly on hyper, everything else
/// through the axum router.
///
/// `POST /v1/decide` and `POST /openrtb2/bid` (without content coding) skip axum's routing,
/// extractors and tower layers: the body is read against the same size limit, the same handler
/// code answers, and the request is counted in the same HTTP metrics. A bid request that is
/// gzipped, or whose sender accepts a gzipped answer, goes through the router, whose layers do
/// the content coding.
#[derive(Clone)]
pub struct Dispatcher {
    router: Router,
    state: AppState,
    max_body: usize,
    decide: bool,
    bid: bool,
    /// This core's queue, when decide and bid requests are answered in batches (see `worker`).
    jobs: Option<mpsc::UnboundedSender<Job>>,
    batch: bool,
}

/// A decide or bid request read off a connection, waiting for this core's worker.
enum Job {
    Decide { client: ClientIp, body: Result<Bytes, ApiError>, reply: oneshot::Sender<Result<Vec<u8>, ApiError>> },
    Bid(QueuedBid),
}

impl Job {
    /// Answers the job. In embedded mode this completes without waiting on anything.
    async fn run(self, state: &AppState) {
        // A connection that went away while its request waited gets no answer: an exchange that
        // gave up on a bid must not have it reserve budget or count.
        let gone = match &self {
            Job::Decide { reply, .. } => reply.is_closed(),
            Job::Bid(q) => q.reply.is_closed(),
        };
        if gone {
            return;
        }
        // A connection that goes away from here on no longer wants its answer.
        match self {
            Job::Decide { client, body, reply } => {
                let _ = reply.send(crate::serving_http::decide_result(state, client, body).await);
            }
            Job::Bid(QueuedBid { arrived, body, reply }) => {
                let _ = reply.send(crate::serving_http::bid_body(state, arrived, body).await);
            }
        }
    }
}

/// The answer when the worker dropped a job's reply: only a handler that panicked does that
/// (the worker outlives the connections: it stops with the runtime, after graceful shutdown).
fn unanswered() -> ApiError {
    ApiError::internal("the request could not be answered")
}

impl Dispatcher {
    pub fn new(state: AppState, settings: &HttpSettings, roles: &[&str]) -> Dispatcher {
        Dispatcher {
            router: crate::router_for_roles(state.clone(), settings, roles),
            max_body: settings.max_body_bytes,
            decide: roles.contains(&"decide") && state.serving.is_some(),
            bid: roles.contains(&"bid") && state.serving.is_some(),
            jobs: None,
            batch: settings.batch_requests,
            state,
        }
    }

    async fn dispatch(
        self: Arc<Self>,
        mut req: Request<Incoming>,
        peer: Option<SocketAddr>,
    ) -> Result<Response<HotBody>, Infallible> {
        let started = Instant::now();
        if let Some(peer) = peer {
            req.extensions_mut().insert(ConnectInfo(peer));
        }
        if req.method() == Method::POST {
            let path = req.uri().path();
            if self.decide && path == "/v1/decide" {
                let client = ClientIp::of(&self.state, req.headers(), req.extensions());
                let body = read_body(req, self.max_body).await;
                let result = match self.queue() {
                    Some(queue) => {
                        let (reply, answer) = oneshot::channel();
                        self.submit(queue, Job::Decide { client, body, reply }).await;
                        answer.await.unwrap_or_else(|_| Err(unanswered()))
                    }
                    None => crate::serving_http::decide_result(&self.state, client, body).await,
                };
                let resp = match result {
                    Ok(json) => json_answer(json),
                    Err(e) => crate::serving_http::cors(e.into_response()).map(Either::Right),
                };
                http_metrics::observe(0, resp.status().as_u16(), started.elapsed().as_secs_f64());
                return Ok(resp);
            }
            if self.bid && path == "/openrtb2/bid" && !coded(req.headers()) {
                let body = read_body(req, self.max_body).await;
                let resp = match self.queue() {
                    Some(queue) => {
                        let (reply, answer) = oneshot::channel();
                        self.submit(queue, Job::Bid(QueuedBid { arrived: started, body, reply })).await;
                        answer.await.unwrap_or_else(|_| unanswered().into_response())
                    }
                    None => crate::serving_http::bid_body(&self.state, started, body).await,
                };
                http_metrics::observe(1, resp.status().as_u16(), started.elapsed().as_secs_f64());
                return Ok(resp.map(Either::Right));
            }
        }
        let mut router = self.router.clone();
        Ok(router.call(req.map(Body::new)).await?.map(Either::Right))
    }

    /// This core's worker queue, when requests go through it (see `spawn_cores`).
    fn queue(&self) -> Option<&mpsc::UnboundedSender<Job>> {
        self.jobs.as_ref()
    }

    /// Hands the job to this core's worker; if the worker is gone (it stops with the runtime, so
    /// only if it failed), answers it here.
    async fn submit(&self, queue: &mpsc::UnboundedSender<Job>, job: Job) {
        if let Err(mpsc::error::SendError(job)) = queue.send(job) {
            job.run(&self.state).await;
        }
    }
}

/// A response body of the serving threads: the hot routes' JSON as one buffer (no boxed body
/// for hyper to call through), everything else as axum's body.
pub type HotBody = Either<Full<Bytes>, Body>;

/// `200 application/json` with the CORS header, as `decide_body` answers through the router.
fn json_answer(json: Vec<u8>) -> Response<HotBody> {
    let mut resp = Response::new(Either::Left(Full::new(Bytes::from(json))));
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    resp
}

/// Whether a request needs content coding: a coded body, or an answer the sender accepts gzipped.
fn coded(h: &HeaderMap) -> bool {
    let identity = h
        .get(header::CONTENT_ENCODING)
        .is_none_or(|v| v.to_str().map(|s| s.trim().eq_ignore_ascii_case("identity")).unwrap_or(false));
    let gzip_ok = h
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .any(|v| v.to_str().map(|s| s.to_ascii_lowercase().contains("gzip")).unwrap_or(true));
    !identity || gzip_ok
}

/// The body within `limit` bytes: too large → 413, unreadable → 400 (as the `RawBody` extractor).
/// Like axum's extractor, it reads up to the limit before refusing, also when a larger length is
/// declared: answering at once would close the connection under a client still sending.
async fn read_body(req: Request<Incoming>, limit: usize) -> Result<Bytes, ApiError> {
    let refused = |e: Box<dyn std::error::Error + Send + Sync>| {
        if e.is::<LengthLimitError>() {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "the request body exceeds the size limit")
        } else {
            ApiError::new(StatusCode::BAD_REQUEST, "unreadable_body", e.to_string())
        }
    };
    // A body that arrives in one piece (the usual small POST) is that piece, without a copy.
    let mut body = Limited::new(req.into_body(), limit);
    let mut first: Option<Bytes> = None;
    let mut joined: Option<Vec<u8>> = None;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.map_err(refused)?.into_data() else { continue };
        match (&mut first, &mut joined) {
            (_, Some(all)) => all.extend_from_slice(&data),
            (None, None) => first = Some(data),
            (Some(head), None) => {
                let mut all = Vec::with_capacity(head.len() + data.len());
                all.extend_from_slice(head);
                all.extend_from_slice(&data);
                joined = Some(all);
            }
        }
    }
    Ok(match joined {
        Some(all) => Bytes::from(all),
        None => first.unwrap_or_default(),
    })
}

/// Serves on each listener from its own thread and runtime until `stop` turns true, then lets
/// the open connections finish their requests. With `connect_info`, handlers see each connection's peer address (`ConnectInfo<SocketAddr>`;
/// it costs an extension per request, so only when `geo.use_client_addr` needs it).
pub fn spawn_cores(
    listeners: Vec<std::net::TcpListener>,
    dispatcher: Dispatcher,
    stop: watch::Receiver<bool>,
    connect_info: bool,
) -> Vec<JoinHandle<std::io::Result<()>>> {
    listeners
        .into_iter()
        .enumerate()
        .map(|(core, l)| {
            let mut dispatcher = dispatcher.clone();
            // Embedded mode only: a distributed server awaits its counter store within a request
            // (the shared state is set before the serving threads start), so each request is
            // answered on its own connection's task.
            let embedded = dispatcher.state.serving.as_ref().is_some_and(|s| s.shared().is_none());
            let queue = (dispatcher.batch && embedded && (dispatcher.bid || dispatcher.decide)).then(|| {
                let (tx, rx) = mpsc::unbounded_channel();
                dispatcher.jobs = Some(tx);
                (dispatcher.state.clone(), rx)
            });
            let dispatcher = Arc::new(dispatcher);
            let stop = stop.clone();
            std::thread::Builder::new()
                .name(format!("adp-core-{core}"))
                .spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
                    rt.block_on(async move {
                        if let Some((state, rx)) = queue {
                            tokio::spawn(worker(state, rx));
                        }
                        serve_core(l, dispatcher, stop, connect_info).await
                    })
                })
                .map_err(|e| {
                    tracing::error!(core, error = %e, "cannot start a serving thread");
                    e
                })
                .unwrap_or_else(|e| std::thread::spawn(move || Err(e)))
        })
        .collect()
}

/// Answers the decide and bid requests of one core's connections in batches. A connection task
/// that has read such a request queues it here and waits. The runtime polls this task after the
/// connection tasks that were ready before it, so one poll answers every request that arrived in
/// the same wake-up: the parse, the engine and the answer's code run back to back while they are
/// in the CPU's caches, and the kernel's receive and send paths also run back to back. A batch
/// is whatever is queued when the worker runs (a lone request is a batch of one, with no wait),
/// at most 128 requests.
async fn worker(state: AppState, mut queue: mpsc::UnboundedReceiver<Job>) {
    let mut batch = Vec::with_capacity(64);
    const MOST: usize = 128;
    while queue.recv_many(&mut batch, MOST).await > 0 {
        let full = batch.len() == MOST;
        if let Some(s) = &state.serving {
            s.stats.batches.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        let mut bids = Vec::new();
        for job in batch.drain(..) {
            let job = match job {
                Job::Bid(q) => {
                    bids.push(q);
                    continue;
                }
                job => job,
            };
            // A handler must not panic; if one does, it fails its own request (the connection
            // sees its reply dropped: 500), not the worker and the requests queued behind it.
            if AssertUnwindSafe(job.run(&state)).catch_unwind().await.is_err() {
                tracing::error!("a decide or bid request panicked in the serving thread's worker");
            }
        }
        if !bids.is_empty() {
            crate::serving_http::bid_batch(&state, bids).await;
        }
        if full {
            // More may be queued: let the connections of this batch write their answers first.
            tokio::task::yield_now().await;
        }
    }
}

/// One core's accept loop: HTTP/1.1 connections, each a task on this thread's runtime.
async fn serve_core(
    l: std::net::TcpListener,
    dispatcher: Arc<Dispatcher>,
    mut stop: watch::Receiver<bool>,
    connect_info: bool,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::from_std(l)?;
    let graceful = GracefulShutdown::new();
    // No header-read timer: it would arm a timer for every request (as before, under axum).
    let mut http = http1::Builder::new();
    // Head and body copied into one buffer and sent with one `write`, instead of a `writev` of
    // the head and the queued body: decide +5% per CPU-second in a paired A/B (bids +1%); the
    // bare hyper baseline measured the same either way (BENCHMARKS.md, session 10).
    http.writev(false);
    loop {
        let (stream, peer) = tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => (stream, connect_info.then_some(peer)),
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let d = Arc::clone(&dispatcher);
        let conn =
            http.serve_connection(TokioIo::new(stream), service_fn(move |req| Arc::clone(&d).dispatch(req, peer)));
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            // A client that goes away mid-request is not the server's error.
            let _ = conn.await;
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}
