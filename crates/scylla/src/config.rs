//! config: where the catalog lives on ScyllaDB and how it is replicated. Pure values and their
//! validation; nothing here talks to the cluster. Every name that ends up inside CQL text (the
//! keyspace, datacenter names) is checked here, so the DDL never carries anything but plain
//! identifiers and numbers.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// Why a `ScyllaConfig` cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("no ScyllaDB contact points: give at least one host:port")]
    NoNodes,
    #[error("contact point {0:?} is not host:port")]
    BadNode(String),
    #[error(
        "keyspace name {0:?} is invalid: use 1 to 48 lower-case letters, digits and '_', starting with a letter, and not system*"
    )]
    BadKeyspace(String),
    #[error("datacenter name {0:?} is invalid: use 1 to 64 letters, digits, '_', '-' or '.'")]
    BadDatacenter(String),
    #[error("replication is invalid: {0}")]
    BadReplication(String),
    #[error(
        "local datacenter {0:?} holds no replicas of the keyspace: LOCAL_QUORUM would fail there; add it to the replication map"
    )]
    LocalDatacenterNotReplicated(String),
    #[error("{0} must be greater than zero")]
    ZeroTimeout(&'static str),
    #[error("give both a username and a password, or neither")]
    PartialCredentials,
}

/// How the keyspace is replicated.
#[derive(Clone, PartialEq, Eq)]
pub enum Replication {
    /// `NetworkTopologyStrategy`: replicas per datacenter. What every real cluster uses.
    NetworkTopology(BTreeMap<String, u32>),
    /// `SimpleStrategy`: `factor` replicas placed without regard to datacenters or racks. Only for a
    /// single-node development cluster or a test keyspace: it ignores topology, so with more than
    /// one datacenter LOCAL_QUORUM reads and writes do not mean what they say.
    Simple { factor: u32 },
}

impl Default for Replication {
    /// Three replicas in `datacenter1` (the name a fresh ScyllaDB node reports).
    fn default() -> Self {
        Replication::NetworkTopology(BTreeMap::from([("datacenter1".to_string(), 3)]))
    }
}

impl fmt::Debug for Replication {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Replication({self})")
    }
}

/// The form `FromStr` reads: `dc1:3,dc2:3` for NetworkTopologyStrategy, `simple:1` for
/// SimpleStrategy.
impl fmt::Display for Replication {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Replication::Simple { factor } => write!(f, "simple:{factor}"),
            Replication::NetworkTopology(dcs) => {
                let parts: Vec<String> = dcs.iter().map(|(dc, rf)| format!("{dc}:{rf}")).collect();
                f.write_str(&parts.join(","))
            }
        }
    }
}

impl FromStr for Replication {
    type Err = ConfigError;

    /// Reads `dc1:3,dc2:3` (NetworkTopologyStrategy: datacenter → replication factor) or
    /// `simple:N` (SimpleStrategy, single-node development only). The result is validated.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why: &str| ConfigError::BadReplication(format!("{s:?}: {why}"));
        let parse_rf = |v: &str| v.trim().parse::<u32>().map_err(|_| bad("a replication factor is a whole number"));
        let s_trim = s.trim();
        let replication = if let Some(rf) = s_trim.strip_prefix("simple:") {
            Replication::Simple { factor: parse_rf(rf)? }
        } else {
            let mut dcs = BTreeMap::new();
            for part in s_trim.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                let (dc, rf) = part.rsplit_once(':').ok_or_else(|| bad("expected datacenter:factor pairs"))?;
                if dcs.insert(dc.trim().to_string(), parse_rf(rf)?).is_some() {
                    return Err(bad("a datacenter is named twice"));
                }
            }
            Replication::NetworkTopology(dcs)
        };
        replication.validate()?;
        Ok(replication)
    }
}

impl Replication {
    pub fn validate(&self) -> Result<(), ConfigError> {
        match self {
            Replication::Simple { factor } => check_factor(*factor),
            Replication::NetworkTopology(dcs) => {
                if dcs.is_empty() {
                    return Err(ConfigError::BadReplication("name at least one datacenter".into()));
                }
                for (dc, rf) in dcs {
                    validate_datacenter(dc)?;
                    check_factor(*rf)?;
                }
                Ok(())
            }
        }
    }

    /// The CQL map literal of `CREATE KEYSPACE ... WITH replication = <this>`. Call only on a
    /// validated value (datacenter names are then plain identifiers, safe inside quotes).
    pub(crate) fn cql_map(&self) -> String {
        match self {
            Replication::Simple { factor } => {
                format!("{{'class': 'SimpleStrategy', 'replication_factor': {factor}}}")
            }
            Replication::NetworkTopology(dcs) => {
                let mut out = String::from("{'class': 'NetworkTopologyStrategy'");
                for (dc, rf) in dcs {
                    out.push_str(&format!(", '{dc}': {rf}"));
                }
                out.push('}');
                out
            }
        }
    }
}

