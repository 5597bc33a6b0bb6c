//! engine: decides which ad fills each placement — compiled targeting index, the selection
//! pipeline, auction and pacing. Pure CPU: it never awaits and never does I/O.

pub mod delivery;
pub mod eval;
pub mod index;
pub mod pacing;
pub mod pipeline;
pub mod request;
pub mod snapshot;
pub mod synth;
