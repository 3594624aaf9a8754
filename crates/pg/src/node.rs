//! What a node does to the queue, statement by statement: register, beat,
//! claim, settle (fenced), hand back, rescue.
//!
//! # Fencing
//!
//! A claim sets `lease_node` to the node and adds one to `attempt`. Every
//! later write for that task is conditional on `lease_node = node AND
//! attempt = the claimed attempt AND state = 'running'`. A node that was
//! declared dead (its heartbeat older than the rescue timeout) loses its
//! tasks to the rescuer; when it comes back its writes match no row and are
//! counted as fenced, never applied. `attempt` only grows, so a task
//! rescued and claimed again can never match an older holder's write.
//!
//! # Rescue
//!
//! Any node may rescue, one at a time: the rescue runs in one transaction
//! that first takes `pg_try_advisory_xact_lock(RESCUE_LOCK)` and skips the
//! round when another node holds it. It declares `dead` every `alive` node
//! whose heartbeat is older than the timeout, then puts the tasks held by
//! nodes that are not alive back to `available` (attempt kept, so counted),
//! or dead-letters those whose attempts are spent.

use std::time::Duration;

use serde::Serialize;
use taskq::Task;

use crate::{PgError, Queue, CHANNEL};

/// The advisory lock key of the rescue (a fixed, taskq-specific number).
pub const RESCUE_LOCK: i64 = 0x7461_736b_715f_7263; // "taskq_rc"

/// The advisory lock key a node holds while it vacuums the tasks table
/// (one vacuum at a time across the nodes).
pub const VACUUM_LOCK: i64 = 0x7461_736b_715f_7663; // "taskq_vc"

/// A task claimed by this node.
#[derive(Clone, Debug)]
pub struct Claimed {
    /// The row.
    pub id: i64,
    /// The attempt this claim is (1 for the first).
    pub attempt: i32,
    /// Attempts allowed in all.
    pub max_attempts: i32,
    /// The task, with the row's id as its id.
    pub task: Task,
    /// The id the task file gave.
    pub task_id: String,
}

/// How an attempt ended, to be written back.
#[derive(Clone, Debug, PartialEq)]
pub enum Settle {
    /// Done.
    Succeeded,
    /// Failed: retried after `delay` when `transient` and attempts remain,
    /// otherwise dead-lettered.
    Failed {
        /// Worth retrying.
        transient: bool,
        /// The error's class (`transient`, `permanent`).
        class: String,
        /// The error's kind.
        kind: String,
        /// The error's message.
        message: String,
        /// The backoff before the next attempt.
        delay: Duration,
    },
}

/// What a settle batch did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Settled {
    /// Tasks now succeeded.
    pub succeeded: u64,
    /// Tasks back to available, after their backoff.
    pub retried: u64,
    /// Tasks dead-lettered.
    pub dead: u64,
    /// Writes refused because the node no longer held the task.
    pub fenced: u64,
}

impl std::ops::AddAssign for Settled {
    fn add_assign(&mut self, o: Settled) {
        self.succeeded += o.succeeded;
        self.retried += o.retried;
        self.dead += o.dead;
        self.fenced += o.fenced;
    }
}

/// What one rescue round did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Rescued {
    /// Whether this node did the round (another held the lock otherwise).
    pub ran: bool,
    /// Nodes declared dead.
    pub nodes: u64,
    /// Tasks made available again.
    pub requeued: u64,
    /// Tasks dead-lettered because their attempts were spent.
    pub dead: u64,
}

/// Registers a node for `processor`: a new id at every start.
///
/// # Errors
///
/// [`PgError::Query`] when the row cannot be written.
pub fn register(queue: &mut Queue, hostname: &str, processor: &str) -> Result<i64, PgError> {
    let pid = i32::try_from(std::process::id()).unwrap_or(i32::MAX);
    queue.count(1);
    queue
        .client()
        .query_one(
            "INSERT INTO taskq_nodes (hostname, pid, processor) VALUES ($1, $2, $3) RETURNING node_id",
            &[&hostname, &pid, &processor],
        )
        .and_then(|r| r.try_get(0))
        .map_err(queue.err("cannot register the node"))
}

