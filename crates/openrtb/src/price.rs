//! Money at the OpenRTB boundary: integer micros (AdPlatform) ↔ `f64` CPM in currency units
//! (OpenRTB), clearing prices coming back in notice URLs, and a static FX table.
//!
//! No float arithmetic touches an amount: an `f64` price is read through its shortest decimal
//! representation (what the exchange or we printed) and decimals are parsed digit by digit
//! into integer micros. Rounding, wherever a value has more than 6 decimals, is half up
//! (towards the larger amount; every accepted price is non-negative).

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use std::fmt::{self, Write as _};
use std::str::FromStr;

/// Integer millionths of a currency unit (the same as `adp_domain::Micros`).
pub type Micros = i64;

/// Micros in one currency unit.
pub const MICROS_PER_UNIT: Micros = 1_000_000;

/// The largest price accepted, in currency units (CPM): 10^9. Anything above is treated as
/// garbage rather than money.
pub const MAX_PRICE_UNITS: i64 = 1_000_000_000;

/// [`MAX_PRICE_UNITS`] in micros, 10^15 (equal to `adp_domain::MAX_MONEY_MICROS`).
pub const MAX_PRICE_MICROS: Micros = MAX_PRICE_UNITS * MICROS_PER_UNIT;

/// Micros → OpenRTB price (CPM in currency units). The result is the `f64` nearest to the
/// exact decimal `micros / 10^6` (one correctly rounded division of two exact values), so
/// serializing it with a shortest-representation formatter (serde_json, `Display`) prints that
/// decimal, and [`price_to_micros`] gives `micros` back for every value up to
/// [`MAX_PRICE_MICROS`].
pub fn micros_to_price(micros: Micros) -> f64 {
    micros as f64 / MICROS_PER_UNIT as f64
}

/// OpenRTB price (CPM in currency units) → micros, rounding half up past the 6th decimal of
/// the price's shortest decimal representation (so `0.0000005` is 1 micro even though the
/// `f64` nearest to it is a little below). `None` for NaN, infinities, negative prices and
/// prices above [`MAX_PRICE_UNITS`].
pub fn price_to_micros(price: f64) -> Option<Micros> {
    if !price.is_finite() || price < 0.0 || price > MAX_PRICE_UNITS as f64 {
        return None;
    }
    if price < 1e-7 {
        // Below half a micro whatever its digits; also keeps `Display` output short.
        return Some(0);
    }
    // Fast path, exact: when the `f64` nearest to the decimal m / 10^6 (one correctly rounded
    // division) is `price`, that decimal is also `price`'s shortest representation — any other
    // decimal with at most 6 fractional digits is at least 10^-6 away, farther than a double's
    // spacing below 10^9 (~1.2 * 10^-7) — so the text path below would give m too. Most prices
    // exchanges send (0.85, 4.5) take it; the rest go through the text.
    let m = (price * MICROS_PER_UNIT as f64).round();
    if m / MICROS_PER_UNIT as f64 == price {
        return Some(m as Micros);
    }
    price_to_micros_via_text(price)
}

/// [`price_to_micros`] through the price's shortest decimal text (the definition).
fn price_to_micros_via_text(price: f64) -> Option<Micros> {
    let mut buf = StackStr::default();
    write!(buf, "{price}").ok()?;
    parse_decimal(buf.as_str()).ok()
}

/// Micros → exact decimal text in currency units, without trailing zeros: `1500000` →
/// `"1.5"`, `2000000` → `"2"`, `1` → `"0.000001"`. [`parse_price_micros`] reads it back
/// exactly.
pub fn format_price_micros(micros: Micros) -> String {
    let sign = if micros < 0 { "-" } else { "" };
    let abs = micros.unsigned_abs();
    let (units, frac) = (abs / MICROS_PER_UNIT as u64, abs % MICROS_PER_UNIT as u64);
    if frac == 0 {
        format!("{sign}{units}")
    } else {
        let digits = format!("{frac:06}");
        format!("{sign}{units}.{}", digits.trim_end_matches('0'))
    }
}

