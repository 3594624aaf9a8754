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

/// Samples per second of the flamegraph profiler: a prime, so the sampling
/// does not beat in step with periodic work.
pub const PROFILE_HZ: i32 = 997;

/// The `Criterion` every bench group runs with: defaults, plus the flamegraph
/// profiler for `--profile-time`.
pub fn config() -> Criterion {
    Criterion::default().with_profiler(flame::Flamegraph::new(PROFILE_HZ))
}
