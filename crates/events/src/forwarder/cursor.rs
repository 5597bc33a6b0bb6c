//! cursor: where forwarding stands, kept in a small file in the log directory — the log position
//! up to which the broker confirmed every event, and the incarnation of the log it was taken in.
//! Written whole to a temporary file, synced and renamed over the old one, so a crash leaves the
//! old cursor or the new one, never a mix.

use crate::local_log::LogPosition;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

const MAGIC: &str = "adp-forward-cursor v1";

/// The cursor file of `topic` in the log directory `dir`: `kafka-<topic>.cursor`. One per topic,
/// so pointing the forwarder at another topic starts that one from the beginning of the log.
pub fn cursor_path(dir: &Path, topic: &str) -> PathBuf {
    let safe: String =
        topic.chars().map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '_' }).collect();
    dir.join(format!("kafka-{safe}.cursor"))
}

/// A saved cursor: a log position and the incarnation of the log (see
/// `LogWatermark::incarnation`) it was taken in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cursor {
    pub pos: LogPosition,
    pub incarnation: u64,
}

/// The file's text: one line, the cursor and a checksum of it.
pub(crate) fn encode(cursor: &Cursor) -> String {
    let pos = &cursor.pos;
    let body =
        format!("segment={} offset={} events={} log={:016x}", pos.segment, pos.offset, pos.events, cursor.incarnation);
    format!("{MAGIC} {body} crc={:08x}\n", crc32fast::hash(body.as_bytes()))
}

pub(crate) fn decode(text: &str) -> Result<Cursor, String> {
    let line = text.trim_end_matches('\n');
    let rest = line.strip_prefix(MAGIC).and_then(|r| r.strip_prefix(' ')).ok_or("not a forwarder cursor")?;
    let (body, crc) = rest.rsplit_once(" crc=").ok_or("no checksum")?;
    let crc = u32::from_str_radix(crc, 16).map_err(|_| "bad checksum field")?;
    if crc32fast::hash(body.as_bytes()) != crc {
        return Err("checksum mismatch".into());
    }
    let mut c = Cursor { pos: LogPosition::default(), incarnation: 0 };
    let mut seen = 0;
    for field in body.split(' ') {
        let (name, value) = field.split_once('=').ok_or("malformed field")?;
        let value = if name == "log" { u64::from_str_radix(value, 16) } else { value.parse() }
            .map_err(|_| format!("`{name}` is not a number"))?;
        match name {
            "segment" => c.pos.segment = value,
            "offset" => c.pos.offset = value,
            "events" => c.pos.events = value,
            "log" => c.incarnation = value,
            _ => return Err(format!("unknown field `{name}`")),
        }
        seen += 1;
    }
    if seen != 4 {
        return Err("missing fields".into());
    }
    Ok(c)
}

/// Reads the cursor: `None` when there is none yet.
pub(crate) fn load(path: &Path) -> io::Result<Option<Result<Cursor, String>>> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(decode(&text))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Replaces the cursor durably: temporary file, sync, rename, sync the directory.
pub(crate) fn store(path: &Path, cursor: &Cursor) -> io::Result<()> {
    let tmp = path.with_extension("cursor.tmp");
    let mut file = File::create(&tmp)?;
    file.write_all(encode(cursor).as_bytes())?;
    file.sync_all()?;
    drop(file);
    fs::rename(&tmp, path)?;
    #[cfg(unix)]
    if let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(segment: u64, offset: u64, events: u64) -> Cursor {
        Cursor { pos: LogPosition { segment, offset, events }, incarnation: 0xfeed_0000_0001 }
    }

    #[test]
    fn round_trips_and_refuses_damage() {
        let c = at(3, 4096, 77);
        let text = encode(&c);
        assert_eq!(decode(&text), Ok(c));
        assert!(decode(&text.replace("4096", "4097")).unwrap_err().contains("checksum"));
        assert!(decode("hello").is_err());
        assert!(decode(&format!("{MAGIC} segment=1 crc={:08x}", crc32fast::hash(b"segment=1"))).is_err());
    }

    #[test]
    fn store_replaces_and_load_reads() {
        let dir = tempfile::tempdir().unwrap();
        let path = cursor_path(dir.path(), "adp.events");
        assert_eq!(path.file_name().unwrap(), "kafka-adp.events.cursor");
        assert!(load(&path).unwrap().is_none());
        store(&path, &at(1, 10, 1)).unwrap();
        store(&path, &at(2, 0, 5)).unwrap();
        assert_eq!(load(&path).unwrap(), Some(Ok(at(2, 0, 5))));
        assert!(!path.with_extension("cursor.tmp").exists());
        assert_eq!(cursor_path(dir.path(), "a/b").file_name().unwrap(), "kafka-a_b.cursor");
    }
}