/// Why a price value could not be read; [`PriceErrorReason::as_str`] is the stable code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PriceErrorReason {
    /// The value is empty (the exchange substituted nothing).
    Empty,
    /// The value is `AUDIT`: the spec's placeholder when rendering for test or ad quality.
    Audit,
    /// The macro itself came back (`${AUCTION_PRICE}`): the exchange did not substitute.
    Unsubstituted,
    /// Not a decimal number.
    Invalid,
    /// Negative.
    Negative,
    /// NaN or infinite.
    NotFinite,
    /// Above [`MAX_PRICE_UNITS`].
    TooLarge,
    /// A `:B64` value that is not base64 (or not UTF-8 inside).
    BadBase64,
}

impl PriceErrorReason {
    /// Stable machine-readable code.
    pub fn as_str(self) -> &'static str {
        match self {
            PriceErrorReason::Empty => "empty",
            PriceErrorReason::Audit => "audit",
            PriceErrorReason::Unsubstituted => "unsubstituted",
            PriceErrorReason::Invalid => "invalid",
            PriceErrorReason::Negative => "negative",
            PriceErrorReason::NotFinite => "not_finite",
            PriceErrorReason::TooLarge => "too_large",
            PriceErrorReason::BadBase64 => "bad_base64",
        }
    }
}

impl fmt::Display for PriceErrorReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A clearing price that could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unusable price value {input:?}: {reason}")]
pub struct PriceError {
    /// Why.
    pub reason: PriceErrorReason,
    /// The value as received, cut to 64 bytes.
    pub input: String,
}

impl PriceError {
    fn new(reason: PriceErrorReason, input: &str) -> PriceError {
        let mut end = input.len().min(64);
        while !input.is_char_boundary(end) {
            end -= 1;
        }
        PriceError { reason, input: input[..end].to_string() }
    }
}

/// Reads a clearing price as substituted into `${AUCTION_PRICE}` (or `${AUCTION_MIN_TO_WIN}`)
/// — a decimal number of currency units — into micros, exactly.
///
/// Accepts `12`, `1.5`, `.5`, `5.`, `+1.5`, exponents (`1.5E-4`, as Java's `Double.toString`
/// prints), surrounding ASCII whitespace. More than 6 decimals round half up
/// (`0.0000005` → 1). Rejects with a reason: empty, `AUDIT`, an unsubstituted `${...}`,
/// negatives (even `-0`), `NaN`/`Infinity`, anything above 10^9 units, anything else.
pub fn parse_price_micros(value: &str) -> Result<Micros, PriceError> {
    let v = value.trim_ascii();
    precheck(v).map_err(|r| PriceError::new(r, value))?;
    parse_decimal(v).map_err(|r| PriceError::new(r, value))
}

