//! replay: remembers which tracking URLs (or any one-shot tokens) were used, across processes, so
//! that each counts once. One SET NX EX per key; many pipelined.

use crate::{keys, Dragonfly, Error};
use redis::Value;

/// The shared replay guard. Keys are `{prefix}:rg:<key>`.
#[derive(Debug, Clone)]
pub struct ReplayGuard {
    df: Dragonfly,
}

impl ReplayGuard {
    pub fn new(df: &Dragonfly) -> ReplayGuard {
        ReplayGuard { df: df.clone() }
    }

    /// True the first time `key` is seen within `ttl_secs` (at least 1), false after.
    pub async fn first_use(&self, key: &str, ttl_secs: u64) -> Result<bool, Error> {
        let mut firsts = self.first_use_many(&[key], ttl_secs).await?;
        firsts.pop().ok_or_else(|| Error::Protocol("no reply to SET NX".into()))
    }

    /// [`ReplayGuard::first_use`] for many keys in one round trip, in order; a key repeated in
    /// `keys` is a first use only at its first place.
    pub async fn first_use_many(&self, keys: &[&str], ttl_secs: u64) -> Result<Vec<bool>, Error> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for key in keys {
            pipe.cmd("SET").arg(keys::replay(self.df.prefix(), key)).arg(1).arg("NX").arg("EX").arg(ttl_secs.max(1));
        }
        let replies: Vec<Value> = pipe.query_async(&mut self.df.connection()).await?;
        if replies.len() != keys.len() {
            return Err(Error::Protocol(format!("{} SETs sent, {} replies", keys.len(), replies.len())));
        }
        replies
            .into_iter()
            .map(|reply| match reply {
                Value::Okay => Ok(true),
                Value::SimpleString(s) if s == "OK" => Ok(true),
                Value::Nil => Ok(false),
                other => Err(Error::Protocol(format!("SET NX answered {other:?}"))),
            })
            .collect()
    }
}
