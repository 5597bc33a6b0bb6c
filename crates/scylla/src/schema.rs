//! schema: the catalog's CQL schema as text — keyspace, tables and the recorded migrations — and
//! the constants the table layout depends on. Pure: building the statements never talks to the
//! cluster (`ScyllaStore::migrate` runs them; `ddl` hands them to `migrate --scylla --dry-run`).
//!
//! Every statement is plain, standard CQL (no ScyllaDB-only syntax), idempotent (`IF NOT EXISTS`)
//! and names its table with the keyspace, so no `USE` is needed.

use crate::config::{ConfigError, ScyllaConfig};

/// Change log partitions hold this many consecutive versions (`bucket = version / 1000`), so
/// `changes_since` reads one partition, or two across a boundary, in clustering order.
pub const CHANGE_BUCKET_SIZE: u64 = 1000;

/// `objects_by_kind` spreads each kind over this many partitions (by a hash of the id), so no
/// kind is one unbounded partition. Part of the schema: changing it needs a migration.
pub const KIND_BUCKETS: u32 = 16;

/// The `scope` under which `schema_migrations` records this crate's migrations.
pub(crate) const MIGRATION_SCOPE: &str = "catalog";

/// One schema migration: its statements are applied in order and then recorded.
struct Migration {
    version: u32,
    description: &'static str,
    statements: fn(&str) -> Vec<String>,
}

const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    description: "catalog objects, query tables, version head, change log, api keys",
    statements: migration_1,
}];

/// The schema version this build expects (the number of migrations).
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// Every statement `migrate` runs on an empty cluster, in order. Fails on a config that does not
/// validate, so an unchecked name never reaches CQL text.
pub fn ddl(cfg: &ScyllaConfig) -> Result<Vec<String>, ConfigError> {
    cfg.validate()?;
    let mut out = bootstrap(cfg);
    for m in MIGRATIONS {
        out.extend(migration_statements(&cfg.keyspace, m));
    }
    Ok(out)
}

/// The keyspace and the migration record table: what must exist before anything can be asked.
pub(crate) fn bootstrap(cfg: &ScyllaConfig) -> Vec<String> {
    let ks = &cfg.keyspace;
    vec![
        format!(
            "CREATE KEYSPACE IF NOT EXISTS {ks} WITH replication = {} AND durable_writes = true",
            cfg.replication.cql_map()
        ),
        // schema_migrations — partition key: scope (always 'catalog'); clustering key: version,
        // newest first. Serves `health` and `migrate`: "SELECT version ... WHERE scope = ? LIMIT 1"
        // reads the newest applied migration from one small partition.
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.schema_migrations (
    scope text,
    version int,
    description text,
    applied_at timestamp,
    PRIMARY KEY (scope, version)
) WITH CLUSTERING ORDER BY (version DESC)"
        ),
    ]
}

/// The migrations after `applied`, each as its statements followed by its record.
pub(crate) fn pending(ks: &str, applied: u32) -> Vec<(u32, Vec<String>)> {
    MIGRATIONS.iter().filter(|m| m.version > applied).map(|m| (m.version, migration_statements(ks, m))).collect()
}

fn migration_statements(ks: &str, m: &Migration) -> Vec<String> {
    let mut out = (m.statements)(ks);
    // Conditional, so a second run keeps the first `applied_at`.
    out.push(format!(
        "INSERT INTO {ks}.schema_migrations (scope, version, description, applied_at) \
         VALUES ('{MIGRATION_SCOPE}', {}, '{}', toTimestamp(now())) IF NOT EXISTS",
        m.version,
        m.description.replace('\'', "''")
    ));
    out
}

