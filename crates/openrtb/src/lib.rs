//! openrtb: the OpenRTB 2.6 bidder side of AdPlatform — request and response types, parsing,
//! 2.5 normalisation, validation, no-bid reasons, notice macros, prices and currencies.
//!
//! Pure CPU, no I/O: the HTTP server reads the body (and un-gzips it), then
//!
//! 1. [`parse_request`] turns the bytes into a [`BidRequest`] (malformed JSON → HTTP 400 with
//!    the [`ParseError`]);
//! 2. [`BidRequest::normalize_2_5`] lifts fields an OpenRTB 2.5 exchange sends in `ext` into
//!    their 2.6 places;
//! 3. [`BidRequest::validate`] checks what the spec requires (an error carries the
//!    [`NoBidReason`] to answer with, [`NoBidReason::INVALID_REQUEST`]);
//! 4. the decision engine bids; [`BidResponse`] is what goes back (prices via
//!    [`price::micros_to_price`], currency via [`price::FxTable`]);
//! 5. win/billing/loss notices come back with the exchange's substitutions: parse the price
//!    with [`price::parse_price_micros`] (or [`price::parse_b64_price_micros`] for `:B64`).
//!
//! Money inside AdPlatform is integer micros of a currency unit (`i64`, as `adp_domain::Micros`);
//! OpenRTB prices are `f64` CPMs in currency units. [`price`] converts between the two without
//! drift.

#![forbid(unsafe_code)]

pub mod de;
pub mod enums;
pub mod fast;
pub mod macros;
mod normalize;
pub mod price;
pub mod request;
pub mod response;
mod validate;

pub use enums::*;
pub use macros::{substitute, Macro, MacroValues};
pub use normalize::{plcmt_from_placement, Normalized};
pub use price::{FxTable, PriceError, PriceErrorReason};
pub use request::*;
pub use response::*;
pub use validate::{ValidationError, ValidationReason};

/// The protocol version this crate speaks, for the `x-openrtb-version` response header.
pub const OPENRTB_VERSION: &str = "2.6";

/// The HTTP header that carries [`OPENRTB_VERSION`].
pub const OPENRTB_VERSION_HEADER: &str = "x-openrtb-version";

/// What kind of failure a [`ParseError`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseErrorKind {
    /// Not JSON (or not UTF-8).
    Syntax,
    /// JSON, but a field has a type or value that cannot be made to fit.
    Data,
    /// The input ended early.
    Eof,
}

impl ParseErrorKind {
    /// Stable machine-readable code.
    pub fn as_str(self) -> &'static str {
        match self {
            ParseErrorKind::Syntax => "syntax",
            ParseErrorKind::Data => "data",
            ParseErrorKind::Eof => "eof",
        }
    }
}

/// A bid request body that could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message} at line {line} column {column}{}", if path.is_empty() { String::new() } else { format!(" (at {path})") })]
pub struct ParseError {
    /// What went wrong.
    pub kind: ParseErrorKind,
    /// Byte offset into the body where the parser stopped (0-based; may equal the length).
    pub offset: usize,
    /// 1-based line of `offset`.
    pub line: usize,
    /// 1-based column (in bytes) of `offset`.
    pub column: usize,
    /// JSON path of the field at fault when known (e.g. `imp[0].banner.w`), else empty.
    pub path: String,
    /// Short human-readable message (without the position).
    pub message: String,
}

/// Parses a bid request with the fastest parser that is correct here (sonic-rs; see
/// `benches/parse.rs`), falling back to `serde_json`:
///
/// - for bodies nested deeper than sonic-rs can take safely (see [`parse_request_sonic`]);
/// - for the error report: a failing body is parsed again by `serde_json` with path tracking,
///   and if that succeeds (a disagreement between the parsers) its result is returned.
///
/// Does not normalise or validate: call [`BidRequest::normalize_2_5`] and
/// [`BidRequest::validate`] next.
pub fn parse_request(bytes: &[u8]) -> Result<BidRequest<'_>, ParseError> {
    if sonic_safe(bytes) {
        if let Ok(request) = sonic_rs::from_slice::<BidRequest>(bytes) {
            return Ok(request);
        }
    }
    parse_request_serde_json(bytes)
}

