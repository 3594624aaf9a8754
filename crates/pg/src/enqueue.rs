//! Enqueueing: tasks inserted in batches, deduplicated by the database.
//!
//! Each batch is one transaction: one `INSERT … SELECT FROM unnest(…)`
//! with `ON CONFLICT ON CONSTRAINT taskq_tasks_key DO NOTHING` (or, with
//! [`EnqueueMethod::Copy`], a binary `COPY` into a temporary staging table
//! and one `INSERT … SELECT` from it), then one `pg_notify` (delivered at commit) so that idle nodes wake once
//! per batch, not once per row. A key already in the table (queued, running,
//! done or dead) or repeated within the batch is not inserted: the inserted
//! rows returned are the enqueued tasks, the rest are duplicates. The unique
//! constraint is the only arbiter: concurrent enqueuers of one key wait on
//! each other's insert, and exactly one row results.

use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::Type;
use serde::Serialize;
use taskq::Task;

use crate::{PgError, Queue, CHANNEL};

/// The default number of tasks per batch.
pub const DEFAULT_BATCH: usize = 1000;

/// What an enqueue did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct EnqueueReport {
    /// Tasks handed over.
    pub submitted: u64,
    /// New rows: tasks now in the queue.
    pub enqueued: u64,
    /// Tasks whose key the queue already held (queued, running, done or
    /// dead), or that repeated a key earlier in the input.
    pub duplicates: u64,
    /// Batches committed.
    pub batches: u64,
}

/// How a batch reaches the server.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EnqueueMethod {
    /// One `INSERT … SELECT FROM unnest($arrays)`: four array parameters.
    #[default]
    Unnest,
    /// A binary `COPY` into a temporary table, then one `INSERT … SELECT`
    /// from it (two more statements per batch).
    Copy,
}

impl taskq::setting::Choice for EnqueueMethod {
    const CHOICES: &'static [(Self, &'static str, &'static str)] = &[
        (
            EnqueueMethod::Unnest,
            "unnest",
            "One INSERT … SELECT FROM unnest(arrays) per batch",
        ),
        (
            EnqueueMethod::Copy,
            "copy",
            "Binary COPY into a staging table, then one INSERT … SELECT per batch",
        ),
    ];
}

const STAGE: &str = "CREATE TEMP TABLE IF NOT EXISTS taskq_stage
        (k text, i text, ik text, s text) ON COMMIT DELETE ROWS";

const INSERT_STAGED: &str = "INSERT INTO taskq_tasks
        (processor, idempotency_key, task_id, image_key, size, max_attempts)
    SELECT $1, k, i, ik, s, $2 FROM taskq_stage
    ON CONFLICT ON CONSTRAINT taskq_tasks_key DO NOTHING";

const INSERT: &str = "INSERT INTO taskq_tasks
        (processor, idempotency_key, task_id, image_key, size, max_attempts)
    SELECT $1, k, i, ik, s, $2
    FROM unnest($3::text[], $4::text[], $5::text[], $6::text[]) AS t(k, i, ik, s)
    ON CONFLICT ON CONSTRAINT taskq_tasks_key DO NOTHING";

/// Buffers tasks for one processor and inserts them a batch at a time.
///
/// # Examples
///
/// ```no_run
/// use taskq::Task;
/// use taskq_pg::{Enqueuer, Queue};
///
/// let mut queue = Queue::connect("postgres://postgres@127.0.0.1/taskq")?;
/// taskq_pg::schema::ensure(&mut queue)?;
/// let mut enqueuer = Enqueuer::new(&mut queue, "thumbnail/v1", 4, 1000);
/// enqueuer.push(Task::new("img/000001.jpg", "200x200".parse()?)?)?;
/// let report = enqueuer.finish()?;
/// println!("{} enqueued, {} duplicates", report.enqueued, report.duplicates);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Enqueuer<'q> {
    queue: &'q mut Queue,
    processor: String,
    max_attempts: i32,
    batch: usize,
    keys: Vec<String>,
    ids: Vec<String>,
    image_keys: Vec<String>,
    sizes: Vec<String>,
    method: EnqueueMethod,
    report: EnqueueReport,
}