/// Reads a price substituted into `${AUCTION_PRICE:B64}`: the decimal text, base64 encoded.
/// Accepts the URL-safe and the standard alphabet, with or without padding; `AUDIT`, empty
/// and unsubstituted values are reported as for [`parse_price_micros`].
pub fn parse_b64_price_micros(value: &str) -> Result<Micros, PriceError> {
    const URL_SAFE: GeneralPurpose = GeneralPurpose::new(
        &alphabet::URL_SAFE,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    const STANDARD: GeneralPurpose = GeneralPurpose::new(
        &alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let v = value.trim_ascii();
    precheck(v).map_err(|r| PriceError::new(r, value))?;
    let engine = if v.contains(['+', '/']) { &STANDARD } else { &URL_SAFE };
    let bytes = engine.decode(v).map_err(|_| PriceError::new(PriceErrorReason::BadBase64, value))?;
    let text = std::str::from_utf8(&bytes).map_err(|_| PriceError::new(PriceErrorReason::BadBase64, value))?;
    parse_price_micros(text).map_err(|e| PriceError::new(e.reason, value))
}

/// Reads a price that may be plain or base64 (when the template is not known): plain decimal
/// first, base64 if that fails.
pub fn parse_price_micros_any(value: &str) -> Result<Micros, PriceError> {
    match parse_price_micros(value) {
        Err(e) if e.reason == PriceErrorReason::Invalid => parse_b64_price_micros(value).map_err(|_| e),
        other => other,
    }
}

fn precheck(v: &str) -> Result<(), PriceErrorReason> {
    if v.is_empty() {
        Err(PriceErrorReason::Empty)
    } else if v.eq_ignore_ascii_case("AUDIT") {
        Err(PriceErrorReason::Audit)
    } else if v.starts_with("${") || v.starts_with("%24%7B") || v.starts_with("%24%7b") {
        Err(PriceErrorReason::Unsubstituted)
    } else {
        Ok(())
    }
}

/// Exact decimal (with optional sign and exponent) → micros, half up.
fn parse_decimal(s: &str) -> Result<Micros, PriceErrorReason> {
    let b = s.as_bytes();
    let (negative, rest) = match b.first() {
        Some(b'-') => (true, &b[1..]),
        Some(b'+') => (false, &b[1..]),
        _ => (false, b),
    };
    let lower = |x: &[u8]| {
        x.eq_ignore_ascii_case(b"nan") || x.eq_ignore_ascii_case(b"inf") || x.eq_ignore_ascii_case(b"infinity")
    };
    if lower(rest) {
        return Err(PriceErrorReason::NotFinite);
    }
    // Mantissa: int digits, optional '.', frac digits; then optional exponent.
    let int_len = rest.iter().take_while(|c| c.is_ascii_digit()).count();
    let mut pos = int_len;
    let mut frac = &rest[0..0];
    if rest.get(pos) == Some(&b'.') {
        let n = rest[pos + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
        frac = &rest[pos + 1..pos + 1 + n];
        pos += 1 + n;
    }
    if int_len + frac.len() == 0 {
        return Err(PriceErrorReason::Invalid);
    }
    let mut exp: i64 = 0;
    if matches!(rest.get(pos), Some(b'e' | b'E')) {
        pos += 1;
        let exp_negative = match rest.get(pos) {
            Some(b'-') => {
                pos += 1;
                true
            }
            Some(b'+') => {
                pos += 1;
                false
            }
            _ => false,
        };
        let digits = rest[pos..].iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return Err(PriceErrorReason::Invalid);
        }
        for &d in &rest[pos..pos + digits] {
            exp = (exp * 10 + i64::from(d - b'0')).min(1_000_000);
        }
        if exp_negative {
            exp = -exp;
        }
        pos += digits;
    }
    if pos != rest.len() {
        return Err(PriceErrorReason::Invalid);
    }
    let digits = rest[..int_len].iter().chain(frac.iter()).map(|d| d - b'0');
    let leading_zeros = digits.clone().take_while(|&d| d == 0).count();
    let total = int_len + frac.len();
    if leading_zeros == total {
        // Zero: "-0" is still a negative sign on a price.
        return if negative { Err(PriceErrorReason::Negative) } else { Ok(0) };
    }
    if negative {
        return Err(PriceErrorReason::Negative);
    }
    // value = 0.D × 10^point, D the significant digits; micros take the first point+6 of them.
    let point = int_len as i64 - leading_zeros as i64 + exp;
    let keep = point + 6;
    if keep > 16 {
        return Err(PriceErrorReason::TooLarge);
    }
    let mut significant = digits.skip(leading_zeros);
    let mut acc: i64 = 0;
    if keep >= 0 {
        for _ in 0..keep {
            acc = acc * 10 + i64::from(significant.next().unwrap_or(0));
        }
        if significant.next().unwrap_or(0) >= 5 {
            acc += 1;
        }
    }
    if acc > MAX_PRICE_MICROS {
        return Err(PriceErrorReason::TooLarge);
    }
    Ok(acc)
}

/// A small stack buffer for formatting one `f64` without allocating.
struct StackStr {
    buf: [u8; 48],
    len: usize,
}

impl Default for StackStr {
    fn default() -> Self {
        StackStr { buf: [0; 48], len: 0 }
    }
}

impl StackStr {
    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or_default()
    }
}

impl fmt::Write for StackStr {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        if end > self.buf.len() {
            return Err(fmt::Error);
        }
        self.buf[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// Picks the currency to bid in: the first of `ours` (in our order of preference) that the
/// request allows. An empty `request_cur` allows only USD, per the spec. Comparison ignores
/// ASCII case.
pub fn pick_currency<'a, S: AsRef<str>>(request_cur: &[String], ours: &'a [S]) -> Option<&'a str> {
    ours.iter().map(AsRef::as_ref).find(|c| currency_allowed(request_cur, c))
}

/// Whether the request's `cur` allows bidding in `currency` (empty `cur` means USD only).
pub fn currency_allowed<S: AsRef<str>>(request_cur: &[S], currency: &str) -> bool {
    if request_cur.is_empty() {
        currency.eq_ignore_ascii_case("USD")
    } else {
        request_cur.iter().any(|c| c.as_ref().trim().eq_ignore_ascii_case(currency))
    }
}

/// Rates are stored in billionths (10^-9) of a currency unit per unit of the base currency.
const RATE_SCALE: i128 = 1_000_000_000;

/// A static table of exchange rates, from configuration such as
/// `"USD:1.0,EUR:0.92,GBP:0.79"`.
///
/// Each rate is **how many units of that currency one unit of the base currency buys** — with
/// USD as base, `EUR:0.92` means 1 USD = 0.92 EUR. Only ratios matter, so any base works as
/// long as every currency used is listed (list the base with rate 1). Rates keep 9 decimals
/// (more round half up) and are integers inside: a conversion multiplies and divides integers
/// once and rounds once, half away from zero, so nothing drifts.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct FxTable {
    /// (ISO-4217 code upper-cased, rate in 10^-9 units per base unit).
    rates: Vec<(String, i128)>,
}

