//! store: the connection to ClickHouse over HTTP (the `clickhouse` crate with validation off, so
//! plain RowBinary works on 18.16 and on current servers) and the SQL helpers every ClickHouse
//! module shares: identifier checks and literal quoting. No schema and no ingest logic here.

use std::fmt::Write as _;
use std::time::Duration;

/// Where ClickHouse is and how to log in.
#[derive(Clone, PartialEq, Eq)]
pub struct ClickHouseSettings {
    /// HTTP endpoint, e.g. `http://127.0.0.1:8123`.
    pub url: String,
    /// Database holding the analytics tables; created by [`crate::schema::migrate`].
    pub database: String,
    pub user: String,
    pub password: String,
    /// The ClickHouse cluster (`remote_servers`) the schema lives on, one shard and N replicas:
    /// DDL runs `ON CLUSTER` with replicated engines (see [`crate::schema`]). Empty: a single
    /// server.
    pub cluster: String,
}

impl std::fmt::Debug for ClickHouseSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClickHouseSettings")
            .field("url", &self.url)
            .field("database", &self.database)
            .field("user", &self.user)
            .field("password", &if self.password.is_empty() { "" } else { "<redacted>" })
            .field("cluster", &self.cluster)
            .finish()
    }
}

impl Default for ClickHouseSettings {
    fn default() -> Self {
        ClickHouseSettings {
            url: "http://127.0.0.1:8123".into(),
            database: "adplatform".into(),
            user: "default".into(),
            password: String::new(),
            cluster: String::new(),
        }
    }
}

/// What went wrong talking to ClickHouse.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("clickhouse: {0}")]
    ClickHouse(#[from] clickhouse::error::Error),
    #[error("clickhouse answered something unexpected: {0}")]
    Protocol(String),
    #[error("invalid setting: {0}")]
    Settings(String),
    #[error("clickhouse schema: {0}")]
    Schema(String),
    #[error(transparent)]
    Report(#[from] crate::report::ReportError),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A ClickHouse client bound to the analytics database.
#[derive(Clone)]
pub struct ClickHouse {
    client: clickhouse::Client,
    database: String,
    /// Checked cluster name; `None`: a single server.
    cluster: Option<String>,
}

impl ClickHouse {
    pub fn connect(settings: &ClickHouseSettings) -> Result<ClickHouse> {
        if !(settings.url.starts_with("http://") || settings.url.starts_with("https://")) {
            return Err(StoreError::Settings(format!("url `{}` is not an http(s) URL", settings.url)));
        }
        check_identifier(&settings.database).map_err(StoreError::Settings)?;
        let cluster = match settings.cluster.as_str() {
            "" => None,
            name => {
                check_cluster_name(name).map_err(StoreError::Settings)?;
                Some(name.to_string())
            }
        };
        let client = clickhouse::Client::default()
            .with_url(settings.url.trim_end_matches('/'))
            .with_user(&settings.user)
            .with_password(&settings.password)
            // 18.16 has no RowBinaryWithNamesAndTypes and rejects the settings validation sends.
            .with_validation(false);
        Ok(ClickHouse { client, database: settings.database.clone(), cluster })
    }

    pub fn database(&self) -> &str {
        &self.database
    }

    /// The cluster the schema is replicated on; `None` on a single server.
    pub fn cluster(&self) -> Option<&str> {
        self.cluster.as_deref()
    }

    pub fn client(&self) -> &clickhouse::Client {
        &self.client
    }

    /// `database.table`, both checked identifiers.
    pub fn table(&self, table: &str) -> String {
        format!("{}.{}", self.database, table)
    }

    /// Runs one statement that returns nothing.
    pub async fn execute(&self, sql: &str) -> Result<()> {
        self.client.query_raw(sql).execute().await?;
        Ok(())
    }

    /// Runs one statement that returns nothing, with query-level settings (e.g. `insert_quorum`)
    /// sent beside it rather than in the SQL.
    pub async fn execute_with(&self, sql: &str, settings: &[(&str, String)]) -> Result<()> {
        let mut query = self.client.query_raw(sql);
        for (name, value) in settings {
            query = query.with_setting(*name, value.as_str());
        }
        query.execute().await?;
        Ok(())
    }

    /// Runs a query and returns its whole answer in `format` (e.g. `RowBinary`, `TSV`).
    pub async fn fetch_raw(&self, sql: &str, format: &str) -> Result<Vec<u8>> {
        let mut cursor = self.client.query_raw(sql).fetch_bytes(format)?;
        let mut out = Vec::new();
        while let Some(chunk) = cursor.next().await? {
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    /// Runs a query and returns its answer as TSV lines split into fields (unescaped).
    pub async fn fetch_tsv(&self, sql: &str) -> Result<Vec<Vec<String>>> {
        let bytes = self.fetch_raw(sql, "TabSeparated").await?;
        let text = String::from_utf8(bytes).map_err(|e| StoreError::Protocol(e.to_string()))?;
        Ok(text.lines().map(|l| l.split('\t').map(unescape_tsv).collect()).collect())
    }

    /// The server's version string, e.g. `18.16.1`.
    pub async fn version(&self) -> Result<String> {
        let rows = self.fetch_tsv("SELECT version()").await?;
        rows.into_iter()
            .next()
            .and_then(|r| r.into_iter().next())
            .ok_or_else(|| StoreError::Protocol("no version".into()))
    }

    /// Waits until the server answers, for at most `timeout`.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match self.version().await {
                Ok(_) => return Ok(()),
                Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }
}

/// A database or table name: `[A-Za-z_][A-Za-z0-9_]*`, at most 64 characters.
pub fn check_identifier(name: &str) -> std::result::Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.bytes().next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(format!("`{name}` is not a valid database name (letters, digits and _, starting with a letter)"))
    }
}

/// A cluster name as `remote_servers` defines it: letters, digits, `_`, `-` and `.`, at most
/// 255 characters. Nothing that could end a quoted identifier, so `ON CLUSTER` can backquote
/// it as is.
pub fn check_cluster_name(name: &str) -> std::result::Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(format!("`{name}` is not a valid cluster name (letters, digits, _, - and .)"))
    }
}

