//! baseline_hyper: the floor for HTTP benchmarks — a bare hyper 1.x HTTP/1.1 server on one
//! current-thread tokio runtime that reads each request body and answers with a fixed JSON body
//! the size of a real one-placement decide response. No routing, no parsing, no decision.
//!
//! `cargo run --release -p adp-server --example baseline_hyper -- [ADDR [BODY_BYTES [WORK_NS]]]`
//! (default 127.0.0.1:18081, a decide-sized body; bid benchmarks pass the size of a real bid
//! response); `scripts/bench-http.sh` runs the same wrk load against it and against
//! `adplatform serve`.
//!
//! With `BASELINE_FLATTEN` set in the environment, connections use hyper's flattened writes
//! (`http1::Builder::writev(false)`, what `adplatform serve` uses) instead of the default
//! vectored ones: for comparing the two settings on the bare server.
//!
//! `WORK_NS` (default 0) makes each request spin that long on the CPU before answering: a
//! stand-in for a handler's own work, used by `scripts/bench-ceiling.sh` to measure what a
//! given amount of handler work costs under the HTTP benchmark on this machine.

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, ACCESS_CONTROL_ALLOW_ORIGIN, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Bytes in the body of `POST /v1/decide` for one `demo-mrec` placement on the demo catalog
/// (measured with curl: 2088–2092 depending on the user id).
const DECIDE_BODY_BYTES: usize = 2092;
const DEFAULT_ADDR: &str = "127.0.0.1:18081";

/// A valid JSON object of exactly `len` bytes, shaped loosely like a decide response.
fn fixed_body(len: usize) -> Bytes {
    let head =
        r#"{"request_id":"01a21db754f77598acc69ff946791aba","decisions":[{"placement_id":"demo-mrec","ad":{"markup":""#;
    // Shaped like a real decide answer (tracking URLs included), so load generators parse it.
    let tail = r#"","impression_url":"http://127.0.0.1/v1/t/imp?p=x&s=y","click_url":"http://127.0.0.1/v1/t/click?p=x&s=y"},"no_fill_reason":null}]}"#;
    let pad = len.saturating_sub(head.len() + tail.len());
    let mut s = String::with_capacity(len);
    s.push_str(head);
    s.push_str(&"x".repeat(pad));
    s.push_str(tail);
    Bytes::from(s)
}

async fn answer(req: Request<Incoming>, body: Bytes, work: Duration) -> Result<Response<Full<Bytes>>, Infallible> {
    // Read the request body, as the decide handler does; a broken body still gets the answer.
    let _ = req.into_body().collect().await;
    if !work.is_zero() {
        let started = Instant::now();
        while started.elapsed() < work {
            std::hint::spin_loop();
        }
    }
    let mut resp = Response::new(Full::new(body));
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp.headers_mut().insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    Ok(resp)
}

async fn serve(addr: SocketAddr, body_bytes: usize, work: Duration) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let body = fixed_body(body_bytes);
    eprintln!("baseline_hyper listening on http://{} ({} byte body)", listener.local_addr()?, body.len());
    // Keep-alive is on by default.
    let mut http = http1::Builder::new();
    if std::env::var_os("BASELINE_FLATTEN").is_some() {
        http.writev(false);
    }
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                eprintln!("accept: {e}");
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let body = body.clone();
        let conn = http.serve_connection(TokioIo::new(stream), service_fn(move |req| answer(req, body.clone(), work)));
        tokio::spawn(async move {
            // A client hanging up mid-request is not our error.
            let _ = conn.await;
        });
    }
}

fn main() -> std::io::Result<()> {
    let arg = std::env::args().nth(1).unwrap_or_else(|| DEFAULT_ADDR.to_string());
    let addr: SocketAddr = arg.parse().map_err(|e| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("`{arg}` is not an address: {e}"))
    })?;
    let body_bytes = match std::env::args().nth(2) {
        Some(n) => n.parse().map_err(|e| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("`{n}` is not a byte count: {e}"))
        })?,
        None => DECIDE_BODY_BYTES,
    };
    let work = match std::env::args().nth(3) {
        Some(n) => Duration::from_nanos(n.parse().map_err(|e| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("`{n}` is not a number of nanoseconds: {e}"))
        })?),
        None => Duration::ZERO,
    };
    // Ctrl-C / SIGINT ends it normally (so that a profiling build writes its profile:
    // scripts/build-pgo.sh).
    tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
        tokio::select! {
            served = serve(addr, body_bytes, work) => served,
            stopped = tokio::signal::ctrl_c() => stopped,
        }
    })
}
