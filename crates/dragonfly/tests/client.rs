//! Connecting: readiness, timeouts, argument checks.

mod common;

use adp_dragonfly::{ConnectOptions, Dragonfly, Error};
use common::{connect, redis_url, unique_prefix};
use std::time::{Duration, Instant};

#[tokio::test]
async fn ping_answers_when_the_server_is_up() {
    let df = connect(&unique_prefix("ping")).await;
    df.ping().await.expect("ping");
    assert!(df.prefix().starts_with("adpt-ping-"));
}

#[tokio::test]
async fn connecting_to_nothing_fails_within_the_timeout() {
    // a port nobody listens on: bind one, then close it
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let options =
        ConnectOptions { connect_timeout: Duration::from_millis(500), response_timeout: Duration::from_millis(500) };
    let started = Instant::now();
    let result = Dragonfly::connect_with(&format!("redis://127.0.0.1:{port}"), "adp", options).await;
    assert!(matches!(result, Err(Error::Unavailable(_))), "{result:?}");
    assert!(result.as_ref().err().is_some_and(Error::is_retryable));
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
}

#[tokio::test]
async fn bad_prefixes_and_urls_are_refused() {
    let url = redis_url();
    for prefix in ["", "a{b", "a b"] {
        assert!(matches!(Dragonfly::connect(&url, prefix).await, Err(Error::Invalid(_))), "{prefix:?}");
    }
    assert!(matches!(Dragonfly::connect("http://nowhere", "adp").await, Err(Error::Invalid(_))));
}
