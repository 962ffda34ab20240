//! Connections to PostgreSQL: the URL parsed once, the client- and server-side timeouts each
//! kind of session needs, errors mapped to [`StoreError`] without the password, and the
//! versioned migrations.

use super::schema::{MIGRATE_LOCK_KEY, MIGRATIONS, PG_SCHEMA_VERSION};
use crate::store::StoreError;
use postgres::error::SqlState;
use postgres::{Client, Config, NoTls};
use std::str::FromStr;
use std::time::Duration;

/// Client-side connect timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// TCP keepalive: first probe after this much silence (the client's default is two hours).
const KEEPALIVE_IDLE: Duration = Duration::from_secs(5);
/// TCP keepalive: interval between probes.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(1);
/// TCP keepalive: probes before the connection counts as dead.
const KEEPALIVE_RETRIES: u32 = 3;
/// Unacknowledged data older than this closes the connection (a dead host, a partition).
const TCP_USER_TIMEOUT: Duration = Duration::from_secs(10);

/// What a session is for; each kind gets its own server-side timeouts.
#[derive(Clone, Copy, Debug)]
pub enum Session {
    /// The reducer's writer (and other short transactions): a statement may take 30 s, and a
    /// transaction left idle (a paused process) is ended after 5 s, releasing its row locks.
    Writer,
    /// The leadership lock's session: ended by the server when idle longer than the given
    /// time, so a paused leader loses the lock; the leader pings it more often than that.
    Lock(Duration),
}

impl Session {
    fn options(self) -> String {
        match self {
            Session::Writer => {
                "-c statement_timeout=30000 -c idle_in_transaction_session_timeout=5000".into()
            }
            Session::Lock(idle) => format!(
                "-c statement_timeout=5000 -c idle_session_timeout={}",
                idle.as_millis().max(1)
            ),
        }
    }
}

/// `url` with any password replaced by `***`, for logs and errors.
pub fn redact_url(url: &str) -> String {
    // URL form: scheme://user:password@host...
    if let Some((scheme, rest)) = url.split_once("://") {
        let (authority, tail) = match rest.find(['/', '?']) {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        if let Some((userinfo, host)) = authority.rsplit_once('@')
            && let Some((user, _)) = userinfo.split_once(':')
        {
            return format!("{scheme}://{user}:***@{host}{}", redact_params(tail));
        }
        return format!("{scheme}://{authority}{}", redact_params(tail));
    }
    // Key-value form: host=... password=...
    url.split_whitespace()
        .map(|part| match part.split_once('=') {
            Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
            _ => part.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn redact_params(tail: &str) -> String {
    let Some((path, query)) = tail.split_once('?') else { return tail.to_string() };
    let query = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
            _ => pair.to_string(),
        })
        .collect::<Vec<_>>()
        .join("&");
    format!("{path}?{query}")
}

/// Maps a client error to a [`StoreError`] naming `what`; lost connections, serialization
/// failures, deadlocks and shutdowns are retryable.
pub(crate) fn pg_error(what: &str, err: &postgres::Error) -> StoreError {
    let retryable = err.is_closed()
        || err.code().is_some_and(|code| {
            [
                SqlState::T_R_SERIALIZATION_FAILURE,
                SqlState::T_R_DEADLOCK_DETECTED,
                SqlState::ADMIN_SHUTDOWN,
                SqlState::CRASH_SHUTDOWN,
                SqlState::CANNOT_CONNECT_NOW,
                SqlState::LOCK_NOT_AVAILABLE,
                SqlState::QUERY_CANCELED,
            ]
            .contains(code)
        });
    let detail = match err.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => err.to_string(),
    };
    StoreError::Postgres { message: format!("{what}: {detail}"), retryable }
}

/// A closure for `map_err` that names the failed step.
pub(crate) fn pg(what: &'static str) -> impl Fn(postgres::Error) -> StoreError {
    move |err| pg_error(what, &err)
}

/// Opens one connection of the given kind. Call only off the async runtime's threads (the
/// synchronous client runs its own).
pub fn connect(url: &str, session: Session) -> Result<Client, StoreError> {
    let mut config = Config::from_str(url).map_err(|err| StoreError::Postgres {
        message: format!("bad store url {}: {err}", redact_url(url)),
        retryable: false,
    })?;
    config
        .connect_timeout(CONNECT_TIMEOUT)
        .keepalives(true)
        .keepalives_idle(KEEPALIVE_IDLE)
        .keepalives_interval(KEEPALIVE_INTERVAL)
        .keepalives_retries(KEEPALIVE_RETRIES)
        .tcp_user_timeout(TCP_USER_TIMEOUT)
        .options(&session.options());
    if config.get_application_name().is_none() {
        config.application_name("steward");
    }
    config.connect(NoTls).map_err(|err| {
        let mut error = pg_error(&format!("connect to {}", redact_url(url)), &err);
        if let StoreError::Postgres { retryable, .. } = &mut error {
            // Refused or unreachable: the server may come back.
            *retryable = true;
        }
        error
    })
}

/// Brings the database to [`PG_SCHEMA_VERSION`] in one transaction, serialised with other
/// instances by an advisory lock; a database of a newer version is refused untouched.
pub fn migrate(client: &mut Client) -> Result<(), StoreError> {
    let mut tx = client.transaction().map_err(pg("migrate: begin"))?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATE_LOCK_KEY])
        .map_err(pg("migrate: lock"))?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS steward_schema_version (version BIGINT NOT NULL)")
        .map_err(pg("migrate: version table"))?;
    let found: i64 = tx
        .query_opt("SELECT version FROM steward_schema_version", &[])
        .map_err(pg("migrate: read version"))?
        .map_or(0, |row| row.get(0));
    if found > PG_SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew { found, supported: PG_SCHEMA_VERSION });
    }
    let start = usize::try_from(found).unwrap_or(0);
    for migration in MIGRATIONS.iter().skip(start) {
        tx.batch_execute(migration).map_err(pg("migrate: apply"))?;
    }
    if found == 0 {
        tx.execute("INSERT INTO steward_schema_version VALUES ($1)", &[&PG_SCHEMA_VERSION])
    } else {
        tx.execute("UPDATE steward_schema_version SET version = $1", &[&PG_SCHEMA_VERSION])
    }
    .map_err(pg("migrate: write version"))?;
    tx.commit().map_err(pg("migrate: commit"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        let cases = [
            (
                "postgres://steward:s3cret@10.0.0.1:5432/steward",
                "postgres://steward:***@10.0.0.1:5432/steward",
            ),
            (
                "postgresql://u:p@h/db?password=x&sslmode=disable",
                "postgresql://u:***@h/db?password=***&sslmode=disable",
            ),
            ("postgres://steward@127.0.0.1/steward", "postgres://steward@127.0.0.1/steward"),
            ("host=h user=u password=s3cret dbname=d", "host=h user=u password=*** dbname=d"),
        ];
        for (url, expected) in cases {
            assert_eq!(redact_url(url), expected);
            assert!(!redact_url(url).contains("s3cret"));
        }
    }

    #[test]
    fn a_bad_url_is_refused_without_its_password() {
        let Err(err) = connect("postgres://u:s3cret@h:notaport/db", Session::Writer) else {
            panic!("a bad port must be refused");
        };
        assert!(!err.to_string().contains("s3cret"), "{err}");
    }
}
