//! net: thread-per-core serving. One OS thread per core, each with its own single-threaded
//! tokio runtime and its own SO_REUSEPORT listener on the same address, so the kernel spreads
//! connections across cores and no request crosses a thread. Nothing here is shared but the
//! immutable router state.

use axum::Router;
use socket2::{Domain, Protocol, Socket, Type};
use std::net::SocketAddr;
use std::thread::JoinHandle;
use tokio::sync::watch;

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

/// Serves `router` on each listener from its own thread and runtime until `stop` turns true.
/// With `connect_info`, handlers see each connection's peer address (`ConnectInfo<SocketAddr>`;
/// it costs an extension per request, so only when `geo.use_client_addr` needs it).
pub fn spawn_cores(
    listeners: Vec<std::net::TcpListener>,
    router: Router,
    stop: watch::Receiver<bool>,
    connect_info: bool,
) -> Vec<JoinHandle<std::io::Result<()>>> {
    listeners
        .into_iter()
        .enumerate()
        .map(|(core, l)| {
            let router = router.clone();
            let mut stop = stop.clone();
            std::thread::Builder::new()
                .name(format!("adp-core-{core}"))
                .spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
                    rt.block_on(async move {
                        let listener = tokio::net::TcpListener::from_std(l)?;
                        let stopped = async move {
                            let _ = stop.wait_for(|s| *s).await;
                        };
                        if connect_info {
                            let service = router.into_make_service_with_connect_info::<std::net::SocketAddr>();
                            axum::serve(listener, service).with_graceful_shutdown(stopped).await
                        } else {
                            axum::serve(listener, router).with_graceful_shutdown(stopped).await
                        }
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
