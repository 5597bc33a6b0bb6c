# Event schema v1 in Cap'n Proto: the same record as proto/event_v1.proto, field for field.
#
# Kept for the codec comparison (benches/codec.rs, BENCH.md); the wire format the crate reads and
# writes is the Protobuf one (see the crate docs for why). Regenerate the Rust code with regen.sh.
@0xa6a398c7934d03c9;

enum EventKind {
  unspecified @0;
  request @1;
  decision @2;
  impression @3;
  click @4;
  bid @5;
  win @6;
  loss @7;
  billing @8;
  conversion @9;
}

enum DeviceType {
  unspecified @0;  # the event has no device type
  phone @1;
  tablet @2;
  desktop @3;
  connectedTv @4;
  setTopBox @5;
  connectedDevice @6;
  ooh @7;
}

struct Event {
  # A lower-case hyphenated UUID travels as its 16 bytes (big endian, split in two words); any
  # other id as text.
  id :union {
    uuid :group {
      hi @0 :UInt64;
      lo @1 :UInt64;
    }
    text @2 :Text;
  }
  kind @3 :EventKind;
  eventTimeMs @4 :Int64;
  receiveTimeMs @5 :Int64;
  requestId @6 :Text;
  decisionId @7 :Text;
  advertiserId @8 :Text;
  campaignId @9 :Text;
  lineItemId @10 :Text;
  creativeId @11 :Text;
  publisherId @12 :Text;
  siteId @13 :Text;
  placementId @14 :Text;
  userKey @15 :UInt64;
  priceMicros @16 :Int64;
  costMicros @17 :Int64;
  currency @18 :Text;
  # Optional texts: a null pointer is absent, an empty text is the empty string.
  dealId @19 :Text;
  country @20 :Text;
  deviceType @21 :DeviceType;
  reason @22 :Text;
  # A decision that also stands for its placement's request event (see event_v1.proto).
  standsForRequest @23 :Bool;
}