/// What a node publishes with each heartbeat, for `taskq status` and the
/// dashboard.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct NodeStats {
    /// Worker threads of its engine.
    pub workers: i32,
    /// Tasks its engine has finished (succeeded, failed or dead-lettered),
    /// over the node's whole run.
    pub finished: i64,
    /// Tasks finished per second over the last heartbeat interval (none at
    /// the first heartbeat).
    pub tasks_per_s: Option<f64>,
    /// The share of the last interval its workers spent executing tasks,
    /// 0 to 1 (none at the first heartbeat).
    pub busy_ratio: Option<f64>,
}

/// Writes the node's heartbeat with what it publishes. False when the node
/// was declared dead (it must stop claiming: its tasks are being rescued).
///
/// # Errors
///
/// [`PgError::Query`] when the statement fails (the connection is lost).
pub fn heartbeat(queue: &mut Queue, node: i64, stats: &NodeStats) -> Result<bool, PgError> {
    queue.count(1);
    let n = queue
        .client()
        .execute(
            "UPDATE taskq_nodes
             SET heartbeat_at = now(), workers = $2, finished = $3, tasks_per_s = $4,
                 busy_ratio = $5
             WHERE node_id = $1 AND state = 'alive'",
            &[
                &node,
                &stats.workers,
                &stats.finished.max(0),
                &stats.tasks_per_s.map(|r| r.max(0.0)),
                &stats.busy_ratio.map(|r| r.max(0.0)),
            ],
        )
        .map_err(queue.err("cannot write the heartbeat"))?;
    Ok(n == 1)
}

/// Claims up to `limit` available tasks of `processor` for `node`, oldest
/// first, in one statement; none when `node` is no longer alive (declared
/// dead, or left).
///
/// # Errors
///
/// [`PgError::Query`] when the statement fails; a row that is not a valid
/// task is dead-lettered instead of claimed.
pub fn claim(
    queue: &mut Queue,
    node: i64,
    processor: &str,
    limit: usize,
) -> Result<Vec<Claimed>, PgError> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    queue.count(1);
    let rows = queue
        .client()
        .query(
            "WITH picked AS MATERIALIZED (
                 SELECT id FROM taskq_tasks
                 WHERE state = 'available' AND processor = $2 AND run_at <= now()
                   AND EXISTS (SELECT 1 FROM taskq_nodes
                               WHERE node_id = $1 AND state = 'alive')
                 ORDER BY run_at, id
                 LIMIT $3
                 FOR UPDATE SKIP LOCKED)
             UPDATE taskq_tasks t
             SET state = 'running', attempt = t.attempt + 1, lease_node = $1, leased_at = now()
             FROM picked WHERE t.id = picked.id AND t.state = 'available'
             RETURNING t.id, t.attempt, t.max_attempts, t.task_id, t.image_key, t.size,
                       t.idempotency_key",
            &[&node, &processor, &limit],
        )
        .map_err(queue.err("cannot claim tasks"))?;
    let mut out = Vec::with_capacity(rows.len());
    let mut bad = Vec::new();
    for r in rows {
        let id: i64 = r.get(0);
        let attempt: i32 = r.get(1);
        let task_id: String = r.get(3);
        let image_key: String = r.get(4);
        let size: String = r.get(5);
        let key: String = r.get(6);
        let task = size
            .parse()
            .map_err(|e: taskq::TaskError| e.to_string())
            .and_then(|size| {
                Task::from_parts(id.to_string().into(), &image_key, size, Some(&key))
                    .map_err(|e| e.to_string())
            });
        match task {
            Ok(task) => out.push(Claimed {
                id,
                attempt,
                max_attempts: r.get(2),
                task,
                task_id,
            }),
            Err(message) => bad.push((
                id,
                attempt,
                Settle::Failed {
                    transient: false,
                    class: "permanent".into(),
                    kind: "invalid_task".into(),
                    message,
                    delay: Duration::ZERO,
                },
            )),
        }
    }
    if !bad.is_empty() {
        settle(queue, node, &bad)?;
    }
    Ok(out)
}

