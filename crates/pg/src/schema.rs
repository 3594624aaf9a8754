//! The queue's schema and its migrations.
//!
//! # Tables (version 3)
//!
//! - `taskq_tasks`: one row per task, keyed by `id`, unique on (`processor`,
//!   `idempotency_key`): the single arbiter of deduplication across nodes.
//!   `state` moves `available` → `running` (claimed: `lease_node` and
//!   `attempt` say by whom and which attempt) → `succeeded` or `dead`, or
//!   back to `available` at `run_at` for a retry. `attempt` only grows, so a
//!   write conditional on (`lease_node`, `attempt`, `state = 'running'`) is
//!   fenced against a node that lost the task and came back. Succeeded rows
//!   are the idempotency record (their `leased_at` says when their last
//!   attempt was claimed, so `leased_at − created_at` is the wait of a task
//!   that succeeded at its first attempt); dead rows are the dead-letter
//!   queue (`last_error_*` say why; `attempts_granted`, set at the first
//!   re-drive, is the attempt budget each re-drive grants again).
//! - `taskq_nodes`: one row per node process (a new `node_id` per start),
//!   with its heartbeat and what the node publishes with each: its workers,
//!   the tasks it has finished, and its throughput and busy ratio over the
//!   last heartbeat interval (for `taskq status` and the dashboard).
//! - `taskq_schema_version`: the versions applied.
//!
//! Queue tables churn: every claim and completion is an update. The tasks
//! table leaves a fifth of each page free (`fillfactor = 80`) so that state
//! changes can stay on their page (HOT updates), and is vacuumed after a fixed
//! number of dead rows rather than a share of the table, so a large history of
//! succeeded rows does not postpone vacuuming the hot part. The small
//! heartbeat table keeps half of each page free.
//!
//! # Migrating
//!
//! [`migrate`] runs in one transaction holding a transaction-scoped advisory
//! lock ([`MIGRATION_LOCK`]): a second node waits, then finds the work done.
//! It reads the version inside the lock, refuses a database newer than
//! [`SCHEMA_VERSION`], and applies each missing version in order.

use serde::Serialize;

use crate::{PgError, Queue};

/// The schema version this build writes.
pub const SCHEMA_VERSION: i32 = 3;

/// The advisory lock key migrations hold (a fixed, taskq-specific number).
pub const MIGRATION_LOCK: i64 = 0x7461_736b_715f_6d67; // "taskq_mg"

/// Each version: its number, what it adds, and its SQL.
const MIGRATIONS: &[(i32, &str, &str)] = &[
    (
        1,
        "tasks, nodes",
        r#"
CREATE TABLE taskq_tasks (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    processor       text NOT NULL CHECK (processor <> ''),
    idempotency_key text NOT NULL CHECK (idempotency_key <> ''),
    task_id         text NOT NULL,
    image_key       text NOT NULL,
    size            text NOT NULL,
    state           text NOT NULL DEFAULT 'available'
                    CHECK (state IN ('available', 'running', 'succeeded', 'dead')),
    attempt         integer NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    max_attempts    integer NOT NULL CHECK (max_attempts >= 1),
    run_at          timestamptz NOT NULL DEFAULT now(),
    lease_node      bigint,
    leased_at       timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    finalized_at    timestamptz,
    last_error_class text,
    last_error_kind  text,
    last_error       text,
    CONSTRAINT taskq_tasks_key UNIQUE (processor, idempotency_key),
    CONSTRAINT taskq_tasks_lease CHECK ((state = 'running') = (lease_node IS NOT NULL)),
    CONSTRAINT taskq_tasks_final CHECK ((state IN ('succeeded', 'dead')) = (finalized_at IS NOT NULL))
) WITH (
    fillfactor = 80,
    autovacuum_vacuum_scale_factor = 0.0,
    autovacuum_vacuum_threshold = 5000,
    autovacuum_analyze_scale_factor = 0.02,
    autovacuum_analyze_threshold = 1000,
    autovacuum_vacuum_cost_limit = 2000,
    autovacuum_vacuum_cost_delay = 1
);
CREATE INDEX taskq_tasks_available ON taskq_tasks (processor, run_at, id) WHERE state = 'available';
CREATE INDEX taskq_tasks_running ON taskq_tasks (lease_node) WHERE state = 'running';
CREATE INDEX taskq_tasks_finalized ON taskq_tasks (finalized_at) WHERE state = 'succeeded';

CREATE TABLE taskq_nodes (
    node_id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    hostname     text NOT NULL,
    pid          integer NOT NULL,
    processor    text NOT NULL,
    started_at   timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now(),
    state        text NOT NULL DEFAULT 'alive' CHECK (state IN ('alive', 'dead', 'left'))
) WITH (
    fillfactor = 50,
    autovacuum_vacuum_scale_factor = 0.0,
    autovacuum_vacuum_threshold = 50
);
"#,
    ),
    (
        2,
        "no index on finalized_at; dead rows indexed; attempts granted by a re-drive",
        // The finalized index: every completion inserted into it (a state
        // change is never a HOT update); `prune` walks the primary key
        // instead. The dead index costs only the rows that die. A re-drive
        // grants the row's first budget again, recorded at its first one.
        "DROP INDEX IF EXISTS taskq_tasks_finalized;
         CREATE INDEX taskq_tasks_dead ON taskq_tasks (finalized_at, id) WHERE state = 'dead';
         ALTER TABLE taskq_tasks ADD COLUMN attempts_granted integer
             CHECK (attempts_granted >= 1);",
    ),
    (
        3,
        "nodes publish workers, tasks finished, throughput and busy ratio",
        // Added columns without a volatile default: a catalog change only,
        // no rewrite. No index covers them, so a heartbeat stays a HOT
        // update.
        "ALTER TABLE taskq_nodes
             ADD COLUMN workers integer CHECK (workers >= 0),
             ADD COLUMN finished bigint NOT NULL DEFAULT 0 CHECK (finished >= 0),
             ADD COLUMN tasks_per_s double precision CHECK (tasks_per_s >= 0),
             ADD COLUMN busy_ratio double precision CHECK (busy_ratio >= 0);",
    ),
];

