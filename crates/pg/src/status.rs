//! The queue at a glance: counts by state, the oldest available task's age,
//! retries and dead letters, and each node with its last heartbeat and
//! what it published with it (tasks finished, throughput, busy ratio).

use std::fmt;

use serde::Serialize;

use crate::{PgError, Queue};

/// Tasks of one processor by state.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ProcessorCounts {
    /// The processor's record name.
    pub processor: String,
    /// Waiting to be claimed (now, or after a retry's backoff).
    pub available: i64,
    /// Of those, waiting out a retry's backoff.
    pub scheduled: i64,
    /// Claimed by a node.
    pub running: i64,
    /// Done.
    pub succeeded: i64,
    /// Dead letters.
    pub dead: i64,
    /// Attempts beyond each task's first, over all tasks.
    pub retries: i64,
    /// Seconds since the oldest task available now became available.
    pub oldest_available_s: Option<f64>,
}

/// A node and its heartbeat.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NodeStatus {
    /// The node's id (new at every start of a `taskq worker`).
    pub node_id: i64,
    /// Where it runs.
    pub hostname: String,
    /// Its process id there.
    pub pid: i32,
    /// The processor it runs.
    pub processor: String,
    /// `alive`, `dead` (declared so after missing its heartbeats) or `left`.
    pub state: String,
    /// Seconds since its last heartbeat.
    pub heartbeat_age_s: f64,
    /// Tasks it holds (claimed, not yet finished).
    pub running: i64,
    /// Worker threads of its engine (none before its first heartbeat).
    pub workers: Option<i32>,
    /// Tasks it has finished over its run, as of its last heartbeat.
    pub finished: i64,
    /// Tasks finished per second over the interval before its last
    /// heartbeat.
    pub tasks_per_s: Option<f64>,
    /// The share of that interval its workers spent executing tasks (0 to 1).
    pub busy_ratio: Option<f64>,
}

/// The queue at a glance.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Status {
    /// `host:port/database as user`.
    pub target: String,
    /// The schema version.
    pub schema_version: i32,
    /// Counts per processor, by name.
    pub processors: Vec<ProcessorCounts>,
    /// Nodes that are alive, and those that stopped in the last hour.
    pub nodes: Vec<NodeStatus>,
}

/// Reads the queue's state (the schema must exist: see
/// [`ensure`](crate::schema::ensure)).
///
/// # Errors
///
/// [`PgError::Query`] when a statement fails.
pub fn status(queue: &mut Queue) -> Result<Status, PgError> {
    let schema_version: i32 = queue
        .client()
        .query_one(
            "SELECT coalesce(max(version), 0) FROM taskq_schema_version",
            &[],
        )
        .and_then(|r| r.try_get(0))
        .map_err(queue.err("cannot read the schema version"))?;
    let rows = queue
        .client()
        .query(
            "SELECT processor,
                    count(*) FILTER (WHERE state = 'available'),
                    count(*) FILTER (WHERE state = 'available' AND run_at > now()),
                    count(*) FILTER (WHERE state = 'running'),
                    count(*) FILTER (WHERE state = 'succeeded'),
                    count(*) FILTER (WHERE state = 'dead'),
                    coalesce(sum(greatest(attempt - 1, 0)), 0)::bigint,
                    extract(epoch FROM now() - min(run_at) FILTER
                        (WHERE state = 'available' AND run_at <= now()))::float8
             FROM taskq_tasks GROUP BY processor ORDER BY processor",
            &[],
        )
        .map_err(queue.err("cannot count tasks"))?;
    let processors = rows
        .iter()
        .map(|r| {
            Ok(ProcessorCounts {
                processor: r.try_get(0)?,
                available: r.try_get(1)?,
                scheduled: r.try_get(2)?,
                running: r.try_get(3)?,
                succeeded: r.try_get(4)?,
                dead: r.try_get(5)?,
                retries: r.try_get(6)?,
                oldest_available_s: r.try_get(7)?,
            })
        })
        .collect::<Result<Vec<_>, postgres::Error>>()
        .map_err(queue.err("cannot read task counts"))?;
    // A queue older than version 3 is read as it is (its nodes published
    // nothing): reading never migrates.
    let published = if schema_version >= 3 {
        "n.workers, n.finished, n.tasks_per_s, n.busy_ratio"
    } else {
        "NULL::integer, 0::bigint, NULL::float8, NULL::float8"
    };
    let rows = queue
        .client()
        .query(
            &format!(
                "SELECT n.node_id, n.hostname, n.pid, n.processor, n.state,
                        extract(epoch FROM now() - n.heartbeat_at)::float8,
                        (SELECT count(*) FROM taskq_tasks t
                         WHERE t.state = 'running' AND t.lease_node = n.node_id),
                        {published}
                 FROM taskq_nodes n
                 WHERE n.state = 'alive' OR n.heartbeat_at > now() - interval '1 hour'
                 ORDER BY n.node_id"
            ),
            &[],
        )
        .map_err(queue.err("cannot list nodes"))?;
    let nodes = rows
        .iter()
        .map(|r| {
            Ok(NodeStatus {
                node_id: r.try_get(0)?,
                hostname: r.try_get(1)?,
                pid: r.try_get(2)?,
                processor: r.try_get(3)?,
                state: r.try_get(4)?,
                heartbeat_age_s: r.try_get(5)?,
                running: r.try_get(6)?,
                workers: r.try_get(7)?,
                finished: r.try_get(8)?,
                tasks_per_s: r.try_get(9)?,
                busy_ratio: r.try_get(10)?,
            })
        })
        .collect::<Result<Vec<_>, postgres::Error>>()
        .map_err(queue.err("cannot read nodes"))?;
    Ok(Status {
        target: queue.target().to_string(),
        schema_version,
        processors,
        nodes,
    })
}

