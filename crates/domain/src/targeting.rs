//! targeting: the boolean expression a line item targets, its JSON grammar and its validation.
//!
//! Grammar (one key per object):
//! `{"all": [e, ...]}`, `{"any": [e, ...]}`, `{"not": e}`, set predicates such as
//! `{"country": ["US", "CA"]}` (true when the request's value is in the set),
//! `{"key_value": {"key": "section", "values": ["sports"]}}`,
//! `{"daypart": {"time_zone": "Europe/Berlin", "windows": [{"days": ["mon"], "start_hour": 9, "end_hour": 17}]}}`,
//! `{"ip_cidr": ["10.0.0.0/8"]}`.
//! Validation happens on write and reports the JSON path of the first fault.

use crate::error::{join_path, FieldError};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// Maximum nesting depth of `all` / `any` / `not`.
pub const MAX_DEPTH: usize = 12;
/// Maximum number of values across all predicates of one expression.
pub const MAX_VALUES: usize = 10_000;

/// A targeting expression. Serialised externally tagged: `{"country": ["US"]}`.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Expr {
    /// True when every sub-expression is true.
    #[schema(no_recursion)]
    All(Vec<Expr>),
    /// True when at least one sub-expression is true.
    #[schema(no_recursion)]
    Any(Vec<Expr>),
    /// Negation.
    #[schema(no_recursion)]
    Not(Box<Expr>),
    /// ISO 3166-1 alpha-2 country codes, upper case.
    Country(Vec<String>),
    /// ISO 3166-2 subdivision codes, e.g. `US-NY`.
    Region(Vec<String>),
    City(Vec<String>),
    /// Nielsen DMA / metro codes.
    Metro(Vec<String>),
    DeviceType(Vec<DeviceType>),
    Os(Vec<String>),
    Browser(Vec<String>),
    /// Site domains, lower case.
    Domain(Vec<String>),
    AppBundle(Vec<String>),
    /// Placement ids.
    Placement(Vec<String>),
    /// Sizes as `WIDTHxHEIGHT`.
    Size(Vec<String>),
    /// ISO 639-1 language codes.
    Language(Vec<String>),
    KeyValue(KeyValues),
    /// Audience segment ids.
    Segment(Vec<String>),
    Daypart(Daypart),
    /// IPv4 or IPv6 networks in CIDR notation.
    IpCidr(Vec<String>),
    /// Deal ids (programmatic guaranteed / preferred deals).
    Deal(Vec<String>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeviceType {
    Phone,
    Tablet,
    Desktop,
    ConnectedTv,
    SetTopBox,
    ConnectedDevice,
    Ooh,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyValues {
    pub key: String,
    pub values: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Daypart {
    /// IANA time zone in which the windows are read, e.g. `America/New_York`.
    pub time_zone: String,
    pub windows: Vec<DaypartWindow>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DaypartWindow {
    pub days: Vec<Weekday>,
    /// First hour included, 0..=23.
    pub start_hour: u8,
    /// First hour no longer included, 1..=24; must be greater than `start_hour`.
    pub end_hour: u8,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Weekday {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

/// The attribute names a predicate may use (for error messages and the index).
pub const ATTRIBUTES: &[&str] = &[
    "all",
    "any",
    "not",
    "country",
    "region",
    "city",
    "metro",
    "device_type",
    "os",
    "browser",
    "domain",
    "app_bundle",
    "placement",
    "size",
    "language",
    "key_value",
    "segment",
    "daypart",
    "ip_cidr",
    "deal",
];

impl<'de> Deserialize<'de> for Expr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(d)?;
        Expr::parse(&value, "").map_err(|e| serde::de::Error::custom(e.to_string()))
    }
}

impl Expr {
    /// Parses and validates an expression; `path` is the JSON path of `value` for errors.
    pub fn parse(value: &Value, path: &str) -> Result<Expr, FieldError> {
        let mut budget = MAX_VALUES;
        parse_expr(value, path, 0, &mut budget)
    }

    /// Number of leaf predicates (for diagnostics and index sizing).
    pub fn predicate_count(&self) -> usize {
        match self {
            Expr::All(v) | Expr::Any(v) => v.iter().map(Expr::predicate_count).sum(),
            Expr::Not(e) => e.predicate_count(),
            _ => 1,
        }
    }
}

fn bad(code: &'static str, path: impl Into<String>, msg: impl Into<String>) -> FieldError {
    FieldError::malformed(code, path, msg)
}

fn parse_expr(value: &Value, path: &str, depth: usize, budget: &mut usize) -> Result<Expr, FieldError> {
    let here = if path.is_empty() { "targeting" } else { path };
    if depth > MAX_DEPTH {
        return Err(bad("too_complex", here, format!("expression nested deeper than {MAX_DEPTH}")));
    }
    let obj =
        value.as_object().ok_or_else(|| bad("invalid_type", here, "an expression is a JSON object with one key"))?;
    let mut entries = obj.iter();
    let (key, inner) = match (entries.next(), entries.next()) {
        (Some(kv), None) => kv,
        (None, _) => return Err(bad("empty_expression", here, "an expression needs exactly one key")),
        (Some(_), Some(_)) => {
            return Err(bad(
                "invalid_type",
                here,
                "an expression has exactly one key; combine predicates with `all` or `any`",
            ))
        }
    };
    let p = join_path(path, key);
    let strings = |budget: &mut usize, check: fn(&str) -> Result<(), String>| string_set(inner, &p, budget, check);
    let expr = match key.as_str() {
        "all" | "any" => {
            let items = inner
                .as_array()
                .ok_or_else(|| bad("invalid_type", &p, format!("`{key}` takes an array of expressions")))?;
            if items.is_empty() {
                return Err(bad("empty_set", &p, format!("`{key}` needs at least one expression")));
            }
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                out.push(parse_expr(item, &format!("{p}[{i}]"), depth + 1, budget)?);
            }
            if key == "all" {
                Expr::All(out)
            } else {
                Expr::Any(out)
            }
        }
        "not" => Expr::Not(Box::new(parse_expr(inner, &p, depth + 1, budget)?)),
        "country" => Expr::Country(strings(budget, |s| {
            check(
                s.len() == 2 && s.bytes().all(|b| b.is_ascii_uppercase()),
                "an ISO 3166-1 alpha-2 code in upper case, e.g. US",
            )
        })?),
        "region" => Expr::Region(strings(budget, plain)?),
        "city" => Expr::City(strings(budget, plain)?),
        "metro" => Expr::Metro(strings(budget, plain)?),
        "device_type" => {
            let names = strings(budget, plain)?;
            let mut out = Vec::with_capacity(names.len());
            for (i, name) in names.iter().enumerate() {
                let dt: DeviceType = serde_json::from_value(Value::String(name.clone())).map_err(|_| {
                    bad(
                        "invalid_value",
                        format!("{p}[{i}]"),
                        format!("unknown device type `{name}`; expected phone, tablet, desktop, connected_tv, set_top_box, connected_device or ooh"),
                    )
                })?;
                out.push(dt);
            }
            Expr::DeviceType(out)
        }
        "os" => Expr::Os(strings(budget, plain)?),
        "browser" => Expr::Browser(strings(budget, plain)?),
        "domain" => {
            Expr::Domain(strings(budget, |s| check(is_hostname(s), "a lower-case host name such as example.com"))?)
        }
        "app_bundle" => Expr::AppBundle(strings(budget, plain)?),
        "placement" => Expr::Placement(strings(budget, plain)?),
        "size" => Expr::Size(strings(budget, |s| {
            check(parse_size(s).is_some(), "a size written WIDTHxHEIGHT, e.g. 300x250")
        })?),
        "language" => Expr::Language(strings(budget, |s| {
            let ok = (2..=3).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_lowercase());
            check(ok, "an ISO 639 language code in lower case, e.g. en")
        })?),
        "segment" => Expr::Segment(strings(budget, plain)?),
        "deal" => Expr::Deal(strings(budget, plain)?),
        "ip_cidr" => {
            let nets = strings(budget, |s| check(s.parse::<ipnet::IpNet>().is_ok(), ""));
            match nets {
                Ok(v) => Expr::IpCidr(v),
                Err(mut e) if e.code == "invalid_value" => {
                    e.code = "invalid_cidr";
                    e.message = "not a network in CIDR notation, e.g. 192.0.2.0/24 or 2001:db8::/32".into();
                    return Err(e);
                }
                Err(e) => return Err(e),
            }
        }
        "key_value" => {
            let kv: KeyValues = from_value(inner, &p)?;
            if kv.key.trim().is_empty() {
                return Err(bad("invalid_value", join_path(&p, "key"), "key must not be empty"));
            }
            string_set(&Value::from(kv.values.clone()), &join_path(&p, "values"), budget, plain)?;
            Expr::KeyValue(kv)
        }
        "daypart" => {
            let dp: Daypart = from_value(inner, &p)?;
            validate_daypart(&dp, &p)?;
            Expr::Daypart(dp)
        }
        other => {
            return Err(bad(
                "unknown_attribute",
                &p,
                format!("unknown targeting attribute `{other}`; expected one of {}", ATTRIBUTES.join(", ")),
            ))
        }
    };
    Ok(expr)
}

fn from_value<T: serde::de::DeserializeOwned>(v: &Value, path: &str) -> Result<T, FieldError> {
    let mut track = serde_path_to_error::Track::new();
    let de = serde_path_to_error::Deserializer::new(v, &mut track);
    T::deserialize(de).map_err(|e| {
        let sub = track.path().to_string();
        let field = if sub == "." { path.to_string() } else { join_path(path, &sub) };
        FieldError::from_serde(field, &e)
    })
}

fn plain(s: &str) -> Result<(), String> {
    check(!s.trim().is_empty() && s.len() <= 256, "a non-empty string of at most 256 bytes")
}

fn check(ok: bool, expected: &str) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(expected.to_string())
    }
}

