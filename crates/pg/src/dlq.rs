//! The dead-letter queue of the shared queue: the `dead` rows of
//! `taskq_tasks`, listed, re-queued or deleted.
//!
//! A task is dead once a node wrote a permanent failure for it, its last
//! attempt failed transiently, or it was rescued with its attempts spent;
//! its `last_error_*` columns say why. Each function here is one statement:
//!
//! - [`list`] reads them, oldest `finalized_at` first.
//! - [`retry`] makes them `available` again (`run_at = now()`) for the
//!   `taskq worker` nodes to run, and announces them on [`CHANNEL`] so idle
//!   nodes wake. Nothing runs here: unlike the SQLite store's re-drive, the
//!   nodes do the work. `attempt` is never reset (it is the fencing token of
//!   every later write); instead the row is granted as many attempts again
//!   as it was enqueued with: `max_attempts = attempt + budget`, the budget
//!   being its `max_attempts` at its first re-drive (kept in
//!   `attempts_granted`), so every re-drive grants the same.
//!   The `last_error_*` columns are kept as history (a later failure
//!   overwrites them; a later success leaves them, as a success after a
//!   transient failure does).
//! - [`purge`] deletes them, skipping rows another session holds locked.
//!
//! A dead row changes only through these functions, so a row re-queued or
//! deleted by one session is not re-queued or deleted again by another
//! running at the same time: each statement re-checks `state = 'dead'` on
//! the rows it changes.

use serde::Serialize;

use crate::{PgError, Queue, CHANNEL};

/// A dead task: a `dead` row of `taskq_tasks`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DeadTask {
    /// The row's id.
    pub id: i64,
    /// The processor's record name (`simulated`, `thumbnail/v1`, …).
    pub processor: String,
    /// The task's idempotency key (unique per processor).
    pub idempotency_key: String,
    /// The id the task file gave.
    pub task_id: String,
    /// The source image's key.
    pub image_key: String,
    /// The variant size, `WxH`.
    pub size: String,
    /// Attempts made (the row's `attempt`).
    pub attempts: i32,
    /// Attempts allowed (the row's `max_attempts`).
    pub max_attempts: i32,
    /// The last error's class (`transient`, `permanent`); `None` for a row
    /// dead-lettered by hand.
    pub error_class: Option<String>,
    /// The last error's kind (`invalid_task`, `node_lost`, the processor's).
    pub error_kind: Option<String>,
    /// The last error's message.
    pub error: Option<String>,
    /// When the task died, RFC 3339 in UTC with microseconds
    /// (`2024-05-01T12:00:00.123456Z`).
    pub finalized_at: String,
}

/// Which dead tasks [`retry`] and [`purge`] apply to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Selection<'a> {
    /// Those of this idempotency key (one per processor at most).
    Key(&'a str),
    /// Those with these row ids ([`DeadTask::id`]): a selection made from a
    /// listing. Ids that are no longer dead are skipped.
    Ids(&'a [i64]),
    /// All of them.
    All,
}

impl<'a> Selection<'a> {
    /// The key, or `None` for all keys.
    pub fn key(self) -> Option<&'a str> {
        match self {
            Selection::Key(k) => Some(k),
            Selection::Ids(_) | Selection::All => None,
        }
    }

    /// The row ids, or `None` for any row.
    pub fn ids(self) -> Option<Vec<i64>> {
        match self {
            Selection::Ids(ids) => Some(ids.to_vec()),
            Selection::Key(_) | Selection::All => None,
        }
    }
}

/// At most `limit` dead tasks, oldest first, of error class `class` and
/// with `key_contains` in their idempotency key (each filter only when
/// given), and how many match in all.
///
/// # Errors
///
/// [`PgError::Query`] when a statement fails.
pub fn list_matching(
    queue: &mut Queue,
    class: Option<&str>,
    key_contains: Option<&str>,
    limit: i64,
) -> Result<(Vec<DeadTask>, i64), PgError> {
    queue.count(2);
    const WHERE: &str = "state = 'dead'
               AND ($1::text IS NULL OR last_error_class = $1)
               AND ($2::text IS NULL OR strpos(idempotency_key, $2) > 0)";
    let total: i64 = queue
        .client()
        .query_one(
            &format!("SELECT count(*) FROM taskq_tasks WHERE {WHERE}"),
            &[&class, &key_contains],
        )
        .and_then(|r| r.try_get(0))
        .map_err(queue.err("cannot count dead tasks"))?;
    let rows = queue
        .client()
        .query(
            &format!(
                "SELECT id, processor, idempotency_key, task_id, image_key, size, attempt,
                        max_attempts, last_error_class, last_error_kind, last_error,
                        to_char(finalized_at AT TIME ZONE 'UTC',
                                'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')
                 FROM taskq_tasks WHERE {WHERE}
                 ORDER BY finalized_at, id LIMIT $3"
            ),
            &[&class, &key_contains, &limit],
        )
        .map_err(queue.err("cannot list dead tasks"))?;
    let tasks = rows
        .iter()
        .map(dead_task)
        .collect::<Result<Vec<_>, postgres::Error>>()
        .map_err(queue.err("cannot read dead tasks"))?;
    Ok((tasks, total))
}

