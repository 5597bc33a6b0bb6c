//! codec: catalog records, changes, API keys and the version head as CQL rows, and the
//! arithmetic of the partitioned tables (change buckets, kind buckets, merging bucket pages).
//! Pure CPU: nothing here awaits or talks to the cluster. Decoding problems are
//! `StoreError::Corrupt`.

use crate::schema::{CHANGE_BUCKET_SIZE, KIND_BUCKETS};
use adp_domain::{
    ApiKey, CatalogChange, ChangeOp, KeyStatus, Kind, Meta, Record, Role, Spec, Status, StoreError, StoreResult,
};
use chrono::{DateTime, SecondsFormat, Utc};
use scylla::DeserializeRow;
use uuid::Uuid;

pub(crate) fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

/// RFC 3339 with as many fractional digits as the time has (the SQLite store's format).
pub(crate) fn ts(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

pub(crate) fn parse_ts(s: &str) -> StoreResult<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&Utc)).map_err(|e| corrupt(format!("time {s:?}: {e}")))
}

/// Versions are `u64` in the domain and `bigint` (signed) in CQL.
pub(crate) fn to_cql(v: u64, what: &str) -> StoreResult<i64> {
    i64::try_from(v).map_err(|_| corrupt(format!("{what} {v} does not fit a CQL bigint")))
}

pub(crate) fn from_cql(v: i64, what: &str) -> StoreResult<u64> {
    u64::try_from(v).map_err(|_| corrupt(format!("{what} {v} is negative")))
}

pub(crate) fn op_str(op: ChangeOp) -> &'static str {
    match op {
        ChangeOp::Created => "created",
        ChangeOp::Updated => "updated",
        ChangeOp::Archived => "archived",
    }
}

pub(crate) fn parse_op(s: &str) -> StoreResult<ChangeOp> {
    match s {
        "created" => Ok(ChangeOp::Created),
        "updated" => Ok(ChangeOp::Updated),
        "archived" => Ok(ChangeOp::Archived),
        other => Err(corrupt(format!("unknown change op {other:?}"))),
    }
}

pub(crate) fn parse_kind(s: &str) -> StoreResult<Kind> {
    Kind::parse(s).ok_or_else(|| corrupt(format!("unknown kind {s:?}")))
}

// ---------------------------------------------------------------------------------------------
// catalog objects

/// The columns of `catalog_objects`, in table order. `OBJECT_COLUMNS` selects exactly these.
#[derive(Debug, Clone, PartialEq, Eq, DeserializeRow)]
pub(crate) struct ObjectRow {
    pub kind: String,
    pub id: String,
    pub owner_id: String,
    pub parent_id: Option<String>,
    pub status: String,
    pub version: i64,
    pub created_at: String,
    pub updated_at: String,
    pub catalog_version: i64,
    pub body: String,
}

pub(crate) const OBJECT_COLUMNS: &str =
    "kind, id, owner_id, parent_id, status, version, created_at, updated_at, catalog_version, body";

impl ObjectRow {
    pub fn encode(record: &Record) -> StoreResult<ObjectRow> {
        let spec = &record.spec;
        Ok(ObjectRow {
            kind: spec.kind().as_str().to_string(),
            id: record.meta.id.clone(),
            owner_id: record.meta.owner_id.clone(),
            parent_id: spec.parent_id().map(str::to_string),
            status: spec.status().as_str().to_string(),
            version: to_cql(record.meta.version, "object version")?,
            created_at: ts(&record.meta.created_at),
            updated_at: ts(&record.meta.updated_at),
            catalog_version: to_cql(record.meta.catalog_version, "catalog version")?,
            body: serde_json::to_string(&spec.to_json()).map_err(corrupt)?,
        })
    }

