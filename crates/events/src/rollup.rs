//! rollup: in-process delivery counts per UTC hour and line item, fed by the event log's writer
//! (or its replay) — never by the request path, so a plain mutex is fine here. It counts what it
//! is given; deduplication of retried events belongs upstream.

use crate::local_log::EventObserver;
use adp_domain::events::{Event, EventKind, EventRef};
use adp_domain::{DeliveryRow, Micros};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

const MILLIS_PER_HOUR: i64 = 3_600_000;

/// Counts of one line item in one hour (or summed over many).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryTotals {
    pub decisions: u64,
    pub impressions: u64,
    pub clicks: u64,
    pub bids: u64,
    pub wins: u64,
    pub conversions: u64,
    pub spend_micros: Micros,
}

impl DeliveryTotals {
    fn add_event(&mut self, event: &EventRef<'_>) {
        match event.kind {
            EventKind::Decision => self.decisions += 1,
            EventKind::Impression => self.impressions += 1,
            EventKind::Click => self.clicks += 1,
            EventKind::Bid => self.bids += 1,
            EventKind::Win => self.wins += 1,
            // OpenRTB 2.6: the billing notice fires when the impression is billable (rendered).
            EventKind::Billing => self.impressions += 1,
            EventKind::Conversion => self.conversions += 1,
            EventKind::Loss | EventKind::Request => {}
        }
        self.spend_micros = self.spend_micros.saturating_add(event.cost_micros);
    }

    fn add(&mut self, other: &DeliveryTotals) {
        self.decisions += other.decisions;
        self.impressions += other.impressions;
        self.clicks += other.clicks;
        self.bids += other.bids;
        self.wins += other.wins;
        self.conversions += other.conversions;
        self.spend_micros = self.spend_micros.saturating_add(other.spend_micros);
    }
}

/// Cells by UTC hour start, then by line item id (found without allocating; see `apply`).
type Cells = BTreeMap<DateTime<Utc>, Vec<(String, DeliveryTotals)>>;

/// Delivery per (UTC hour start, line item id). Thread-safe; plug it into `LocalLog` as an
/// `Arc<DeliveryRollup>` observer.
#[derive(Debug, Default)]
pub struct DeliveryRollup {
    cells: Mutex<Cells>,
    /// The same events by hour and every report dimension, for `GET /api/v1/reports` in
    /// embedded mode (the same semantics as the ClickHouse backend).
    report: Mutex<adp_analytics::report::Rollup>,
    /// Events whose time cannot be placed in an hour (out of chrono's range).
    skipped: AtomicU64,
}

/// The start of the UTC hour holding `event_time_ms`, if it is a representable time.
pub fn hour_start(event_time_ms: i64) -> Option<DateTime<Utc>> {
    let hour = event_time_ms.div_euclid(MILLIS_PER_HOUR);
    DateTime::from_timestamp(hour.checked_mul(3600)?, 0)
}

impl DeliveryRollup {
    pub fn new() -> Self {
        Self::default()
    }

