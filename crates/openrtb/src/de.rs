//! Tolerant deserializers for the shapes exchanges send in the wild.
//!
//! Everything here is plain `serde`, so it behaves the same under `serde_json` and `sonic-rs`
//! (a test checks both parsers give identical structs on every sample). What is tolerated:
//!
//! - integers given as booleans (`"secure": true` → 1), as integral floats (`300.0`) or as
//!   numeric strings (`"300"`); anything else (a fraction, a non-numeric string, an object) is
//!   an error, as is a value outside `i32`;
//! - floats given as numeric strings (`"bidfloor": "0.5"`);
//! - ids given as numbers (`"id": 123` → `"123"`);
//! - `null` wherever a field is optional or a list (a `null` list is an empty list);
//! - a single value where a list is expected (`"mimes": "video/mp4"` → `["video/mp4"]`);
//! - `native.request` given as a JSON object instead of a string (kept as its JSON text).
//!
//! `ext` objects (and an object `native.request`) are kept as `serde_json::Value`, any shape,
//! but at most [`MAX_EXT_DEPTH`] levels deep: building a `Value` recurses, and sonic-rs's own
//! limit (255 levels) is deeper than a debug build's stack allows.

use serde::de::{
    self, value::BorrowedStrDeserializer, value::MapAccessDeserializer, IntoDeserializer, MapAccess, SeqAccess, Visitor,
};
use serde::{Deserialize, Deserializer};
use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

fn int_from_f64<E: de::Error>(v: f64) -> Result<i64, E> {
    if v.is_finite() && v.fract() == 0.0 && v >= i64::MIN as f64 && v <= i64::MAX as f64 {
        Ok(v as i64)
    } else {
        Err(E::invalid_value(de::Unexpected::Float(v), &"an integer"))
    }
}

fn int_from_str<E: de::Error>(v: &str) -> Result<i64, E> {
    let t = v.trim();
    if let Ok(n) = t.parse::<i64>() {
        return Ok(n);
    }
    match t {
        "true" => Ok(1),
        "false" => Ok(0),
        _ => match t.parse::<f64>() {
            Ok(f) if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b)) => int_from_f64(f),
            _ => Err(E::invalid_value(de::Unexpected::Str(v), &"an integer")),
        },
    }
}

fn to_i32<E: de::Error>(v: i64) -> Result<i32, E> {
    i32::try_from(v).map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &"an integer that fits in 32 bits"))
}

/// An optional integer; `null` is `None`.
struct OptIntVisitor;

impl<'de> Visitor<'de> for OptIntVisitor {
    type Value = Option<i64>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an integer")
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Some(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        i64::try_from(v).map(Some).map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &"a smaller integer"))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        int_from_f64(v).map(Some)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Some(i64::from(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        int_from_str(v).map(Some)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

/// `Option<i32>`, tolerant (see the module docs).
pub fn opt_int<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i32>, D::Error> {
    d.deserialize_any(OptIntVisitor)?.map(to_i32).transpose()
}

/// `Option<i64>`, tolerant (see the module docs).
pub fn opt_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    d.deserialize_any(OptIntVisitor)
}

/// A required `i32`, tolerant; `null` is an error.
pub fn int<'de, D: Deserializer<'de>>(d: D) -> Result<i32, D::Error> {
    match d.deserialize_any(OptIntVisitor)? {
        Some(v) => to_i32(v),
        None => Err(de::Error::invalid_type(de::Unexpected::Unit, &"an integer")),
    }
}

struct OptFloatVisitor;

impl<'de> Visitor<'de> for OptFloatVisitor {
    type Value = Option<f64>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a number")
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Some(v as f64))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Some(v as f64))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Some(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        let t = v.trim();
        // Only plain decimal notation: Rust's parser would also take "NaN", "inf", "infinity".
        if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b)) {
            if let Ok(f) = t.parse::<f64>() {
                return Ok(Some(f));
            }
        }
        Err(E::invalid_value(de::Unexpected::Str(v), &"a number"))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