/// Writes back how each `(id, attempt)` ended: one statement when all
/// succeeded, otherwise one transaction of two (successes, failures), each
/// conditional on the node still holding that attempt. Retries are made
/// available at `now() + delay`, and announced.
///
/// # Errors
///
/// [`PgError::Query`] when a statement fails; nothing of the batch is
/// applied then (one transaction).
pub fn settle(
    queue: &mut Queue,
    node: i64,
    batch: &[(i64, i32, Settle)],
) -> Result<Settled, PgError> {
    let mut done = Settled::default();
    if batch.is_empty() {
        return Ok(done);
    }
    let (mut ok_ids, mut ok_attempts) = (Vec::new(), Vec::new());
    let (mut f_ids, mut f_attempts, mut f_transient) = (Vec::new(), Vec::new(), Vec::new());
    let (mut f_class, mut f_kind, mut f_msg, mut f_delay) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (id, attempt, s) in batch {
        match s {
            Settle::Succeeded => {
                ok_ids.push(*id);
                ok_attempts.push(*attempt);
            }
            Settle::Failed {
                transient,
                class,
                kind,
                message,
                delay,
            } => {
                f_ids.push(*id);
                f_attempts.push(*attempt);
                f_transient.push(*transient);
                f_class.push(class.as_str());
                f_kind.push(kind.as_str());
                f_msg.push(message.as_str());
                f_delay.push(delay.as_secs_f64());
            }
        }
    }
    let err = queue.err("cannot write task outcomes");
    const SUCCEEDED: &str = "UPDATE taskq_tasks t
         SET state = 'succeeded', finalized_at = now(), lease_node = NULL
         FROM unnest($2::bigint[], $3::int[]) AS i(id, attempt)
         WHERE t.id = i.id AND t.attempt = i.attempt AND t.lease_node = $1
           AND t.state = 'running'";
    if f_ids.is_empty() {
        // Successes only (the common batch): one statement, its own
        // transaction.
        queue.count(1);
        let n = queue
            .client()
            .execute(SUCCEEDED, &[&node, &ok_ids, &ok_attempts])
            .map_err(err)?;
        let mut already = 0;
        if n < ok_ids.len() as u64 {
            queue.count(1);
            let err = queue.err("cannot write task outcomes");
            already = succeeded_already(queue.client(), &ok_ids, &ok_attempts)
                .map_err(err)?
                .saturating_sub(n);
        }
        done.succeeded += n + already;
        done.fenced += ok_ids.len() as u64 - n - already;
        return Ok(done);
    }
    // BEGIN, one UPDATE per kind of outcome, a NOTIFY for retries, COMMIT.
    let sent = 2
        + u64::from(!ok_ids.is_empty())
        + u64::from(!f_ids.is_empty())
        + u64::from(f_transient.iter().any(|&t| t));
    queue.count(sent);
    let mut tx = match queue.client().transaction() {
        Ok(tx) => tx,
        Err(e) => return Err(err(e)),
    };
    let result = (|| {
        if !ok_ids.is_empty() {
            let n = tx.execute(SUCCEEDED, &[&node, &ok_ids, &ok_attempts])?;
            let already = if n < ok_ids.len() as u64 {
                succeeded_already(&mut tx, &ok_ids, &ok_attempts)?.saturating_sub(n)
            } else {
                0
            };
            done.succeeded += n + already;
            done.fenced += ok_ids.len() as u64 - n - already;
        }
        if !f_ids.is_empty() {
            let rows = tx.query(
                "UPDATE taskq_tasks t SET
                   state = CASE WHEN NOT i.transient OR t.attempt >= t.max_attempts
                                THEN 'dead' ELSE 'available' END,
                   run_at = CASE WHEN NOT i.transient OR t.attempt >= t.max_attempts
                                 THEN t.run_at ELSE now() + make_interval(secs => i.delay_s) END,
                   finalized_at = CASE WHEN NOT i.transient OR t.attempt >= t.max_attempts
                                       THEN now() END,
                   lease_node = NULL, leased_at = NULL,
                   last_error_class = i.class, last_error_kind = i.kind, last_error = i.message
                 FROM unnest($2::bigint[], $3::int[], $4::bool[], $5::text[], $6::text[],
                             $7::text[], $8::float8[])
                      AS i(id, attempt, transient, class, kind, message, delay_s)
                 WHERE t.id = i.id AND t.attempt = i.attempt AND t.lease_node = $1
                   AND t.state = 'running'
                 RETURNING t.state",
                &[
                    &node,
                    &f_ids,
                    &f_attempts,
                    &f_transient,
                    &f_class,
                    &f_kind,
                    &f_msg,
                    &f_delay,
                ],
            )?;
            for r in &rows {
                let state: &str = r.get(0);
                if state == "dead" {
                    done.dead += 1;
                } else {
                    done.retried += 1;
                }
            }
            done.fenced += f_ids.len() as u64 - rows.len() as u64;
            if done.retried > 0 {
                tx.execute("SELECT pg_notify($1, '')", &[&CHANNEL])?;
            }
        }
        Ok::<(), postgres::Error>(())
    })();
    result.and_then(|()| tx.commit()).map_err(err)?;
    Ok(done)
}

