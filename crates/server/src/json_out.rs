//! json_out: the decide answer written as JSON by hand, byte for byte what serde_json writes for
//! the same value (a test holds the two together), without serde's per-field machinery. Short
//! strings are scanned eight bytes at a time for the few bytes JSON must escape; long ones
//! (markup, tracking URLs) go through sonic-rs's SIMD escaping.

use crate::markup;
use crate::serving::{AdResponse, DecideResponse, PlacementDecision};
use adp_domain::Format;
use adp_engine::snapshot::{CreativeRt, LineItemRt};

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
    put_escaped(out, s);
    out.push(b'"');
}

/// `s` as the inside of a JSON string (escaped, without the quotes).
pub fn escaped(s: &str) -> String {
    let mut out = Vec::with_capacity(s.len());
    put_escaped(&mut out, s);
    // Escaping only replaces ASCII bytes with ASCII sequences: still UTF-8.
    String::from_utf8(out).unwrap_or_default()
}

/// Appends `s` escaped for the inside of a JSON string.
fn put_escaped(out: &mut Vec<u8>, s: &str) {
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
    put_ad_head(
        out,
        &ad.line_item_id,
        &ad.creative_id,
        &ad.campaign_id,
        &ad.advertiser_id,
        &ad.adomain,
        ad.format,
        ad.price_micros,
    );
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

/// An ad's fields up to `"markup":`.
#[allow(clippy::too_many_arguments)]
fn put_ad_head(
    out: &mut Vec<u8>,
    line_item_id: &str,
    creative_id: &str,
    campaign_id: &str,
    advertiser_id: &str,
    adomain: &[String],
    format: Format,
    price_micros: i64,
) {
    out.extend_from_slice(b"{\"line_item_id\":");
    put_str(out, line_item_id);
    out.extend_from_slice(b",\"creative_id\":");
    put_str(out, creative_id);
    out.extend_from_slice(b",\"campaign_id\":");
    put_str(out, campaign_id);
    out.extend_from_slice(b",\"advertiser_id\":");
    put_str(out, advertiser_id);
    out.extend_from_slice(b",\"adomain\":[");
    for (i, d) in adomain.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        put_str(out, d);
    }
    out.extend_from_slice(b"],\"format\":\"");
    out.extend_from_slice(format_name(format).as_bytes());
    out.extend_from_slice(b"\",\"price_micros\":");
    put_int(out, price_micros);
    out.extend_from_slice(b",\"markup\":");
}

/// A decision's tracker URLs in parts: `{base}/v1/t/imp?p={payload}&s={imp_sig}` and the same
/// for clicks. `base` and `base_html` (the public URL, plain and HTML-escaped) are already
/// escaped for the inside of a JSON string; the payload and signatures are base64url.
pub struct TrackerUrls<'a> {
    pub base: &'a str,
    pub base_html: &'a str,
    pub payload: &'a str,
    pub imp_sig: &'a str,
    pub click_sig: &'a str,
}

impl TrackerUrls<'_> {
    /// Appends one URL; `amp` is `&` or, in HTML, `&amp;`.
    fn put(&self, out: &mut Vec<u8>, base: &str, path: &str, sig: &str, amp: &str) {
        for part in [base, "/v1/", path, "?p=", self.payload, amp, "s=", sig] {
            out.extend_from_slice(part.as_bytes());
        }
    }
}

/// Appends `s`, HTML-escaped, then escaped for the inside of a JSON string.
fn put_html(out: &mut Vec<u8>, s: &str, scratch: &mut String) {
    if !markup::needs_html_escape(s) {
        return put_escaped(out, s);
    }
    scratch.clear();
    markup::html_escape_into(scratch, s);
    put_escaped(out, scratch);
}

/// Opens the answer: `{"request_id":…,"decisions":[`.
pub(crate) fn open_answer(out: &mut Vec<u8>, request_id: &str) {
    out.extend_from_slice(b"{\"request_id\":");
    put_str(out, request_id);
    out.extend_from_slice(b",\"decisions\":[");
}

