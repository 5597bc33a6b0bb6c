//! engine: decides which ad fills each placement — compiled targeting index, the selection
//! pipeline, auction and pacing. Pure CPU: it never awaits and never does I/O.

pub mod eval;
pub mod index;
pub mod pacing;
pub mod request;
