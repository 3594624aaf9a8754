//! The PostgreSQL queue commands: `migrate`, `enqueue`, `status`, and
//! `dlq list | retry | purge --pg`.

use std::path::Path;

use serde::Serialize;
use taskq_pg::dlq::DeadTask;
use taskq_pg::{schema, EnqueueReport, Enqueuer, MigrateReport, PgError, Queue, Status};

use crate::cli::EnqueueArgs;
use crate::dlq::Selection;
use crate::input::{open_path, precheck_path, source_name, InputError, Record};

/// Why a queue command failed.
#[derive(Debug, thiserror::Error)]
pub enum PgCommandError {
    /// The queue's database.
    #[error(transparent)]
    Pg(#[from] PgError),
    /// The task file.
    #[error(transparent)]
    Input(#[from] InputError),
    /// No queue schema in the database (`status` and `dlq` do not create
    /// one).
    #[error("{0}: no taskq queue here yet (run `taskq migrate` or `taskq enqueue` first)")]
    NoQueue(String),
}

/// An invalid record skipped by `enqueue`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct InvalidRecord {
    /// 1-based line.
    pub line: u64,
    /// What is wrong.
    pub error: String,
}

/// What `taskq enqueue` did.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct EnqueueOutcome {
    /// `host:port/database as user`.
    pub target: String,
    /// The processor the tasks were enqueued for.
    pub processor: String,
    /// The database's counts.
    #[serde(flatten)]
    pub report: EnqueueReport,
    /// Records of the file that are not valid tasks (skipped).
    pub invalid: u64,
    /// The first invalid records (at most [`taskq::metrics::MAX_INVALID_LISTED`]).
    pub invalid_records: Vec<InvalidRecord>,
}

/// `taskq migrate`: connects and brings the schema up to date.
///
/// # Errors
///
/// The server cannot be reached, or its schema is newer than this build.
pub fn migrate(url: &str) -> Result<(String, MigrateReport), PgCommandError> {
    let mut queue = Queue::connect(url)?;
    let report = taskq_pg::migrate(&mut queue)?;
    Ok((queue.target().to_string(), report))
}

/// `taskq enqueue`: checks the whole file first (unless it is stdin), so
/// that a file that cannot be read enqueues nothing, then streams its tasks
/// into the queue in batches.
///
/// # Errors
///
/// The file cannot be read (nothing is enqueued when it is a file; from
/// stdin, the batches before the error are), the server cannot be reached,
/// or a batch cannot be committed (earlier batches stay).
pub fn enqueue(args: &EnqueueArgs) -> Result<EnqueueOutcome, PgCommandError> {
    let options = args.reader_options();
    if args.tasks != Path::new("-") {
        precheck_path(&args.tasks, options)?;
    }
    let mut queue = Queue::connect(&args.pg.pg)?;
    schema::ensure(&mut queue)?;
    let reader = open_path(&args.tasks, options)?;
    let processor = args.processor.record_name();
    let mut outcome = EnqueueOutcome {
        target: queue.target().to_string(),
        processor: processor.to_string(),
        ..EnqueueOutcome::default()
    };
    let mut enqueuer = Enqueuer::new(
        &mut queue,
        processor,
        args.max_retries.saturating_add(1),
        args.batch_size,
    )
    .with_method(args.method);
    for record in reader {
        match record? {
            Record::Task { task, .. } => enqueuer.push(task)?,
            Record::Invalid { line, error, .. } => {
                outcome.invalid += 1;
                if outcome.invalid_records.len() < taskq::metrics::MAX_INVALID_LISTED {
                    outcome.invalid_records.push(InvalidRecord {
                        line,
                        error: error.to_string(),
                    });
                }
            }
        }
    }
    outcome.report = enqueuer.finish()?;
    Ok(outcome)
}

impl EnqueueOutcome {
    /// The summary line: `enqueued 7 tasks for simulated into HOST (3
    /// duplicates, 1 invalid record skipped)`.
    pub fn summary(&self, tasks: &Path) -> String {
        format!(
            "enqueued {} of {} tasks from {} for {} into {} ({} duplicates, {} invalid records skipped)",
            self.report.enqueued,
            self.report.submitted,
            source_name(tasks),
            self.processor,
            self.target,
            self.report.duplicates,
            self.invalid
        )
    }
}

/// `taskq status`.
///
/// # Errors
///
/// The server cannot be reached, the database holds no queue, or its
/// schema is newer than this build.
pub fn status(url: &str) -> Result<Status, PgCommandError> {
    let mut queue = existing(url)?;
    Ok(taskq_pg::status(&mut queue)?)
}

/// Connects to a queue that exists, without creating or migrating it:
/// what the commands that only read or change its rows need.
///
/// # Errors
///
/// The server cannot be reached, the database holds no queue, or its
/// schema is newer than this build.
pub(crate) fn existing(url: &str) -> Result<Queue, PgCommandError> {
    let mut queue = Queue::connect(url)?;
    match schema::version(&mut queue)? {
        0 => Err(PgCommandError::NoQueue(queue.target().to_string())),
        v if v > taskq_pg::SCHEMA_VERSION => Err(PgError::NewerSchema {
            target: queue.target().to_string(),
            found: v,
            supported: taskq_pg::SCHEMA_VERSION,
        }
        .into()),
        _ => Ok(queue),
    }
}

fn pg_selection(selection: &Selection) -> taskq_pg::dlq::Selection<'_> {
    match selection {
        Selection::Key(k) => taskq_pg::dlq::Selection::Key(k),
        Selection::All => taskq_pg::dlq::Selection::All,
    }
}

/// `taskq dlq list --pg`: the queue's target and its dead tasks (one
/// key's, when given; of `processor` only, when given).
///
/// # Errors
///
/// As [`status`].
pub fn dlq_list(
    url: &str,
    key: Option<&str>,
    processor: Option<&str>,
) -> Result<(String, Vec<DeadTask>), PgCommandError> {
    let mut queue = existing(url)?;
    let dead = taskq_pg::dlq::list(&mut queue, key, processor)?;
    Ok((queue.target().to_string(), dead))
}

/// `taskq dlq retry --pg`: re-queues the selected dead tasks for the worker
/// nodes ([`taskq_pg::dlq::retry`]); the target and how many.
///
/// # Errors
///
/// As [`status`]; nothing is changed then.
pub fn dlq_retry(
    url: &str,
    selection: &Selection,
    processor: Option<&str>,
) -> Result<(String, u64), PgCommandError> {
    let mut queue = existing(url)?;
    let n = taskq_pg::dlq::retry(&mut queue, pg_selection(selection), processor)?;
    Ok((queue.target().to_string(), n))
}

/// `taskq dlq purge --pg`: deletes the selected dead tasks; the target and
/// how many.
///
/// # Errors
///
/// As [`status`]; nothing is changed then.
pub fn dlq_purge(
    url: &str,
    selection: &Selection,
    processor: Option<&str>,
) -> Result<(String, u64), PgCommandError> {
    let mut queue = existing(url)?;
    let n = taskq_pg::dlq::purge(&mut queue, pg_selection(selection), processor)?;
    Ok((queue.target().to_string(), n))
}
