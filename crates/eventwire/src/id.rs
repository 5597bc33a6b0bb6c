//! id: the event id's 16-byte form. Only an id that the 16 bytes give back exactly (a lower-case
//! hyphenated UUID, as `Uuid::now_v7().to_string()` makes) takes it; any other id stays text.

use uuid::Uuid;

/// Length of a hyphenated UUID: `8-4-4-4-12` hex digits.
const HYPHENATED_LEN: usize = 36;

/// The 16 bytes (big endian) of `id` if formatting them lower-case hyphenated gives `id` back.
pub(crate) fn uuid_bytes(id: &str) -> Option<[u8; 16]> {
    // 36 characters parse only as the hyphenated form; upper-case digits would not come back.
    if id.len() != HYPHENATED_LEN || id.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    Uuid::try_parse(id).ok().map(|u| *u.as_bytes())
}

pub(crate) use adp_domain::events::uuid_text;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v7_ids_take_the_binary_form_and_come_back_unchanged() {
        for _ in 0..100 {
            let id = Uuid::now_v7().to_string();
            let bytes = uuid_bytes(&id).expect("a fresh UUIDv7 is lower-case hyphenated");
            assert_eq!(uuid_text(bytes), id);
        }
    }

    #[test]
    fn other_spellings_stay_text() {
        let u = Uuid::now_v7();
        for id in [
            u.to_string().to_uppercase(),
            u.simple().to_string(),
            u.braced().to_string(),
            u.urn().to_string(),
            format!("{u} "),
            String::new(),
            "demo-acme-ron".to_string(),
            // Hyphens in the wrong places.
            format!("{}-{}", &u.simple().to_string()[..8], &u.simple().to_string()[8..]) + "----",
        ] {
            assert_eq!(uuid_bytes(&id), None, "{id}");
        }
    }
}
