//! The dead-letter queue commands: list, re-drive, purge.
//!
//! Re-driving runs the dead-lettered tasks through a fresh engine over the same
//! database, with idempotency: a key that has succeeded in the meantime
//! completes as a duplicate. Afterwards every dead letter whose key now has a
//! succeeded record is removed; tasks that fail again stay (their attempt count
//! grows).

use std::path::Path;

use crate::config::EngineConfig;
use crate::engine::{Engine, SubmitError};
use crate::error::Error;
use crate::idempotency::{DeadLetter, SqliteOptions, SqliteStore};
use crate::metrics::Report;
use crate::processor::Processor;

/// Which dead letters a command applies to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selection {
    /// The one with this idempotency key.
    Key(String),
    /// All of them.
    All,
}

impl Selection {
    fn key(&self) -> Option<&str> {
        match self {
            Selection::Key(k) => Some(k),
            Selection::All => None,
        }
    }
}

fn open(db: &Path) -> Result<SqliteStore, Error> {
    Ok(SqliteStore::open_existing(db, SqliteOptions::default())?)
}

/// The dead letters in `db` (all, or one key's).
///
/// # Errors
///
/// [`Error::Store`] when the database is missing or unreadable.
pub fn list(db: &Path, selection: &Selection) -> Result<Vec<DeadLetter>, Error> {
    Ok(open(db)?.dead_letters(selection.key())?)
}

/// Deletes dead letters; returns how many.
///
/// # Errors
///
/// [`Error::Store`] when the database is missing or unwritable.
pub fn purge(db: &Path, selection: &Selection) -> Result<u64, Error> {
    Ok(open(db)?.purge_dead_letters(selection.key())?)
}

/// Re-drives dead letters through an engine configured by `config` (whose
/// `store` must point at the database) and returns its report, plus how many
/// dead letters were cleared because their key now succeeded.
///
/// # Errors
///
/// [`Error::Config`] when `config` has no store, [`Error::Store`] when the
/// database cannot be used.
pub fn retry(
    config: EngineConfig,
    processor: impl Processor,
    selection: &Selection,
) -> Result<(Report, u64), Error> {
    let Some(store_config) = &config.store else {
        return Err(Error::config(
            "db",
            "re-driving dead letters needs a database",
        ));
    };
    let store = SqliteStore::open_existing(&store_config.path, store_config.sqlite_options())?;
    let letters = store.dead_letters(selection.key())?;
    let engine = Engine::start(config, processor)?;
    let submitter = engine.submitter();
    for letter in letters {
        let mut task = letter.task;
        task.attempts = 0;
        if let Err(SubmitError::Closed(_)) = submitter.submit(task) {
            break;
        }
    }
    drop(submitter);
    let report = engine.shutdown();
    let cleared = store.clear_recovered_dead_letters()?;
    Ok((report, cleared))
}