fn string_set(
    v: &Value,
    path: &str,
    budget: &mut usize,
    check_one: fn(&str) -> Result<(), String>,
) -> Result<Vec<String>, FieldError> {
    let items = v.as_array().ok_or_else(|| bad("invalid_type", path, "expected an array of strings"))?;
    if items.is_empty() {
        return Err(bad("empty_set", path, "a predicate's set of values must not be empty"));
    }
    if items.len() > *budget {
        return Err(bad("too_complex", path, format!("an expression may hold at most {MAX_VALUES} values")));
    }
    *budget -= items.len();
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let at = format!("{path}[{i}]");
        let s = item.as_str().ok_or_else(|| bad("invalid_type", &at, "expected a string"))?;
        check_one(s)
            .map_err(|expected| bad("invalid_value", &at, format!("`{s}` is not valid: expected {expected}")))?;
        out.push(s.to_string());
    }
    Ok(out)
}

fn validate_daypart(dp: &Daypart, path: &str) -> Result<(), FieldError> {
    if dp.time_zone.parse::<chrono_tz::Tz>().is_err() {
        return Err(bad(
            "invalid_timezone",
            join_path(path, "time_zone"),
            format!("`{}` is not an IANA time zone", dp.time_zone),
        ));
    }
    if dp.windows.is_empty() {
        return Err(bad("empty_set", join_path(path, "windows"), "a daypart needs at least one window"));
    }
    for (i, w) in dp.windows.iter().enumerate() {
        let wp = format!("{}[{i}]", join_path(path, "windows"));
        if w.days.is_empty() {
            return Err(bad("empty_set", join_path(&wp, "days"), "a window needs at least one day"));
        }
        if w.start_hour > 23 {
            return Err(bad("contradictory_daypart", join_path(&wp, "start_hour"), "start_hour must be 0..=23"));
        }
        if w.end_hour > 24 || w.end_hour <= w.start_hour {
            return Err(bad(
                "contradictory_daypart",
                join_path(&wp, "end_hour"),
                format!(
                    "end_hour {} must be greater than start_hour {} and at most 24 (split overnight windows in two)",
                    w.end_hour, w.start_hour
                ),
            ));
        }
    }
    Ok(())
}

