//! eval: direct evaluation of a targeting expression against a request — the reference the
//! compiled index must agree with, and the fallback for expressions too large to index.

use crate::request::{device_type_str, MatchInput};
use adp_domain::targeting::{Daypart, Weekday};
use adp_domain::Expr;
use chrono::{Datelike, Timelike};

fn has(set: &[String], value: Option<&str>) -> bool {
    value.is_some_and(|v| set.iter().any(|s| s == v))
}

fn any_in(set: &[String], values: &[String]) -> bool {
    values.iter().any(|v| set.contains(v))
}

pub fn eval(expr: &Expr, input: &MatchInput<'_>) -> bool {
    let a = input.attrs;
    match expr {
        Expr::All(v) => v.iter().all(|e| eval(e, input)),
        Expr::Any(v) => v.iter().any(|e| eval(e, input)),
        Expr::Not(e) => !eval(e, input),
        Expr::Country(s) => has(s, a.country.as_deref()),
        Expr::Region(s) => has(s, a.region.as_deref()),
        Expr::City(s) => has(s, a.city.as_deref()),
        Expr::Metro(s) => has(s, a.metro.as_deref()),
        Expr::DeviceType(s) => a.device_type.is_some_and(|d| s.contains(&d)),
        Expr::Os(s) => has(s, a.os.as_deref()),
        Expr::Browser(s) => has(s, a.browser.as_deref()),
        Expr::Domain(s) => has(s, a.domain.as_deref()),
        Expr::AppBundle(s) => has(s, a.app_bundle.as_deref()),
        Expr::Placement(s) => has(s, Some(input.slot.placement_id.as_str())),
        Expr::Size(s) => any_in(s, &input.slot.sizes),
        Expr::Language(s) => has(s, a.language.as_deref()),
        Expr::KeyValue(kv) => a.key_values.iter().any(|(k, v)| *k == kv.key && kv.values.contains(v)),
        Expr::Segment(s) => any_in(s, &a.segments),
        Expr::Deal(s) => any_in(s, &a.deals),
        Expr::IpCidr(nets) => {
            a.ip.is_some_and(|ip| nets.iter().any(|n| n.parse::<ipnet::IpNet>().is_ok_and(|net| net.contains(&ip))))
        }
        Expr::Daypart(dp) => daypart_matches(dp, input),
    }
}

fn weekday(w: chrono::Weekday) -> Weekday {
    match w {
        chrono::Weekday::Mon => Weekday::Mon,
        chrono::Weekday::Tue => Weekday::Tue,
        chrono::Weekday::Wed => Weekday::Wed,
        chrono::Weekday::Thu => Weekday::Thu,
        chrono::Weekday::Fri => Weekday::Fri,
        chrono::Weekday::Sat => Weekday::Sat,
        chrono::Weekday::Sun => Weekday::Sun,
    }
}

pub fn daypart_matches(dp: &Daypart, input: &MatchInput<'_>) -> bool {
    let Ok(tz) = dp.time_zone.parse::<chrono_tz::Tz>() else { return false };
    let local = input.now.with_timezone(&tz);
    let (day, hour) = (weekday(local.weekday()), local.hour() as u8);
    dp.windows.iter().any(|w| w.days.contains(&day) && hour >= w.start_hour && hour < w.end_hour)
}

/// The value a device type predicate is indexed under.
pub fn device_key(d: adp_domain::targeting::DeviceType) -> &'static str {
    device_type_str(d)
}
