//! taskq's shared queue on PostgreSQL: many `taskq` processes, on many
//! hosts, working one queue with the single-node promises (each idempotency
//! key processed once, nothing lost when a node dies).
//!
//! This crate holds the queue's schema and what works on it:
//!
//! - [`Queue`]: a connection for a `postgres://` URL, with errors that name
//!   the server and database.
//! - [`schema`]: versioned migrations, applied in one transaction under an
//!   advisory lock, so two nodes never migrate at once; a database of a
//!   newer version is refused.
//! - [`enqueue`]: tasks inserted in batches, one statement per batch
//!   (`unnest` arrays), deduplicated by the unique index on (processor,
//!   idempotency key): the database is the only arbiter, so the same key
//!   enqueued from N processes at once yields one task. One `NOTIFY` per
//!   batch wakes idle nodes.
//! - [`node`]: what a worker node does, statement by statement: register,
//!   heartbeat, claim (`FOR UPDATE SKIP LOCKED`), settle (fenced on node and
//!   attempt), hand back, rescue.
//! - [`worker`]: a node: claims into the local engine, writes outcomes
//!   back in batches, beats and rescues.
//! - [`status`](mod@status): counts by state, the oldest available task's age, the
//!   nodes and their heartbeats.
//! - [`dlq`]: the dead-letter queue (the `dead` rows): list, re-queue for
//!   the nodes, purge.
//!
//! The schema (`taskq_tasks`, `taskq_nodes`) is described in [`schema`].
#![warn(missing_docs)]

mod connect;
pub mod dlq;
pub mod enqueue;
mod error;
mod link;
pub mod node;
pub mod schema;
pub mod status;
pub mod worker;

pub use connect::{describe_url, Queue};
pub use enqueue::{EnqueueMethod, EnqueueReport, Enqueuer};
pub use error::PgError;
pub use schema::{migrate, MigrateReport, SCHEMA_VERSION};
pub use status::{status, Status};

/// The channel a batch of enqueued tasks is announced on (payload: the
/// processor's name).
pub const CHANNEL: &str = "taskq_available";