/// How many of `(ids, attempts)` are succeeded at exactly that attempt.
///
/// A success the node writes again after a lost connection (its first
/// commit went through, the answer did not) matches no running row; it is
/// still this node's: an attempt number belongs to one claim (a rescue keeps
/// it, the next claim adds one), so a row succeeded at the attempt this node
/// held was completed by this node. Such rows count as succeeded, not as
/// fenced.
fn succeeded_already(
    client: &mut impl postgres::GenericClient,
    ids: &[i64],
    attempts: &[i32],
) -> Result<u64, postgres::Error> {
    let n: i64 = client
        .query_one(
            "SELECT count(*) FROM taskq_tasks t
             JOIN unnest($1::bigint[], $2::int[]) AS i(id, attempt)
               ON t.id = i.id AND t.attempt = i.attempt
             WHERE t.state = 'succeeded'",
            &[&ids, &attempts],
        )?
        .get(0);
    Ok(n.max(0) as u64)
}

/// Gives back tasks this node claimed and did not start (at SIGTERM): they
/// are available again at once, the claim not counted as an attempt.
/// Returns how many were given back.
///
/// # Errors
///
/// [`PgError::Query`] when the statement fails.
pub fn hand_back(queue: &mut Queue, node: i64, claims: &[(i64, i32)]) -> Result<u64, PgError> {
    if claims.is_empty() {
        return Ok(0);
    }
    let ids: Vec<i64> = claims.iter().map(|c| c.0).collect();
    let attempts: Vec<i32> = claims.iter().map(|c| c.1).collect();
    queue.count(1);
    let n = queue
        .client()
        .execute(
            "UPDATE taskq_tasks t
             SET state = 'available', attempt = t.attempt - 1, run_at = now(),
                 lease_node = NULL, leased_at = NULL
             FROM unnest($2::bigint[], $3::int[]) AS i(id, attempt)
             WHERE t.id = i.id AND t.attempt = i.attempt AND t.lease_node = $1
               AND t.state = 'running'",
            &[&node, &ids, &attempts],
        )
        .map_err(queue.err("cannot hand back claimed tasks"))?;
    if n > 0 {
        queue.count(1);
        let _ = queue
            .client()
            .execute("SELECT pg_notify($1, '')", &[&CHANNEL]);
    }
    Ok(n)
}

