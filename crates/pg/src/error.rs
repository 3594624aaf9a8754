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
    pub(crate) fn query(context: impl Into<String>) -> impl FnOnce(postgres::Error) -> PgError {
        let context = context.into();
        move |cause| PgError::Query { context, cause }
    }
}