    pub fn decode(self) -> StoreResult<Record> {
        let kind = parse_kind(&self.kind)?;
        let value: serde_json::Value =
            serde_json::from_str(&self.body).map_err(|e| corrupt(format!("{kind:?} {}: body: {e}", self.id)))?;
        let spec = Spec::from_json(kind, &value).map_err(|e| corrupt(format!("{kind:?} {}: {e}", self.id)))?;
        Ok(Record {
            meta: Meta {
                version: from_cql(self.version, "object version")?,
                owner_id: self.owner_id,
                created_at: parse_ts(&self.created_at)?,
                updated_at: parse_ts(&self.updated_at)?,
                catalog_version: from_cql(self.catalog_version, "catalog version")?,
                id: self.id,
            },
            spec,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// the version head and the change log

/// The single row of `catalog_head`.
#[derive(Debug, Clone, PartialEq, Eq, DeserializeRow)]
pub(crate) struct HeadRow {
    pub version: i64,
    pub claim: Option<Uuid>,
    pub kind: Option<String>,
    pub object_id: Option<String>,
    pub op: Option<String>,
    pub at: Option<String>,
    pub owner_id: Option<String>,
    pub parent_id: Option<String>,
    pub previous_parent_id: Option<String>,
    pub status: Option<String>,
    pub object_version: Option<i64>,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
    pub body: Option<String>,
}

pub(crate) const HEAD_COLUMNS: &str = "version, claim, kind, object_id, op, at, owner_id, parent_id, \
     previous_parent_id, status, object_version, created_at, updated_at, body";

/// A catalog write that won a version: everything needed to apply it, by anyone.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Intent {
    /// Names this attempt, so a writer whose claim timed out can tell whether it won.
    pub claim: Uuid,
    /// The object as it is after the write; `meta.catalog_version` is the claimed version.
    pub record: Record,
    pub op: ChangeOp,
    /// The change's time.
    pub at: DateTime<Utc>,
    /// The parent before the write, when the write moves the object to another parent.
    pub previous_parent_id: Option<String>,
}

impl Intent {
    pub fn catalog_version(&self) -> u64 {
        self.record.meta.catalog_version
    }

    pub fn change(&self) -> CatalogChange {
        CatalogChange {
            version: self.catalog_version(),
            kind: self.record.spec.kind(),
            id: self.record.meta.id.clone(),
            op: self.op,
            at: self.at,
        }
    }
}

/// The head: the newest claimed version and the write that claimed it (none at version 0).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Head {
    pub version: u64,
    pub intent: Option<Intent>,
}

/// The values bound to `UPDATE catalog_head SET version = ?, claim = ?, ... IF version = ?`
/// (see `statements.rs`), the expected version last.
pub(crate) type HeadValues = (
    i64,
    Uuid,
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    String,
    i64,
    String,
    String,
    String,
    i64,
);

impl Intent {
    /// The claim of this write's version over the head at version `version() - 1`.
    pub fn head_values(&self) -> StoreResult<HeadValues> {
        let expected =
            self.catalog_version().checked_sub(1).ok_or_else(|| corrupt("catalog version 0 cannot be claimed"))?;
        let row = ObjectRow::encode(&self.record)?;
        Ok((
            to_cql(self.catalog_version(), "catalog version")?,
            self.claim,
            row.kind,
            row.id,
            op_str(self.op).to_string(),
            ts(&self.at),
            row.owner_id,
            row.parent_id,
            self.previous_parent_id.clone(),
            row.status,
            row.version,
            row.created_at,
            row.updated_at,
            row.body,
            to_cql(expected, "catalog version")?,
        ))
    }
}

impl HeadRow {
    pub fn decode(self) -> StoreResult<Head> {
        let version = from_cql(self.version, "head version")?;
        let Some(claim) = self.claim else {
            if version == 0 {
                return Ok(Head { version, intent: None });
            }
            return Err(corrupt(format!("catalog head at version {version} names no claim")));
        };
        let missing = |col: &str| corrupt(format!("catalog head at version {version} lacks {col}"));
        let object = ObjectRow {
            kind: self.kind.ok_or_else(|| missing("kind"))?,
            id: self.object_id.ok_or_else(|| missing("object_id"))?,
            owner_id: self.owner_id.ok_or_else(|| missing("owner_id"))?,
            parent_id: self.parent_id,
            status: self.status.ok_or_else(|| missing("status"))?,
            version: self.object_version.ok_or_else(|| missing("object_version"))?,
            created_at: self.created_at.ok_or_else(|| missing("created_at"))?,
            updated_at: self.updated_at.ok_or_else(|| missing("updated_at"))?,
            catalog_version: self.version,
            body: self.body.ok_or_else(|| missing("body"))?,
        };
        let intent = Intent {
            claim,
            record: object.decode()?,
            op: parse_op(&self.op.ok_or_else(|| missing("op"))?)?,
            at: parse_ts(&self.at.ok_or_else(|| missing("at"))?)?,
            previous_parent_id: self.previous_parent_id,
        };
        Ok(Head { version, intent: Some(intent) })
    }
}

/// A row of `catalog_changes` as `changes_since` reads it.
#[derive(Debug, Clone, PartialEq, Eq, DeserializeRow)]
pub(crate) struct ChangeRow {
    pub version: i64,
    pub kind: String,
    pub id: String,
    pub op: String,
    pub at: String,
}

impl ChangeRow {
    pub fn decode(self) -> StoreResult<CatalogChange> {
        Ok(CatalogChange {
            version: from_cql(self.version, "change version")?,
            kind: parse_kind(&self.kind)?,
            id: self.id,
            op: parse_op(&self.op)?,
            at: parse_ts(&self.at)?,
        })
    }
}

/// The change-log partition of a version.
pub(crate) fn change_bucket(version: u64) -> StoreResult<i64> {
    to_cql(version / CHANGE_BUCKET_SIZE, "change bucket")
}

/// The change-log partitions holding the versions in `(after, upto]`, in order (empty when the
/// range is).
pub(crate) fn change_buckets(after: u64, upto: u64) -> StoreResult<Vec<i64>> {
    if upto <= after {
        return Ok(Vec::new());
    }
    let first = change_bucket(after + 1)?;
    let last = change_bucket(upto)?;
    Ok((first..=last).collect())
}

// ---------------------------------------------------------------------------------------------
// query tables

/// The `objects_by_kind` partition of an id: 32-bit FNV-1a of its bytes, modulo `KIND_BUCKETS`.
/// Stable across processes and releases (it is part of the stored layout).
pub(crate) fn kind_bucket(id: &str) -> i32 {
    let mut hash: u32 = 0x811c_9dc5;
    for b in id.bytes() {
        hash ^= u32::from(b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    // KIND_BUCKETS is small, so the remainder always fits.
    (hash % KIND_BUCKETS) as i32
}

/// Merges pages read from several partitions, each ascending and read with the same `limit`,
/// into the first `limit` ids overall. The second value is true when every id after the last
/// one returned may still follow (some partition filled its page, or the merge cut ids off).
pub(crate) fn merge_pages(pages: Vec<Vec<String>>, limit: usize) -> (Vec<String>, bool) {
    let some_page_full = pages.iter().any(|p| p.len() >= limit);
    let mut all: Vec<String> = pages.into_iter().flatten().collect();
    all.sort_unstable();
    all.dedup();
    let cut = all.len() > limit;
    all.truncate(limit);
    (all, some_page_full || cut)
}

// ---------------------------------------------------------------------------------------------
// API keys

fn role_str(r: Role) -> &'static str {
    match r {
        Role::Admin => "admin",
        Role::Advertiser => "advertiser",
    }
}

fn key_status_str(s: KeyStatus) -> &'static str {
    match s {
        KeyStatus::Active => "active",
        KeyStatus::Revoked => "revoked",
    }
}

/// The columns of `api_keys`, in table order. `KEY_COLUMNS` selects exactly these.
#[derive(Debug, Clone, PartialEq, Eq, DeserializeRow)]
pub(crate) struct KeyRow {
    pub id: String,
    pub name: String,
    pub role: String,
    pub advertiser_id: Option<String>,
    pub prefix: String,
    pub status: String,
    pub version: i64,
    pub created_at: String,
    pub updated_at: String,
    pub key_hash: String,
}

pub(crate) const KEY_COLUMNS: &str =
    "id, name, role, advertiser_id, prefix, status, version, created_at, updated_at, key_hash";

impl KeyRow {
    pub fn encode(key: &ApiKey) -> StoreResult<KeyRow> {
        Ok(KeyRow {
            id: key.id.clone(),
            name: key.name.clone(),
            role: role_str(key.role).to_string(),
            advertiser_id: key.advertiser_id.clone(),
            prefix: key.prefix.clone(),
            status: key_status_str(key.status).to_string(),
            version: to_cql(key.version, "key version")?,
            created_at: ts(&key.created_at),
            updated_at: ts(&key.updated_at),
            key_hash: key.key_hash.clone(),
        })
    }

    pub fn decode(self) -> StoreResult<ApiKey> {
        let role = match self.role.as_str() {
            "admin" => Role::Admin,
            "advertiser" => Role::Advertiser,
            other => return Err(corrupt(format!("unknown role {other:?}"))),
        };
        let status = match self.status.as_str() {
            "active" => KeyStatus::Active,
            "revoked" => KeyStatus::Revoked,
            other => return Err(corrupt(format!("unknown key status {other:?}"))),
        };
        Ok(ApiKey {
            id: self.id,
            name: self.name,
            role,
            advertiser_id: self.advertiser_id,
            prefix: self.prefix,
            status,
            version: from_cql(self.version, "key version")?,
            created_at: parse_ts(&self.created_at)?,
            updated_at: parse_ts(&self.updated_at)?,
            key_hash: self.key_hash,
        })
    }
}

/// Whether a stored object matches the filters of a list query (its kind is the queried one).
pub(crate) fn matches(query: &adp_domain::ListQuery, record: &Record) -> bool {
    let status = record.spec.status();
    let status_ok = match query.status {
        Some(s) => status == s,
        None => status != Status::Archived,
    };
    status_ok
        && query.owner_id.as_deref().is_none_or(|o| o == record.meta.owner_id)
        && query.parent_id.as_deref().is_none_or(|p| Some(p) == record.spec.parent_id())
}

#[cfg(test)]
mod tests {
    use super::*;
    use adp_domain::{new_meta, ListQuery};
    use adp_store::conformance::{at, sample_spec};
    use chrono::TimeZone;

    fn record(kind: Kind, version: u64, catalog_version: u64) -> Record {
        let mut meta = new_meta(format!("{}-1", kind.id_prefix()), "owner-1".into(), at(0));
        meta.version = version;
        meta.updated_at = at(90);
        meta.catalog_version = catalog_version;
        Record { meta, spec: sample_spec(kind, "parent-1", "a name") }
    }

    #[test]
    fn every_kind_round_trips_through_its_row() {
        for kind in Kind::ALL {
            let want = record(kind, 3, 42);
            let row = ObjectRow::encode(&want).expect("encode");
            assert_eq!(row.kind, kind.as_str());
            assert_eq!(row.parent_id.as_deref(), want.spec.parent_id());
            assert_eq!(row.status, "active");
            assert_eq!((row.version, row.catalog_version), (3, 42));
            assert_eq!(row.clone().decode().expect("decode"), want, "{kind:?}");
        }
    }

    #[test]
    fn times_keep_every_digit() {
        let mut want = record(Kind::Campaign, 1, 1);
        let t = Utc.timestamp_opt(1_790_000_000, 123_456_789).single().expect("time");
        want.meta.created_at = t;
        want.meta.updated_at = t;
        let row = ObjectRow::encode(&want).expect("encode");
        assert_eq!(row.created_at, "2026-09-21T14:13:20.123456789Z");
        assert_eq!(row.decode().expect("decode"), want);
    }

    #[test]
    fn damaged_rows_are_corrupt_not_panics() {
        let good = ObjectRow::encode(&record(Kind::Site, 1, 1)).expect("encode");
        let cases = [
            ObjectRow { kind: "widget".into(), ..good.clone() },
            ObjectRow { body: "{not json".into(), ..good.clone() },
            ObjectRow { body: "{\"name\": \"x\"}".into(), ..good.clone() },
            ObjectRow { created_at: "yesterday".into(), ..good.clone() },
            ObjectRow { version: -1, ..good.clone() },
        ];
        for row in cases {
            assert!(matches!(row.clone().decode(), Err(StoreError::Corrupt(_))), "{row:?}");
        }
        assert!(matches!(to_cql(u64::MAX, "v"), Err(StoreError::Corrupt(_))));
    }

    #[test]
    fn the_head_carries_a_whole_write() {
        for kind in Kind::ALL {
            let mut moved = record(kind, 4, 7);
            moved.spec.set_status(Status::Archived);
            let intent = Intent {
                claim: Uuid::now_v7(),
                record: moved,
                op: ChangeOp::Archived,
                at: at(90),
                previous_parent_id: Some("old-parent".into()),
            };
            let v = intent.head_values().expect("encode");
            assert_eq!(v.14, 6, "the claim expects the head one version back");
            let row = HeadRow {
                version: v.0,
                claim: Some(v.1),
                kind: Some(v.2),
                object_id: Some(v.3),
                op: Some(v.4),
                at: Some(v.5),
                owner_id: Some(v.6),
                parent_id: v.7,
                previous_parent_id: v.8,
                status: Some(v.9),
                object_version: Some(v.10),
                created_at: Some(v.11),
                updated_at: Some(v.12),
                body: Some(v.13),
            };
            let head = row.decode().expect("decode");
            assert_eq!(head.version, 7);
            assert_eq!(head.intent.as_ref(), Some(&intent), "{kind:?}");
            let change = intent.change();
            assert_eq!((change.version, change.kind, change.op, change.at), (7, kind, ChangeOp::Archived, at(90)));
        }
        let empty = HeadRow {
            version: 0,
            claim: None,
            kind: None,
            object_id: None,
            op: None,
            at: None,
            owner_id: None,
            parent_id: None,
            previous_parent_id: None,
            status: None,
            object_version: None,
            created_at: None,
            updated_at: None,
            body: None,
        };
        assert_eq!(empty.clone().decode().expect("decode"), Head { version: 0, intent: None });
        let claimless = HeadRow { version: 5, ..empty };
        assert!(matches!(claimless.decode(), Err(StoreError::Corrupt(_))));
    }

    #[test]
    fn changes_and_keys_round_trip() {
        let row = ChangeRow {
            version: 12,
            kind: "line_item".into(),
            id: "li-1".into(),
            op: "archived".into(),
            at: ts(&at(5)),
        };
        let change = row.decode().expect("decode");
        assert_eq!(
            (change.version, change.kind, change.op, change.at),
            (12, Kind::LineItem, ChangeOp::Archived, at(5))
        );
        let bad =
            ChangeRow { version: 1, kind: "campaign".into(), id: "c".into(), op: "deleted".into(), at: ts(&at(0)) };
        assert!(matches!(bad.decode(), Err(StoreError::Corrupt(_))));

        for (role, advertiser, status) in
            [(Role::Admin, None, KeyStatus::Active), (Role::Advertiser, Some("a1".to_string()), KeyStatus::Revoked)]
        {
            let key = ApiKey {
                id: "k1".into(),
                name: "ci key".into(),
                role,
                advertiser_id: advertiser,
                prefix: "adp_abcd".into(),
                status,
                version: 2,
                created_at: at(0),
                updated_at: at(30),
                key_hash: "h1".into(),
            };
            assert_eq!(KeyRow::encode(&key).expect("encode").decode().expect("decode"), key);
        }
        let mut row = KeyRow::encode(&ApiKey {
            id: "k".into(),
            name: "n".into(),
            role: Role::Admin,
            advertiser_id: None,
            prefix: "p".into(),
            status: KeyStatus::Active,
            version: 1,
            created_at: at(0),
            updated_at: at(0),
            key_hash: "h".into(),
        })
        .expect("encode");
        row.role = "root".into();
        assert!(matches!(row.decode(), Err(StoreError::Corrupt(_))));
    }

    #[test]
    fn change_buckets_cover_exactly_the_wanted_versions() {
        assert_eq!(change_bucket(0).expect("bucket"), 0);
        assert_eq!(change_bucket(999).expect("bucket"), 0);
        assert_eq!(change_bucket(1000).expect("bucket"), 1);
        assert_eq!(change_bucket(1_234_567).expect("bucket"), 1234);
        assert_eq!(change_buckets(0, 0).expect("buckets"), Vec::<i64>::new());
        assert_eq!(change_buckets(5, 5).expect("buckets"), Vec::<i64>::new());
        assert_eq!(change_buckets(9, 3).expect("buckets"), Vec::<i64>::new());
        assert_eq!(change_buckets(0, 999).expect("buckets"), vec![0]);
        assert_eq!(change_buckets(998, 1000).expect("buckets"), vec![0, 1]);
        // After 999 the next version, 1000, opens bucket 1: bucket 0 is not read at all.
        assert_eq!(change_buckets(999, 1500).expect("buckets"), vec![1]);
        assert_eq!(change_buckets(500, 2500).expect("buckets"), vec![0, 1, 2]);
        // Every version of the range lies in one of the buckets, and every bucket holds one.
        for (after, upto) in [(0u64, 1u64), (1, 2001), (999, 1000), (1999, 4000), (12_345, 12_346)] {
            let buckets = change_buckets(after, upto).expect("buckets");
            for v in after + 1..=upto {
                assert!(buckets.contains(&change_bucket(v).expect("bucket")), "{v} in {after}..={upto}");
            }
            for b in &buckets {
                assert!((after + 1..=upto).any(|v| change_bucket(v).ok() == Some(*b)));
            }
        }
    }

    #[test]
    fn kind_buckets_are_stable_and_spread() {
        // FNV-1a 32 test vectors: "" → 0x811c9dc5, "a" → 0xe40c292c, "foobar" → 0xbf9cf968.
        assert_eq!(kind_bucket(""), (0x811c_9dc5u32 % KIND_BUCKETS) as i32);
        assert_eq!(kind_bucket("a"), (0xe40c_292cu32 % KIND_BUCKETS) as i32);
        assert_eq!(kind_bucket("foobar"), (0xbf9c_f968u32 % KIND_BUCKETS) as i32);
        let mut used = std::collections::BTreeSet::new();
        for i in 0..1000 {
            let b = kind_bucket(&format!("cmp-{i}"));
            assert!((0..KIND_BUCKETS as i32).contains(&b));
            used.insert(b);
        }
        assert_eq!(used.len(), KIND_BUCKETS as usize, "a thousand ids use every bucket");
    }

    #[test]
    fn merging_bucket_pages_keeps_id_order() {
        let page = |ids: &[&str]| ids.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        // Pages read with limit 3: the first bucket is full, so more may follow.
        let (ids, more) = merge_pages(vec![page(&["a", "d", "g"]), page(&["b", "c"]), page(&[])], 3);
        assert_eq!(ids, page(&["a", "b", "c"]));
        assert!(more);
        let (ids, more) = merge_pages(vec![page(&["a"]), page(&["b"])], 3);
        assert_eq!(ids, page(&["a", "b"]));
        assert!(!more, "no page was full: the kind is exhausted");
        let (ids, more) = merge_pages(vec![page(&["b", "c"]), page(&["a", "d"])], 3);
        assert_eq!(ids, page(&["a", "b", "c"]));
        assert!(more, "d was cut off");
        let (ids, more) = merge_pages(vec![], 3);
        assert!(ids.is_empty() && !more);
    }

    #[test]
    fn list_filters_match_on_the_stored_object() {
        let mut r = record(Kind::LineItem, 1, 1);
        let q = |owner: Option<&str>, parent: Option<&str>, status| ListQuery {
            owner_id: owner.map(str::to_string),
            parent_id: parent.map(str::to_string),
            status,
            after_id: None,
            limit: 10,
        };
        assert!(matches(&q(None, None, None), &r));
        assert!(matches(&q(Some("owner-1"), Some("parent-1"), Some(Status::Active)), &r));
        assert!(!matches(&q(Some("owner-2"), None, None), &r));
        assert!(!matches(&q(None, Some("parent-2"), None), &r));
        assert!(!matches(&q(None, None, Some(Status::Paused)), &r));
        r.spec.set_status(Status::Archived);
        assert!(!matches(&q(None, None, None), &r), "archived objects are listed only when asked for");
        assert!(matches(&q(None, None, Some(Status::Archived)), &r));
    }
}
