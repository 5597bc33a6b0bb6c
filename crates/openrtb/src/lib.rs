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
/// `BENCHMARKS.md` and `benches/parse.rs`), falling back to `serde_json` for the error
/// report: a failing body is parsed again by `serde_json` with path tracking, and if that
/// succeeds (a disagreement between the parsers) its result is returned.
///
/// Does not normalise or validate: call [`BidRequest::normalize_2_5`] and
/// [`BidRequest::validate`] next.
pub fn parse_request(bytes: &[u8]) -> Result<BidRequest, ParseError> {
    match sonic_rs::from_slice::<BidRequest>(bytes) {
        Ok(request) => Ok(request),
        Err(_) => parse_request_serde_json(bytes),
    }
}

/// Parses a bid request with `serde_json` alone; errors carry the JSON path of the field at
/// fault (found by parsing a failing body a second time with path tracking, so the success
/// path costs plain `serde_json`).
pub fn parse_request_serde_json(bytes: &[u8]) -> Result<BidRequest, ParseError> {
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

/// Parses a bid request with `sonic-rs` alone (no fallback; errors have no path).
pub fn parse_request_sonic(bytes: &[u8]) -> Result<BidRequest, ParseError> {
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
}
