//! json_out: the decide answer written as JSON by hand, byte for byte what serde_json writes for
//! the same value (a test holds the two together), without serde's per-field machinery. Short
//! strings are scanned eight bytes at a time for the few bytes JSON must escape; long ones
//! (markup, tracking URLs) go through sonic-rs's SIMD escaping.

use crate::serving::{AdResponse, DecideResponse, PlacementDecision};
use adp_domain::Format;

/// Appends `s` as a JSON string: quoted, with `"`, `\` and control characters escaped the way
/// serde_json escapes them.
pub fn put_str(out: &mut Vec<u8>, s: &str) {
    // Long strings (markup, URLs): sonic-rs's SIMD scan is the faster one.
    if s.len() >= LONG {
        let start = out.len();
        if sonic_rs::to_writer(&mut *out, s).is_ok() {
            return;
        }
        // Writing into a Vec cannot fail; should it, nothing half-written stays.
        out.truncate(start);
    }
    put_str_swar(out, s);
}

/// From this many bytes on a string is written by sonic-rs.
const LONG: usize = 64;

fn put_str_swar(out: &mut Vec<u8>, s: &str) {
    out.reserve(s.len() + 2);
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut from = 0;
    let mut i = 0;
    while i < bytes.len() {
        // Whole words at a time up to the first byte to escape (the lowest flagged byte of a
        // word is exact; only bytes above it can be flagged wrongly).
        if let Some(word) = bytes.get(i..i + 8) {
            let w = u64::from_le_bytes([word[0], word[1], word[2], word[3], word[4], word[5], word[6], word[7]]);
            let flagged = escape_mask(w);
            if flagged == 0 {
                i += 8;
                continue;
            }
            i += (flagged.trailing_zeros() / 8) as usize;
        }
        let b = bytes[i];
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0C => b"\\f",
            0x00..=0x1F => {
                out.extend_from_slice(&bytes[from..i]);
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(&[b'\\', b'u', b'0', b'0', HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xF)]]);
                i += 1;
                from = i;
                continue;
            }
            _ => {
                i += 1;
                continue;
            }
        };
        out.extend_from_slice(&bytes[from..i]);
        out.extend_from_slice(esc);
        i += 1;
        from = i;
    }
    out.extend_from_slice(&bytes[from..]);
    out.push(b'"');
}

/// The high bit of each byte of `w` that is `"`, `\` or below 0x20. The lowest set bit is always
/// right; a byte of 0x80 or more above a flagged one may be flagged too (the caller then looks at
/// that byte itself).
fn escape_mask(w: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero_byte = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let below_space = w.wrapping_sub(ONES * 0x20) & !w & HIGH;
    below_space | zero_byte(w ^ (ONES * u64::from(b'"'))) | zero_byte(w ^ (ONES * u64::from(b'\\')))
}

fn put_opt_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => put_str(out, s),
        None => out.extend_from_slice(b"null"),
    }
}

fn put_int(out: &mut Vec<u8>, n: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

fn format_name(f: Format) -> &'static str {
    match f {
        Format::Banner => "banner",
        Format::Video => "video",
        Format::Native => "native",
    }
}

fn put_ad(out: &mut Vec<u8>, ad: &AdResponse) {
    out.extend_from_slice(b"{\"line_item_id\":");
    put_str(out, &ad.line_item_id);
    out.extend_from_slice(b",\"creative_id\":");
    put_str(out, &ad.creative_id);
    out.extend_from_slice(b",\"campaign_id\":");
    put_str(out, &ad.campaign_id);
    out.extend_from_slice(b",\"advertiser_id\":");
    put_str(out, &ad.advertiser_id);
    out.extend_from_slice(b",\"adomain\":[");
    for (i, d) in ad.adomain.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        put_str(out, d);
    }
    out.extend_from_slice(b"],\"format\":\"");
    out.extend_from_slice(format_name(ad.format).as_bytes());
    out.extend_from_slice(b"\",\"price_micros\":");
    put_int(out, ad.price_micros);
    out.extend_from_slice(b",\"markup\":");
    put_str(out, &ad.markup);
    out.extend_from_slice(b",\"width\":");
    put_int(out, ad.width);
    out.extend_from_slice(b",\"height\":");
    put_int(out, ad.height);
    out.extend_from_slice(b",\"impression_url\":");
    put_str(out, &ad.impression_url);
    out.extend_from_slice(b",\"click_url\":");
    put_str(out, &ad.click_url);
    out.push(b'}');
}