/// A ClickHouse string literal for `s`: quoted, with `\`, `'` and control bytes escaped, so no
/// value can leave the literal. Works on 18.16 and current servers.
pub fn quote(s: &str) -> String {
    quote_bytes(s.as_bytes())
}

/// A string literal for arbitrary bytes (e.g. a FixedString(16) id), escaping what is not
/// printable ASCII as `\xHH`.
pub fn quote_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 2);
    out.push('\'');
    for &b in bytes {
        match b {
            b'\\' => out.push_str("\\\\"),
            b'\'' => out.push_str("\\'"),
            0x20..=0x7e => out.push(b as char),
            _ => {
                let _ = write!(out, "\\x{b:02X}");
            }
        }
    }
    out.push('\'');
    out
}

fn unescape_tsv(field: &str) -> String {
    if !field.contains('\\') {
        return field.to_string();
    }
    let mut out = String::with_capacity(field.len());
    let mut chars = field.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('0') => out.push('\0'),
            Some('b') => out.push('\u{8}'),
            Some('f') => out.push('\u{c}'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_keeps_values_inside_the_literal() {
        assert_eq!(quote("a'b"), "'a\\'b'");
        assert_eq!(quote("a\\'; DROP TABLE x; --"), "'a\\\\\\'; DROP TABLE x; --'");
        assert_eq!(quote("\n\0"), "'\\x0A\\x00'");
        assert_eq!(quote("ü"), "'\\xC3\\xBC'");
        assert_eq!(quote("a?b"), "'a?b'", "sent verbatim: no client-side placeholders");
        assert_eq!(quote_bytes(&[0xAE, b'a']), "'\\xAEa'");
    }

    #[test]
    fn identifiers_are_checked() {
        assert!(check_identifier("adplatform_test1").is_ok());
        for bad in ["", "1abc", "a-b", "a.b", "a b", "a`b"] {
            assert!(check_identifier(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cluster_names_are_checked() {
        for good in ["adplatform", "prod-eu.1", "_c"] {
            assert!(check_cluster_name(good).is_ok(), "{good}");
        }
        for bad in ["", "a'b", "a`b", "a b", "a\"b", "{cluster}", "a;b", &"c".repeat(256)] {
            assert!(check_cluster_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn connect_refuses_a_bad_cluster_name() {
        let settings = ClickHouseSettings { cluster: "bad'name".into(), ..ClickHouseSettings::default() };
        assert!(matches!(ClickHouse::connect(&settings), Err(StoreError::Settings(_))));
        let settings = ClickHouseSettings { cluster: "adplatform".into(), ..ClickHouseSettings::default() };
        assert_eq!(ClickHouse::connect(&settings).expect("connect").cluster(), Some("adplatform"));
        let single = ClickHouse::connect(&ClickHouseSettings::default()).expect("connect");
        assert_eq!(single.cluster(), None);
    }

    #[test]
    fn tsv_unescapes() {
        assert_eq!(unescape_tsv("a\\tb\\\\c"), "a\tb\\c");
    }
}