/// The tasks the queue says `node` holds: `(id, attempt)` of its running
/// rows. A node compares them with what it knows it holds after a claim
/// whose answer was lost (the claim may have committed).
///
/// # Errors
///
/// [`PgError::Query`] when the statement fails.
pub fn leased_to(queue: &mut Queue, node: i64) -> Result<Vec<(i64, i32)>, PgError> {
    queue.count(1);
    let rows = queue
        .client()
        .query(
            "SELECT id, attempt FROM taskq_tasks WHERE lease_node = $1 AND state = 'running'",
            &[&node],
        )
        .map_err(queue.err("cannot list the node's tasks"))?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Marks the node as having left (after it handed back and settled all),
/// with the tasks it finished over its run; its rates are cleared (it runs
/// no longer).
///
/// # Errors
///
/// [`PgError::Query`] when the statement fails.
pub fn leave(queue: &mut Queue, node: i64, finished: i64) -> Result<(), PgError> {
    queue.count(1);
    queue
        .client()
        .execute(
            "UPDATE taskq_nodes
             SET state = 'left', heartbeat_at = now(), finished = greatest($2, finished),
                 tasks_per_s = NULL, busy_ratio = NULL
             WHERE node_id = $1 AND state = 'alive'",
            &[&node, &finished.max(0)],
        )
        .map_err(queue.err("cannot mark the node as left"))?;
    Ok(())
}

/// One rescue round (see the module docs): nodes silent for longer than
/// `timeout` are declared dead, and the tasks of nodes that are not alive,
/// or claimed more than `deadline` ago whoever holds them, go back to the
/// queue (at most `limit` per round).
///
/// # Errors
///
/// [`PgError::Query`] when a statement fails (the round is rolled back).
pub fn rescue(
    queue: &mut Queue,
    timeout: Duration,
    deadline: Duration,
    limit: usize,
) -> Result<Rescued, PgError> {
    let err = queue.err("cannot rescue tasks of dead nodes");
    queue.count(4);
    let mut tx = match queue.client().transaction() {
        Ok(tx) => tx,
        Err(e) => return Err(err(e)),
    };
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let result = (|| {
        let mut out = Rescued::default();
        let got: bool = tx
            .query_one("SELECT pg_try_advisory_xact_lock($1)", &[&RESCUE_LOCK])?
            .get(0);
        if !got {
            return Ok(out);
        }
        out.ran = true;
        out.nodes = tx.execute(
            "UPDATE taskq_nodes SET state = 'dead'
             WHERE state = 'alive' AND heartbeat_at < now() - make_interval(secs => $1)",
            &[&timeout.as_secs_f64()],
        )?;
        let rows = tx.query(
            "WITH stale AS MATERIALIZED (
                 SELECT t.id FROM taskq_tasks t
                 WHERE t.state = 'running' AND (
                     t.leased_at < now() - make_interval(secs => $2)
                     OR NOT EXISTS (
                         SELECT 1 FROM taskq_nodes n
                         WHERE n.node_id = t.lease_node AND n.state = 'alive'))
                 ORDER BY t.id LIMIT $1
                 FOR UPDATE OF t SKIP LOCKED)
             UPDATE taskq_tasks t SET
                 state = CASE WHEN t.attempt >= t.max_attempts THEN 'dead' ELSE 'available' END,
                 finalized_at = CASE WHEN t.attempt >= t.max_attempts THEN now() END,
                 run_at = now(), lease_node = NULL, leased_at = NULL,
                 last_error_class = 'transient',
                 last_error_kind = CASE WHEN t.leased_at < now() - make_interval(secs => $2)
                                        THEN 'deadline' ELSE 'node_lost' END,
                 last_error = CASE WHEN t.leased_at < now() - make_interval(secs => $2)
                                   THEN 'still running past the deadline'
                                   ELSE 'the node running it stopped sending heartbeats' END
             FROM stale WHERE t.id = stale.id AND t.state = 'running'
             RETURNING t.state",
            &[&limit, &deadline.as_secs_f64()],
        )?;
        for r in &rows {
            let state: &str = r.get(0);
            if state == "dead" {
                out.dead += 1;
            } else {
                out.requeued += 1;
            }
        }
        if out.requeued > 0 {
            tx.execute("SELECT pg_notify($1, '')", &[&CHANNEL])?;
        }
        Ok::<Rescued, postgres::Error>(out)
    })();
    match result {
        Ok(out) => {
            tx.commit().map_err(err)?;
            Ok(out)
        }
        Err(e) => Err(err(e)),
    }
}