fn put_decision(out: &mut Vec<u8>, d: &PlacementDecision) {
    out.extend_from_slice(b"{\"placement_id\":");
    put_opt_str(out, d.placement_id.as_deref());
    out.extend_from_slice(b",\"ad\":");
    match &d.ad {
        Some(ad) => put_ad(out, ad),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"no_fill_reason\":");
    put_opt_str(out, d.no_fill_reason);
    out.push(b'}');
}

impl DecideResponse {
    /// The answer as JSON: what `serde_json::to_vec(self)` gives, written directly.
    pub fn to_json(&self) -> Vec<u8> {
        let ads: usize =
            self.decisions.iter().filter_map(|d| d.ad.as_ref()).map(|a| a.markup.len() + 3 * a.click_url.len()).sum();
        let mut out = Vec::with_capacity(256 + ads + ads / 8);
        out.extend_from_slice(b"{\"request_id\":");
        put_str(&mut out, &self.request_id);
        out.extend_from_slice(b",\"decisions\":[");
        for (i, d) in self.decisions.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            put_decision(&mut out, d);
        }
        out.extend_from_slice(b"]}");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ad(markup: &str, id: &str) -> AdResponse {
        AdResponse {
            line_item_id: id.into(),
            creative_id: "cr-\"1\"".into(),
            campaign_id: "c\\1".into(),
            advertiser_id: "adv".into(),
            adomain: vec!["a.example".into(), "b.example".into()],
            format: Format::Video,
            price_micros: -12,
            markup: markup.into(),
            width: 300,
            height: 250,
            impression_url: "http://x/v1/t/imp?p=abc&s=def".into(),
            click_url: "http://x/v1/t/click?p=abc&s=def".into(),
        }
    }

    fn response(markup: &str, id: &str) -> DecideResponse {
        DecideResponse {
            request_id: "r-1".into(),
            decisions: vec![
                PlacementDecision {
                    placement_id: Some("demo-mrec".into()),
                    ad: Some(ad(markup, id)),
                    no_fill_reason: None,
                },
                PlacementDecision { placement_id: None, ad: None, no_fill_reason: Some("frequency_capped") },
                PlacementDecision {
                    placement_id: Some("x".into()),
                    ad: Some(AdResponse { adomain: vec![], format: Format::Native, ..ad("", "") }),
                    no_fill_reason: None,
                },
            ],
        }
    }

    #[test]
    fn writes_what_serde_json_writes() {
        let markup = "<a href=\"http://x/?a=1&amp;b=2\">\u{7f}ünï\t\r\n\u{1}\u{1f}\\</a>\u{8}\u{c}\"\"\"\"\"\"\"\"";
        let r = response(markup, "li");
        assert_eq!(String::from_utf8(r.to_json()).unwrap(), serde_json::to_string(&r).unwrap());
        let empty = DecideResponse { request_id: String::new(), decisions: vec![] };
        assert_eq!(empty.to_json(), serde_json::to_vec(&empty).unwrap());
    }

    proptest! {
        #[test]
        fn any_strings_come_out_as_serde_json_writes_them(markup in any::<String>(), id in "[\\x00-\\x7f]{0,40}") {
            let r = response(&markup, &id);
            prop_assert_eq!(String::from_utf8(r.to_json()).unwrap(), serde_json::to_string(&r).unwrap());
        }
    }
}
