//! query: a [`ReportQuery`] answered from `rollup_hourly` in ClickHouse. The SQL is built from
//! whitelisted identifiers (each [`Dimension`] and filter maps to a fixed expression) and quoted
//! literals; numbers are formatted, never spliced from input. Rows are decoded from RowBinary,
//! then zero rows dropped and the rest sorted exactly as [`crate::report::aggregate`] does, so
//! both backends answer alike.

use crate::report::{Dimension, DimensionValue, ReportQuery, ReportRow, Totals};
use crate::store::{quote, ClickHouse, Result, StoreError};
use chrono::NaiveDate;
use std::fmt::Write as _;

/// The sums every report row carries, in [`Totals`] field order.
const SUMS: [&str; 11] = [
    "requests",
    "decisions",
    "bids",
    "wins",
    "losses",
    "billed",
    "impressions",
    "clicks",
    "conversions",
    "spend_micros",
    "conversion_value_micros",
];

/// The SELECT expression of a dimension; `tz` is the quoted zone name.
fn dimension_expr(d: Dimension, tz: &str) -> String {
    match d {
        Dimension::Hour => "toUInt32(hour)".into(),
        Dimension::Day => format!("toDate(toTimeZone(hour, {tz}))"),
        Dimension::Advertiser => "advertiser_id".into(),
        Dimension::Campaign => "campaign_id".into(),
        Dimension::LineItem => "line_item_id".into(),
        Dimension::Creative => "creative_id".into(),
        Dimension::Placement => "placement_id".into(),
        Dimension::Site => "site_id".into(),
        Dimension::Country => "country".into(),
        Dimension::DeviceType => "device_type".into(),
        Dimension::Deal => "deal_id".into(),
    }
}

/// The SQL of a report over `database.rollup_hourly`, answering in RowBinary: one column per
/// dimension (`UInt32` hour start, `Date` day, `String` ids), then the eleven `Int64` sums.
pub fn report_sql(database: &str, q: &ReportQuery) -> Result<String> {
    q.validate()?;
    crate::store::check_identifier(database).map_err(StoreError::Settings)?;
    let tz = quote(q.time_zone.name());
    let (from, to) = q.hour_range();
    let mut sql = String::from("SELECT ");
    for (i, d) in q.dimensions.iter().enumerate() {
        let _ = write!(sql, "{} AS d{i}, ", dimension_expr(*d, &tz));
    }
    let sums: Vec<String> = SUMS.iter().map(|s| format!("sum({s}) AS {s}")).collect();
    sql.push_str(&sums.join(", "));
    let _ = write!(
        sql,
        " FROM {database}.rollup_hourly WHERE hour >= toDateTime({from}, 'UTC') AND hour < toDateTime({to}, 'UTC')"
    );
    for (field, values) in q.filters.active() {
        let list: Vec<String> = values.iter().map(|v| quote(v)).collect();
        let _ = write!(sql, " AND {} IN ({})", field.column(), list.join(", "));
    }
    if !q.dimensions.is_empty() {
        let groups: Vec<String> = (0..q.dimensions.len()).map(|i| format!("d{i}")).collect();
        let _ = write!(sql, " GROUP BY {}", groups.join(", "));
    }
    Ok(sql)
}

/// Answers a report from ClickHouse.
pub async fn query(ch: &ClickHouse, q: &ReportQuery) -> Result<Vec<ReportRow>> {
    let sql = report_sql(ch.database(), q)?;
    let bytes = ch.fetch_raw(&sql, "RowBinary").await?;
    decode_rows(&bytes, &q.dimensions)
}