fn check_factor(rf: u32) -> Result<(), ConfigError> {
    if (1..=32).contains(&rf) {
        Ok(())
    } else {
        Err(ConfigError::BadReplication(format!("replication factor {rf} is outside 1..=32")))
    }
}

/// How to reach the cluster and where the catalog lives.
#[derive(Clone, PartialEq, Eq)]
pub struct ScyllaConfig {
    /// Contact points, `host:port` (the driver discovers the rest of the cluster from them).
    pub nodes: Vec<String>,
    pub keyspace: String,
    pub replication: Replication,
    /// The datacenter this process runs in: its nodes are preferred by the token- and
    /// shard-aware load balancing, and LOCAL_QUORUM / LOCAL_SERIAL are counted there.
    pub local_datacenter: Option<String>,
    pub connect_timeout: Duration,
    /// Client-side limit of one request (a lightweight transaction under contention included).
    pub request_timeout: Duration,
    pub username: Option<String>,
    pub password: Option<String>,
}

impl Default for ScyllaConfig {
    fn default() -> Self {
        ScyllaConfig {
            nodes: vec!["127.0.0.1:9042".to_string()],
            keyspace: "adplatform".to_string(),
            replication: Replication::default(),
            local_datacenter: None,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            username: None,
            password: None,
        }
    }
}

impl fmt::Debug for ScyllaConfig {
    /// Never prints the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScyllaConfig")
            .field("nodes", &self.nodes)
            .field("keyspace", &self.keyspace)
            .field("replication", &self.replication)
            .field("local_datacenter", &self.local_datacenter)
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .finish()
    }
}

impl ScyllaConfig {
    /// Checks everything that can be checked without the cluster.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.nodes.is_empty() {
            return Err(ConfigError::NoNodes);
        }
        for node in &self.nodes {
            validate_node(node)?;
        }
        validate_keyspace(&self.keyspace)?;
        self.replication.validate()?;
        if let Some(dc) = &self.local_datacenter {
            validate_datacenter(dc)?;
            if let Replication::NetworkTopology(dcs) = &self.replication {
                if !dcs.contains_key(dc) {
                    return Err(ConfigError::LocalDatacenterNotReplicated(dc.clone()));
                }
            }
        }
        if self.connect_timeout.is_zero() {
            return Err(ConfigError::ZeroTimeout("connect_timeout"));
        }
        if self.request_timeout.is_zero() {
            return Err(ConfigError::ZeroTimeout("request_timeout"));
        }
        if self.username.is_some() != self.password.is_some() {
            return Err(ConfigError::PartialCredentials);
        }
        Ok(())
    }
}

/// A keyspace name that is a plain, unquoted CQL identifier: 1–48 of `[a-z0-9_]`, starting with a
/// letter (lower case only, since CQL folds unquoted names to lower case), and not one of the
/// server's own `system*` keyspaces.
pub fn validate_keyspace(name: &str) -> Result<(), ConfigError> {
    let ok = !name.is_empty()
        && name.len() <= 48
        && name.as_bytes()[0].is_ascii_lowercase()
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !name.starts_with("system");
    if ok {
        Ok(())
    } else {
        Err(ConfigError::BadKeyspace(name.to_string()))
    }
}

/// A datacenter name as ScyllaDB snitches report them (`datacenter1`, `dc1`, `eu-central-1`).
pub fn validate_datacenter(name: &str) -> Result<(), ConfigError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(ConfigError::BadDatacenter(name.to_string()))
    }
}

