//! Connecting: parsing a store URL into a backend and connect options,
//! creating the SQLite file's directory, the per-connection SQLite pragmas
//! (WAL, `synchronous = NORMAL`, busy timeout, foreign keys), the small
//! read/admin pool, the ledger writer's dedicated connection, and the
//! password-free description of where the store lives.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyConnection, AnyPool, ConnectOptions, Executor};

use crate::Backend;
use crate::error::{StoreError, db};

/// Where the store lives and how to connect there.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub(crate) backend: Backend,
    pub(crate) options: AnyConnectOptions,
    pub(crate) description: String,
    /// The SQLite file; `None` on PostgreSQL.
    pub(crate) sqlite_file: Option<PathBuf>,
}

/// Per-connection settings for SQLite. WAL lets readers run beside the one
/// writer (and beside another process such as the CLI); `synchronous =
/// NORMAL` in WAL mode keeps every committed transaction across a crash of
/// the process (only an OS crash can lose the last commits). After a
/// checkpoint resets the log, its file is cut back to 32 MiB.
const SQLITE_PRAGMAS: &str = "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
     PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON; \
     PRAGMA journal_size_limit = 33554432;";

/// How many connections the read/admin pool keeps at most.
const POOL_SIZE: u32 = 4;

/// Parses `sqlite:PATH`, `sqlite://PATH`, `postgres://...` or `postgresql://...`.
pub(crate) fn parse_url(url: &str) -> Result<Target, StoreError> {
    let url = url.trim();
    if let Some(rest) = url.strip_prefix("sqlite:") {
        let rest = rest.strip_prefix("//").unwrap_or(rest);
        let (path, query) = match rest.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (rest, None),
        };
        // The file is always created if missing; other parameters would
        // change what the store relies on.
        if let Some(q) = query
            && !q
                .split('&')
                .all(|p| p.is_empty() || p == "mode=rwc" || p == "mode=rw")
        {
            return Err(StoreError::Invalid(
                "a sqlite store URL takes no query parameters other than mode=rwc".into(),
            ));
        }
        if path.is_empty() || path == ":memory:" {
            return Err(StoreError::Invalid(
                "a sqlite store needs a file path (in-memory databases are not supported)".into(),
            ));
        }
        return sqlite_target(Path::new(path));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let options = AnyConnectOptions::from_str(url)
            .map_err(|_| StoreError::Invalid("cannot parse the PostgreSQL URL".into()))?
            .disable_statement_logging();
        return Ok(Target {
            backend: Backend::Postgres,
            options,
            description: describe_postgres(url),
            sqlite_file: None,
        });
    }
    Err(StoreError::Invalid(
        "store URL must start with sqlite: or postgres://".into(),
    ))
}

/// The target for an SQLite file, creating its parent directory.
pub(crate) fn sqlite_target(path: &Path) -> Result<Target, StoreError> {
    let path: PathBuf = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| StoreError::Invalid(format!("cannot resolve a relative path: {e}")))?
            .join(path)
    };
    let text = path
        .to_str()
        .ok_or_else(|| StoreError::Invalid("the sqlite path is not valid UTF-8".into()))?;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| {
            StoreError::Invalid(format!("cannot create directory {}: {e}", parent.display()))
        })?;
    }
    // sqlx percent-decodes the path, so encode what would be misread.
    let mut encoded = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '%' => encoded.push_str("%25"),
            '?' => encoded.push_str("%3F"),
            '#' => encoded.push_str("%23"),
            c => encoded.push(c),
        }
    }
    let options = AnyConnectOptions::from_str(&format!("sqlite://{encoded}?mode=rwc"))
        .map_err(|e| StoreError::Invalid(format!("cannot use sqlite path {text}: {e}")))?
        .disable_statement_logging();
    Ok(Target {
        backend: Backend::Sqlite,
        options,
        description: format!("sqlite {text}"),
        sqlite_file: Some(path),
    })
}

/// `postgres HOST:PORT/DB` from a URL, leaving out user, password and parameters.
fn describe_postgres(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.split(['?', '#']).next().unwrap_or("");
    let (authority, db) = rest.split_once('/').unwrap_or((rest, ""));
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if host.is_empty() { "localhost" } else { host };
    format!("postgres {host}/{db}")
}

/// Applies the SQLite pragmas to a fresh connection.
pub(crate) async fn prepare_connection(
    backend: Backend,
    conn: &mut AnyConnection,
) -> Result<(), sqlx::Error> {
    if backend == Backend::Sqlite {
        conn.execute(SQLITE_PRAGMAS).await?;
    }
    Ok(())
}

/// Opens the read/admin pool (and checks that one connection works).
pub(crate) async fn open_pool(target: &Target) -> Result<AnyPool, StoreError> {
    let backend = target.backend;
    AnyPoolOptions::new()
        .max_connections(POOL_SIZE)
        .acquire_timeout(Duration::from_secs(10))
        .after_connect(move |conn, _meta| Box::pin(prepare_connection(backend, conn)))
        .connect_with(target.options.clone())
        .await
        .map_err(db)
}

/// Opens one dedicated connection (the ledger writer's).
pub(crate) async fn open_connection(target: &Target) -> Result<AnyConnection, sqlx::Error> {
    let mut conn = target.options.connect().await?;
    prepare_connection(target.backend, &mut conn).await?;
    Ok(conn)
}

/// The statement that opens a write transaction. On SQLite it takes the
/// write lock at once (waiting up to the busy timeout) instead of failing
/// later when a read transaction would have to be upgraded.
pub(crate) fn begin_sql(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "BEGIN IMMEDIATE",
        Backend::Postgres => "BEGIN",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_description_hides_credentials() {
        assert_eq!(
            describe_postgres("postgres://postgres@127.0.0.1:5432/test"),
            "postgres 127.0.0.1:5432/test"
        );
        assert_eq!(
            describe_postgres("postgresql://u:s3cret@db.example:6543/prod?sslmode=require"),
            "postgres db.example:6543/prod"
        );
        assert_eq!(describe_postgres("postgres://u:p@w@h/d"), "postgres h/d");
        assert!(!describe_postgres("postgres://u:hunter2@h/d").contains("hunter2"));
    }

    #[test]
    fn urls_are_classified() {
        assert!(matches!(
            parse_url("mysql://x"),
            Err(StoreError::Invalid(_))
        ));
        assert!(matches!(
            parse_url("sqlite::memory:"),
            Err(StoreError::Invalid(_))
        ));
        assert!(matches!(parse_url("sqlite:"), Err(StoreError::Invalid(_))));
        let t = parse_url("postgres://a:b@h:1/d").expect("parses");
        assert_eq!(t.backend, Backend::Postgres);
        assert_eq!(t.description, "postgres h:1/d");
    }

    #[test]
    fn sqlite_paths_become_absolute() {
        let dir = std::env::temp_dir().join(format!("mcpgate-store-url-{}", std::process::id()));
        let file = dir.join("a b%c#d.db");
        let t = parse_url(&format!("sqlite://{}", file.display())).expect("parses");
        assert_eq!(t.backend, Backend::Sqlite);
        assert_eq!(t.description, format!("sqlite {}", file.display()));
        let t = parse_url(&format!("sqlite:{}?mode=rwc", file.display())).expect("parses");
        assert_eq!(t.description, format!("sqlite {}", file.display()));
        assert!(parse_url(&format!("sqlite:{}?mode=ro", file.display())).is_err());
        std::fs::remove_dir_all(&dir).ok();
    }
}
