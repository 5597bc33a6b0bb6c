//! store: catalog store adapters. `sqlite` is the embedded adapter; `conformance` is the
//! suite every adapter must pass (run it with `catalog_store_conformance!`).
#![forbid(unsafe_code)]

pub mod conformance;
pub mod frequency;
pub mod sqlite;

pub use frequency::InProcessFrequency;
pub use sqlite::SqliteStore;
