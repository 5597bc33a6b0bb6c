//! pacing: see the module docs once written.