/// Deletes succeeded tasks finalized more than `older_than` ago, `batch`
/// rows per statement (each its own transaction, skipping rows another
/// session holds), until none is left. Returns how many were deleted.
///
/// Succeeded rows are the idempotency record: a pruned key enqueued again
/// is a new task. Dead rows (the dead-letter queue) are never pruned here.
///
/// # Errors
///
/// [`PgError::Query`] when a statement fails (earlier batches stay deleted).
pub fn prune(queue: &mut Queue, older_than: Duration, batch: usize) -> Result<u64, PgError> {
    let batch = i64::try_from(batch.max(1)).unwrap_or(i64::MAX);
    let mut total = 0;
    // Walks the primary key once (`id > after`): no index on `finalized_at`
    // is kept, since every completion would insert into it.
    let mut after = 0i64;
    loop {
        queue.count(1);
        let row = queue
            .client()
            .query_one(
                "WITH doomed AS MATERIALIZED (
                     SELECT id FROM taskq_tasks
                     WHERE id > $3 AND state = 'succeeded'
                       AND finalized_at < now() - make_interval(secs => $1)
                     ORDER BY id LIMIT $2
                     FOR UPDATE SKIP LOCKED),
                 gone AS (DELETE FROM taskq_tasks t USING doomed WHERE t.id = doomed.id
                          RETURNING t.id)
                 SELECT count(*), max(id) FROM gone",
                &[&older_than.as_secs_f64(), &batch, &after],
            )
            .map_err(queue.err("cannot prune succeeded tasks"))?;
        let n: i64 = row.get(0);
        total += n as u64;
        match row.get::<_, Option<i64>>(1) {
            Some(last) if n >= batch => after = last,
            _ => return Ok(total),
        }
    }
}

/// Vacuums the tasks table when it holds at least `threshold` dead row
/// versions (`pg_stat_user_tables.n_dead_tup`) and no other node is
/// vacuuming it (a session advisory lock, [`VACUUM_LOCK`]); a vacuum that
/// autovacuum already runs is skipped (`SKIP_LOCKED`). Returns the dead rows
/// found when it vacuumed, `None` otherwise.
///
/// Every claim and every completion leaves a dead row version, and the
/// claim's index scan steps over those at the head of the queue until a
/// vacuum removes them: on a server with autovacuum off, or with a churn
/// faster than autovacuum's once-a-minute visit, claiming slows down as
/// they pile up (measured in PERF.md). A vacuum runs for seconds on a large
/// table; it blocks no claim or completion.
///
/// # Errors
///
/// [`PgError::Query`] when a statement fails (a vacuum cancelled at a
/// stop, among others).
pub fn vacuum_if_needed(queue: &mut Queue, threshold: u64) -> Result<Option<u64>, PgError> {
    let err = queue.err("cannot vacuum the tasks table");
    queue.count(1);
    let dead: i64 = queue
        .client()
        .query_one(
            "SELECT coalesce((SELECT n_dead_tup FROM pg_stat_user_tables
                              WHERE relid = 'taskq_tasks'::regclass), 0)",
            &[],
        )
        .and_then(|r| r.try_get(0))
        .map_err(err)?;
    if (dead.max(0) as u64) < threshold.max(1) {
        return Ok(None);
    }
    let err = queue.err("cannot vacuum the tasks table");
    queue.count(1);
    let got: bool = queue
        .client()
        .query_one("SELECT pg_try_advisory_lock($1)", &[&VACUUM_LOCK])
        .and_then(|r| r.try_get(0))
        .map_err(err)?;
    if !got {
        return Ok(None);
    }
    queue.count(2);
    let done = queue
        .client()
        .batch_execute("VACUUM (SKIP_LOCKED) taskq_tasks");
    let _ = queue
        .client()
        .execute("SELECT pg_advisory_unlock($1)", &[&VACUUM_LOCK]);
    done.map_err(queue.err("cannot vacuum the tasks table"))?;
    Ok(Some(dead as u64))
}
