//! adp-dragonfly: shared counters on DragonflyDB (Redis protocol).