/// `Option<f64>`, tolerant: numbers or numeric strings; `null` is `None`.
pub fn opt_f64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    d.deserialize_any(OptFloatVisitor)
}

/// A required `f64` (e.g. `bid.price`), tolerant like [`opt_f64`]; `null` is an error.
pub fn f64<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    d.deserialize_any(OptFloatVisitor)?.ok_or_else(|| de::Error::invalid_type(de::Unexpected::Unit, &"a number"))
}

/// An optional string of a parsed request, borrowed from the input where the parser can
/// (a JSON string without escapes); `numbers` says whether a number or boolean is taken too
/// (kept as its decimal text).
struct OptCowVisitor {
    numbers: bool,
}

impl OptCowVisitor {
    fn number<'a, E: de::Error>(
        &self,
        text: String,
        unexpected: de::Unexpected<'_>,
    ) -> Result<Option<Cow<'a, str>>, E> {
        if self.numbers {
            Ok(Some(Cow::Owned(text)))
        } else {
            Err(E::invalid_type(unexpected, self))
        }
    }
}

impl<'de> Visitor<'de> for OptCowVisitor {
    type Value = Option<Cow<'de, str>>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Some(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Some(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Some(Cow::Owned(v)))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        self.number(v.to_string(), de::Unexpected::Signed(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        self.number(v.to_string(), de::Unexpected::Unsigned(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        self.number(v.to_string(), de::Unexpected::Float(v))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        self.number(v.to_string(), de::Unexpected::Bool(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

/// `Option<Cow<str>>`, borrowed where it can be; strings only (like `Option<String>`).
pub fn opt_str<'de, 'a, D: Deserializer<'de>>(d: D) -> Result<Option<Cow<'a, str>>, D::Error>
where
    'de: 'a,
{
    d.deserialize_any(OptCowVisitor { numbers: false })
}

/// An optional string that also takes a number or boolean (kept as its decimal text),
/// borrowed where it can be.
pub fn opt_cow<'de, 'a, D: Deserializer<'de>>(d: D) -> Result<Option<Cow<'a, str>>, D::Error>
where
    'de: 'a,
{
    d.deserialize_any(OptCowVisitor { numbers: true })
}

/// A string that also takes a number (kept as its decimal text), borrowed where it can be;
/// `null` is the empty string (validation reports it where the field is required).
pub fn cow<'de, 'a, D: Deserializer<'de>>(d: D) -> Result<Cow<'a, str>, D::Error>
where
    'de: 'a,
{
    Ok(d.deserialize_any(OptCowVisitor { numbers: true })?.unwrap_or_default())
}

/// A list of strings whose items may be numbers, borrowed where they can be.
pub fn vec_cow<'de, 'a, D: Deserializer<'de>>(d: D) -> Result<Vec<Cow<'a, str>>, D::Error>
where
    'de: 'a,
{
    Ok(vec::<D, CowStr<'de>>(d)?.into_iter().map(|CowStr(v)| v).collect())
}

/// `native.request`: a string per the spec; a JSON object (sent by some exchanges) is kept as
/// its JSON text so the field keeps one type. Borrowed where it can be.
pub fn cow_or_json<'de, 'a, D: Deserializer<'de>>(d: D) -> Result<Cow<'a, str>, D::Error>
where
    'de: 'a,
{
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Cow<'de, str>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a string or a JSON object")
        }
        fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
            Ok(Cow::Borrowed(v))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Cow::Owned(v.to_owned()))
        }
        fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
            Ok(Cow::Owned(v))
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Cow::Borrowed(""))
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Cow::Borrowed(""))
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(self)
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            let value = ValueVisitor { depth: MAX_EXT_DEPTH }.visit_map(map)?;
            Ok(Cow::Owned(value.to_string()))
        }
    }
    d.deserialize_any(V)
}

