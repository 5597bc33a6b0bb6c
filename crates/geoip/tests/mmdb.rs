//! The adapter on the real database `scripts/services.sh start` fetches (ip-location-db
//! geo-whois-asn-country, IPv4 and IPv6). Without it these tests fail: they never skip.

use adp_domain::GeoLookup;
use adp_geoip::testkit::mmdb_path;
use adp_geoip::MmdbGeo;
use std::net::IpAddr;

fn db() -> MmdbGeo {
    let path = mmdb_path();
    MmdbGeo::open(&path).unwrap_or_else(|e| panic!("{e}"))
}

fn country(db: &MmdbGeo, ip: &str) -> Option<String> {
    db.lookup(ip.parse::<IpAddr>().expect("ip")).map(|g| g.country)
}

#[test]
fn well_known_ipv4_addresses_resolve_to_their_countries() {
    let db = db();
    // Google Public DNS, Cloudflare's resolver (APNIC research block), heise.de, FDN's resolver.
    assert_eq!(country(&db, "8.8.8.8").as_deref(), Some("US"));
    assert_eq!(country(&db, "1.1.1.1").as_deref(), Some("AU"));
    assert_eq!(country(&db, "193.99.144.80").as_deref(), Some("DE"));
    assert_eq!(country(&db, "80.67.169.12").as_deref(), Some("FR"));
    // A country database has no regions or cities.
    let g = db.lookup("8.8.8.8".parse().expect("ip")).expect("8.8.8.8");
    assert_eq!((g.region, g.city), (None, None));
}

#[test]
fn ipv6_addresses_resolve_too() {
    let db = db();
    assert_eq!(country(&db, "2001:4860:4860::8888").as_deref(), Some("US"));
    assert_eq!(country(&db, "2a01:238:20a:202:1159::1").as_deref(), Some("DE"));
    // IPv4-mapped IPv6 is looked up as IPv4.
    assert_eq!(country(&db, "::ffff:193.99.144.80").as_deref(), Some("DE"));
}

#[test]
fn private_and_reserved_addresses_are_not_placed() {
    let db = db();
    for ip in ["10.0.0.1", "127.0.0.1", "::1", "fd12:3456::1"] {
        assert_eq!(country(&db, ip), None, "{ip}");
    }
    // The file places 192.168.0.0/16 in AU; the adapter does not ask it about private ranges.
    assert_eq!(country(&db, "192.168.1.1"), None);
}

#[test]
fn a_truncated_file_is_refused_naming_it() {
    let path = mmdb_path();
    let bytes = std::fs::read(&path).expect("read");
    let dir = tempfile::tempdir().expect("tempdir");
    let cut = dir.path().join("cut.mmdb");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).expect("write");
    let err = MmdbGeo::open(&cut).expect_err("a truncated file must not open");
    let msg = err.to_string();
    assert!(msg.contains(&cut.display().to_string()) && msg.contains("not a usable MaxMind DB file"), "{msg}");
}
