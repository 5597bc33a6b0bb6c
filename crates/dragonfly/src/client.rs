//! client: the shared connection to Dragonfly and the one way scripts are run. All network I/O of
//! the crate goes through here; the components only build commands and read replies.

use crate::{keys, Error};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Script, ScriptInvocation, ServerErrorKind, Value};
use std::sync::Arc;
use std::time::Duration;

/// How long to wait for Dragonfly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectOptions {
    /// For one connection attempt, and for [`Dragonfly::connect_with`] as a whole.
    pub connect_timeout: Duration,
    /// For one command or pipeline; past it the call fails with [`Error::Unavailable`].
    pub response_timeout: Duration,
}

impl Default for ConnectOptions {
    /// 2 s to connect, 1 s per reply.
    fn default() -> ConnectOptions {
        ConnectOptions { connect_timeout: Duration::from_secs(2), response_timeout: Duration::from_secs(1) }
    }
}

/// A handle on Dragonfly: one multiplexed connection that reconnects by itself, and the key
/// prefix. Cheap to clone; every component is built from one.
#[derive(Clone)]
pub struct Dragonfly {
    con: ConnectionManager,
    prefix: Arc<str>,
}

impl std::fmt::Debug for Dragonfly {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dragonfly").field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

impl Dragonfly {
    /// Connects to `url` (`redis://host:port[/db]`, `rediss://` not compiled in) with the default
    /// [`ConnectOptions`]. Every key starts with `prefix` (e.g. `adp`).
    pub async fn connect(url: &str, prefix: &str) -> Result<Dragonfly, Error> {
        Dragonfly::connect_with(url, prefix, ConnectOptions::default()).await
    }

    /// Connects to `url`; fails with [`Error::Unavailable`] when no connection is up within
    /// `options.connect_timeout`.
    pub async fn connect_with(url: &str, prefix: &str, options: ConnectOptions) -> Result<Dragonfly, Error> {
        keys::check_prefix(prefix)?;
        let client = redis::Client::open(url).map_err(|e| Error::Invalid(format!("dragonfly url: {e}")))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(options.connect_timeout))
            .set_response_timeout(Some(options.response_timeout));
        let con = tokio::time::timeout(options.connect_timeout, ConnectionManager::new_with_config(client, config))
            .await
            .map_err(|_| Error::Unavailable(format!("no connection within {:?}", options.connect_timeout)))??;
        tracing::debug!(prefix, "connected to dragonfly");
        Ok(Dragonfly { con, prefix: prefix.into() })
    }

    /// Readiness: whether Dragonfly answers a PING now.
    pub async fn ping(&self) -> Result<(), Error> {
        let reply: Value = redis::cmd("PING").query_async(&mut self.connection()).await?;
        match reply {
            Value::SimpleString(s) if s == "PONG" => Ok(()),
            other => Err(Error::Protocol(format!("PING answered {other:?}"))),
        }
    }

    /// The prefix every key starts with.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub(crate) fn connection(&self) -> ConnectionManager {
        self.con.clone()
    }

    /// Runs `calls` of one script in one pipeline (one round trip) and returns their replies in
    /// order. EVALSHA first; the calls the server does not know the script for (NOSCRIPT: never
    /// run) are sent again after SCRIPT LOAD. A script error in any call fails the whole batch,
    /// the other calls having run.
    pub(crate) async fn run_scripts(
        &self,
        script: &Script,
        calls: &[ScriptInvocation<'_>],
    ) -> Result<Vec<Value>, Error> {
        if calls.is_empty() {
            return Ok(Vec::new());
        }
        let mut con = self.connection();
        let mut replies = run_pipeline(&mut con, calls.iter()).await?;
        let missing: Vec<usize> = replies.iter().enumerate().filter(|(_, v)| is_noscript(v)).map(|(i, _)| i).collect();
        if !missing.is_empty() {
            tracing::debug!(sha = script.get_hash(), calls = missing.len(), "loading script");
            script.load_async(&mut con).await?;
            let again = run_pipeline(&mut con, missing.iter().map(|&i| &calls[i])).await?;
            for (i, reply) in missing.into_iter().zip(again) {
                replies[i] = reply;
            }
        }
        if let Some(Value::ServerError(e)) = replies.iter().find(|v| matches!(v, Value::ServerError(_))) {
            return Err(Error::Protocol(format!(
                "script {}: {} {}",
                script.get_hash(),
                e.code(),
                e.details().unwrap_or("")
            )));
        }
        Ok(replies)
    }
}

async fn run_pipeline<'a>(
    con: &mut ConnectionManager,
    calls: impl Iterator<Item = &'a ScriptInvocation<'a>>,
) -> Result<Vec<Value>, Error> {
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    let mut sent = 0;
    for call in calls {
        pipe.invoke_script(call);
        sent += 1;
    }
    let replies: Vec<Value> = pipe.query_async(con).await?;
    if replies.len() != sent {
        return Err(Error::Protocol(format!("{sent} scripts sent, {} replies", replies.len())));
    }
    Ok(replies)
}

fn is_noscript(reply: &Value) -> bool {
    matches!(reply, Value::ServerError(e) if e.kind() == Some(ServerErrorKind::NoScript))
}

/// A reply as an integer: an integer reply, or a bulk or simple string holding one.
pub(crate) fn int(reply: &Value) -> Result<i64, Error> {
    match reply {
        Value::Int(i) => Some(*i),
        Value::BulkString(b) => std::str::from_utf8(b).ok().and_then(|s| s.parse().ok()),
        Value::SimpleString(s) => s.parse().ok(),
        _ => None,
    }
    .ok_or_else(|| Error::Protocol(format!("expected an integer, got {reply:?}")))
}

/// A reply as an integer, nil as `None`.
pub(crate) fn opt_int(reply: &Value) -> Result<Option<i64>, Error> {
    match reply {
        Value::Nil => Ok(None),
        other => int(other).map(Some),
    }
}

/// A reply as an array of exactly `len` elements.
pub(crate) fn array(reply: Value, len: usize) -> Result<Vec<Value>, Error> {
    match reply {
        Value::Array(items) if items.len() == len => Ok(items),
        other => Err(Error::Protocol(format!("expected an array of {len}, got {other:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_read_strictly() {
        assert_eq!(int(&Value::Int(-5)), Ok(-5));
        assert_eq!(int(&Value::BulkString(b"42".to_vec())), Ok(42));
        assert!(matches!(int(&Value::BulkString(b"4.2".to_vec())), Err(Error::Protocol(_))));
        assert!(matches!(int(&Value::Nil), Err(Error::Protocol(_))));
        assert_eq!(opt_int(&Value::Nil), Ok(None));
        assert_eq!(opt_int(&Value::Int(3)), Ok(Some(3)));
        assert!(array(Value::Array(vec![Value::Nil]), 1).is_ok());
        assert!(matches!(array(Value::Array(vec![]), 1), Err(Error::Protocol(_))));
        assert!(matches!(array(Value::Nil, 0), Err(Error::Protocol(_))));
    }
}
