//! geoip: the `GeoLookup` port on a MaxMind DB (.mmdb) file held in memory. It reads both
//! MaxMind GeoIP2/GeoLite2 records (`country.iso_code`, `subdivisions[0].iso_code` as the
//! ISO 3166-2 `US-CA`, `city.names.en`) and ip-location-db records (`country_code`, `state1`,
//! `city`). A lookup walks the search tree and decodes one record in one pass, borrowing its
//! strings from the file's bytes: no locks, no allocation but the strings of the answer.

use adp_domain::{GeoInfo, GeoLookup};
use maxminddb::Reader;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

/// Why a geo database cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum GeoDbError {
    #[error("geo database {path}: cannot read it: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("geo database {path} is not a usable MaxMind DB file: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

/// Geo lookup on one .mmdb file, read into memory once.
pub struct MmdbGeo {
    reader: Reader<Vec<u8>>,
    path: PathBuf,
}

impl fmt::Debug for MmdbGeo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MmdbGeo").field("path", &self.path).field("database_type", &self.database_type()).finish()
    }
}

/// Addresses probed when a file is opened: decoding their records must work.
const PROBES: [IpAddr; 3] = [
    IpAddr::V4(Ipv4Addr::new(8, 8, 8, 8)),
    IpAddr::V4(Ipv4Addr::new(1, 1, 1, 1)),
    IpAddr::V6(Ipv6Addr::new(0x2001, 0x4860, 0x4860, 0, 0, 0, 0, 0x8888)),
];

impl MmdbGeo {
    /// Reads and checks the file: its metadata must parse, it must be an IP database and the
    /// records of a few well-known addresses must decode.
    pub fn open(path: impl AsRef<Path>) -> Result<MmdbGeo, GeoDbError> {
        let path = path.as_ref().to_path_buf();
        let bytes = std::fs::read(&path).map_err(|source| GeoDbError::Read { path: path.clone(), source })?;
        MmdbGeo::from_bytes(bytes, path)
    }

    /// Like [`MmdbGeo::open`], on bytes already read; `path` only names them in errors.
    pub fn from_bytes(bytes: Vec<u8>, path: PathBuf) -> Result<MmdbGeo, GeoDbError> {
        let invalid = |reason: String| GeoDbError::Invalid { path: path.clone(), reason };
        let reader = Reader::from_source(bytes).map_err(|e| invalid(e.to_string()))?;
        let ip_version = reader.metadata().ip_version;
        if ip_version != 4 && ip_version != 6 {
            return Err(invalid(format!("ip_version {ip_version} in its metadata")));
        }
        for ip in PROBES {
            if ip.is_ipv6() && ip_version == 4 {
                continue;
            }
            let found = reader.lookup(ip).map_err(|e| invalid(format!("looking up {ip}: {e}")))?;
            found.decode::<Record<'_>>().map_err(|e| invalid(format!("the record of {ip}: {e}")))?;
        }
        Ok(MmdbGeo { reader, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The database's own name for its type, e.g. `GeoLite2-City`.
    pub fn database_type(&self) -> &str {
        &self.reader.metadata().database_type
    }

    /// Seconds since the Unix epoch when the database was built.
    pub fn build_epoch(&self) -> u64 {
        self.reader.metadata().build_epoch
    }
}

impl GeoLookup for MmdbGeo {
    fn lookup(&self, ip: IpAddr) -> Option<GeoInfo> {
        let ip = public_address(ip)?;
        // An IPv6 address in an IPv4-only database is an error of the reader: no answer.
        let found = self.reader.lookup(ip).ok()?;
        found.decode::<Record<'_>>().ok()??.into_geo()
    }
}

/// `ip` as the database should see it (an IPv4-mapped IPv6 address as IPv4), or `None` when
/// it is not a public address: private, loopback, link-local, shared (CGNAT), documentation,
/// multicast, reserved. Some databases place such ranges in a country; a request from one
/// says nothing about where the user is.
pub fn public_address(ip: IpAddr) -> Option<IpAddr> {
    match ip {
        IpAddr::V4(v4) => public_v4(v4).then_some(ip),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => public_v4(v4).then_some(IpAddr::V4(v4)),
            None => public_v6(v6).then_some(ip),
        },
    }
}

fn public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    !(a == 0
        || ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_documentation()
        || ip.is_multicast()
        || a >= 240
        || (a == 100 && (64..128).contains(&b))
        || (a == 198 && (b == 18 || b == 19))
        || (a == 192 && b == 0 && ip.octets()[2] == 0))
}

fn public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || ip.is_unique_local()
        || ip.is_unicast_link_local()
        || (s[0] == 0x2001 && s[1] == 0x0db8)
        || (s[0] == 0x0064 && s[1] == 0xff9b)
        || s[0] == 0)
}

