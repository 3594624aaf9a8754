//! The dead-letter queue commands: list, re-drive, purge.
//!
//! Every dead letter names the processor that failed it. Re-driving runs the
//! dead-lettered tasks of one processor through a fresh engine with that
//! processor over the same database, with idempotency: a key that has
//! succeeded in the meantime completes as a duplicate. Afterwards every
//! re-driven dead letter whose key now has a succeeded record of the same
//! processor is removed; tasks that fail again stay (their attempt count
//! grows). A dead letter is never cleared by another processor's success.

use compact_str::CompactString;
use std::path::Path;

use taskq::config::EngineConfig;
use taskq::engine::{Engine, SubmitError};
use taskq::error::Error;
use taskq::idempotency::{DeadLetter, SqliteOptions, SqliteStore, UNKNOWN_PROCESSOR};
use taskq::metrics::Report;
use taskq::processor::Processor;
use taskq::setting;

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

/// Dead letters by processor: how many of the selected ones each made.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ByProcessor(pub Vec<(String, u64)>);

impl ByProcessor {
    fn of(letters: &[DeadLetter]) -> Self {
        let mut counts: Vec<(String, u64)> = Vec::new();
        for l in letters {
            match counts.iter_mut().find(|(p, _)| *p == l.processor) {
                Some((_, n)) => *n += 1,
                None => counts.push((l.processor.clone(), 1)),
            }
        }
        counts.sort();
        ByProcessor(counts)
    }

    /// `thumbnail/v1: 2, simulated: 1`, with unknown written as such.
    pub fn describe(&self) -> String {
        self.0
            .iter()
            .map(|(p, n)| format!("{}: {n}", processor_label(p)))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A processor's name for people: the unknown one (records written before
/// processors were recorded) says so.
pub fn processor_label(name: &str) -> &str {
    if name == UNKNOWN_PROCESSOR {
        "unknown (recorded before taskq kept processors)"
    } else {
        name
    }
}

/// The dead letters in `db` (all, or one key's), read without writing to the
/// file (a read-only database, or one of an older schema, is read as it is).
///
/// # Errors
///
/// [`Error::Store`] when the database is missing or unreadable.
pub fn list(db: &Path, selection: &Selection) -> Result<Vec<DeadLetter>, Error> {
    Ok(SqliteStore::open_read_only(db, SqliteOptions::default())?.dead_letters(selection.key())?)
}

/// Which processors made the selected dead letters, read without writing to
/// the file: what [`retry`] needs to know to pick the processor.
///
/// # Errors
///
/// [`Error::Store`] when the database is missing or unreadable.
pub fn processors(db: &Path, selection: &Selection) -> Result<ByProcessor, Error> {
    Ok(ByProcessor::of(&list(db, selection)?))
}

/// Deletes dead letters (of every processor); returns how many.
///
/// # Errors
///
/// [`Error::Store`] when the database is missing or unwritable.
pub fn purge(db: &Path, selection: &Selection) -> Result<u64, Error> {
    Ok(SqliteStore::open_existing(db, SqliteOptions::default())?
        .purge_dead_letters(selection.key())?)
}

/// What [`retry`] did.
#[derive(Debug)]
pub struct Retried {
    /// The engine's report of the re-run.
    pub report: Report,
    /// Dead letters removed because their key now succeeded.
    pub cleared: u64,
    /// Selected dead letters of other processors, left alone.
    pub skipped: ByProcessor,
    /// Dead letters of unknown processor given to this one first (only with
    /// `adopt_unknown`).
    pub adopted: u64,
}

/// Re-drives the selected dead letters that `processor` made
/// ([`Processor::name`]) through an engine configured
/// by `config` (whose `store` must point at the database). With
/// `adopt_unknown`, dead letters written before processors were recorded are
/// given to `processor` first and re-driven too. Dead letters of other
/// processors are left alone (a success of one processor says nothing about
/// another's work), and counted in [`Retried::skipped`].
///
/// Afterwards each re-driven dead letter whose key now has a succeeded record
/// of the same processor is removed; the others stay, with their attempts
/// added up.
///
/// # Errors
///
/// [`Error::Config`] when `config` has no store, [`Error::Store`] when the
/// database cannot be used.
pub fn retry(
    config: EngineConfig,
    processor: impl Processor,
    selection: &Selection,
    adopt_unknown: bool,
) -> Result<Retried, Error> {
    let Some(store_config) = &config.store else {
        return Err(Error::config(
            setting::STORE,
            "re-driving dead letters needs a database",
        ));
    };
    let name = processor.name().to_string();
    let store = SqliteStore::open_existing(&store_config.path, store_config.sqlite_options())?;
    let adopted = if adopt_unknown && name != UNKNOWN_PROCESSOR {
        store.adopt_dead_letters(&name, selection.key())?
    } else {
        0
    };
    let (mine, others): (Vec<DeadLetter>, Vec<DeadLetter>) = store
        .dead_letters(selection.key())?
        .into_iter()
        .partition(|l| l.processor == name);
    let engine = Engine::start(config, processor)?;
    let submitter = engine.submitter();
    let mut keys: Vec<CompactString> = Vec::with_capacity(mine.len());
    for letter in mine {
        let mut task = letter.task;
        task.reset_attempts();
        keys.push(task.idempotency_key().into());
        if let Err(SubmitError::Closed(_)) = submitter.submit(task) {
            break;
        }
    }
    drop(submitter);
    let report = engine.shutdown();
    let cleared = store.clear_recovered_dead_letters(&name, keys.iter().map(|k| k.as_str()))?;
    Ok(Retried {
        report,
        cleared,
        skipped: ByProcessor::of(&others),
        adopted,
    })
}
