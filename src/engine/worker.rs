//! The engine's side of the worker loop: [`WorkerHost`] for [`Shared`], the
//! worker thread's body ([`run`]) and what it hands back ([`WorkerExit`]).
//!
//! Invariant: the loop itself is the scheduler's generic
//! [`work`](crate::scheduler::worker::work), monomorphised for `Shared`, so the
//! loom models (`loom_tests/parking.rs`) check the loop the engine runs.

use crate::scheduler::pin;
use crate::scheduler::worker::{work, WorkerHost};
use crate::scheduler::Scheduler;
use crate::sync::deque::Worker;
use crate::sync::Arc;

use super::{Job, Shared, WorkerCtx};

/// What a worker hands back when it exits.
pub(crate) struct WorkerExit {
    pub(crate) ctx: WorkerCtx,
    pub(crate) core: Option<usize>,
    pub(crate) wall_ns: u64,
}

/// Asks for the first two cache lines of `job` (it spans two or three).
#[inline]
fn prefetch(job: &Job) {
    #[cfg(all(target_arch = "x86_64", not(feature = "loom")))]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let p = (job as *const Job).cast::<i8>();
        // SAFETY: SSE is part of the x86_64 baseline, and a prefetch is a hint
        // that never faults and never changes memory, whatever the address;
        // both addresses here lie inside (or one line past the start of) a
        // live `Job`.
        unsafe {
            _mm_prefetch::<_MM_HINT_T0>(p);
            _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(64));
        }
    }
    #[cfg(not(all(target_arch = "x86_64", not(feature = "loom"))))]
    let _ = job;
}

impl WorkerHost for Shared {
    type Job = Box<Job>;
    type Ctx = WorkerCtx;

    #[inline]
    fn scheduler(&self) -> &Scheduler<Box<Job>> {
        &self.scheduler
    }

    #[inline]
    fn is_drained(&self) -> bool {
        self.admission.is_drained()
    }

    #[inline]
    fn now(&self) -> u64 {
        self.clock.raw()
    }

    #[inline]
    fn nanos_between(&self, start: u64, end: u64) -> u64 {
        self.clock.delta_as_nanos(start, end)
    }

    #[inline]
    fn execute(&self, job: Box<Job>, start: u64, ctx: &mut WorkerCtx) -> u64 {
        Shared::execute(self, job, start, ctx)
    }

    #[inline]
    fn idle(&self, ctx: &mut WorkerCtx) {
        Shared::idle(self, ctx);
    }

    #[inline]
    fn stolen(ctx: &mut WorkerCtx) {
        ctx.recorder.steals.add(1);
    }

    #[inline]
    fn prefetch(job: &Box<Job>) {
        prefetch(job);
    }
}

/// Runs worker `ctx.index` until the engine is closed and drained.
pub(crate) fn run(
    shared: Arc<Shared>,
    local: Worker<Box<Job>>,
    mut ctx: WorkerCtx,
    core: Option<usize>,
) -> WorkerExit {
    let core = core.filter(|&c| pin::pin_current(c));
    let born = shared.clock.raw();
    let index = ctx.index;
    work(&*shared, index, &local, &mut ctx);
    let wall_ns = shared.clock.delta_as_nanos(born, shared.clock.raw());
    WorkerExit { ctx, core, wall_ns }
}