/// [`parse_request`] for the bidder: the fields it never reads (marked with the deserializers
/// of [`de::unread`]: site content, device details, metrics, the supply chain, ...) are
/// skipped instead of parsed and left at their defaults. A request parses here whenever
/// [`parse_request`] takes it, and the fields that are kept are the same; a value of the wrong
/// type in a skipped field is not an error here (OpenRTB asks bidders to tolerate what they do
/// not use), while malformed JSON anywhere still is.
pub fn parse_request_for_bidding(bytes: &[u8]) -> Result<BidRequest<'_>, ParseError> {
    de::skipping_unread(|| parse_request(bytes))
}

/// Scratch space of [`parse_request_for_bidding_fast`]: the body's copy that simd-json parses
/// in place (it unescapes strings where they are), which the request borrows its strings from
/// (a copy: the body itself is shared and immutable).
#[derive(Default)]
pub struct BidDom(Vec<u8>);

thread_local! {
    /// simd-json's working buffers and an emptied tape, reused by this thread's parses.
    static TAPE: std::cell::RefCell<(simd_json::Buffers, Option<simd_json::tape::Tape<'static>>)> =
        std::cell::RefCell::new((simd_json::Buffers::default(), None));
}

/// The largest body whose simd-json buffers a thread keeps for the next parse (a bid request
/// is a few KiB; the tape and the parser's buffers take ~30 bytes per JSON token).
const KEEP_BUFFERS_UP_TO: usize = 64 * 1024;

/// [`parse_request_for_bidding`], faster: the body into a simd-json tape, then the fields the
/// bidder reads picked out by [`fast::bid_request`]. A body the walk leaves alone (a tolerated
/// type slip, a repeated key, malformed JSON, ...) goes through [`parse_request_for_bidding`],
/// so the result, and every error, is the same. The request borrows its strings from `dom`.
pub fn parse_request_for_bidding_fast<'a>(bytes: &'a [u8], dom: &'a mut BidDom) -> Result<BidRequest<'a>, ParseError> {
    if tape_safe(bytes) {
        dom.0.clear();
        dom.0.extend_from_slice(bytes);
        let buf: &'a mut [u8] = &mut dom.0;
        let walked = TAPE.with_borrow_mut(move |(buffers, spare)| {
            let mut tape = spare.take().unwrap_or_else(simd_json::tape::Tape::null).reset();
            let walked = match simd_json::fill_tape(buf, buffers, &mut tape) {
                Ok(()) => fast::bid_request(tape.as_value()),
                Err(_) => None,
            };
            if bytes.len() <= KEEP_BUFFERS_UP_TO {
                *spare = Some(tape.reset());
            } else {
                // A large body's buffers are not kept for the thread's life.
                *buffers = simd_json::Buffers::default();
            }
            walked
        });
        if let Some(request) = walked {
            return Ok(request);
        }
    }
    parse_request_for_bidding(bytes)
}

/// How deep a body may nest for sonic-rs to parse it. sonic-rs skips unknown values
/// recursively without a depth limit (0.5: a release build overflows a 2 MiB thread stack
/// near 20,000 levels, a debug build near 64, and a stack overflow aborts the process), so
/// deeper bodies go to `serde_json`, whose skipping is iterative and limited to 128 levels.
pub const SONIC_MAX_DEPTH: usize = if cfg!(debug_assertions) { 24 } else { 128 };

/// Whether sonic-rs may parse `bytes`: safely, and no more leniently than `serde_json`.
///
/// - The body nests at most [`SONIC_MAX_DEPTH`] levels. Cheap first: the number of `[` and
///   `{` bytes bounds the depth, and counting them is a vectorised pass (~25 ns/KiB); only
///   bodies with more brackets than the limit get the exact, string-aware scan.
/// - Every `\u` escape has its four hex digits (see [`unicode_escapes_complete`]).
pub fn sonic_safe(bytes: &[u8]) -> bool {
    // A body of at most that many bytes cannot nest deeper (a typical decide request).
    depth_within_limit(bytes) && unicode_escapes_complete(bytes)
}

/// Whether simd-json's tape of `bytes` reads as the usual parse does, or fails where it fails:
///
/// - the body nests at most [`SONIC_MAX_DEPTH`] levels (as [`sonic_safe`]);
/// - every `\u` escape has its four hex digits, and a UTF-16 surrogate comes as a high one
///   followed by a low one (simd-json 0.17 decodes a lone one as U+0000, where sonic-rs and
///   serde_json refuse the body);
/// - no NUL byte (simd-json counts one as whitespace after a number or `true`);
/// - no run of 17 or more digits and dots: simd-json reads a number that long without looking
///   at the byte after it (`1000000000000000000x` passes).
///
/// Such bodies are rare in bid requests; they take the usual parse.
fn tape_safe(bytes: &[u8]) -> bool {
    depth_within_limit(bytes) && escapes_paired(bytes) && numbers_short_and_no_nul(bytes)
}

/// [`unicode_escapes_complete`], and every escaped surrogate in a high-then-low pair.
fn escapes_paired(bytes: &[u8]) -> bool {
    unicode_escapes(bytes, true)
}

/// No NUL byte and no run of 17 or more bytes that are digits or dots (see [`tape_safe`]).
/// NUL: one vectorised search. Runs: a run of 15 or more bytes holds a whole 8-byte word at
/// an offset that is a multiple of 8, so the body is read as such words (four per step,
/// without branching between them), each tested at once for "every byte is `.`, `/` or a
/// digit" ([`all_digits_or_dots`]; a slash in a run only makes it look longer). Only around a
/// word that passes, which few bid requests have, is the run measured byte by byte.
fn numbers_short_and_no_nul(bytes: &[u8]) -> bool {
    const RUN: usize = 17;
    if memchr::memchr(0, bytes).is_some() {
        return false;
    }
    let in_run = |c: u8| c.wrapping_sub(b'.') < 12;
    let word = |at: usize| -> u64 {
        let mut w = [0u8; 8];
        w.copy_from_slice(&bytes[at..at + 8]);
        u64::from_le_bytes(w)
    };
    let mut at = 0;
    while at + 8 <= bytes.len() {
        // Four words per step where the body has them, else one.
        let hit = if at + 32 <= bytes.len() {
            let hits = [0, 8, 16, 24].map(|o| all_digits_or_dots(word(at + o)));
            if hits == [false; 4] {
                at += 32;
                continue;
            }
            hits.iter().position(|&h| h).map(|o| at + 8 * o)
        } else {
            all_digits_or_dots(word(at)).then_some(at)
        };
        let Some(hit) = hit else {
            at += 8;
            continue;
        };
        let start = bytes[..hit].iter().rposition(|&c| !in_run(c)).map_or(0, |i| i + 1);
        let end = bytes[hit + 8..].iter().position(|&c| !in_run(c)).map_or(bytes.len(), |i| hit + 8 + i);
        if end - start >= RUN {
            return false;
        }
        // The next run starts after `end`; keep to the multiples of 8.
        at = end.next_multiple_of(8);
    }
    true
}

/// Whether every byte of `w` is in `b'.'..=b'9'` (`.`, `/` and the digits), for all eight at
/// once: a byte is out if its top bit is set, if adding 0x46 sets it (above `9`), or if, with
/// the top bit forced on, subtracting 0x2E clears it (below `.`). Neither sum carries or
/// borrows across bytes where every byte is below 0x80, and where one is not the answer is
/// "no" anyway.
#[inline(always)]
fn all_digits_or_dots(w: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const TOP: u64 = 0x80 * ONES;
    let above = w.wrapping_add((0x7F - u64::from(b'9')) * ONES);
    let not_below = (w | TOP).wrapping_sub(u64::from(b'.') * ONES);
    (w | above | !not_below) & TOP == 0
}

/// Whether `bytes` nests at most [`SONIC_MAX_DEPTH`] levels: cheap tests first (a short body,
/// few brackets), the exact string-aware scan only when they cannot tell.
fn depth_within_limit(bytes: &[u8]) -> bool {
    bytes.len() <= SONIC_MAX_DEPTH
        || brackets_at_most(bytes, SONIC_MAX_DEPTH)
        || max_depth_within(bytes, SONIC_MAX_DEPTH)
}

/// Whether every `\u` escape in `bytes` is followed by four hex digits. sonic-rs 0.5 checks
/// that in the strings it reads but not in the values it skips (unknown fields, and the
/// fields [`parse_request_for_bidding`] leaves out), where `serde_json` refuses `"\uzzle"`
/// (a proptest finding). In valid JSON every backslash opens an escape inside a string, so the
/// escapes are found without tracking strings; a backslash outside a string is a syntax error
/// for both parsers whatever this says. Bodies without a backslash, the usual case, cost one
/// vectorised search.
fn unicode_escapes_complete(bytes: &[u8]) -> bool {
    unicode_escapes(bytes, false)
}

/// The scan of [`unicode_escapes_complete`] and, with `pairs`, of [`escapes_paired`].
fn unicode_escapes(bytes: &[u8], pairs: bool) -> bool {
    let hex4 = |at: usize| -> Option<u16> {
        let h = bytes.get(at..at + 4)?;
        h.iter().all(u8::is_ascii_hexdigit).then(|| u16::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok())?
    };
    let mut from = 0;
    while let Some(i) = bytes.get(from..).and_then(|rest| memchr::memchr(b'\\', rest)) {
        let at = from + i;
        from = match bytes.get(at + 1) {
            Some(b'u') => match hex4(at + 2) {
                Some(0xD800..=0xDBFF) if pairs => match (bytes.get(at + 6..at + 8), hex4(at + 8)) {
                    (Some(b"\\u"), Some(0xDC00..=0xDFFF)) => at + 12,
                    _ => return false,
                },
                Some(0xDC00..=0xDFFF) if pairs => return false,
                None => return false,
                Some(_) => at + 6,
            },
            Some(_) => at + 2,
            None => return true,
        };
    }
    true
}

/// Whether `bytes` holds at most `limit` `[` and `{` bytes. Counts per 64-byte block in a `u8`
/// (which the compiler turns into SIMD compares); `b | 0x20 == b'{'` matches exactly `[`
/// (0x5B) and `{` (0x7B).
fn brackets_at_most(bytes: &[u8], limit: usize) -> bool {
    let mut total = 0usize;
    let mut blocks = bytes.chunks_exact(64);
    for block in &mut blocks {
        let mut n = 0u8;
        for &b in block {
            n += u8::from(b | 0x20 == b'{');
        }
        total += usize::from(n);
        if total > limit {
            return false;
        }
    }
    total += blocks.remainder().iter().filter(|&&b| b | 0x20 == b'{').count();
    total <= limit
}

/// Exact nesting check outside strings (stops at the first level past `limit`).
fn max_depth_within(bytes: &[u8], limit: usize) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in bytes {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else {
            match b {
                b'"' => in_string = true,
                b'[' | b'{' => {
                    depth += 1;
                    if depth > limit {
                        return false;
                    }
                }
                b']' | b'}' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
    }
    true
}

/// Parses a bid request with `serde_json` alone; errors carry the JSON path of the field at
/// fault (found by parsing a failing body a second time with path tracking, so the success
/// path costs plain `serde_json`).
pub fn parse_request_serde_json(bytes: &[u8]) -> Result<BidRequest<'_>, ParseError> {
    match serde_json::from_slice::<BidRequest>(bytes) {
        Ok(request) => Ok(request),
        Err(plain) => {
            let mut de = serde_json::Deserializer::from_slice(bytes);
            match serde_path_to_error::deserialize::<_, BidRequest>(&mut de) {
                Err(e) => {
                    let path = e.path().to_string();
                    let path = if path == "." { String::new() } else { path };
                    Err(from_serde_json(bytes, e.inner(), path))
                }
                // Only trailing characters are left to fail on.
                Ok(_) => Err(from_serde_json(bytes, &de.end().err().unwrap_or(plain), String::new())),
            }
        }
    }
}

/// Parses a bid request with `sonic-rs` alone (no fallback; errors have no path). A body
/// nested deeper than [`SONIC_MAX_DEPTH`] is refused with a syntax error rather than handed
/// to sonic-rs (see there why).
pub fn parse_request_sonic(bytes: &[u8]) -> Result<BidRequest<'_>, ParseError> {
    if !sonic_safe(bytes) {
        return Err(ParseError {
            kind: ParseErrorKind::Syntax,
            offset: 0,
            line: 1,
            column: 1,
            path: String::new(),
            message: format!("nested deeper than {SONIC_MAX_DEPTH} levels"),
        });
    }
    sonic_rs::from_slice::<BidRequest>(bytes).map_err(|e| {
        let kind = if e.is_eof() {
            ParseErrorKind::Eof
        } else if e.is_syntax() {
            ParseErrorKind::Syntax
        } else {
            ParseErrorKind::Data
        };
        let offset = e.offset().min(bytes.len());
        let (line, column) = line_col(bytes, offset);
        let message = e.to_string();
        let message = message.lines().next().unwrap_or_default().to_string();
        ParseError { kind, offset, line, column, path: String::new(), message }
    })
}

