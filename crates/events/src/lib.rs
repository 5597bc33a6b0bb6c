//! events: event sinks. The embedded adapter is a durable local log (append-only segments with
//! checksums) feeding in-process delivery rollups.