/// A list: `null` is empty, a lone value is a one-element list.
pub fn vec<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    struct V<T>(PhantomData<T>);
    impl<T> V<T> {
        fn one<'de, E: de::Error, I: IntoDeserializer<'de, E>>(v: I) -> Result<Vec<T>, E>
        where
            T: Deserialize<'de>,
        {
            Ok(vec![T::deserialize(v.into_deserializer())?])
        }
    }
    impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
        type Value = Vec<T>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a list")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
            while let Some(item) = seq.next_element()? {
                out.push(item);
            }
            Ok(out)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Vec<T>, E> {
            Ok(Vec::new())
        }
        fn visit_none<E: de::Error>(self) -> Result<Vec<T>, E> {
            Ok(Vec::new())
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Vec<T>, D::Error> {
            d.deserialize_any(self)
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Vec<T>, E> {
            Self::one(v)
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Vec<T>, E> {
            Self::one(v)
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Vec<T>, E> {
            Self::one(v)
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<Vec<T>, E> {
            Self::one(v)
        }
        fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Vec<T>, E> {
            Ok(vec![T::deserialize(BorrowedStrDeserializer::new(v))?])
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Vec<T>, E> {
            Self::one(v.to_owned())
        }
        fn visit_string<E: de::Error>(self, v: String) -> Result<Vec<T>, E> {
            Self::one(v)
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Vec<T>, A::Error> {
            Ok(vec![T::deserialize(MapAccessDeserializer::new(map))?])
        }
    }
    d.deserialize_any(V(PhantomData))
}

/// A list of integers, each tolerant like [`opt_int`].
pub fn vec_int<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<i32>, D::Error> {
    Ok(vec::<D, Int>(d)?.into_iter().map(|Int(v)| v).collect())
}

/// A list of strings whose items may be numbers, owned (for the response types).
pub fn vec_string<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(vec_cow(d)?.into_iter().map(Cow::into_owned).collect())
}

/// A `String` that also takes a number (kept as its decimal text); `null` is the empty string
/// (validation reports it where the field is required). Owned, for the response types.
pub fn string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    cow(d).map(Cow::into_owned)
}

struct Int(i32);

impl<'de> serde::Deserialize<'de> for Int {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        int(d).map(Int)
    }
}

struct CowStr<'a>(Cow<'a, str>);

impl<'de> serde::Deserialize<'de> for CowStr<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        cow(d).map(CowStr)
    }
}

/// How deep an `ext` value may nest (objects and arrays, counted from the `ext` itself).
pub const MAX_EXT_DEPTH: usize = 32;

/// An `ext` (or any free-form value): any JSON, `null` is `None`, at most [`MAX_EXT_DEPTH`]
/// levels deep.
pub fn ext<'de, D: Deserializer<'de>>(d: D) -> Result<Option<serde_json::Value>, D::Error> {
    match d.deserialize_any(ValueVisitor { depth: MAX_EXT_DEPTH })? {
        serde_json::Value::Null => Ok(None),
        v => Ok(Some(v)),
    }
}

/// Builds a `serde_json::Value` like serde_json's own visitor, with a depth budget.
#[derive(Clone, Copy)]
struct ValueVisitor {
    depth: usize,
}

impl ValueVisitor {
    /// For an array or object at this level: the visitor of its items (one level less), or an
    /// error when no level is left for the container itself.
    fn child<E: de::Error>(self) -> Result<ValueVisitor, E> {
        match self.depth.checked_sub(1) {
            Some(depth) => Ok(ValueVisitor { depth }),
            None => Err(E::custom(format_args!("ext nested deeper than {MAX_EXT_DEPTH} levels"))),
        }
    }
}

