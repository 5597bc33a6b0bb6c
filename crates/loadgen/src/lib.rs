//! adp-loadgen: the load generator behind `adplatform loadtest`. It plays a scenario (see
//! [`scenario`] for the TOML schema, [`openrtb`] for bid requests) against an ad server's
//! `/v1/decide` or `/openrtb2/bid`, follows the ads it is served with impression and click
//! callbacks and the bids it gets with win, billing and loss notices, and reports throughput,
//! latency percentiles, status codes, fill or bid rate, callbacks and a per-second timeline
//! ([`Report`]), optionally as a plot ([`plot`]). A library first: the CLI and tests call
//! [`run`] with a [`RunConfig`].

pub mod engine;
mod live;
pub mod openrtb;
pub mod plot;
pub mod report;
pub mod scenario;

pub use engine::{run, LoadError, Mode, RunConfig, Stop};
pub use plot::{write_plot, PlotError, PlotFormat};
pub use report::{CallbackCounts, Counts, Latency, Percentile, Report, Second};
pub use scenario::{Scenario, ScenarioError, TargetKind};

use std::time::Duration;

/// Parses a duration such as `5s`, `500ms`, `2m` or `1m30s`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("`{s}` has no unit: write e.g. {s}s or {s}ms"));
    }
    humantime::parse_duration(s).map_err(|e| format!("`{s}` is not a duration such as 5s, 500ms or 2m ({e})"))
}

/// Parses a CPU list such as `2`, `0,2,4` or `4-7`.
pub fn parse_cpus(s: &str) -> Result<Vec<usize>, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let num = |v: &str| v.trim().parse::<usize>().map_err(|_| format!("`{part}` is not a CPU number or range"));
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (num(a)?, num(b)?);
                if a > b {
                    return Err(format!("`{part}`: the range runs backwards"));
                }
                out.extend(a..=b);
            }
            None => out.push(num(part)?),
        }
    }
    if out.is_empty() {
        return Err("an empty CPU list".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert!(parse_duration("5").is_err_and(|e| e.contains("no unit")));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn cpu_lists_parse() {
        assert_eq!(parse_cpus("2"), Ok(vec![2]));
        assert_eq!(parse_cpus("0,2, 4"), Ok(vec![0, 2, 4]));
        assert_eq!(parse_cpus("4-6,1"), Ok(vec![4, 5, 6, 1]));
        assert!(parse_cpus("6-4").is_err());
        assert!(parse_cpus("x").is_err());
        assert!(parse_cpus("").is_err());
    }
}