// ---------------------------------------------------------------------------------------------
// the record, in either layout, decoded in one pass

/// The fields of one record that geo targeting uses; strings borrowed from the database.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Record<'a> {
    /// GeoIP2/GeoLite2: where the address is.
    #[serde(borrow)]
    country: Option<IsoCode<'a>>,
    /// GeoIP2/GeoLite2: where the block is registered (the only country of some records).
    #[serde(borrow)]
    registered_country: Option<IsoCode<'a>>,
    /// ip-location-db.
    #[serde(borrow)]
    country_code: Option<&'a str>,
    /// GeoIP2/GeoLite2 City: the most general subdivision comes first.
    #[serde(borrow)]
    subdivisions: Option<FirstSubdivision<'a>>,
    /// ip-location-db city databases: the region's name.
    #[serde(borrow)]
    state1: Option<&'a str>,
    /// A map with `names` in GeoIP2/GeoLite2 City, a plain name in ip-location-db.
    #[serde(borrow)]
    city: Option<CityField<'a>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct IsoCode<'a> {
    #[serde(borrow)]
    iso_code: Option<&'a str>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Names<'a> {
    #[serde(borrow)]
    names: Option<English<'a>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct English<'a> {
    #[serde(borrow)]
    en: Option<&'a str>,
}

/// The ISO code of the first subdivision; the others are skipped.
#[derive(Debug, Default)]
struct FirstSubdivision<'a>(Option<&'a str>);

impl<'de: 'a, 'a> Deserialize<'de> for FirstSubdivision<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = FirstSubdivision<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of subdivisions")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let first = seq.next_element::<IsoCode<'a>>()?;
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(FirstSubdivision(first.and_then(|c| c.iso_code)))
            }
        }
        d.deserialize_seq(V(std::marker::PhantomData))
    }
}

/// A city: its English name from a GeoIP2 `names` map, or the plain name ip-location-db stores.
#[derive(Debug, Default)]
struct CityField<'a>(Option<&'a str>);

impl<'de: 'a, 'a> Deserialize<'de> for CityField<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = CityField<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a city name or a map with names")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(CityField(Some(v)))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
                // Only borrowed names are kept (a database's strings always are).
                Ok(CityField(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                let names = Names::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(CityField(names.names.and_then(|n| n.en)))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

fn iso<'a>(c: Option<IsoCode<'a>>) -> Option<&'a str> {
    c.and_then(|c| c.iso_code)
}

/// A value that is there and not blank.
fn some(s: Option<&str>) -> Option<&str> {
    s.map(str::trim).filter(|s| !s.is_empty())
}

impl Record<'_> {
    fn into_geo(self) -> Option<GeoInfo> {
        let country = iso(self.country).or(self.country_code).or(iso(self.registered_country))?;
        let country = country_code(country)?;
        // A GeoIP2 subdivision code is the part after the country (`BE` of `DE-BE`).
        let region = match (some(self.subdivisions.and_then(|s| s.0)), some(self.state1)) {
            (Some(code), _) if !code.contains('-') => Some(format!("{country}-{code}")),
            (Some(code), _) => Some(code.to_string()),
            (None, name) => name.map(str::to_string),
        };
        Some(GeoInfo { region, city: some(self.city.and_then(|c| c.0)).map(str::to_string), country })
    }
}

