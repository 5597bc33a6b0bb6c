//! What the fuzz targets share: a `Serving` on a synthetic catalog whose events go nowhere.

use adp_domain::{EventSink, SinkError, SinkStats};
use adp_engine::delivery::CounterRegistry;
use adp_engine::snapshot::Snapshot;
use adp_engine::synth;
use adp_server::serving::{Serving, ServingSettings};
use adp_server::tracking::UrlSigner;
use std::sync::Arc;

struct Discard;
impl EventSink for Discard {
    fn submit(&self, _: adp_domain::events::Event) -> Result<(), SinkError> {
        Ok(())
    }
    fn stats(&self) -> SinkStats {
        SinkStats::default()
    }
}

/// A serving instance on a synthetic inventory catalog of `line_items` line items.
pub fn serving(line_items: usize) -> Serving {
    let signer = UrlSigner::new(vec![("fuzz".into(), b"fuzz-signing-key-0123456789".to_vec())]).expect("key");
    let s = Serving::new(
        ServingSettings::default(),
        signer,
        Arc::new(adp_store::InProcessFrequency::new(100_000, 8)),
        Arc::new(Discard),
        Arc::new(adp_events::DeliveryRollup::new()),
    );
    let records = synth::catalog(line_items, 1, synth::Profile::Inventory);
    s.swap_snapshot(Snapshot::build(1, &records, &CounterRegistry::default()));
    s
}