/// A configuration string that is not a valid [`FxTable`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FxError {
    /// An entry is not `CODE:RATE`.
    #[error("fx entry {0:?} is not CODE:RATE (e.g. EUR:0.92)")]
    Entry(String),
    /// A currency code is not three ASCII letters.
    #[error("fx currency {0:?} is not a three-letter ISO-4217 code")]
    Code(String),
    /// A rate is not a positive decimal number.
    #[error("fx rate {0:?} is not a positive decimal number")]
    Rate(String),
    /// A currency is listed twice.
    #[error("fx currency {0} is listed twice")]
    Duplicate(String),
}

impl FxTable {
    /// Parses `CODE:RATE` entries separated by commas (`=` works for `:`; whitespace and
    /// empty entries are ignored; codes are case-insensitive). An empty string is an empty
    /// table.
    pub fn parse(spec: &str) -> Result<FxTable, FxError> {
        let mut rates: Vec<(String, i128)> = Vec::new();
        for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (code, rate) = entry.split_once([':', '=']).ok_or_else(|| FxError::Entry(entry.to_string()))?;
            let code = code.trim();
            if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_alphabetic()) {
                return Err(FxError::Code(code.to_string()));
            }
            let code = code.to_ascii_uppercase();
            let rate = parse_rate(rate.trim()).ok_or_else(|| FxError::Rate(rate.trim().to_string()))?;
            if rates.iter().any(|(c, _)| *c == code) {
                return Err(FxError::Duplicate(code));
            }
            rates.push((code, rate));
        }
        Ok(FxTable { rates })
    }

    /// Whether the table has a rate for `currency`.
    pub fn contains(&self, currency: &str) -> bool {
        self.rate(currency).is_some()
    }

    /// The listed currency codes, upper case, in configuration order.
    pub fn currencies(&self) -> impl Iterator<Item = &str> {
        self.rates.iter().map(|(c, _)| c.as_str())
    }

    /// The rate of `currency` against the base, as units per base unit (for display).
    pub fn rate_of(&self, currency: &str) -> Option<f64> {
        self.rate(currency).map(|r| r as f64 / RATE_SCALE as f64)
    }

    fn rate(&self, currency: &str) -> Option<i128> {
        self.rates.iter().find(|(c, _)| c.eq_ignore_ascii_case(currency.trim())).map(|(_, r)| *r)
    }

    /// Converts `amount` micros of `from` into micros of `to`: `amount × rate(to) /
    /// rate(from)`, rounded once, half away from zero. The same currency returns `amount`
    /// untouched (even if unlisted). `None` if a currency is not listed or the result does not
    /// fit an `i64`.
    pub fn convert_micros(&self, amount: Micros, from: &str, to: &str) -> Option<Micros> {
        if from.trim().eq_ignore_ascii_case(to.trim()) {
            return Some(amount);
        }
        let (rf, rt) = (self.rate(from)?, self.rate(to)?);
        let num = i128::from(amount).checked_mul(rt)?;
        let q = num / rf;
        let r = num % rf;
        let q = if 2 * r.abs() >= rf { q + num.signum() } else { q };
        i64::try_from(q).ok()
    }

    /// The currency to bid in for a request: `preferred` (e.g. the line item's currency, no
    /// conversion needed) if the request allows it; else the first currency of the request's
    /// `cur`, in its order, that this table can convert `preferred` into; `None` if there is
    /// none (answer no-bid). An empty `cur` allows only USD.
    pub fn pick_currency<'a, S: AsRef<str>>(&'a self, request_cur: &'a [S], preferred: &'a str) -> Option<&'a str> {
        if currency_allowed(request_cur, preferred) {
            return Some(preferred);
        }
        if !self.contains(preferred) {
            return None;
        }
        if request_cur.is_empty() {
            return self.rates.iter().map(|(c, _)| c.as_str()).find(|c| *c == "USD");
        }
        request_cur.iter().map(|c| c.as_ref().trim()).find(|c| self.contains(c))
    }
}

