//! Malformed input: cut records, flipped bytes and random bytes are errors, never panics, in the
//! wire format and in the Cap'n Proto comparison codec.

mod support;

use adp_eventwire::capnp_v1::{self, Packing};
use adp_eventwire::{
    decode, decode_batch, decode_ref, encode, partition_of, record_slices, records, schema_version, DecodeError, MAGIC,
    SCHEMA_VERSION,
};
use proptest::prelude::*;
use support::{arb_event, full_event, minimal_event, ALL_KINDS};

#[test]
fn every_cut_of_a_record_is_an_error() {
    for event in [full_event(ALL_KINDS[4]), minimal_event(ALL_KINDS[5])] {
        let mut record = Vec::new();
        encode(&event, &mut record);
        for len in 0..record.len() {
            assert!(decode(&record[..len]).is_err(), "cut at {len} of {}", record.len());
        }
        for packing in [Packing::Unpacked, Packing::Packed] {
            let mut record = Vec::new();
            capnp_v1::encode(&event, packing, &mut record).expect("writes");
            for len in 0..record.len() {
                assert!(capnp_v1::decode(&record[..len], packing).is_err(), "{packing:?} cut at {len}");
            }
        }
    }
}

#[test]
fn the_formats_refuse_each_others_records() {
    let event = full_event(ALL_KINDS[2]);
    let mut default = Vec::new();
    encode(&event, &mut default);
    let mut capnp = Vec::new();
    capnp_v1::encode(&event, Packing::Unpacked, &mut capnp).expect("writes");
    assert!(matches!(decode(&capnp), Err(DecodeError::BadMagic { .. })));
    assert!(matches!(capnp_v1::decode(&default, Packing::Unpacked), Err(DecodeError::BadMagic { .. })));
}

#[test]
fn a_json_log_record_is_not_mistaken_for_a_binary_one() {
    // The local log's JSON payloads start with version byte 1, then `{`.
    let json = serde_json::to_vec(&full_event(ALL_KINDS[1])).expect("serializes");
    assert_eq!(decode(&json), Err(DecodeError::BadMagic { found: b'{', expected: MAGIC }));
    let payload = [&[1u8][..], &json].concat();
    assert_eq!(schema_version(&payload), Err(DecodeError::BadMagic { found: 1, expected: MAGIC }));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode(&bytes);
        prop_assert_eq!(decode_ref(&bytes).map(|e| e.to_event()), decode(&bytes));
        let _ = decode_batch(&bytes);
        let _ = records(&bytes).count();
        let _ = capnp_v1::decode(&bytes, Packing::Unpacked);
        let _ = capnp_v1::decode(&bytes, Packing::Packed);
    }

    #[test]
    fn random_bodies_behind_a_valid_envelope_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut record = vec![MAGIC, SCHEMA_VERSION];
        prost::encode_length_delimiter(body.len(), &mut record).expect("a Vec has room");
        record.extend_from_slice(&body);
        let _ = decode(&record);
        prop_assert_eq!(decode_ref(&record).map(|e| e.to_event()), decode(&record));
        let capnp = [&[capnp_v1::CAPNP_MAGIC, SCHEMA_VERSION][..], &body].concat();
        let _ = capnp_v1::decode(&capnp, Packing::Unpacked);
        let _ = capnp_v1::decode(&capnp, Packing::Packed);
    }

    /// A record with one byte changed either decodes (to some event) or is an error.
    #[test]
    fn a_flipped_byte_never_panics(event in arb_event(), at in any::<prop::sample::Index>(), xor in 1u8..) {
        let mut record = Vec::new();
        encode(&event, &mut record);
        let i = at.index(record.len());
        record[i] ^= xor;
        let _ = decode(&record);
        // The borrowing reader accepts and refuses the same records, with the same results.
        prop_assert_eq!(decode_ref(&record).map(|e| e.to_event()), decode(&record));
        let mut capnp = Vec::new();
        capnp_v1::encode(&event, Packing::Unpacked, &mut capnp).expect("writes");
        let i = at.index(capnp.len());
        capnp[i] ^= xor;
        let _ = capnp_v1::decode(&capnp, Packing::Unpacked);
    }

    /// A Kafka message of the forwarder (a batch of records) with one byte changed, or cut:
    /// `record_slices` never panics, cuts the message where `records` reads it (the slices are
    /// its prefix, one after another), and each slice decodes as `records` says.
    #[test]
    fn a_damaged_batch_is_cut_where_records_reads_it(
        events in proptest::collection::vec(arb_event(), 1..5),
        at in any::<prop::sample::Index>(),
        xor in any::<u8>(),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut batch = Vec::new();
        for e in &events {
            encode(e, &mut batch);
        }
        let i = at.index(batch.len());
        batch[i] ^= xor;
        let batch = &batch[..cut.index(batch.len() + 1)];
        let slices: Vec<_> = record_slices(batch).collect();
        let mut at = 0;
        for slice in slices.iter().flatten() {
            prop_assert_eq!(*slice, &batch[at..at + slice.len()]);
            at += slice.len();
        }
        let via_slices: Vec<_> = slices.into_iter().map(|r| r.and_then(decode)).collect();
        prop_assert_eq!(via_slices, records(batch).collect::<Vec<_>>());
        for slice in record_slices(batch).flatten() {
            if let Ok(view) = decode_ref(slice) {
                prop_assert!((0..12).contains(&partition_of(&view, 12)));
            }
        }
    }

    #[test]
    fn a_cut_record_is_an_error(event in arb_event(), at in any::<prop::sample::Index>()) {
        let mut record = Vec::new();
        encode(&event, &mut record);
        let len = at.index(record.len());
        prop_assert!(decode(&record[..len]).is_err());
    }
}
