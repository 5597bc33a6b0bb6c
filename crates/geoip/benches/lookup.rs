//! Cost of one geo lookup on the database `scripts/services.sh start` fetches (or the file
//! `ADP_TEST_GEOIP_MMDB` names): 1024 public IPv4 addresses spread over the address space,
//! and 1024 IPv6 addresses in allocated space, looked up in turn.
//!
//!   ADP_TEST_GEOIP_MMDB=/path/to/file.mmdb cargo bench -p adp-geoip --bench lookup

use adp_domain::GeoLookup;
use adp_geoip::testkit::mmdb_path;
use adp_geoip::MmdbGeo;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A fixed pseudo-random sequence (xorshift), so runs compare.
fn addresses(n: usize) -> (Vec<IpAddr>, Vec<IpAddr>) {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut v4 = Vec::with_capacity(n);
    while v4.len() < n {
        let ip = IpAddr::V4(Ipv4Addr::from(next() as u32));
        if adp_geoip::public_address(ip).is_some() {
            v4.push(ip);
        }
    }
    // 2000::/4 .. 2a0f::/16: where RIRs allocate.
    let v6 = (0..n)
        .map(|_| {
            let r = next();
            let top = 0x2000 | ((r >> 48) as u16 & 0x0fff);
            IpAddr::V6(Ipv6Addr::new(top, (r >> 32) as u16, (r >> 16) as u16, r as u16, 0, 0, 0, 1))
        })
        .collect();
    (v4, v6)
}

fn bench(c: &mut Criterion) {
    let path = mmdb_path();
    let db = MmdbGeo::open(&path).unwrap_or_else(|e| panic!("{e}"));
    let (v4, v6) = addresses(1024);
    let found = v4.iter().filter(|ip| db.lookup(**ip).is_some()).count();
    eprintln!("{path} ({}): {found} of {} IPv4 addresses placed", db.database_type(), v4.len());
    let mut g = c.benchmark_group("geo_lookup");
    g.throughput(Throughput::Elements(v4.len() as u64));
    g.bench_function("ipv4_x1024", |b| {
        b.iter(|| {
            for ip in &v4 {
                black_box(db.lookup(black_box(*ip)));
            }
        })
    });
    g.bench_function("ipv6_x1024", |b| {
        b.iter(|| {
            for ip in &v6 {
                black_box(db.lookup(black_box(*ip)));
            }
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