impl<'q> Enqueuer<'q> {
    /// An enqueuer of `processor`'s tasks (its record name, as
    /// [`Processor::name`](taskq::Processor::name) gives it), each to be
    /// attempted at most `max_attempts` times, inserted `batch` at a time
    /// (at least 1).
    pub fn new(queue: &'q mut Queue, processor: &str, max_attempts: u32, batch: usize) -> Self {
        let batch = batch.max(1);
        // Room for a batch up front, but not for an absurd one.
        let room = batch.min(8192);
        Enqueuer {
            queue,
            processor: processor.to_string(),
            max_attempts: i32::try_from(max_attempts.max(1)).unwrap_or(i32::MAX),
            batch,
            keys: Vec::with_capacity(room),
            ids: Vec::with_capacity(room),
            image_keys: Vec::with_capacity(room),
            sizes: Vec::with_capacity(room),
            method: EnqueueMethod::default(),
            report: EnqueueReport::default(),
        }
    }

    /// Sends batches with `method` ([`EnqueueMethod::Unnest`] unless told).
    pub fn with_method(mut self, method: EnqueueMethod) -> Self {
        self.method = method;
        self
    }

    /// Adds `task`; commits a batch when one is full.
    ///
    /// # Errors
    ///
    /// [`PgError::Query`] when a batch cannot be committed (its tasks are not
    /// enqueued; earlier batches are).
    pub fn push(&mut self, task: Task) -> Result<(), PgError> {
        self.keys.push(task.idempotency_key().to_string());
        self.ids.push(task.id().to_string());
        self.image_keys.push(task.image_key().to_string());
        self.sizes.push(task.size().to_string());
        self.report.submitted += 1;
        if self.keys.len() >= self.batch {
            self.flush()?;
        }
        Ok(())
    }

    /// Commits what is buffered.
    ///
    /// # Errors
    ///
    /// As [`push`](Enqueuer::push).
    pub fn flush(&mut self) -> Result<(), PgError> {
        if self.keys.is_empty() {
            return Ok(());
        }
        let n = self.keys.len() as u64;
        let what = format!("cannot enqueue a batch of {n} tasks");
        let mut tx = self
            .queue
            .client()
            .transaction()
            .map_err(PgError::query(what.clone()))?;
        let inserted = match self.method {
            EnqueueMethod::Unnest => tx.execute(
                INSERT,
                &[
                    &self.processor,
                    &self.max_attempts,
                    &self.keys,
                    &self.ids,
                    &self.image_keys,
                    &self.sizes,
                ],
            ),
            EnqueueMethod::Copy => (|| {
                tx.batch_execute(STAGE)?;
                let sink =
                    tx.copy_in("COPY taskq_stage (k, i, ik, s) FROM STDIN (FORMAT binary)")?;
                let mut w = BinaryCopyInWriter::new(sink, &[Type::TEXT; 4]);
                for j in 0..self.keys.len() {
                    w.write(&[
                        &self.keys[j],
                        &self.ids[j],
                        &self.image_keys[j],
                        &self.sizes[j],
                    ])?;
                }
                w.finish()?;
                tx.execute(INSERT_STAGED, &[&self.processor, &self.max_attempts])
            })(),
        }
        .map_err(PgError::query(what.clone()))?;
        if inserted > 0 {
            tx.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &self.processor])
                .map_err(PgError::query(what.clone()))?;
        }
        tx.commit().map_err(PgError::query(what))?;
        // BEGIN, (CREATE TEMP, COPY,) INSERT, NOTIFY (when something was
        // new), COMMIT.
        let staged = if self.method == EnqueueMethod::Copy {
            2
        } else {
            0
        };
        self.queue.count(3 + staged + u64::from(inserted > 0));
        self.report.enqueued += inserted;
        self.report.duplicates += n - inserted;
        self.report.batches += 1;
        self.keys.clear();
        self.ids.clear();
        self.image_keys.clear();
        self.sizes.clear();
        Ok(())
    }

    /// Commits what is buffered and reports.
    ///
    /// # Errors
    ///
    /// As [`push`](Enqueuer::push).
    pub fn finish(mut self) -> Result<EnqueueReport, PgError> {
        self.flush()?;
        Ok(self.report)
    }

    /// What was done so far (committed batches only count as enqueued or
    /// duplicates).
    pub fn report(&self) -> EnqueueReport {
        self.report
    }
}