fn dead_task(r: &postgres::Row) -> Result<DeadTask, postgres::Error> {
    Ok(DeadTask {
        id: r.try_get(0)?,
        processor: r.try_get(1)?,
        idempotency_key: r.try_get(2)?,
        task_id: r.try_get(3)?,
        image_key: r.try_get(4)?,
        size: r.try_get(5)?,
        attempts: r.try_get(6)?,
        max_attempts: r.try_get(7)?,
        error_class: r.try_get(8)?,
        error_kind: r.try_get(9)?,
        error: r.try_get(10)?,
        finalized_at: r.try_get(11)?,
    })
}

/// The selected dead tasks (all, or one key's), of every processor or of
/// `processor` only (its record name), oldest `finalized_at` first.
///
/// # Errors
///
/// [`PgError::Query`] when the statement fails (the schema must exist: see
/// [`schema::version`](crate::schema::version)).
pub fn list(
    queue: &mut Queue,
    key: Option<&str>,
    processor: Option<&str>,
) -> Result<Vec<DeadTask>, PgError> {
    queue.count(1);
    let rows = queue
        .client()
        .query(
            "SELECT id, processor, idempotency_key, task_id, image_key, size, attempt,
                    max_attempts, last_error_class, last_error_kind, last_error,
                    to_char(finalized_at AT TIME ZONE 'UTC',
                            'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')
             FROM taskq_tasks
             WHERE state = 'dead'
               AND ($1::text IS NULL OR idempotency_key = $1)
               AND ($2::text IS NULL OR processor = $2)
             ORDER BY finalized_at, id",
            &[&key, &processor],
        )
        .map_err(queue.err("cannot list dead tasks"))?;
    rows.iter()
        .map(dead_task)
        .collect::<Result<Vec<_>, postgres::Error>>()
        .map_err(queue.err("cannot read dead tasks"))
}

/// Re-queues the selected dead tasks (of `processor` only, when given) for
/// the worker nodes, in one statement: each becomes `available` at
/// `run_at = now()`, with `finalized_at` cleared and `max_attempts =
/// attempt + budget` (as many attempts again as it was enqueued with;
/// `attempt` keeps growing). `last_error_*` are kept. One notification on
/// [`CHANNEL`] (payload: `processor`, or empty) wakes idle nodes when
/// anything was re-queued. Returns how many were.
///
/// The budget is the row's `max_attempts` at its first re-drive, recorded
/// in `attempts_granted`: a row re-driven again after dying a second time
/// gets the same grant, not a growing one.
///
/// # Errors
///
/// [`PgError::Query`] when the statement fails (nothing is changed).
pub fn retry(
    queue: &mut Queue,
    selection: Selection<'_>,
    processor: Option<&str>,
) -> Result<u64, PgError> {
    queue.count(1);
    let payload = processor.unwrap_or("");
    // One statement: the update and the notification commit together, and
    // the notification is sent only when a row changed.
    let n: i64 = queue
        .client()
        .query_one(
            "WITH requeued AS (
                 UPDATE taskq_tasks SET
                     state = 'available', run_at = now(), finalized_at = NULL,
                     max_attempts = least(
                         attempt::bigint + coalesce(attempts_granted, max_attempts),
                         2147483647)::int,
                     attempts_granted = coalesce(attempts_granted, max_attempts)
                 WHERE state = 'dead'
                   AND ($1::text IS NULL OR idempotency_key = $1)
                   AND ($2::text IS NULL OR processor = $2)
                   AND ($5::bigint[] IS NULL OR id = ANY($5))
                 RETURNING id),
             n AS (SELECT count(*) AS n FROM requeued)
             SELECT n.n, CASE WHEN n.n > 0 THEN pg_notify($3, $4)::text END FROM n",
            &[
                &selection.key(),
                &processor,
                &CHANNEL,
                &payload,
                &selection.ids(),
            ],
        )
        .and_then(|r| r.try_get(0))
        .map_err(queue.err("cannot re-queue dead tasks"))?;
    Ok(n as u64)
}

/// Deletes the selected dead tasks (of `processor` only, when given), in one
/// statement, skipping rows another session holds locked (`FOR UPDATE SKIP
/// LOCKED`). Returns how many were deleted. Their keys may then be
/// enqueued again as new tasks.
///
/// # Errors
///
/// [`PgError::Query`] when the statement fails (nothing is deleted).
pub fn purge(
    queue: &mut Queue,
    selection: Selection<'_>,
    processor: Option<&str>,
) -> Result<u64, PgError> {
    queue.count(1);
    queue
        .client()
        .execute(
            "WITH doomed AS MATERIALIZED (
                 SELECT id FROM taskq_tasks
                 WHERE state = 'dead'
                   AND ($1::text IS NULL OR idempotency_key = $1)
                   AND ($2::text IS NULL OR processor = $2)
                   AND ($3::bigint[] IS NULL OR id = ANY($3))
                 FOR UPDATE SKIP LOCKED)
             DELETE FROM taskq_tasks t USING doomed
             WHERE t.id = doomed.id AND t.state = 'dead'",
            &[&selection.key(), &processor, &selection.ids()],
        )
        .map_err(queue.err("cannot purge dead tasks"))
}