impl fmt::Display for Status {
    /// The summary `taskq status` prints.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "queue {} (schema {})", self.target, self.schema_version)?;
        if self.processors.is_empty() {
            writeln!(f, "no tasks")?;
        }
        for p in &self.processors {
            write!(
                f,
                "{}: {} available ({} waiting to retry), {} running, {} succeeded, {} dead; {} retries",
                p.processor, p.available, p.scheduled, p.running, p.succeeded, p.dead, p.retries
            )?;
            match p.oldest_available_s {
                Some(age) => writeln!(f, "; oldest available {age:.1} s")?,
                None => writeln!(f)?,
            }
        }
        if self.nodes.is_empty() {
            writeln!(f, "no nodes")?;
        }
        for n in &self.nodes {
            write!(
                f,
                "node {} {} pid {} ({}): {}, heartbeat {:.1} s ago, {} running, {} finished",
                n.node_id,
                n.hostname,
                n.pid,
                n.processor,
                n.state,
                n.heartbeat_age_s,
                n.running,
                n.finished
            )?;
            match (n.tasks_per_s, n.busy_ratio) {
                (Some(rate), Some(busy)) => writeln!(
                    f,
                    " ({rate:.1} tasks/s, workers {:.0}% busy, at the last heartbeat)",
                    busy * 100.0
                )?,
                _ => writeln!(f)?,
            }
        }
        Ok(())
    }
}

/// One task of the queue, found by its idempotency key.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TaskRow {
    /// Row id.
    pub id: i64,
    /// The processor's record name.
    pub processor: String,
    /// The idempotency key.
    pub idempotency_key: String,
    /// The task's id in its input.
    pub task_id: String,
    /// Source image key.
    pub image_key: String,
    /// Variant size, `WxH`.
    pub size: String,
    /// `available`, `running`, `succeeded` or `dead`.
    pub state: String,
    /// Attempts made (a claim counts one).
    pub attempt: i32,
    /// Attempts allowed.
    pub max_attempts: i32,
    /// The node holding it, while running.
    pub lease_node: Option<i64>,
    /// When it was enqueued (RFC 3339, UTC).
    pub created_at: String,
    /// When it may run next (RFC 3339, UTC).
    pub run_at: String,
    /// When it succeeded or died (RFC 3339, UTC).
    pub finalized_at: Option<String>,
    /// The last error's class.
    pub last_error_class: Option<String>,
    /// The last error's kind.
    pub last_error_kind: Option<String>,
    /// The last error's message.
    pub last_error: Option<String>,
}

/// The tasks with idempotency key `key` (one per processor at most).
///
/// # Errors
///
/// [`PgError::Query`] when the statement fails.
pub fn task_by_key(queue: &mut Queue, key: &str) -> Result<Vec<TaskRow>, PgError> {
    queue.count(1);
    let ts =
        |col: &str| format!("to_char({col} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')");
    let rows = queue
        .client()
        .query(
            &format!(
                "SELECT id, processor, idempotency_key, task_id, image_key, size, state, attempt,
                        max_attempts, lease_node, {}, {}, {}, last_error_class,
                        last_error_kind, last_error
                 FROM taskq_tasks WHERE idempotency_key = $1 ORDER BY processor",
                ts("created_at"),
                ts("run_at"),
                ts("finalized_at")
            ),
            &[&key],
        )
        .map_err(queue.err("cannot look the task up"))?;
    rows.iter()
        .map(|r| {
            Ok(TaskRow {
                id: r.try_get(0)?,
                processor: r.try_get(1)?,
                idempotency_key: r.try_get(2)?,
                task_id: r.try_get(3)?,
                image_key: r.try_get(4)?,
                size: r.try_get(5)?,
                state: r.try_get(6)?,
                attempt: r.try_get(7)?,
                max_attempts: r.try_get(8)?,
                lease_node: r.try_get(9)?,
                created_at: r.try_get(10)?,
                run_at: r.try_get(11)?,
                finalized_at: r.try_get(12)?,
                last_error_class: r.try_get(13)?,
                last_error_kind: r.try_get(14)?,
                last_error: r.try_get(15)?,
            })
        })
        .collect::<Result<Vec<_>, postgres::Error>>()
        .map_err(queue.err("cannot read the task"))
}
