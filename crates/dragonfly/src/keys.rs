//! keys: the names of every key this crate writes; pure, no I/O.
//!
//! All keys start with the configured prefix. The part in braces is the Redis hash tag: keys that
//! one script touches together share it, so they live in one slot (one shard).

use crate::Error;

/// Checks a key prefix: not empty, no braces (they would move the hash tag) and no whitespace.
pub(crate) fn check_prefix(prefix: &str) -> Result<(), Error> {
    if prefix.is_empty() {
        return Err(Error::Invalid("the key prefix is empty".into()));
    }
    if prefix.chars().any(|c| c == '{' || c == '}' || c.is_whitespace()) {
        return Err(Error::Invalid(format!("the key prefix `{prefix}` has a brace or a space")));
    }
    Ok(())
}

/// Checks an id that goes inside a hash tag: not empty and no braces, so that every key of one
/// id has the same tag.
pub(crate) fn check_tag_id(what: &str, id: &str) -> Result<(), Error> {
    if id.is_empty() || id.contains(['{', '}']) {
        return Err(Error::Invalid(format!("{what} `{id}` is empty or has a brace")));
    }
    Ok(())
}

/// `{prefix}:fc:{<user key, 16 hex digits>}`: one user's frequency counters.
pub(crate) fn caps(prefix: &str, user_key: u64) -> String {
    format!("{prefix}:fc:{{{user_key:016x}}}")
}

/// `{prefix}:bud:{<line item id>}:<day>`: one line item's spend and leases on one budget day.
pub(crate) fn budget_day(prefix: &str, line_item_id: &str, day: i64) -> String {
    format!("{prefix}:bud:{{{line_item_id}}}:{day}")
}

/// `{prefix}:bud:{<line item id>}:life`: one line item's lifetime spend and leases.
pub(crate) fn budget_life(prefix: &str, line_item_id: &str) -> String {
    format!("{prefix}:bud:{{{line_item_id}}}:life")
}

/// `{prefix}:rg:<key>`: one replay-guard entry.
pub(crate) fn replay(prefix: &str, key: &str) -> String {
    format!("{prefix}:rg:{key}")
}

/// `{prefix}:ctr:{<creative id>}`: one creative's impression and click counts.
pub(crate) fn ctr(prefix: &str, creative_id: &str) -> String {
    format!("{prefix}:ctr:{{{creative_id}}}")
}

/// The hash tag Redis Cluster and Dragonfly place a key by: the text between the first `{` and
/// the first `}` after it, when not empty; otherwise the whole key.
#[cfg(test)]
fn hash_tag(key: &str) -> &str {
    if let Some(open) = key.find('{') {
        if let Some(len) = key[open + 1..].find('}') {
            if len > 0 {
                return &key[open + 1..open + 1 + len];
            }
        }
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout() {
        assert_eq!(caps("adp", 0xbeef), "adp:fc:{000000000000beef}");
        assert_eq!(budget_day("adp", "li-1", 20_523), "adp:bud:{li-1}:20523");
        assert_eq!(budget_day("adp", "li-1", -3), "adp:bud:{li-1}:-3");
        assert_eq!(budget_life("adp", "li-1"), "adp:bud:{li-1}:life");
        assert_eq!(replay("adp", "imp:abc"), "adp:rg:imp:abc");
        assert_eq!(ctr("adp", "cr-9"), "adp:ctr:{cr-9}");
    }

    #[test]
    fn a_line_items_keys_share_one_slot() {
        for id in ["li-1", "7", "a:b"] {
            assert!(check_tag_id("line item", id).is_ok());
            let day = budget_day("adp", id, 7);
            let life = budget_life("adp", id);
            assert_eq!(hash_tag(&day), hash_tag(&life), "{day} / {life}");
        }
        assert_eq!(hash_tag(&budget_life("adp", "li-1")), "li-1");
        assert_eq!(hash_tag(&caps("adp", 1)), "0000000000000001");
        for bad in ["", "a}b", "}", "{x}"] {
            assert!(matches!(check_tag_id("line item", bad), Err(Error::Invalid(_))), "{bad:?}");
        }
    }

    #[test]
    fn prefixes_are_checked() {
        assert!(check_prefix("adp").is_ok());
        assert!(check_prefix("adp-test-1:x").is_ok());
        for bad in ["", "a{b", "a}b", "a b"] {
            assert!(matches!(check_prefix(bad), Err(Error::Invalid(_))), "{bad:?}");
        }
    }
}