/// Parses `WIDTHxHEIGHT` into (w, h), both positive.
pub fn parse_size(s: &str) -> Option<(u32, u32)> {
    let (w, h) = s.split_once('x')?;
    let w: u32 = w.parse().ok()?;
    let h: u32 = h.parse().ok()?;
    (w > 0 && h > 0).then_some((w, h))
}

/// A lower-case DNS host name (labels of letters, digits and hyphens, at least one dot).
pub fn is_hostname(s: &str) -> bool {
    s.len() <= 253
        && s.contains('.')
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn err(v: Value) -> FieldError {
        Expr::parse(&v, "targeting").expect_err("expression should be rejected")
    }

    #[test]
    fn parses_nested_expression_and_round_trips() {
        let v = json!({"all": [
            {"country": ["US", "CA"]},
            {"not": {"os": ["ios"]}},
            {"any": [{"key_value": {"key": "section", "values": ["sports"]}}, {"segment": ["s1"]}]},
            {"daypart": {"time_zone": "America/New_York", "windows": [{"days": ["mon", "fri"], "start_hour": 9, "end_hour": 17}]}},
            {"ip_cidr": ["10.0.0.0/8", "2001:db8::/32"]},
            {"device_type": ["phone", "tablet"]},
            {"size": ["300x250"]}
        ]});
        let e = Expr::parse(&v, "targeting").expect("valid");
        assert_eq!(e.predicate_count(), 8);
        assert_eq!(serde_json::to_value(&e).expect("serialise"), v);
        let back: Expr = serde_json::from_value(v).expect("deserialise");
        assert_eq!(back, e);
    }

    #[test]
    fn unknown_attribute_names_its_path() {
        let e = err(json!({"all": [{"country": ["US"]}, {"any": [{"colour": ["red"]}]}]}));
        assert_eq!(e.code, "unknown_attribute");
        assert_eq!(e.field, "targeting.all[1].any[0].colour");
    }

    #[test]
    fn bad_cidr_names_the_value() {
        let e = err(json!({"not": {"ip_cidr": ["10.0.0.0/8", "10.0.0.0/33"]}}));
        assert_eq!((e.code, e.field.as_str()), ("invalid_cidr", "targeting.not.ip_cidr[1]"));
    }

    #[test]
    fn empty_sets_are_rejected() {
        assert_eq!(err(json!({"country": []})).field, "targeting.country");
        assert_eq!(err(json!({"any": []})).code, "empty_set");
        let e = err(json!({"key_value": {"key": "k", "values": []}}));
        assert_eq!((e.code, e.field.as_str()), ("empty_set", "targeting.key_value.values"));
    }

    #[test]
    fn contradictory_daypart_is_rejected() {
        let e = err(
            json!({"daypart": {"time_zone": "UTC", "windows": [{"days": ["mon"], "start_hour": 18, "end_hour": 9}]}}),
        );
        assert_eq!(e.code, "contradictory_daypart");
        assert_eq!(e.field, "targeting.daypart.windows[0].end_hour");
        let e = err(
            json!({"daypart": {"time_zone": "Mars/Olympus", "windows": [{"days": ["mon"], "start_hour": 1, "end_hour": 9}]}}),
        );
        assert_eq!(e.code, "invalid_timezone");
        let e = err(
            json!({"daypart": {"time_zone": "UTC", "windows": [{"days": ["mon"], "start_hour": 1, "end_hour": 9, "x": 1}]}}),
        );
        assert_eq!((e.code, e.field.as_str()), ("unknown_field", "targeting.daypart.windows[0].x"));
    }

    #[test]
    fn values_are_checked() {
        assert_eq!(err(json!({"country": ["usa"]})).field, "targeting.country[0]");
        assert_eq!(err(json!({"device_type": ["phone", "fridge"]})).field, "targeting.device_type[1]");
        assert_eq!(err(json!({"size": ["300-250"]})).code, "invalid_value");
        assert_eq!(err(json!({"country": "US"})).code, "invalid_type");
        assert_eq!(err(json!({"country": ["US"], "os": ["ios"]})).code, "invalid_type");
    }

    #[test]
    fn depth_is_bounded() {
        let mut v = json!({"country": ["US"]});
        for _ in 0..=MAX_DEPTH {
            v = json!({"not": v});
        }
        assert_eq!(err(v).code, "too_complex");
    }
}
