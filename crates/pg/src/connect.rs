//! Connecting: one client per URL, errors naming where.

use std::time::Duration;

use postgres::config::Host;
use postgres::{Client, Config, NoTls};

use crate::PgError;

/// `host:port/database as user` for a URL (no password), for messages.
///
/// # Errors
///
/// [`PgError::Url`] when `url` is not a connection string.
///
/// # Examples
///
/// ```
/// let d = taskq_pg::describe_url("postgres://postgres:secret@127.0.0.1:5433/queue")?;
/// assert_eq!(d, "127.0.0.1:5433/queue as postgres");
/// # Ok::<(), taskq_pg::PgError>(())
/// ```
pub fn describe_url(url: &str) -> Result<String, PgError> {
    let config: Config = url
        .parse()
        .map_err(|e: postgres::Error| PgError::Url(e.to_string()))?;
    Ok(describe(&config))
}

fn describe(config: &Config) -> String {
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        #[cfg(unix)]
        Some(Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or("(default user)");
    let db = config.get_dbname().unwrap_or(user);
    format!("{host}:{port}/{db} as {user}")
}

/// A connection to the queue's database, and where it goes (for messages).
pub struct Queue {
    client: Client,
    config: Config,
    target: String,
    statements: u64,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("target", &self.target)
            .finish()
    }
}

impl Queue {
    /// Connects to `url` (plain TCP or a Unix socket; no TLS), with a 10 s
    /// connect timeout unless the URL sets one. The schema is not touched:
    /// see [`migrate`](crate::migrate) and [`ensure`](crate::schema::ensure).
    ///
    /// # Errors
    ///
    /// [`PgError::Url`] for a malformed URL; [`PgError::Connect`], naming the
    /// server, database and user, when the server cannot be reached or
    /// refuses.
    ///
    /// A connection that goes silent is noticed: TCP keepalives probe an
    /// idle connection after 10 s (every 5 s, 3 probes), and unacknowledged
    /// writes time out after 30 s, unless the URL sets these.
    pub fn connect(url: &str) -> Result<Queue, PgError> {
        let mut config: Config = url
            .parse()
            .map_err(|e: postgres::Error| PgError::Url(e.to_string()))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        if config.get_application_name().is_none() {
            config.application_name("taskq");
        }
        // The client's defaults (2 h idle before the first probe) would let
        // a cut connection hang a node far past the rescue timeout.
        if config.get_keepalives_idle() == Duration::from_secs(2 * 60 * 60) {
            config
                .keepalives(true)
                .keepalives_idle(Duration::from_secs(10))
                .keepalives_interval(Duration::from_secs(5))
                .keepalives_retries(3);
        }
        if config.get_tcp_user_timeout().is_none() {
            config.tcp_user_timeout(Duration::from_secs(30));
        }
        let target = describe(&config);
        let client = open(&config, &target)?;
        Ok(Queue {
            client,
            config,
            target,
            statements: 0,
        })
    }

    /// Drops the connection and opens a new one to the same server (after
    /// it was lost: see [`PgError::is_connection_lost`]). Session state
    /// (`LISTEN`, settings) is the caller's to set again.
    ///
    /// # Errors
    ///
    /// [`PgError::Connect`] when the server cannot be reached.
    pub fn reconnect(&mut self) -> Result<(), PgError> {
        self.client = open(&self.config, &self.target)?;
        Ok(())
    }

    /// Whether the connection is known to be closed.
    pub fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    /// The connection's server process id (`pg_backend_pid()`), as
    /// `pg_stat_activity.pid` shows it.
    ///
    /// # Errors
    ///
    /// [`PgError::Query`] when the statement fails.
    pub fn backend_pid(&mut self) -> Result<i32, PgError> {
        let err = self.err("cannot read the backend's pid");
        self.client
            .query_one("SELECT pg_backend_pid()", &[])
            .and_then(|r| r.try_get(0))
            .map_err(err)
    }

    /// `host:port/database as user`.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The client, for statements of the caller's own.
    pub fn client(&mut self) -> &mut Client {
        &mut self.client
    }

    /// Statements the queue's own operations ([`node`](crate::node),
    /// [`Enqueuer`](crate::Enqueuer)) sent on this connection, `BEGIN` and
    /// `COMMIT` included: the cost per task the benchmarks report.
    pub fn statements(&self) -> u64 {
        self.statements
    }

    pub(crate) fn count(&mut self, n: u64) {
        self.statements += n;
    }

    /// A [`PgError::Query`] whose context starts with the target.
    pub(crate) fn err(&self, what: &str) -> impl FnOnce(postgres::Error) -> PgError {
        PgError::query(format!("{}: {what}", self.target))
    }
}

fn open(config: &Config, target: &str) -> Result<Client, PgError> {
    config.connect(NoTls).map_err(|cause| PgError::Connect {
        target: target.to_string(),
        cause,
    })
}
