//! monoio-probe: a fixed-body HTTP/1.1 server on one monoio io_uring runtime, in three ways:
//!
//! - `hyper-poll`: hyper over monoio's poll-io streams (io_uring tells readiness, reads and
//!   writes are plain syscalls), the cheapest way to keep hyper;
//! - `hyper-compat`: hyper over monoio-compat's `StreamWrapper` (io_uring completion reads and
//!   writes into owned buffers, one copy each way);
//! - `raw`: no hyper, httparse over io_uring completion reads and writes (keep-alive,
//!   content-length bodies only): what io_uring can give at best without an HTTP stack.
//!
//! Each answers every request with the same body as `crates/server/examples/baseline_hyper.rs`
//! (hyper on a tokio current-thread runtime); `scripts/bench-monoio.sh` puts all four under the
//! same wrk load on one pinned core.
//!
//! Usage: monoio-probe MODE ADDR BODY_BYTES

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use std::convert::Infallible;
use std::io;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    HyperPoll,
    HyperCompat,
    Raw,
}

fn body(len: usize) -> Bytes {
    let mut s = String::with_capacity(len);
    s.push('"');
    s.push_str(&"x".repeat(len.saturating_sub(2)));
    s.push('"');
    Bytes::from(s)
}

async fn answer(req: Request<Incoming>, body: Bytes) -> Result<Response<Full<Bytes>>, Infallible> {
    // Read the request body, as the baseline does.
    let _ = req.into_body().collect().await;
    let mut resp = Response::new(Full::new(body));
    resp.headers_mut().insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("application/json"));
    resp.headers_mut().insert(hyper::header::ACCESS_CONTROL_ALLOW_ORIGIN, hyper::header::HeaderValue::from_static("*"));
    Ok(resp)
}

/// The fixed response, head and body, for the raw mode.
fn raw_response(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 160);
    out.extend_from_slice(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\naccess-control-allow-origin: *\r\n");
    out.extend_from_slice(format!("content-length: {}\r\n", body.len()).as_bytes());
    // A fixed date: the probe measures I/O, not clock formatting (hyper caches it per second).
    out.extend_from_slice(b"date: Sat, 28 Nov 2026 00:00:00 GMT\r\n\r\n");
    out.extend_from_slice(body);
    out
}

/// Keep-alive loop of the raw mode: parse each complete request, answer the fixed response.
async fn serve_raw(mut stream: monoio::net::TcpStream, response: std::rc::Rc<Vec<u8>>) -> io::Result<()> {
    let mut buf: Vec<u8> = Vec::with_capacity(16 * 1024);
    loop {
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(16 * 1024);
        }
        let (res, back) = stream.read(buf).await;
        buf = back;
        if res? == 0 {
            return Ok(());
        }
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut req = httparse::Request::new(&mut headers);
            let head = match req.parse(&buf) {
                Ok(httparse::Status::Complete(n)) => n,
                Ok(httparse::Status::Partial) => break,
                Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e)),
            };
            let len = match req.headers.iter().find(|h| h.name.eq_ignore_ascii_case("content-length")) {
                Some(h) => std::str::from_utf8(h.value)
                    .ok()
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad content-length"))?,
                None => 0,
            };
            if buf.len() < head + len {
                break;
            }
            // One owned copy per answer: io_uring needs the buffer until the write completes.
            let (res, _) = stream.write_all(response.as_ref().clone()).await;
            res?;
            buf.drain(..head + len);
        }
    }
}

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let usage = || {
        io::Error::new(io::ErrorKind::InvalidInput, "usage: monoio-probe hyper-poll|hyper-compat|raw ADDR BODY_BYTES")
    };
    let mode = match args.get(1).map(String::as_str) {
        Some("hyper-poll") => Mode::HyperPoll,
        Some("hyper-compat") => Mode::HyperCompat,
        Some("raw") => Mode::Raw,
        _ => return Err(usage()),
    };
    let addr = args.get(2).ok_or_else(usage)?.clone();
    let len: usize = args.get(3).and_then(|n| n.parse().ok()).ok_or_else(usage)?;
    let body = body(len);
    let mut rt = monoio::RuntimeBuilder::<monoio::IoUringDriver>::new().with_entries(1024).build()?;
    rt.block_on(async move {
        let listener = monoio::net::TcpListener::bind(addr.as_str())?;
        eprintln!("monoio-probe listening on http://{addr} ({len} byte body)");
        let response = std::rc::Rc::new(raw_response(&body));
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(conn) => conn,
                Err(e) => {
                    eprintln!("accept: {e}");
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let (body, response) = (body.clone(), response.clone());
            monoio::spawn(async move {
                match mode {
                    Mode::HyperPoll => {
                        let Ok(poll) = stream.try_into_poll_io().map_err(|e| e.0) else { return };
                        let io = monoio_compat::hyper::MonoioIo::new(poll);
                        let service = service_fn(move |req| answer(req, body.clone()));
                        let _ = http1::Builder::new().serve_connection(io, service).await;
                    }
                    Mode::HyperCompat => {
                        let io = hyper_util::rt::TokioIo::new(monoio_compat::StreamWrapper::new(stream));
                        let service = service_fn(move |req| answer(req, body.clone()));
                        let _ = http1::Builder::new().serve_connection(io, service).await;
                    }
                    Mode::Raw => {
                        let _ = serve_raw(stream, response).await;
                    }
                }
            });
        }
    })
}