/// Opens the `i`-th decision, up to `"ad":`.
pub(crate) fn open_decision(out: &mut Vec<u8>, i: usize, placement_id: Option<&str>) {
    if i > 0 {
        out.push(b',');
    }
    out.extend_from_slice(b"{\"placement_id\":");
    put_opt_str(out, placement_id);
    out.extend_from_slice(b",\"ad\":");
}

pub(crate) fn close_decision(out: &mut Vec<u8>, no_fill_reason: Option<&str>) {
    out.extend_from_slice(b",\"no_fill_reason\":");
    put_opt_str(out, no_fill_reason);
    out.push(b'}');
}

pub(crate) fn close_answer(out: &mut Vec<u8>) {
    out.extend_from_slice(b"]}");
}

/// Opens an ad of `li` and `cr`, up to `"markup":`.
pub(crate) fn open_ad(out: &mut Vec<u8>, li: &LineItemRt, cr: &CreativeRt, price_micros: i64) {
    put_ad_head(out, &li.id, &cr.id, &li.campaign_id, &li.advertiser_id, &li.adomains, cr.format, price_micros);
}

/// The markup of a banner image (`markup::render`'s), as a JSON string, written in place.
pub(crate) fn banner_image_markup(
    out: &mut Vec<u8>,
    urls: &TrackerUrls<'_>,
    image_url: &str,
    alt: &str,
    w: u32,
    h: u32,
) {
    let mut scratch = String::new();
    out.extend_from_slice(b"\"<a href=\\\"");
    urls.put(out, urls.base_html, "t/click", urls.click_sig, "&amp;");
    out.extend_from_slice(b"\\\" target=\\\"_blank\\\" rel=\\\"noopener\\\"><img src=\\\"");
    put_html(out, image_url, &mut scratch);
    out.extend_from_slice(b"\\\" width=\\\"");
    put_int(out, w);
    out.extend_from_slice(b"\\\" height=\\\"");
    put_int(out, h);
    out.extend_from_slice(b"\\\" alt=\\\"");
    put_html(out, alt, &mut scratch);
    out.extend_from_slice(b"\\\" border=\\\"0\\\"></a><img src=\\\"");
    urls.put(out, urls.base_html, "t/imp", urls.imp_sig, "&amp;");
    out.extend_from_slice(b"\\\" width=\\\"1\\\" height=\\\"1\\\" style=\\\"display:none\\\" alt=\\\"\\\">\"");
}

/// Closes an ad after its markup: size and the tracker URLs.
pub(crate) fn close_ad(out: &mut Vec<u8>, urls: &TrackerUrls<'_>, w: u32, h: u32) {
    out.extend_from_slice(b",\"width\":");
    put_int(out, w);
    out.extend_from_slice(b",\"height\":");
    put_int(out, h);
    out.extend_from_slice(b",\"impression_url\":\"");
    urls.put(out, urls.base, "t/imp", urls.imp_sig, "&");
    out.extend_from_slice(b"\",\"click_url\":\"");
    urls.put(out, urls.base, "t/click", urls.click_sig, "&");
    out.extend_from_slice(b"\"}");
}

fn put_decision(out: &mut Vec<u8>, i: usize, d: &PlacementDecision) {
    open_decision(out, i, d.placement_id.as_deref());
    match &d.ad {
        Some(ad) => put_ad(out, ad),
        None => out.extend_from_slice(b"null"),
    }
    close_decision(out, d.no_fill_reason);
}

impl DecideResponse {
    /// The answer as JSON: what `serde_json::to_vec(self)` gives, written directly.
    pub fn to_json(&self) -> Vec<u8> {
        let ads: usize =
            self.decisions.iter().filter_map(|d| d.ad.as_ref()).map(|a| a.markup.len() + 3 * a.click_url.len()).sum();
        let mut out = Vec::with_capacity(256 + ads + ads / 8);
        open_answer(&mut out, &self.request_id);
        for (i, d) in self.decisions.iter().enumerate() {
            put_decision(&mut out, i, d);
        }
        close_answer(&mut out);
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
