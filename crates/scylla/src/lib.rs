//! adp-scylla: the catalog store on ScyllaDB.
