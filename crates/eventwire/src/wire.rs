//! wire: the Protobuf binary encoding's primitives — varints, field keys, fixed-width values,
//! skipping fields a reader does not know — written from the encoding's specification, so the
//! event writer and reader need no hidden prost API. Slices in, `Vec` out; nothing else.

use crate::DecodeError;

pub(crate) const VARINT: u8 = 0;
pub(crate) const I64: u8 = 1;
pub(crate) const LEN: u8 = 2;
pub(crate) const SGROUP: u8 = 3;
pub(crate) const EGROUP: u8 = 4;
pub(crate) const I32: u8 = 5;

/// Groups (a deprecated wire type) nested deeper than this are refused, as prost does.
const MAX_GROUP_DEPTH: u32 = 100;

fn malformed(reason: &str) -> DecodeError {
    DecodeError::Malformed { reason: reason.to_string() }
}

pub(crate) fn put_varint(mut value: u64, out: &mut Vec<u8>) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Bytes `put_varint` writes for `value`: one per started 7 bits.
pub(crate) fn varint_len(value: u64) -> usize {
    let bits = 64 - (value | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

pub(crate) fn key_len(field: u32) -> usize {
    varint_len(u64::from(field) << 3)
}

pub(crate) fn put_key(field: u32, wire_type: u8, out: &mut Vec<u8>) {
    put_varint(u64::from(field) << 3 | u64::from(wire_type), out);
}

pub(crate) fn put_bytes(field: u32, bytes: &[u8], out: &mut Vec<u8>) {
    put_key(field, LEN, out);
    put_varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

pub(crate) fn bytes_len(field: u32, len: usize) -> usize {
    key_len(field) + varint_len(len as u64) + len
}

/// `int64`, and `int32`/enum values (sign-extended, as the encoding wants).
pub(crate) fn put_int(field: u32, value: i64, out: &mut Vec<u8>) {
    put_key(field, VARINT, out);
    put_varint(value as u64, out);
}

pub(crate) fn int_len(field: u32, value: i64) -> usize {
    key_len(field) + varint_len(value as u64)
}

pub(crate) fn put_fixed64(field: u32, value: u64, out: &mut Vec<u8>) {
    put_key(field, I64, out);
    out.extend_from_slice(&value.to_le_bytes());
}

pub(crate) fn fixed64_len(field: u32) -> usize {
    key_len(field) + 8
}

/// A varint of at most 10 bytes whose value fits in 64 bits.
pub(crate) fn read_varint(buf: &mut &[u8]) -> Result<u64, DecodeError> {
    let mut value = 0u64;
    for (i, &byte) in buf.iter().enumerate().take(10) {
        if i == 9 && byte > 1 {
            return Err(malformed("varint overflows 64 bits"));
        }
        value |= u64::from(byte & 0x7F) << (7 * i);
        if byte < 0x80 {
            *buf = &buf[i + 1..];
            return Ok(value);
        }
    }
    Err(malformed(if buf.len() < 10 { "message ends inside a varint" } else { "varint longer than 10 bytes" }))
}

/// A field key: field number (1..=2^29-1) and wire type.
pub(crate) fn read_key(buf: &mut &[u8]) -> Result<(u32, u8), DecodeError> {
    let key = read_varint(buf)?;
    let key = u32::try_from(key).map_err(|_| malformed("field key out of range"))?;
    let wire_type = (key & 7) as u8;
    if wire_type > I32 {
        return Err(malformed("unknown wire type"));
    }
    if key >> 3 == 0 {
        return Err(malformed("field number 0"));
    }
    Ok((key >> 3, wire_type))
}

pub(crate) fn read_len_delimited<'a>(buf: &mut &'a [u8]) -> Result<&'a [u8], DecodeError> {
    let len = read_varint(buf)?;
    if len > buf.len() as u64 {
        return Err(malformed("message ends inside a field"));
    }
    // Fits in usize: it is at most the slice's length.
    let (bytes, rest) = buf.split_at(len as usize);
    *buf = rest;
    Ok(bytes)
}

pub(crate) fn read_str<'a>(buf: &mut &'a [u8]) -> Result<&'a str, DecodeError> {
    let bytes = read_len_delimited(buf)?;
    std::str::from_utf8(bytes).map_err(|_| malformed("a string field is not UTF-8"))
}