/// Decodes the RowBinary answer of [`report_sql`], drops all-zero rows and sorts.
pub fn decode_rows(bytes: &[u8], dims: &[Dimension]) -> Result<Vec<ReportRow>> {
    let mut r = Reader { bytes, pos: 0 };
    let mut rows = Vec::new();
    while r.pos < bytes.len() {
        let mut dimensions = Vec::with_capacity(dims.len());
        for d in dims {
            dimensions.push(match d {
                Dimension::Hour => DimensionValue::Hour(i64::from(r.u32()?)),
                Dimension::Day => {
                    let days = r.u16()?;
                    let day = NaiveDate::from_num_days_from_ce_opt(719_163 + i32::from(days))
                        .ok_or_else(|| StoreError::Protocol(format!("day {days}")))?;
                    DimensionValue::Day(day)
                }
                _ => DimensionValue::Id(r.string()?),
            });
        }
        let mut s = [0i64; 11];
        for v in &mut s {
            *v = r.i64()?;
        }
        let totals = Totals {
            requests: s[0],
            decisions: s[1],
            bids: s[2],
            wins: s[3],
            losses: s[4],
            billed: s[5],
            impressions: s[6],
            clicks: s[7],
            conversions: s[8],
            spend_micros: s[9],
            conversion_value_micros: s[10],
        };
        if !totals.is_zero() {
            rows.push(ReportRow { dimensions, totals });
        }
    }
    rows.sort_by(|a, b| a.dimensions.cmp(&b.dimensions));
    Ok(rows)
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8]> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.bytes.len());
        let Some(end) = end else { return Err(StoreError::Protocol("report answer cut short".into())) };
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn u16(&mut self) -> Result<u16> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn i64(&mut self) -> Result<i64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(i64::from_le_bytes(a))
    }

    fn string(&mut self) -> Result<String> {
        let mut len: u64 = 0;
        let mut shift = 0;
        loop {
            let b = self.take(1)?[0];
            len |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                break;
            }
            shift += 7;
            if shift > 63 {
                return Err(StoreError::Protocol("bad string length".into()));
            }
        }
        let b = self.take(len as usize)?;
        Ok(String::from_utf8_lossy(b).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Metric, ReportFilters};
    use chrono::DateTime;

    fn q() -> ReportQuery {
        ReportQuery {
            from: DateTime::from_timestamp(3599, 0).expect("t"),
            to: DateTime::from_timestamp(7200, 0).expect("t"),
            time_zone: chrono_tz::Asia::Kolkata,
            dimensions: vec![Dimension::Day, Dimension::Advertiser],
            metrics: vec![Metric::Clicks],
            filters: ReportFilters { advertiser_id: vec!["a'b".into(), "c".into()], ..ReportFilters::default() },
        }
    }

    #[test]
    fn sql_uses_whitelisted_expressions_and_quoted_values() {
        let sql = report_sql("adp", &q()).expect("sql");
        assert!(
            sql.starts_with(
                "SELECT toDate(toTimeZone(hour, 'Asia/Kolkata')) AS d0, advertiser_id AS d1, sum(requests)"
            ),
            "{sql}"
        );
        assert!(sql.contains("hour >= toDateTime(3600, 'UTC') AND hour < toDateTime(7200, 'UTC')"), "{sql}");
        assert!(sql.contains("AND advertiser_id IN ('a\\'b', 'c') GROUP BY d0, d1"), "{sql}");
        assert!(report_sql("adp; DROP", &q()).is_err());
    }

    #[test]
    fn decodes_and_sorts_rows() {
        let mut b = Vec::new();
        for (day, adv, clicks) in [(19_724u16, "z", 1i64), (19_723, "a", 2), (19_723, "b", 0)] {
            b.extend_from_slice(&day.to_le_bytes());
            b.push(adv.len() as u8);
            b.extend_from_slice(adv.as_bytes());
            for i in 0..11 {
                b.extend_from_slice(&(if i == 7 { clicks } else { 0 }).to_le_bytes());
            }
        }
        let rows = decode_rows(&b, &[Dimension::Day, Dimension::Advertiser]).expect("rows");
        assert_eq!(rows.len(), 2, "the all-zero row is dropped");
        assert_eq!(rows[0].labels(chrono_tz::UTC), vec!["2024-01-01", "a"]);
        assert_eq!(rows[0].totals.clicks, 2);
        assert!(decode_rows(&b[..b.len() - 1], &[Dimension::Day, Dimension::Advertiser]).is_err());
    }
}
