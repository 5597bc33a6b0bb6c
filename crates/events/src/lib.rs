//! events: event sinks. The embedded adapter is a durable local log (append-only segments with
//! checksums) feeding in-process delivery rollups; the Kafka forwarder follows that log and
//! produces every event to a Kafka-API broker. Nothing here runs on the request path except
//! `EventSink::submit`, which only enqueues.
#![forbid(unsafe_code)]

pub mod forwarder;
pub mod local_log;
pub mod rollup;

pub use forwarder::{
    Compression, ForwarderConfig, ForwarderError, ForwarderStats, ForwarderStatsHandle, KafkaForwarder,
};
pub use local_log::{EventObserver, FsyncPolicy, LocalLog, LogConfig, LogError, LogPosition, LogReader, LogWatermark};
pub use rollup::{DeliveryRollup, DeliveryTotals};