pub(crate) fn read_fixed<const N: usize>(buf: &mut &[u8]) -> Result<[u8; N], DecodeError> {
    match buf.split_first_chunk::<N>() {
        Some((bytes, rest)) => {
            *buf = rest;
            Ok(*bytes)
        }
        None => Err(malformed("message ends inside a fixed-width field")),
    }
}

/// Steps over the value of a field this reader does not know.
pub(crate) fn skip_field(field: u32, wire_type: u8, buf: &mut &[u8]) -> Result<(), DecodeError> {
    skip(field, wire_type, buf, 0)
}

fn skip(field: u32, wire_type: u8, buf: &mut &[u8], depth: u32) -> Result<(), DecodeError> {
    match wire_type {
        VARINT => read_varint(buf).map(drop),
        I64 => read_fixed::<8>(buf).map(drop),
        LEN => read_len_delimited(buf).map(drop),
        I32 => read_fixed::<4>(buf).map(drop),
        SGROUP => {
            if depth >= MAX_GROUP_DEPTH {
                return Err(malformed("groups nested too deep"));
            }
            loop {
                let (inner, inner_type) = read_key(buf)?;
                if inner_type == EGROUP {
                    return if inner == field { Ok(()) } else { Err(malformed("a group ends with another's tag")) };
                }
                skip(inner, inner_type, buf, depth + 1)?;
            }
        }
        _ => Err(malformed("a group ends that did not start")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_match_prost() {
        for v in [0, 1, 127, 128, 300, 16_383, 16_384, u64::from(u32::MAX), i64::MAX as u64, u64::MAX] {
            let mut ours = Vec::new();
            put_varint(v, &mut ours);
            let mut theirs = Vec::new();
            prost::encode_length_delimiter(v as usize, &mut theirs).expect("room");
            assert_eq!(ours, theirs, "{v}");
            assert_eq!(varint_len(v), ours.len(), "{v}");
            let mut read = ours.as_slice();
            assert_eq!(read_varint(&mut read), Ok(v));
            assert!(read.is_empty());
        }
    }

    #[test]
    fn bad_varints_are_errors() {
        assert!(read_varint(&mut &[][..]).is_err());
        assert!(read_varint(&mut &[0x80][..]).is_err());
        assert!(read_varint(&mut &[0xFF; 11][..]).is_err());
        // The tenth byte may only carry the 64th bit.
        let mut max = [0xFF; 10];
        max[9] = 0x01;
        assert_eq!(read_varint(&mut &max[..]), Ok(u64::MAX));
        max[9] = 0x02;
        assert!(read_varint(&mut &max[..]).is_err());
    }

    #[test]
    fn groups_are_skipped_to_their_end_and_no_deeper_than_the_limit() {
        let mut group = Vec::new();
        put_key(7, SGROUP, &mut group);
        put_int(1, 5, &mut group);
        put_key(8, SGROUP, &mut group);
        put_key(8, EGROUP, &mut group);
        put_key(7, EGROUP, &mut group);
        group.push(0xAA);
        let mut buf = &group[1..];
        assert_eq!(skip_field(7, SGROUP, &mut buf), Ok(()));
        assert_eq!(buf, &[0xAA]);

        let mut deep = Vec::new();
        for _ in 0..=MAX_GROUP_DEPTH {
            put_key(9, SGROUP, &mut deep);
        }
        let mut buf = &deep[1..];
        assert!(skip_field(9, SGROUP, &mut buf).is_err());
        assert!(skip_field(9, EGROUP, &mut &[][..]).is_err());
    }
}
