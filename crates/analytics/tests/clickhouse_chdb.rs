//! The proof that the schema and the queries also run on a current ClickHouse: every DDL
//! statement (twice: idempotent), the raw insert (RowBinary), every query the ingest runs and a
//! set of report queries go through chDB (ClickHouse 25+/26 in-process, from PyPI). The report
//! answers are decoded with the production decoder and must equal the in-process rollup's.
//! The cluster-mode DDL (`ON CLUSTER`, replicated engines) cannot run here (chDB has no Keeper),
//! so chDB only parses it (`formatQuery`).
//! chDB missing is a failure, not a skip: `pip install chdb-core` (`scripts/services.sh start` should install it).

use adp_analytics::report::{Dimension, Metric, ReportFilters, ReportQuery, Rollup};
use adp_analytics::rowbinary::{encode_event_row, event_id_bytes, Provenance, EVENT_COLUMNS, EVENT_STRUCTURE};
use adp_analytics::schema::{all_statements, drop_partition_sql};
use adp_analytics::sink::{batch_lookup_sql, load_offsets_sql, record_offsets_sql, Batch, Incoming};
use adp_analytics::store::quote;
use adp_analytics::testkit::{rows_of, sample_events, unfold};
use chrono::DateTime;
use std::collections::BTreeMap;
use std::process::Command;

const DB: &str = "adp_chdb";

const RUNNER: &str = r#"
import json, os, sys
try:
    from chdb import session
except ImportError as e:
    print("chdb is not installed (" + str(e) + "): run `pip install chdb-core` or `scripts/services.sh start`")
    sys.exit(3)
job = json.load(open(sys.argv[1]))
s = session.Session(job["dir"])
print("chdb", s.query("SELECT version()", "CSV").data().strip())
for i, st in enumerate(job["statements"]):
    try:
        s.query(st, "CSV")
    except Exception as e:
        print("statement", i, "failed:", e, "\n", st)
        sys.exit(1)
for i, q in enumerate(job["queries"]):
    try:
        r = s.query(q, "RowBinary")
    except Exception as e:
        print("query", i, "failed:", e, "\n", q)
        sys.exit(1)
    with open(os.path.join(job["out"], "%d.bin" % i), "wb") as f:
        f.write(r.bytes())
"#;

fn report_queries() -> Vec<ReportQuery> {
    let base = ReportQuery {
        from: DateTime::from_timestamp(1_704_060_000, 0).expect("t"),
        to: DateTime::from_timestamp(1_704_400_000, 0).expect("t"),
        time_zone: chrono_tz::UTC,
        dimensions: vec![],
        metrics: Metric::ALL.to_vec(),
        filters: ReportFilters::default(),
    };
    let mut out = vec![base.clone()];
    for d in Dimension::ALL {
        out.push(ReportQuery { dimensions: vec![d], ..base.clone() });
    }
    for tz in [chrono_tz::Asia::Kolkata, chrono_tz::America::New_York, chrono_tz::Pacific::Chatham] {
        out.push(ReportQuery {
            time_zone: tz,
            dimensions: vec![Dimension::Day, Dimension::Advertiser],
            ..base.clone()
        });
        out.push(ReportQuery { time_zone: tz, dimensions: vec![Dimension::Hour], ..base.clone() });
    }
    out.push(ReportQuery {
        dimensions: vec![Dimension::Advertiser, Dimension::Campaign, Dimension::LineItem, Dimension::Country],
        filters: ReportFilters {
            advertiser_id: vec!["adv-1".into(), "adv-2".into(), "it's \\ 'quoted'".into()],
            device_type: vec!["phone".into(), "".into()],
            ..ReportFilters::default()
        },
        ..base.clone()
    });
    out.push(ReportQuery {
        from: DateTime::from_timestamp(1_704_070_800, 0).expect("t"),
        to: DateTime::from_timestamp(1_704_100_000, 0).expect("t"),
        dimensions: vec![Dimension::Placement, Dimension::Site, Dimension::Deal, Dimension::DeviceType],
        filters: ReportFilters { deal_id: vec!["deal-1".into()], ..ReportFilters::default() },
        ..base
    });
    out
}

