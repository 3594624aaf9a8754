//! SQLite errors as [`StoreError`]s that say which file and what to change.
//!
//! Invariant: every SQLite failure of the store goes through [`sql_err`], so
//! a foreign file is always [`StoreError::NotTaskq`] and a lock, read-only
//! file or full disk is named in the message.

use std::path::Path;

use crate::idempotency::store::StoreError;

/// Maps a SQLite error on `path` while doing `what` to a [`StoreError`].
pub(super) fn sql_err<'a>(
    path: &'a Path,
    what: &str,
) -> impl FnOnce(rusqlite::Error) -> StoreError + 'a {
    let what = what.to_string();
    move |e| {
        use rusqlite::ErrorCode as C;
        let mut context = format!("{}: {what}", path.display());
        if let rusqlite::Error::SqliteFailure(f, _) = &e {
            match f.code {
                C::NotADatabase => {
                    return StoreError::NotTaskq {
                        path: path.display().to_string(),
                        message: "not a SQLite database (or it is corrupt or encrypted)".into(),
                    }
                }
                C::DatabaseBusy | C::DatabaseLocked => context
                    .push_str(" (another process holds its write lock; waited --busy-timeout-ms)"),
                C::ReadOnly => context.push_str(" (the file or its directory is read-only)"),
                C::DiskFull => context.push_str(" (disk full)"),
                C::DatabaseCorrupt => context.push_str(" (the file is corrupt)"),
                _ => {}
            }
        }
        StoreError::sqlite(context, e)
    }
}

/// The error for a database file that does not exist.
pub(super) fn no_such_database(path: &Path) -> StoreError {
    StoreError::NotTaskq {
        path: path.display().to_string(),
        message: "no such database".into(),
    }
}
