//! ctr: per-creative impression and click counts shared by every process, for ranking. Hashes
//! `{prefix}:ctr:{<creative id>}` with fields `i` and `c`; they do not expire.

use crate::client::{array, opt_int};
use crate::{keys, Dragonfly, Error};
use redis::Value;

/// Creative click-through statistics on Dragonfly.
#[derive(Debug, Clone)]
pub struct CtrStats {
    df: Dragonfly,
}

impl CtrStats {
    pub fn new(df: &Dragonfly) -> CtrStats {
        CtrStats { df: df.clone() }
    }

    /// Adds `(creative id, impressions, clicks)` deltas in one round trip; zero deltas send
    /// nothing.
    pub async fn add(&self, deltas: &[(&str, u64, u64)]) -> Result<(), Error> {
        let mut pipe = redis::pipe();
        for &(creative_id, impressions, clicks) in deltas {
            let key = keys::ctr(self.df.prefix(), creative_id);
            for (field, n) in [("i", impressions), ("c", clicks)] {
                if n > 0 {
                    let n = i64::try_from(n).map_err(|_| Error::Invalid(format!("a CTR delta of {n}")))?;
                    pipe.hincr(&key, field, n).ignore();
                }
            }
        }
        if pipe.is_empty() {
            return Ok(());
        }
        pipe.exec_async(&mut self.df.connection()).await?;
        Ok(())
    }

    /// `(impressions, clicks)` of each creative, in order, in one round trip; 0 for unknown ones.
    pub async fn load(&self, creative_ids: &[&str]) -> Result<Vec<(u64, u64)>, Error> {
        if creative_ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in creative_ids {
            pipe.cmd("HMGET").arg(keys::ctr(self.df.prefix(), id)).arg("i").arg("c");
        }
        let replies: Vec<Value> = pipe.query_async(&mut self.df.connection()).await?;
        if replies.len() != creative_ids.len() {
            return Err(Error::Protocol(format!("{} HMGETs sent, {} replies", creative_ids.len(), replies.len())));
        }
        let count = |v: &Value| -> Result<u64, Error> {
            let n = opt_int(v)?.unwrap_or(0);
            u64::try_from(n).map_err(|_| Error::Protocol(format!("a negative CTR count {n}")))
        };
        replies
            .into_iter()
            .map(|reply| {
                let v = array(reply, 2)?;
                Ok((count(&v[0])?, count(&v[1])?))
            })
            .collect()
    }
}