fn validate_node(node: &str) -> Result<(), ConfigError> {
    let bad = || ConfigError::BadNode(node.to_string());
    let (host, port) = node.rsplit_once(':').ok_or_else(bad)?;
    let host_ok = !host.is_empty()
        && !host.chars().any(char::is_whitespace)
        && (host.starts_with('[') == host.ends_with(']'))
        && (host.starts_with('[') || !host.contains(':'));
    match port.parse::<u16>() {
        Ok(p) if p > 0 && host_ok => Ok(()),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> ScyllaConfig {
        ScyllaConfig {
            nodes: vec!["10.0.0.1:9042".into(), "[::1]:9042".into(), "scylla-client.scylla.svc:9042".into()],
            keyspace: "adplatform".into(),
            replication: "dc1:3,dc2:2".parse().expect("replication"),
            local_datacenter: Some("dc1".into()),
            ..ScyllaConfig::default()
        }
    }

    #[test]
    fn a_complete_config_is_valid_and_the_default_is_too() {
        assert_eq!(valid().validate(), Ok(()));
        assert_eq!(ScyllaConfig::default().validate(), Ok(()));
        assert_eq!(
            ScyllaConfig::default().replication,
            Replication::NetworkTopology(BTreeMap::from([("datacenter1".into(), 3)]))
        );
    }

    #[test]
    fn keyspace_names_are_plain_identifiers() {
        for good in ["adplatform", "a", "adp_test_0123456789abcdef", &"k".repeat(48)] {
            assert_eq!(validate_keyspace(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "a; DROP KEYSPACE x",
            "a;DROP",
            "ad-platform",
            "Adplatform",
            "1abc",
            "_abc",
            "\"quoted\"",
            "a b",
            "a'",
            "system",
            "system_schema",
            &"k".repeat(49),
            "ädp",
        ] {
            assert!(matches!(validate_keyspace(bad), Err(ConfigError::BadKeyspace(_))), "{bad:?} must be rejected");
        }
        let cfg = ScyllaConfig { keyspace: "a; DROP".into(), ..valid() };
        assert!(matches!(cfg.validate(), Err(ConfigError::BadKeyspace(_))));
    }

    #[test]
    fn replication_parses_and_prints_both_strategies() {
        let nts: Replication = " dc1:3, eu-central-1:2 ".parse().expect("nts");
        assert_eq!(nts, Replication::NetworkTopology(BTreeMap::from([("dc1".into(), 3), ("eu-central-1".into(), 2)])));
        assert_eq!(nts.to_string(), "dc1:3,eu-central-1:2");
        assert_eq!(nts.to_string().parse::<Replication>(), Ok(nts));
        assert_eq!("simple:1".parse::<Replication>(), Ok(Replication::Simple { factor: 1 }));
        for bad in ["", "dc1", "dc1:x", "dc1:0", "dc1:3,dc1:2", "dc'1:3", "d c:3", "simple:0", "dc1:99"] {
            assert!(bad.parse::<Replication>().is_err(), "{bad:?} must be rejected");
        }
    }

    #[test]
    fn config_validation_names_what_is_wrong() {
        assert_eq!(ScyllaConfig { nodes: vec![], ..valid() }.validate(), Err(ConfigError::NoNodes));
        for node in ["localhost", "localhost:", "localhost:0", ":9042", "host:99999", "::1:9042", "a b:9042"] {
            let cfg = ScyllaConfig { nodes: vec![node.into()], ..valid() };
            assert_eq!(cfg.validate(), Err(ConfigError::BadNode(node.into())), "{node}");
        }
        let cfg = ScyllaConfig { local_datacenter: Some("dc9".into()), ..valid() };
        assert_eq!(cfg.validate(), Err(ConfigError::LocalDatacenterNotReplicated("dc9".into())));
        let cfg = ScyllaConfig { local_datacenter: Some("dc'; --".into()), ..valid() };
        assert!(matches!(cfg.validate(), Err(ConfigError::BadDatacenter(_))));
        let cfg = ScyllaConfig {
            replication: Replication::NetworkTopology(BTreeMap::from([("dc1'}; DROP".into(), 3)])),
            local_datacenter: None,
            ..valid()
        };
        assert!(matches!(cfg.validate(), Err(ConfigError::BadDatacenter(_))));
        let cfg = ScyllaConfig { replication: Replication::NetworkTopology(BTreeMap::new()), ..valid() };
        assert!(matches!(cfg.validate(), Err(ConfigError::BadReplication(_))));
        // SimpleStrategy has no datacenters to check the local one against.
        let cfg = ScyllaConfig { replication: Replication::Simple { factor: 1 }, ..valid() };
        assert_eq!(cfg.validate(), Ok(()));
        let cfg = ScyllaConfig { request_timeout: Duration::ZERO, ..valid() };
        assert_eq!(cfg.validate(), Err(ConfigError::ZeroTimeout("request_timeout")));
        let cfg = ScyllaConfig { connect_timeout: Duration::ZERO, ..valid() };
        assert_eq!(cfg.validate(), Err(ConfigError::ZeroTimeout("connect_timeout")));
        let cfg = ScyllaConfig { username: Some("adp".into()), ..valid() };
        assert_eq!(cfg.validate(), Err(ConfigError::PartialCredentials));
    }

    #[test]
    fn debug_output_hides_the_password() {
        let cfg = ScyllaConfig { username: Some("adp".into()), password: Some("s3cret".into()), ..valid() };
        let shown = format!("{cfg:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("***"));
    }
}