impl<'de> de::DeserializeSeed<'de> for ValueVisitor {
    type Value = serde_json::Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<serde_json::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = serde_json::Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<serde_json::Value, E> {
        Ok(serde_json::Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<serde_json::Value, E> {
        Ok(serde_json::Value::Number(v.into()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<serde_json::Value, E> {
        Ok(serde_json::Value::Number(v.into()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<serde_json::Value, E> {
        // `-0` is plain zero: serde_json reads it as -0.0 and sonic-rs as 0.0, and a value kept
        // as text (a `native.request` object) must not depend on the parser.
        let v = if v == 0.0 { 0.0 } else { v };
        Ok(serde_json::Number::from_f64(v).map_or(serde_json::Value::Null, serde_json::Value::Number))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<serde_json::Value, E> {
        Ok(serde_json::Value::String(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<serde_json::Value, E> {
        Ok(serde_json::Value::String(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<serde_json::Value, E> {
        Ok(serde_json::Value::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<serde_json::Value, E> {
        Ok(serde_json::Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<serde_json::Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<serde_json::Value, A::Error> {
        let child = self.child()?;
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(v) = seq.next_element_seed(child)? {
            out.push(v);
        }
        Ok(serde_json::Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<serde_json::Value, A::Error> {
        let child = self.child()?;
        let mut out = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value_seed(child)?;
            out.insert(key, value);
        }
        Ok(serde_json::Value::Object(out))
    }
}

thread_local! {
    /// Set while [`crate::parse_request_for_bidding`] parses: the fields marked `unread` are
    /// skipped.
    static SKIP_UNREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with the fields the bidder does not read ([`unread`]) skipped instead of parsed.
pub(crate) fn skipping_unread<T>(f: impl FnOnce() -> T) -> T {
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            SKIP_UNREAD.with(|s| s.set(self.0));
        }
    }
    let _reset = Reset(SKIP_UNREAD.with(|s| s.replace(true)));
    f()
}

fn skip_unread() -> bool {
    SKIP_UNREAD.with(std::cell::Cell::get)
}

/// The deserializers of the fields that the bidder (`POST /openrtb2/bid`: its decision,
/// validation and 2.5 normalisation) never reads. Each is the deserializer of the same name one
/// module up, except while [`crate::parse_request_for_bidding`] parses: then the value is
/// skipped unchecked (still as JSON: a syntax error anywhere stays an error) and the field is
/// left at its default. Skipping a value costs a fraction of building it, and a typical
/// request is half such values (site content, device details, metrics, supply chain, ...).
///
/// A field the bidder starts to read must lose its `unread::` mark; the bidder's tests hold
/// what it reads.
pub mod unread {
    use super::*;

    /// Skips the value (default result) while the bidder parses, else `parse`s it.
    fn skip_or<'de, D: Deserializer<'de>, T: Default>(
        d: D,
        parse: impl FnOnce(D) -> Result<T, D::Error>,
    ) -> Result<T, D::Error> {
        if skip_unread() {
            de::IgnoredAny::deserialize(d)?;
            Ok(T::default())
        } else {
            parse(d)
        }
    }

    macro_rules! unread {
        ($($name:ident -> $t:ty;)*) => {$(
            #[doc = concat!("[`super::", stringify!($name), "`], or skipped while the bidder parses.")]
            pub fn $name<'de, D: Deserializer<'de>>(d: D) -> Result<$t, D::Error> {
                skip_or(d, super::$name)
            }
        )*};
    }
    macro_rules! unread_borrowed {
        ($($name:ident -> $t:ty;)*) => {$(
            #[doc = concat!("[`super::", stringify!($name), "`], or skipped while the bidder parses.")]
            pub fn $name<'de, 'a, D: Deserializer<'de>>(d: D) -> Result<$t, D::Error>
            where
                'de: 'a,
            {
                skip_or(d, super::$name)
            }
        )*};
    }
    unread! {
        opt_int -> Option<i32>;
        opt_f64 -> Option<f64>;
        vec_int -> Vec<i32>;
        ext -> Option<serde_json::Value>;
    }
    unread_borrowed! {
        opt_str -> Option<Cow<'a, str>>;
        opt_cow -> Option<Cow<'a, str>>;
        vec_cow -> Vec<Cow<'a, str>>;
    }

    /// [`super::vec`], or skipped while the bidder parses.
    pub fn vec<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
        skip_or(d, super::vec)
    }

    /// A field's own `Deserialize`, or skipped while the bidder parses.
    pub fn plain<'de, D: Deserializer<'de>, T: Deserialize<'de> + Default>(d: D) -> Result<T, D::Error> {
        skip_or(d, T::deserialize)
    }
}
