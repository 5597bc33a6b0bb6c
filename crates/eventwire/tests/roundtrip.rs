//! Round trips: every event comes back from its record exactly, in the wire format and in the
//! Cap'n Proto comparison codec; a batch gives back its events in order.

mod support;

use adp_domain::events::{Event, EventRef, IdRef};
use adp_eventwire::capnp_v1::{self, Packing};
use adp_eventwire::{
    decode, decode_batch, decode_ref, encode, encode_batch, encode_ref, encoded_len, encoded_len_ref, records,
};
use capnp::message::ScratchSpaceHeapAllocator;
use proptest::prelude::*;
use support::{arb_event, full_event, minimal_event, ALL_DEVICES, ALL_KINDS};

fn roundtrip(event: &Event) -> Event {
    let mut out = Vec::new();
    encode(event, &mut out);
    assert_eq!(out.len(), encoded_len(event));
    decode(&out).expect("a record just written decodes")
}

fn capnp_roundtrip(event: &Event, packing: Packing) -> Event {
    let mut out = Vec::new();
    capnp_v1::encode(event, packing, &mut out).expect("writing to a Vec does not fail");
    capnp_v1::decode(&out, packing).expect("a record just written decodes")
}

#[test]
fn every_kind_round_trips_with_all_fields_set_and_with_the_optional_ones_absent() {
    for kind in ALL_KINDS {
        for event in [full_event(kind), minimal_event(kind)] {
            assert_eq!(roundtrip(&event), event);
            assert_eq!(capnp_roundtrip(&event, Packing::Unpacked), event);
            assert_eq!(capnp_roundtrip(&event, Packing::Packed), event);
        }
    }
}

#[test]
fn every_device_type_round_trips() {
    for device in ALL_DEVICES {
        let event = Event { device_type: Some(device), ..full_event(ALL_KINDS[0]) };
        assert_eq!(roundtrip(&event), event);
        assert_eq!(capnp_roundtrip(&event, Packing::Unpacked), event);
    }
}

#[test]
fn empty_optional_strings_stay_apart_from_absent_ones() {
    let event = Event {
        deal_id: Some(String::new()),
        country: Some(String::new()),
        reason: Some(String::new()),
        ..minimal_event(ALL_KINDS[1])
    };
    assert_eq!(roundtrip(&event), event);
    assert_eq!(capnp_roundtrip(&event, Packing::Unpacked), event);
    assert_eq!(capnp_roundtrip(&event, Packing::Packed), event);
}

#[test]
fn a_uuid_v7_id_costs_16_bytes_and_comes_back_as_the_same_string() {
    let uuid = uuid::Uuid::now_v7().to_string();
    let as_uuid = Event { id: uuid.clone(), ..minimal_event(ALL_KINDS[0]) };
    // Same length, but upper case: the 16 bytes would not give it back, so it stays text.
    let as_text = Event { id: uuid.to_uppercase(), ..minimal_event(ALL_KINDS[0]) };
    assert_eq!(roundtrip(&as_uuid).id, uuid);
    assert_eq!(roundtrip(&as_text).id, uuid.to_uppercase());
    assert_eq!(encoded_len(&as_text) - encoded_len(&as_uuid), 36 - 16);
}

#[test]
fn a_borrowed_event_with_a_binary_uuid_id_is_written_as_its_owned_twin() {
    let uuid = uuid::Uuid::now_v7();
    for kind in ALL_KINDS {
        for owned in [full_event(kind), minimal_event(kind)] {
            let owned = Event { id: uuid.to_string(), ..owned };
            let borrowed = EventRef { id: IdRef::Uuid(uuid.into_bytes()), ..EventRef::of(&owned) };
            let (mut a, mut b) = (Vec::new(), Vec::new());
            encode(&owned, &mut a);
            encode_ref(&borrowed, &mut b);
            assert_eq!(a, b, "{kind:?}");
            assert_eq!(encoded_len_ref(&borrowed), b.len());
            assert_eq!(decode_ref(&b), Ok(borrowed));
            assert_eq!(decode(&b).map(|e| e.id), Ok(uuid.to_string()));
        }
    }
}

#[test]
fn a_batch_gives_back_its_events_in_order() {
    let events: Vec<Event> = ALL_KINDS.iter().flat_map(|&k| [full_event(k), minimal_event(k)]).collect();
    let mut batch = Vec::new();
    encode_batch(&events, &mut batch);
    assert_eq!(batch.len(), events.iter().map(encoded_len).sum::<usize>());
    assert_eq!(decode_batch(&batch), Ok(events.clone()));
    assert_eq!(records(&batch).count(), events.len());
}

#[test]
fn capnp_scratch_space_is_reused_cleanly_across_events_of_every_size() {
    // Small enough that the larger events spill into a second segment. A field left unset after a
    // larger event would read back the stale value if the used part were not zeroed.
    let mut buffer = vec![0u8; 256];
    let mut scratch = ScratchSpaceHeapAllocator::new(&mut buffer);
    let mut long = full_event(ALL_KINDS[7]);
    long.reason = Some("r".repeat(600));
    let events: Vec<Event> = ALL_KINDS.iter().flat_map(|&k| [full_event(k), minimal_event(k), long.clone()]).collect();
    for event in events.iter().chain(events.iter().rev()) {
        let mut out = Vec::new();
        capnp_v1::encode_with_scratch(event, Packing::Unpacked, &mut scratch, &mut out).expect("writes");
        assert_eq!(capnp_v1::decode(&out, Packing::Unpacked).as_ref(), Ok(event));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn any_event_round_trips(event in arb_event()) {
        prop_assert_eq!(roundtrip(&event), event);
    }

    #[test]
    fn any_event_round_trips_through_capnp(event in arb_event()) {
        prop_assert_eq!(capnp_roundtrip(&event, Packing::Unpacked), event.clone());
        prop_assert_eq!(capnp_roundtrip(&event, Packing::Packed), event);
    }

    #[test]
    fn any_batch_round_trips(events in proptest::collection::vec(arb_event(), 0..8)) {
        let mut batch = Vec::new();
        encode_batch(&events, &mut batch);
        prop_assert_eq!(decode_batch(&batch), Ok(events));
    }
}