/// Two ASCII letters, upper-cased; anything else (e.g. an empty or a 3-letter code) is none.
fn country_code(s: &str) -> Option<String> {
    let b = s.as_bytes();
    (b.len() == 2 && b.iter().all(u8::is_ascii_alphabetic)).then(|| s.to_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geo(json: &str) -> Option<GeoInfo> {
        serde_json::from_str::<Record<'_>>(json).expect("record").into_geo()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn maxmind_city_layout() {
        let json = r#"{"city": {"geoname_id": 5375480, "names": {"de": "Mountain View", "en": "Mountain View"}},
            "continent": {"code": "NA"}, "country": {"iso_code": "US", "names": {"en": "United States"}},
            "location": {"latitude": 37.4, "longitude": -122.1},
            "registered_country": {"iso_code": "US"},
            "subdivisions": [{"iso_code": "CA", "names": {"en": "California"}}, {"iso_code": "XX"}]}"#;
        let g = geo(json).expect("geo");
        assert_eq!(
            g,
            GeoInfo { country: "US".into(), region: Some("US-CA".into()), city: Some("Mountain View".into()) }
        );
    }

    #[test]
    fn maxmind_country_layout_and_registered_country_fallback() {
        let g = geo(r#"{"continent": {"code": "EU"}, "country": {"iso_code": "DE"}}"#).expect("geo");
        assert_eq!(g, GeoInfo { country: "DE".into(), region: None, city: None });
        // Anycast blocks carry only the registration country in GeoLite2.
        let g = geo(r#"{"registered_country": {"iso_code": "NL"}}"#).expect("geo");
        assert_eq!(g.country, "NL");
        assert_eq!(geo(r#"{"continent": {"code": "EU"}}"#), None);
    }

    #[test]
    fn ip_location_db_layouts() {
        let g = geo(r#"{"country_code": "fr"}"#).expect("geo");
        assert_eq!(g, GeoInfo { country: "FR".into(), region: None, city: None });
        let json = r#"{"city": "Paris", "country_code": "FR", "latitude": 48.8, "longitude": 2.3,
            "postcode": "", "state1": "Ile-de-France", "state2": "", "timezone": ""}"#;
        let g = geo(json).expect("geo");
        assert_eq!(
            g,
            GeoInfo { country: "FR".into(), region: Some("Ile-de-France".into()), city: Some("Paris".into()) }
        );
        // Empty strings are no value.
        let g = geo(r#"{"city": "", "country_code": "FR", "state1": ""}"#).expect("geo");
        assert_eq!((g.region, g.city), (None, None));
    }

    #[test]
    fn bad_country_codes_are_no_answer() {
        assert_eq!(geo(r#"{"country_code": ""}"#), None);
        assert_eq!(geo(r#"{"country_code": "DEU"}"#), None);
        assert_eq!(geo(r#"{"country": {"iso_code": "1x"}}"#), None);
    }

    #[test]
    fn only_public_addresses_are_looked_up() {
        for private in
            ["10.0.0.1", "192.168.1.1", "172.16.0.1", "127.0.0.1", "169.254.1.1", "100.64.0.1", "192.0.2.1", "0.1.2.3"]
        {
            assert_eq!(public_address(ip(private)), None, "{private}");
        }
        for private in ["::1", "::", "fe80::1", "fd00::1", "2001:db8::1", "ff02::1", "::ffff:10.0.0.1"] {
            assert_eq!(public_address(ip(private)), None, "{private}");
        }
        assert_eq!(public_address(ip("8.8.8.8")), Some(ip("8.8.8.8")));
        assert_eq!(public_address(ip("::ffff:8.8.8.8")), Some(ip("8.8.8.8")));
        assert_eq!(public_address(ip("2a00:1450::1")), Some(ip("2a00:1450::1")));
    }

    #[test]
    fn garbage_is_refused_with_the_path() {
        let err = MmdbGeo::from_bytes(b"not a database".to_vec(), PathBuf::from("/x/geo.mmdb")).expect_err("garbage");
        let msg = err.to_string();
        assert!(msg.contains("/x/geo.mmdb") && msg.contains("not a usable MaxMind DB file"), "{msg}");
        let err = MmdbGeo::open("/nonexistent/geo.mmdb").expect_err("missing");
        assert!(err.to_string().starts_with("geo database /nonexistent/geo.mmdb: cannot read it"), "{err}");
    }
}

/// Test support: where the geo database of the test services is.
#[cfg(feature = "testkit")]
pub mod testkit {
    /// The database `scripts/services.sh start` fetches: `ADP_TEST_GEOIP_MMDB` from the
    /// environment, else from `$ADP_SERVICES_DIR/env` (default /var/tmp/adplatform-services), the
    /// file that script writes. Missing is a failure (a panic naming what to run), never a skip.
    pub fn mmdb_path() -> String {
        if let Some(path) = std::env::var("ADP_TEST_GEOIP_MMDB").ok().filter(|p| !p.is_empty()) {
            return path;
        }
        let dir = std::env::var("ADP_SERVICES_DIR").unwrap_or_else(|_| "/var/tmp/adplatform-services".to_string());
        let file = format!("{dir}/env");
        let text = std::fs::read_to_string(&file).unwrap_or_else(|e| {
            panic!(
                "ADP_TEST_GEOIP_MMDB is not set and the services env file {file} cannot be read ({e}): \
                 run `scripts/services.sh start` (or `scripts/fetch-geoip.sh DIR` and set \
                 ADP_TEST_GEOIP_MMDB) first; scripts/test.sh does"
            )
        });
        text.lines()
            .find_map(|l| l.strip_prefix("ADP_TEST_GEOIP_MMDB=").map(|v| v.trim().to_string()))
            .unwrap_or_else(|| panic!("{file} has no ADP_TEST_GEOIP_MMDB: run `scripts/services.sh start` again"))
    }
}
