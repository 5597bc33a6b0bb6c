//! domain: the pure model of AdPlatform — catalog objects, targeting expressions, validation
//! and the ports (traits) that adapters implement. No I/O lives here.
#![forbid(unsafe_code)]

pub mod error;
pub mod events;
pub mod model;
pub mod ports;
pub mod targeting;

pub use error::FieldError;
pub use model::*;
pub use ports::*;
pub use targeting::Expr;

/// Money: integer micros of the account currency (1 unit = 1_000_000 micros).
pub type Micros = i64;