    fn cells(&self) -> MutexGuard<'_, Cells> {
        // The map is consistent after every statement, so a panic elsewhere cannot poison it.
        self.cells.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts one event under its event-time hour. Events without a line item (requests,
    /// conversions credited to no ad) are not delivery, but they are in the report rollup.
    pub fn apply(&self, event: &EventRef<'_>) {
        self.apply_all(std::slice::from_ref(event));
    }

    /// [`DeliveryRollup::apply`] of each of `events`, taking each lock once.
    pub fn apply_all(&self, events: &[EventRef<'_>]) {
        {
            let mut report = self.report.lock().unwrap_or_else(PoisonError::into_inner);
            for event in events {
                report.add_ref(event);
            }
        }
        let mut cells = None;
        for event in events.iter().filter(|e| !e.line_item_id.is_empty()) {
            let Some(hour) = hour_start(event.event_time_ms) else {
                self.skipped.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(event_id = ?event.id, event_time_ms = event.event_time_ms, "event time out of range; not rolled up");
                continue;
            };
            // An hour holds the few line items that delivered in it: a scan with a cheap string
            // comparison beats a map keyed by owned strings (an allocation per event).
            let cells = cells.get_or_insert_with(|| self.cells());
            let line_items = cells.entry(hour).or_default();
            match line_items.iter_mut().find(|(id, _)| adp_analytics::report::same(id, event.line_item_id)) {
                Some((_, t)) => t.add_event(event),
                None => {
                    let mut t = DeliveryTotals::default();
                    t.add_event(event);
                    line_items.push((event.line_item_id.to_owned(), t));
                }
            }
        }
    }

    /// [`DeliveryRollup::apply`] of an owned event.
    pub fn apply_event(&self, event: &Event) {
        self.apply(&EventRef::of(event));
    }

    /// Rows whose hour start is in `[from, to)`, sorted by hour, then line item id.
    pub fn query(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<DeliveryRow> {
        if from >= to {
            return Vec::new();
        }
        let mut rows: Vec<DeliveryRow> = self
            .cells()
            .range((Bound::Included(from), Bound::Excluded(to)))
            .flat_map(|(hour, line_items)| {
                line_items.iter().map(move |(line_item_id, t)| DeliveryRow {
                    hour: *hour,
                    line_item_id: line_item_id.clone(),
                    decisions: t.decisions,
                    impressions: t.impressions,
                    clicks: t.clicks,
                    bids: t.bids,
                    wins: t.wins,
                    conversions: t.conversions,
                    spend_micros: t.spend_micros,
                })
            })
            .collect();
        rows.sort_by(|a, b| (a.hour, &a.line_item_id).cmp(&(b.hour, &b.line_item_id)));
        rows
    }

    /// Answers a report query from the in-process report rollup.
    pub fn report(
        &self,
        query: &adp_analytics::report::ReportQuery,
    ) -> Result<Vec<adp_analytics::report::ReportRow>, adp_analytics::report::ReportError> {
        self.report.lock().unwrap_or_else(PoisonError::into_inner).query(query)
    }

    /// Everything counted so far, over all hours and line items.
    pub fn totals(&self) -> DeliveryTotals {
        let mut sum = DeliveryTotals::default();
        for t in self.cells().values().flatten().map(|(_, t)| t) {
            sum.add(t);
        }
        sum
    }

    /// Events not counted because their time could not be placed in an hour.
    pub fn skipped(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }
}

impl EventObserver for DeliveryRollup {
    fn observe(&self, event: &EventRef<'_>) {
        self.apply(event);
    }

    fn observe_all(&self, events: &[EventRef<'_>]) {
        self.apply_all(events);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, h, m, 0).single().expect("valid time")
    }

    fn event(kind: EventKind, line_item: &str, time: DateTime<Utc>, cost: Micros) -> Event {
        Event {
            id: uuid::Uuid::now_v7().hyphenated().to_string(),
            kind,
            event_time_ms: time.timestamp_millis(),
            receive_time_ms: time.timestamp_millis() + 5,
            request_id: "req".into(),
            decision_id: String::new(),
            advertiser_id: "adv".into(),
            campaign_id: "cmp".into(),
            line_item_id: line_item.into(),
            creative_id: "cr".into(),
            publisher_id: "pub".into(),
            site_id: "site".into(),
            placement_id: "pl".into(),
            deal_id: None,
            user_key: 7,
            country: None,
            device_type: None,
            price_micros: 2_500_000,
            cost_micros: cost,
            currency: "EUR".into(),
            reason: None,
            stands_for_request: false,
        }
    }

    fn row(hour: DateTime<Utc>, li: &str, d: u64, i: u64, c: u64, spend: i64) -> DeliveryRow {
        DeliveryRow {
            hour,
            line_item_id: li.into(),
            decisions: d,
            impressions: i,
            clicks: c,
            bids: 0,
            wins: 0,
            conversions: 0,
            spend_micros: spend,
        }
    }

    #[test]
    fn aggregates_by_hour_and_line_item_across_kinds() {
        let r = DeliveryRollup::new();
        // hour 10: li-b decision + impression + click; li-a two impressions
        r.apply_event(&event(EventKind::Decision, "li-b", at(10, 0), 0));
        r.apply_event(&event(EventKind::Impression, "li-b", at(10, 30), 2_500));
        r.apply_event(&event(EventKind::Click, "li-b", at(10, 59), 400_000));
        r.apply_event(&event(EventKind::Impression, "li-a", at(10, 1), 2_500));
        r.apply_event(&event(EventKind::Impression, "li-a", at(10, 2), 3_000));
        // 10:59:59.999 still belongs to hour 10; 11:00 does not
        let mut last_ms = event(EventKind::Impression, "li-a", at(10, 0), 1);
        last_ms.event_time_ms = at(11, 0).timestamp_millis() - 1;
        r.apply_event(&last_ms);
        r.apply_event(&event(EventKind::Impression, "li-a", at(11, 0), 10));

        let rows = r.query(at(0, 0), at(23, 0));
        assert_eq!(
            rows,
            vec![
                row(at(10, 0), "li-a", 0, 3, 0, 5_501),
                row(at(10, 0), "li-b", 1, 1, 1, 402_500),
                row(at(11, 0), "li-a", 0, 1, 0, 10),
            ]
        );
        assert_eq!(
            r.totals(),
            DeliveryTotals {
                decisions: 1,
                impressions: 5,
                clicks: 1,
                bids: 0,
                wins: 0,
                conversions: 0,
                spend_micros: 408_011
            }
        );
    }

    #[test]
    fn query_range_is_half_open_on_hour_start() {
        let r = DeliveryRollup::new();
        for h in [9, 10, 11, 12] {
            r.apply_event(&event(EventKind::Impression, "li", at(h, 15), 1));
        }
        let hours = |rows: Vec<DeliveryRow>| rows.into_iter().map(|r| r.hour).collect::<Vec<_>>();
        assert_eq!(hours(r.query(at(10, 0), at(12, 0))), vec![at(10, 0), at(11, 0)]);
        // a `from` inside hour 10 excludes it: the row's hour start is before `from`
        assert_eq!(hours(r.query(at(10, 1), at(12, 1))), vec![at(11, 0), at(12, 0)]);
        assert!(r.query(at(11, 0), at(11, 0)).is_empty());
        assert!(r.query(at(12, 0), at(10, 0)).is_empty(), "an inverted range is empty, not a panic");
    }

    #[test]
    fn hour_start_floors_before_the_epoch_and_skips_out_of_range_times() {
        assert_eq!(hour_start(-1), DateTime::from_timestamp(-3600, 0));
        assert_eq!(hour_start(3_600_000), DateTime::from_timestamp(3600, 0));
        let r = DeliveryRollup::new();
        let mut e = event(EventKind::Impression, "li", at(10, 0), 1);
        e.event_time_ms = i64::MAX;
        r.apply_event(&e);
        assert_eq!(r.skipped(), 1);
        assert_eq!(r.totals(), DeliveryTotals::default());
    }

    #[test]
    fn spend_saturates_instead_of_overflowing() {
        let r = DeliveryRollup::new();
        r.apply_event(&event(EventKind::Click, "li", at(10, 0), i64::MAX));
        r.apply_event(&event(EventKind::Click, "li", at(10, 1), 5));
        assert_eq!(r.totals().spend_micros, i64::MAX);
        assert_eq!(r.totals().clicks, 2);
    }
}