#[test]
fn ddl_ingest_queries_and_reports_run_on_current_clickhouse() {
    let dir = tempfile::tempdir().expect("tempdir");
    // 2024-01-01T00:00Z on, one event every 47 s: about three days, crossing day boundaries.
    let mut events = sample_events(6000, 1_704_067_200_000, 47_000, 7);
    events[10].advertiser_id = "it's \\ 'quoted'".into();
    events[11].advertiser_id = "ünïcødé\t\n".into();
    let mut rows = Vec::new();
    let mut oracle = Rollup::new();
    events.iter().for_each(|e| oracle.add(e));
    // The rows the ingest writes: a decision that stands for its request is two.
    for (i, e) in unfold(&events).iter().enumerate() {
        let from = Provenance { partition: (i % 3) as u32, offset: i as i64, batch_id: 1 };
        encode_event_row(&mut rows, e, &event_id_bytes(&e.id), from).expect("row");
    }
    let data = dir.path().join("events.bin");
    std::fs::write(&data, &rows).expect("write data");

    // The cluster form of every DDL statement is valid syntax for a current server.
    let mut cluster_ddl = all_statements(DB, Some("adplatform")).expect("cluster statements");
    cluster_ddl.push(drop_partition_sql(DB, Some("adplatform"), 20240101).expect("cluster retention"));
    let mut statements: Vec<String> = cluster_ddl.iter().map(|s| format!("SELECT formatQuery({})", quote(s))).collect();
    statements.extend(all_statements(DB, None).expect("statements"));
    statements.extend(all_statements(DB, None).expect("statements"));
    statements.push(format!(
        "INSERT INTO {DB}.events ({EVENT_COLUMNS}) SELECT * FROM file('{}', 'RowBinary', '{}')",
        data.display(),
        EVENT_STRUCTURE.replace('\'', "\\'")
    ));
    let next: BTreeMap<i32, i64> = [(0, 10), (1, 11), (2, 12)].into_iter().collect();
    statements.push(record_offsets_sql(DB, "adp.events", &next, 5));
    statements.push(format!("INSERT INTO {DB}.schema_migrations (version, name, applied_at) VALUES (1, 'x', now())"));

    let incoming: Vec<Incoming> = events
        .iter()
        .take(2000)
        .enumerate()
        .map(|(i, e)| Incoming { partition: (i % 3) as i32, offset: i as i64, event: e.clone() })
        .collect();
    let batch = Batch::from_incoming(&incoming);
    let lookups = batch_lookup_sql(DB, &batch);
    let reports = report_queries();
    let mut queries: Vec<String> = lookups.clone();
    queries.push(load_offsets_sql(DB, "adp.events"));
    queries.push(format!("SELECT DISTINCT version FROM {DB}.schema_migrations ORDER BY version"));
    queries.push(format!(
        "SELECT DISTINCT partition FROM system.parts WHERE database = '{DB}' AND table = 'events' AND active"
    ));
    queries.push("SELECT count() FROM system.processes WHERE query_id = 'adp-ingest-1'".into());
    let first_report = queries.len();
    for q in &reports {
        queries.push(adp_analytics::query::report_sql(DB, q).expect("sql"));
    }
    // Retention last: it drops data.
    queries.push(drop_partition_sql(DB, None, 20240101).expect("retention"));

    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).expect("mkdir");
    let job = serde_json::json!({
        "dir": dir.path().join("chdb").display().to_string(),
        "out": out.display().to_string(),
        "statements": statements,
        "queries": queries,
    });
    let job_path = dir.path().join("job.json");
    std::fs::write(&job_path, job.to_string()).expect("job");
    let script = dir.path().join("run.py");
    std::fs::write(&script, RUNNER).expect("script");
    let result = Command::new("python3").arg(&script).arg(&job_path).output().unwrap_or_else(|e| {
        panic!("cannot run python3 ({e}): install Python 3 and `pip install chdb-core`");
    });
    let stdout = String::from_utf8_lossy(&result.stdout);
    assert!(result.status.success(), "chDB run failed:\n{stdout}\n{}", String::from_utf8_lossy(&result.stderr));
    println!("{}", stdout.trim());

    // Every looked-up id exists (all rows of the first 2000 events were inserted).
    let found: usize = (0..lookups.len())
        .map(|i| std::fs::read(out.join(format!("{i}.bin"))).expect("lookup answer").len() / 20)
        .sum();
    assert_eq!(found as u64, rows_of(&events[..2000]), "the id lookups find every stored event");
    let offsets = std::fs::read(out.join(format!("{}.bin", lookups.len()))).expect("offsets");
    assert_eq!(offsets.len(), 3 * 12, "three (UInt32, Int64) offset rows");

    for (i, q) in reports.iter().enumerate() {
        let bytes = std::fs::read(out.join(format!("{}.bin", first_report + i))).expect("report answer");
        let got = adp_analytics::query::decode_rows(&bytes, &q.dimensions).expect("decode");
        let want = oracle.query(q).expect("oracle");
        assert!(!want.is_empty(), "report {i} selects something");
        assert_eq!(got, want, "report {i} ({:?}, {}) differs on chDB", q.dimensions, q.time_zone);
    }
}
