//! Connecting: one client per URL, errors naming where.

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
    target: String,
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
    pub fn connect(url: &str) -> Result<Queue, PgError> {
        let mut config: Config = url
            .parse()
            .map_err(|e: postgres::Error| PgError::Url(e.to_string()))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(std::time::Duration::from_secs(10));
        }
        if config.get_application_name().is_none() {
            config.application_name("taskq");
        }
        let target = describe(&config);
        let client = config.connect(NoTls).map_err(|cause| PgError::Connect {
            target: target.clone(),
            cause,
        })?;
        Ok(Queue { client, target })
    }

    /// `host:port/database as user`.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The client, for statements of the caller's own.
    pub fn client(&mut self) -> &mut Client {
        &mut self.client
    }

    /// A [`PgError::Query`] whose context starts with the target.
    pub(crate) fn err(&self, what: &str) -> impl FnOnce(postgres::Error) -> PgError {
        PgError::query(format!("{}: {what}", self.target))
    }
}