/// What [`migrate`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct MigrateReport {
    /// The version found (0: no queue schema yet).
    pub from: i32,
    /// The version now.
    pub to: i32,
}

/// Brings the database's queue schema to [`SCHEMA_VERSION`].
///
/// # Errors
///
/// [`PgError::NewerSchema`] when the database is newer than this build
/// (nothing is changed); [`PgError::Query`] when a statement fails (the
/// transaction is rolled back: the database is left as it was).
pub fn migrate(queue: &mut Queue) -> Result<MigrateReport, PgError> {
    let target = queue.target().to_string();
    let mut tx = queue
        .client()
        .transaction()
        .map_err(PgError::query(format!(
            "{target}: cannot begin the migration"
        )))?;
    tx.batch_execute(&format!(
        "SET LOCAL lock_timeout = '30s';
         SELECT pg_advisory_xact_lock({MIGRATION_LOCK});
         CREATE TABLE IF NOT EXISTS taskq_schema_version (
             version     integer PRIMARY KEY,
             description text NOT NULL,
             applied_at  timestamptz NOT NULL DEFAULT now()
         );"
    ))
    .map_err(PgError::query(format!(
        "{target}: cannot lock the schema for migration"
    )))?;
    let from: i32 = tx
        .query_one(
            "SELECT coalesce(max(version), 0) FROM taskq_schema_version",
            &[],
        )
        .and_then(|r| r.try_get(0))
        .map_err(PgError::query(format!(
            "{target}: cannot read the schema version"
        )))?;
    if from > SCHEMA_VERSION {
        return Err(PgError::NewerSchema {
            target,
            found: from,
            supported: SCHEMA_VERSION,
        });
    }
    for &(version, description, sql) in MIGRATIONS.iter().filter(|m| m.0 > from) {
        tx.batch_execute(sql).map_err(PgError::query(format!(
            "{target}: migration to version {version} ({description})"
        )))?;
        tx.execute(
            "INSERT INTO taskq_schema_version (version, description) VALUES ($1, $2)",
            &[&version, &description],
        )
        .map_err(PgError::query(format!(
            "{target}: cannot record version {version}"
        )))?;
    }
    tx.commit().map_err(PgError::query(format!(
        "{target}: cannot commit the migration"
    )))?;
    Ok(MigrateReport {
        from,
        to: SCHEMA_VERSION.max(from),
    })
}

/// Migrates when the schema is older than this build, and checks that it is
/// not newer: what every command runs before it touches the queue.
///
/// # Errors
///
/// As [`migrate`].
pub fn ensure(queue: &mut Queue) -> Result<(), PgError> {
    let current = version(queue)?;
    match current {
        v if v == SCHEMA_VERSION => Ok(()),
        v if v > SCHEMA_VERSION => Err(PgError::NewerSchema {
            target: queue.target().to_string(),
            found: v,
            supported: SCHEMA_VERSION,
        }),
        _ => migrate(queue).map(|_| ()),
    }
}

/// The queue schema's version in the database (0: none yet).
///
/// # Errors
///
/// [`PgError::Query`] when it cannot be read.
pub fn version(queue: &mut Queue) -> Result<i32, PgError> {
    let exists: bool = queue
        .client()
        .query_one(
            "SELECT to_regclass('taskq_schema_version') IS NOT NULL",
            &[],
        )
        .and_then(|r| r.try_get(0))
        .map_err(queue.err("cannot read the schema version"))?;
    if !exists {
        return Ok(0);
    }
    queue
        .client()
        .query_one(
            "SELECT coalesce(max(version), 0) FROM taskq_schema_version",
            &[],
        )
        .and_then(|r| r.try_get(0))
        .map_err(queue.err("cannot read the schema version"))
}
