//! Loom models of taskq's concurrency protocols (the promises in the
//! repository README's "Promises" table), one file per protocol, one
//! invariant per test. They drive the engine's own code (`taskq::internals`,
//! the public API) with loom's primitives swapped in by `src/sync`: the claim
//! step, the writer loop and the worker loop included. Nothing here
//! re-implements an algorithm; the only stand-ins are a job in `parking.rs`
//! (a number holding an admission slot) and an in-memory store in `claim.rs`
//! (the `StoreWriter` the writer loop commits to).
//!
//! Run: `LOOM_MAX_PREEMPTIONS=2 cargo test --release --features loom --test loom`
//! (see README.md in this folder for replaying a failure).
//!
//! Each protocol also has `should_panic` tests that inject a deliberate bug
//! (`taskq::internals::Fault`, loom builds only) and expect loom to reject it.

mod admission;
mod claim;
mod drain;
mod handoff;
mod metrics;
mod parking;
mod retry;

use loom::model::Builder;
use taskq::internals::Fault;

/// Explores every interleaving of `f` with at most `bound` preemptions per
/// execution.
///
/// For a correct model (`fault` is `None`) `LOOM_MAX_PREEMPTIONS`, when set,
/// replaces `bound`. A model with a fault injected must fail, and `bound` is
/// the depth at which loom is known to reach the bug, so it is used whatever
/// the environment says. `LOOM_LOG` (a tracing filter, e.g. `trace`) logs every
/// step, as with `loom::model`; the other `LOOM_*` variables work as usual.
pub(crate) fn check(bound: usize, fault: Option<Fault>, f: impl Fn() + Sync + Send + 'static) {
    let mut builder = Builder::new();
    if fault.is_some() || builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(bound);
    }
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("LOOM_LOG"))
        .with_test_writer()
        .without_time()
        .finish();
    tracing::subscriber::with_default(subscriber, || builder.check(f));
}