/// Times are RFC 3339 text (as in the SQLite store): a CQL `timestamp` keeps only milliseconds,
/// and a record must read back exactly as it was written.
fn migration_1(ks: &str) -> Vec<String> {
    vec![
        // catalog_objects — partition key: (kind, id); no clustering key. The source of truth for
        // every catalog object. Serves `get` (one partition), the conditional writes of one object
        // (INSERT ... IF NOT EXISTS, UPDATE ... IF version = ?), and `snapshot` (a paged scan of
        // the whole table). owner_id, parent_id and status repeat what the body says, for people
        // reading the table; the adapter reads the body.
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.catalog_objects (
    kind text,
    id text,
    owner_id text,
    parent_id text,
    status text,
    version bigint,
    created_at text,
    updated_at text,
    catalog_version bigint,
    body text,
    PRIMARY KEY ((kind, id))
)"
        ),
        // objects_by_kind — partition key: (kind, bucket) with bucket = FNV-1a(id) mod 16;
        // clustering key: id ascending. Serves `list` of a kind without owner or parent filter:
        // the 16 partitions are read with "id > ? LIMIT ?" and merged by id. Rows only point at
        // catalog_objects; list re-reads every object there and filters on what it reads.
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.objects_by_kind (
    kind text,
    bucket int,
    id text,
    PRIMARY KEY ((kind, bucket), id)
) WITH CLUSTERING ORDER BY (id ASC)"
        ),
        // objects_by_owner — partition key: (kind, owner_id); clustering key: id ascending.
        // Serves `list` with owner_id (an advertiser's campaigns, a publisher's sites): one
        // partition in id order from "id > ?". Pointers only, as above.
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.objects_by_owner (
    kind text,
    owner_id text,
    id text,
    PRIMARY KEY ((kind, owner_id), id)
) WITH CLUSTERING ORDER BY (id ASC)"
        ),
        // objects_by_parent — partition key: (kind, parent_id); clustering key: id ascending.
        // Serves `list` with parent_id (the line items of a campaign, the placements of a site).
        // An object that moves to another parent is deleted from the old partition; the writes
        // carry the object's version as their timestamp (USING TIMESTAMP), so a late or repeated
        // write can never undo a newer one.
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.objects_by_parent (
    kind text,
    parent_id text,
    id text,
    PRIMARY KEY ((kind, parent_id), id)
) WITH CLUSTERING ORDER BY (id ASC)"
        ),
        // catalog_head — partition key: id (always 0); one row, no clustering key. The catalog
        // version and the change that claimed it: writers advance it with
        // "UPDATE ... IF version = ?" (a lightweight transaction), which is the commit point of a
        // catalog write. The claimed change travels in the same row (the new object state), so
        // any process can finish a write whose writer died. Serves `catalog_version` and every
        // write.
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.catalog_head (
    id int PRIMARY KEY,
    version bigint,
    claim uuid,
    kind text,
    object_id text,
    op text,
    at text,
    owner_id text,
    parent_id text,
    previous_parent_id text,
    status text,
    object_version bigint,
    created_at text,
    updated_at text,
    body text
)"
        ),
        // catalog_changes — partition key: bucket = version / 1000; clustering key: version
        // ascending. Serves `changes_since` ("WHERE bucket = ? AND version > ? LIMIT ?", one or
        // two partitions in version order) and the check whether a claimed version is applied
        // (one row by bucket and version). claim names the write that produced the row.
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.catalog_changes (
    bucket bigint,
    version bigint,
    kind text,
    id text,
    op text,
    at text,
    claim uuid,
    PRIMARY KEY (bucket, version)
) WITH CLUSTERING ORDER BY (version ASC)"
        ),
        // api_keys — partition key: id; no clustering key. The source of truth for keys. Serves
        // `get_api_key`, "INSERT ... IF NOT EXISTS" (ids are unique) and
        // "UPDATE ... IF version = ?" (`update_api_key`).
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.api_keys (
    id text PRIMARY KEY,
    name text,
    role text,
    advertiser_id text,
    prefix text,
    status text,
    version bigint,
    created_at text,
    updated_at text,
    key_hash text
)"
        ),
        // api_keys_by_hash — partition key: key_hash; no clustering key. Serves
        // `find_api_key_by_hash` (hash → id, then api_keys) and keeps hashes unique: a key claims
        // its hash with "INSERT ... IF NOT EXISTS" before its api_keys row is written.
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.api_keys_by_hash (
    key_hash text PRIMARY KEY,
    id text
)"
        ),
        // api_keys_by_advertiser — partition key: advertiser_id; clustering key: id ascending.
        // Serves `list_api_keys` for one advertiser, in id order from "id > ?". Pointers only:
        // list re-reads api_keys.
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.api_keys_by_advertiser (
    advertiser_id text,
    id text,
    PRIMARY KEY (advertiser_id, id)
) WITH CLUSTERING ORDER BY (id ASC)"
        ),
        // api_keys_all — partition key: scope (always 0); clustering key: id ascending. Serves
        // `list_api_keys` of every key in id order. One partition: keys number in the
        // thousands (one per person or integration), not millions.
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.api_keys_all (
    scope int,
    id text,
    PRIMARY KEY (scope, id)
) WITH CLUSTERING ORDER BY (id ASC)"
        ),
        // The head starts at version 0 with no claim.
        format!("INSERT INTO {ks}.catalog_head (id, version) VALUES (0, 0) IF NOT EXISTS"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Replication;
    use std::collections::BTreeMap;

    fn cfg(replication: Replication) -> ScyllaConfig {
        ScyllaConfig { keyspace: "adp_prod".into(), replication, ..ScyllaConfig::default() }
    }

    #[test]
    fn keyspace_uses_network_topology_with_the_configured_factors() {
        let replication = Replication::NetworkTopology(BTreeMap::from([("dc1".into(), 3), ("dc2".into(), 2)]));
        let statements = ddl(&cfg(replication)).expect("ddl");
        assert_eq!(
            statements[0],
            "CREATE KEYSPACE IF NOT EXISTS adp_prod WITH replication = \
             {'class': 'NetworkTopologyStrategy', 'dc1': 3, 'dc2': 2} AND durable_writes = true"
        );
        let default = ddl(&cfg(Replication::default())).expect("ddl");
        assert!(default[0].contains("{'class': 'NetworkTopologyStrategy', 'datacenter1': 3}"), "{}", default[0]);
        let simple = ddl(&cfg(Replication::Simple { factor: 1 })).expect("ddl");
        assert!(simple[0].contains("{'class': 'SimpleStrategy', 'replication_factor': 1}"), "{}", simple[0]);
    }

    #[test]
    fn an_invalid_config_yields_no_ddl() {
        let bad = ScyllaConfig { keyspace: "a; DROP KEYSPACE adplatform".into(), ..ScyllaConfig::default() };
        assert!(matches!(ddl(&bad), Err(ConfigError::BadKeyspace(_))));
        let bad = cfg(Replication::NetworkTopology(BTreeMap::from([("dc1': 1}; DROP".into(), 3)])));
        assert!(matches!(ddl(&bad), Err(ConfigError::BadDatacenter(_))));
    }

    /// A light lexer: every statement is one statement of plain CQL — balanced quotes, brackets
    /// and braces, no `;`, no comments, no quoted identifiers — starting with a known verb, and
    /// every table it names is qualified with the keyspace.
    #[test]
    fn every_statement_is_plain_cql() {
        let statements = ddl(&cfg(Replication::default())).expect("ddl");
        for s in &statements {
            let mut depth_paren = 0i32;
            let mut depth_brace = 0i32;
            let mut in_string = false;
            for c in s.chars() {
                match (in_string, c) {
                    (true, '\'') => in_string = false,
                    (true, _) => {}
                    (false, '\'') => in_string = true,
                    (false, '(') => depth_paren += 1,
                    (false, ')') => depth_paren -= 1,
                    (false, '{') => depth_brace += 1,
                    (false, '}') => depth_brace -= 1,
                    (false, ';' | '"' | '`') => panic!("unexpected {c:?} in {s}"),
                    _ => {}
                }
                assert!(depth_paren >= 0 && depth_brace >= 0, "unbalanced: {s}");
            }
            assert!(!in_string && depth_paren == 0 && depth_brace == 0, "unbalanced: {s}");
            assert!(!s.contains("--") && !s.contains("//") && !s.contains("/*"), "comment in {s}");
            assert!(s.is_ascii(), "{s}");
            let verbs =
                ["CREATE KEYSPACE IF NOT EXISTS ", "CREATE TABLE IF NOT EXISTS adp_prod.", "INSERT INTO adp_prod."];
            assert!(verbs.iter().any(|v| s.starts_with(v)), "unexpected statement: {s}");
            if s.starts_with("INSERT") {
                assert!(s.ends_with(" IF NOT EXISTS"), "inserts in migrations are conditional: {s}");
            }
            for word in s.split(|c: char| c.is_whitespace() || c == '(') {
                // Every table reference is keyspace-qualified.
                if let Some(rest) = word.strip_prefix("adp_prod.") {
                    assert!(rest.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'), "{word}");
                }
            }
        }
    }

    #[test]
    fn every_table_is_created_once_and_explained() {
        let statements = ddl(&cfg(Replication::default())).expect("ddl");
        let tables: Vec<&str> = statements
            .iter()
            .filter_map(|s| s.strip_prefix("CREATE TABLE IF NOT EXISTS adp_prod."))
            .filter_map(|s| s.split_whitespace().next())
            .collect();
        assert_eq!(
            tables,
            vec![
                "schema_migrations",
                "catalog_objects",
                "objects_by_kind",
                "objects_by_owner",
                "objects_by_parent",
                "catalog_head",
                "catalog_changes",
                "api_keys",
                "api_keys_by_hash",
                "api_keys_by_advertiser",
                "api_keys_all",
            ]
        );
        // The comment above each table names its keys and the query it serves.
        let source = include_str!("schema.rs");
        for table in tables {
            let marker = format!("// {table} — partition key:");
            assert!(source.contains(&marker), "table {table} needs a comment starting {marker:?}");
        }
    }

    #[test]
    fn migrations_are_numbered_from_one_and_recorded() {
        assert_eq!(SCHEMA_VERSION, 1);
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version as usize, i + 1);
        }
        let statements = ddl(&cfg(Replication::default())).expect("ddl");
        let last = statements.last().expect("statements");
        assert!(last.starts_with("INSERT INTO adp_prod.schema_migrations"), "{last}");
        assert!(last.contains("VALUES ('catalog', 1, "), "{last}");
        assert_eq!(pending("adp_prod", 0).len(), 1);
        assert!(pending("adp_prod", SCHEMA_VERSION).is_empty());
        assert_eq!(statements.len(), bootstrap(&cfg(Replication::default())).len() + pending("adp_prod", 0)[0].1.len());
    }
}
