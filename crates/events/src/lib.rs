//! events: event sinks. The embedded adapter is a durable local log (append-only segments with
//! checksums) feeding in-process delivery rollups. Nothing here runs on the request path except
//! `EventSink::submit`, which only enqueues.
#![forbid(unsafe_code)]

pub mod local_log;
pub mod rollup;

pub use local_log::{EventObserver, FsyncPolicy, LocalLog, LogConfig, LogError};
pub use rollup::{DeliveryRollup, DeliveryTotals};
