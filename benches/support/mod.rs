//! Helpers shared by the criterion benches: the flamegraph profiler and the
//! `Criterion` configuration every bench group uses.
//!
//! Flamegraphs are drawn only under `--profile-time`:
//!
//! ```text
//! cargo bench --bench scheduler -- --profile-time 10
//! ```
//!
//! profiles each benchmark for 10 s (no measurement) and writes
//! `<target>/criterion/<group>/<benchmark>/profile/flamegraph.svg`, where
//! `<target>` is `target` or `$CARGO_TARGET_DIR` (criterion's output
//! directory; `$CRITERION_HOME` overrides it). A plain `cargo bench` measures
//! as usual and never starts the profiler.

#![allow(dead_code)] // each bench uses part of this module

pub mod flame;

use criterion::Criterion;
use taskq::idempotency::{Pending, RecordStatus, TaskRecord};
use taskq::Task;

/// Samples per second of the flamegraph profiler: a prime, so the sampling
/// does not beat in step with periodic work.
pub const PROFILE_HZ: i32 = 997;

/// The `Criterion` every bench group runs with: defaults, plus the flamegraph
/// profiler for `--profile-time`.
pub fn config() -> Criterion {
    Criterion::default().with_profiler(flame::Flamegraph::new(PROFILE_HZ))
}

/// A succeeded record for key `img/{i:06}.jpg:200x200` (id `i`), as the
/// writer receives it from a worker.
pub fn record(i: u64) -> Pending {
    let task = Task::new(&format!("img/{i:06}.jpg"), "200x200".parse().unwrap())
        .unwrap()
        .with_id(i.to_string());
    Pending {
        record: TaskRecord {
            task,
            status: RecordStatus::Succeeded,
            finished_at: 1,
            output_key: None,
        },
        dead: None,
        ack: None,
    }
}