fn from_serde_json(bytes: &[u8], e: &serde_json::Error, path: String) -> ParseError {
    let kind = match e.classify() {
        serde_json::error::Category::Eof => ParseErrorKind::Eof,
        serde_json::error::Category::Data => ParseErrorKind::Data,
        serde_json::error::Category::Syntax | serde_json::error::Category::Io => ParseErrorKind::Syntax,
    };
    let (line, column) = (e.line().max(1), e.column());
    let offset = offset_of(bytes, line, column);
    let (line, column) = line_col(bytes, offset);
    // serde_json's Display appends " at line L column C"; keep the message alone.
    let full = e.to_string();
    let message = match full.rfind(" at line ") {
        Some(i) => full[..i].to_string(),
        None => full,
    };
    ParseError { kind, offset, line, column, path, message }
}

/// Byte offset of a serde_json position (1-based line, 1-based column where column 0 means
/// "at the newline").
fn offset_of(bytes: &[u8], line: usize, column: usize) -> usize {
    let mut start = 0;
    if line > 1 {
        let mut seen = 1;
        for (i, &b) in bytes.iter().enumerate() {
            if b == b'\n' {
                seen += 1;
                if seen == line {
                    start = i + 1;
                    break;
                }
            }
        }
    }
    (start + column.saturating_sub(1)).min(bytes.len())
}

