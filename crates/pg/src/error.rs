//! [`PgError`]: what went wrong, naming the server and database.

/// Why an operation on the PostgreSQL queue failed.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// The URL is not a PostgreSQL connection string.
    #[error("invalid PostgreSQL URL: {0}")]
    Url(String),
    /// The server could not be reached or refused the connection.
    #[error("cannot connect to PostgreSQL {target}: {}", detail(cause))]
    Connect {
        /// `host:port/database as user`.
        target: String,
        /// The client's error (part of the message).
        cause: postgres::Error,
    },
    /// The database's queue schema is newer than this build understands.
    #[error("{target}: queue schema version {found} is newer than this taskq understands ({supported}); upgrade taskq")]
    NewerSchema {
        /// `host:port/database`.
        target: String,
        /// The version found.
        found: i32,
        /// The newest version this build knows.
        supported: i32,
    },
    /// The local engine could not start, or a thread could not.
    #[error("{0}")]
    Engine(String),
    /// A statement failed.
    #[error("{context}: {}", detail(cause))]
    Query {
        /// What was being done.
        context: String,
        /// The server's or the client's error (part of the message).
        cause: postgres::Error,
    },
}

/// The client's error with the server's message (`db error` alone says
/// nothing): `database "x" does not exist (3D000)`, or the I/O cause.
pub(crate) fn detail(e: &postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut s = format!("{} ({})", db.message(), db.code().code());
        if let Some(d) = db.detail() {
            s.push_str(&format!("; {d}"));
        }
        return s;
    }
    let mut s = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        s.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    s
}

impl PgError {
    /// Whether the error means the connection is gone (closed, reset, cut,
    /// terminated by the server, or the server is starting or shutting
    /// down), so that a new connection may succeed where this one failed.
    /// Errors of the statement itself (a constraint, a syntax error, a
    /// missing table) are not.
    ///
    /// # Examples
    ///
    /// ```
    /// let e = taskq_pg::PgError::Engine("no threads".into());
    /// assert!(!e.is_connection_lost());
    /// ```
    pub fn is_connection_lost(&self) -> bool {
        let cause = match self {
            PgError::Connect { .. } => return true,
            PgError::Query { cause, .. } => cause,
            _ => return false,
        };
        if cause.is_closed() {
            return true;
        }
        match cause.as_db_error() {
            // 08: connection exception; 57P01..57P03: admin shutdown, crash
            // shutdown, cannot connect now.
            Some(db) => {
                let code = db.code().code();
                code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03")
            }
            // Not the server's error: the client's I/O (reset, timed out, EOF).
            None => std::error::Error::source(cause).is_some_and(|s| s.is::<std::io::Error>()),
        }
    }

    pub(crate) fn query(context: impl Into<String>) -> impl FnOnce(postgres::Error) -> PgError {
        let context = context.into();
        move |cause| PgError::Query { context, cause }
    }
}