impl FromStr for FxTable {
    type Err = FxError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FxTable::parse(s)
    }
}

/// A positive decimal rate → billionths, half up past the 9th decimal.
fn parse_rate(s: &str) -> Option<i128> {
    // Reuse the exact price parser: it keeps 6 decimals, so scale by 1000 first by shifting
    // the decimal point with an exponent.
    if s.is_empty() || s.starts_with(['-', '+']) || s.contains(['e', 'E']) {
        return None;
    }
    let micros_of_thousandths = parse_decimal(&format!("{s}e3")).ok()?;
    let rate = i128::from(micros_of_thousandths);
    (rate > 0).then_some(rate)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]

        /// The fast path of `price_to_micros` gives what the text path (the definition) gives,
        /// for any double in range, for exact micro values and for prices with more decimals.
        #[test]
        fn the_fast_path_agrees_with_the_text(
            any_price in 0.0f64..=1e9,
            micros in 0i64..=MAX_PRICE_MICROS,
            units in 0i64..1000,
            nanos in 0i64..1_000_000_000,
        ) {
            prop_assert_eq!(price_to_micros(any_price), price_to_micros_via_text(any_price));
            let exact = micros as f64 / 1e6;
            prop_assert_eq!(price_to_micros(exact), Some(micros));
            prop_assert_eq!(price_to_micros(exact), price_to_micros_via_text(exact));
            let nine: f64 = format!("{units}.{nanos:09}").parse().expect("decimal");
            prop_assert_eq!(price_to_micros(nine), price_to_micros_via_text(nine));
        }
    }

    #[test]
    fn decimal_rounding() {
        assert_eq!(parse_decimal("1.2345675"), Ok(1_234_568));
        assert_eq!(parse_decimal("1.2345674999"), Ok(1_234_567));
        assert_eq!(parse_decimal("0.0000005"), Ok(1));
        assert_eq!(parse_decimal("0.00000049"), Ok(0));
        assert_eq!(parse_decimal("1e-7"), Ok(0));
        assert_eq!(parse_decimal("5e-7"), Ok(1));
        assert_eq!(parse_decimal("1000000000"), Ok(MAX_PRICE_MICROS));
        assert_eq!(parse_decimal("1000000000.0000001"), Ok(MAX_PRICE_MICROS));
        assert_eq!(parse_decimal("1000000000.0000005"), Err(PriceErrorReason::TooLarge));
        assert_eq!(parse_decimal("1e10"), Err(PriceErrorReason::TooLarge));
        assert_eq!(parse_decimal("0e999999999"), Ok(0));
        assert_eq!(parse_decimal("1e-999999999"), Ok(0));
    }

    #[test]
    fn rates() {
        assert_eq!(parse_rate("0.92"), Some(920_000_000));
        assert_eq!(parse_rate("1"), Some(1_000_000_000));
        assert_eq!(parse_rate("151.123456789"), Some(151_123_456_789));
        assert_eq!(parse_rate("0.0000000005"), Some(1));
        assert_eq!(parse_rate("0"), None);
        assert_eq!(parse_rate("-1"), None);
        assert_eq!(parse_rate("1e3"), None);
        assert_eq!(parse_rate("abc"), None);
    }
}
