//! Looks addresses up in a .mmdb file the way the server does:
//!
//!   cargo run -p adp-geoip --example geo_lookup -- FILE.mmdb 8.8.8.8 2001:4860:4860::8888

use adp_domain::GeoLookup;
use adp_geoip::MmdbGeo;
use std::net::IpAddr;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next() else {
        eprintln!("usage: geo_lookup FILE.mmdb IP...");
        return ExitCode::from(2);
    };
    let db = match MmdbGeo::open(&path) {
        Ok(db) => db,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("{path}: {} built at {}", db.database_type(), db.build_epoch());
    for arg in args {
        match arg.parse::<IpAddr>() {
            Ok(ip) => println!("{ip}\t{:?}", db.lookup(ip)),
            Err(_) => println!("{arg}\tnot an IP address"),
        }
    }
    ExitCode::SUCCESS
}