/// 1-based line and column of a byte offset.
fn line_col(bytes: &[u8], offset: usize) -> (usize, usize) {
    let before = &bytes[..offset.min(bytes.len())];
    let line = 1 + before.iter().filter(|&&b| b == b'\n').count();
    let line_start = before.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    (line, offset - line_start + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_agree() {
        let body = b"{\n  \"id\": \"x\",\n  \"imp\": [ {\"id\": 1, \"banner\": {\"w\": \"wide\"}} ]\n}";
        let a = parse_request_serde_json(body).expect_err("bad w");
        assert_eq!(a.kind, ParseErrorKind::Data);
        assert_eq!(a.path, "imp[0].banner.w");
        assert_eq!(a.line, 3);
        // serde_json stops on the closing quote of the bad value.
        let wide = body.windows(6).position(|w| w == b"\"wide\"").expect("in body");
        assert!((wide..wide + 6).contains(&a.offset), "offset {} not in {wide}..", a.offset);
        let b = parse_request(body).expect_err("bad w");
        assert_eq!(a, b);
        let s = parse_request_sonic(body).expect_err("bad w");
        assert_eq!(s.line, 3);
    }

    #[test]
    fn depth_guard() {
        let nested = |d: usize| format!("{}{}", "[".repeat(d), "]".repeat(d));
        assert!(sonic_safe(b"{}"));
        assert!(brackets_at_most(b"", 0));
        let text = "[{ab[]}]{".repeat(40);
        for limit in [0, 99, 100, 159, 160, 161, 500] {
            let want = text.bytes().filter(|&b| b == b'[' || b == b'{').count() <= limit;
            assert_eq!(brackets_at_most(text.as_bytes(), limit), want, "limit {limit}");
        }
        assert!(brackets_at_most("é{".as_bytes(), 1), "UTF-8 bytes are not brackets");
        assert!(!brackets_at_most(b"[{", 1));
        assert!(sonic_safe(nested(SONIC_MAX_DEPTH).as_bytes()));
        assert!(!sonic_safe(nested(SONIC_MAX_DEPTH + 1).as_bytes()));
        // Many brackets, little depth: the exact scan lets it through.
        let wide = format!("[{}]", vec!["[]"; 500].join(","));
        assert!(sonic_safe(wide.as_bytes()));
        // Brackets inside strings (escaped quotes too) do not count.
        let in_string = format!(r#"{{"a":"\"{}"}}"#, "[".repeat(1000));
        assert!(sonic_safe(in_string.as_bytes()));
    }

    #[test]
    fn unicode_escapes() {
        for good in [&br#""""#[..], br#""\u00e9\\u""#, br#""\\\u0041""#, br#""\"\n\uABCD""#, br#""\"#] {
            assert!(unicode_escapes_complete(good), "{}", String::from_utf8_lossy(good));
        }
        for bad in [&br#""\uzzle""#[..], br#""\u12""#, br#""\\\u12g4""#, br#""\u"#] {
            assert!(!unicode_escapes_complete(bad), "{}", String::from_utf8_lossy(bad));
            assert!(serde_json::from_slice::<serde::de::IgnoredAny>(bad).is_err());
        }
        // In a field nobody reads, the bad escape is now a syntax error from both parses.
        let in_unread = r#"{"id":"x","imp":[{"id":"1"}],"app":{"name":"\uzzle"},"zzz":"\u00e9"}"#;
        let in_unknown = r#"{"id":"x","imp":[{"id":"1"}],"zzz":"\uzzle"}"#;
        for b in [in_unread, in_unknown] {
            assert_eq!(parse_request(b.as_bytes()).map_err(|e| e.kind), Err(ParseErrorKind::Syntax));
            assert_eq!(parse_request_for_bidding(b.as_bytes()).map_err(|e| e.kind), Err(ParseErrorKind::Syntax));
            let fixed = b.replace(r"\uzzle", r"\u0041zle");
            assert!(parse_request(fixed.as_bytes()).is_ok() && parse_request_for_bidding(fixed.as_bytes()).is_ok());
        }
    }

    #[test]
    fn syntax_and_eof() {
        let e = parse_request(b"{\"id\": \"x\", \"imp\": [}").expect_err("syntax");
        assert_eq!(e.kind, ParseErrorKind::Syntax);
        assert_eq!((e.line, e.column), (1, 21));
        assert_eq!(e.offset, 20);
        let e = parse_request(b"{\"id\": \"x\"").expect_err("eof");
        assert_eq!(e.kind, ParseErrorKind::Eof);
        let e = parse_request(b"{\"id\": \"x\"} trailing").expect_err("trailing");
        assert_eq!(e.kind, ParseErrorKind::Syntax);
        assert!(e.to_string().contains("line 1"), "{e}");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4096))]
        /// The word-wise scan finds exactly the bodies a byte-by-byte count refuses: 17 or more
        /// bytes in a row from `.`, `/` and the digits, wherever they sit, the body's end included
        /// (NUL: the test below). Digits are drawn twice as often, so runs near 17 are common;
        /// `-` and `:` sit just outside the set.
        #[test]
        fn the_digit_run_scan_is_a_byte_count(
            body in proptest::collection::vec(proptest::sample::select(b"01234567890123456789./:x\"{ -\xba".to_vec()), 0..300),
        ) {
            let mut run = 0;
            let mut longest = 0;
            for &c in &body {
                run = if (b'.'..=b'9').contains(&c) { run + 1 } else { 0 };
                longest = longest.max(run);
            }
            let expected = !body.contains(&0) && longest < 17;
            proptest::prop_assert_eq!(numbers_short_and_no_nul(&body), expected, "longest run {}", longest);
        }
    }

    /// The guard in front of simd-json: it takes the samples (so the fast path runs on real
    /// requests) and refuses exactly the shapes listed on [`tape_safe`], wherever they are in
    /// the body (every offset from a multiple of 8, near the start and past 512 bytes).
    #[test]
    fn tape_safe_takes_requests_and_refuses_what_simd_json_would_misread() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
        let mut n = 0;
        for entry in std::fs::read_dir(dir).expect("testdata") {
            let bytes = std::fs::read(entry.expect("entry").path()).expect("sample");
            assert!(tape_safe(&bytes));
            n += 1;
        }
        assert!(n >= 5);
        for pad in (0..70).chain(480..540) {
            let at = |s: &str| format!(r#"{{"pad":"{}","v":{s}}}"#, "x".repeat(pad));
            assert!(tape_safe(at("1234567890123456").as_bytes()), "16 digits, pad {pad}");
            assert!(tape_safe(at("123456789.123456").as_bytes()), "16 with a dot, pad {pad}");
            assert!(!tape_safe(at("12345678901234567").as_bytes()), "17 digits, pad {pad}");
            assert!(!tape_safe(at("1.234567890123456789x").as_bytes()), "pad {pad}");
            assert!(!tape_safe(at("1\u{0}").as_bytes()), "NUL, pad {pad}");
        }
        assert!(tape_safe(br#"{"s":"\ud83d\ude00 caf\u00e9 \\ud800"}"#));
        for bad in [
            &br#"{"s":"\ud800"}"#[..],
            br#"{"s":"\ud800x"}"#,
            br#"{"s":"\ud800\ue000"}"#,
            br#"{"s":"\udc00"}"#,
            br#"{"s":"\uzz"}"#,
        ] {
            assert!(!tape_safe(bad), "{}", String::from_utf8_lossy(bad));
        }
    }
}
