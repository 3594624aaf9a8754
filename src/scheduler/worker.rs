//! The worker loop: find work, run it, release slots, spin, park, exit when drained.

use crate::engine::{Job, Shared, WorkerCtx};
use crate::sync::deque::Worker;
use crate::sync::{Arc, Backoff};

use super::{LaneView, Source};

/// What a worker hands back when it exits.
pub(crate) struct WorkerExit {
    pub(crate) ctx: WorkerCtx,
    pub(crate) core: Option<usize>,
    pub(crate) wall_ns: u64,
}

/// Service time under which a worker takes its next job from its local
/// deque before running the current one, and prefetches it.
///
/// A job is written on a producer's core and read first on a worker's, so its
/// first touch waits for its lines to cross cores; on no-op tasks that wait was
/// about 30% of the time spent in `Shared::execute`. Taking the next job early
/// lets the fetch overlap the current job (no-op tasks: ×1.13 in an
/// alternating A/B against a build without it, PERF.md).
///
/// The price: while the current job runs, the job taken ahead cannot be
/// stolen, so it is done only after a short job, never after a long one (a
/// worker on 30 ms tasks holds nothing back). A short job does not make the
/// next one short, though: after a duplicate, say, comes a real task, and the
/// job taken ahead then waits for that task to finish even if a sibling is
/// idle. At most one job per worker is held that way, for at most the
/// duration of the job it waits behind (`tests/engine_promises.rs`,
/// `a_job_taken_ahead_waits_behind_one_job_at_most`).
const LOOKAHEAD_NS: u64 = 20_000;

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

/// Runs worker `ctx.index` until the engine is closed and drained.
pub(crate) fn run(
    shared: Arc<Shared>,
    local: Worker<Box<Job>>,
    mut ctx: WorkerCtx,
    core: Option<usize>,
) -> WorkerExit {
    let core = core.filter(|&c| super::pin::pin_current(c));
    let born = shared.clock.raw();
    let sched = &shared.scheduler;
    let mut rng = 0x2545_f491_4f6c_dd1d ^ ((ctx.index as u64 + 1) << 32);
    let mut view = LaneView::new();
    // End of the previous task while the worker goes straight on; `None` after idling.
    let mut last_end: Option<u64> = None;
    // Counted in `Sleep::searching` (see the protocol in `sleep.rs`).
    let mut searching = false;
    // The next job, taken from the local deque while the previous one was
    // short (see `LOOKAHEAD_NS`), with its first lines prefetched.
    let mut ahead: Option<Box<Job>> = None;
    // The previous job's service time was under `LOOKAHEAD_NS`.
    let mut short = false;
    'work: loop {
        let found = match ahead.take() {
            Some(job) => Some((job, Source::Local)),
            None => sched.find(ctx.index, &local, &mut rng, &mut view),
        };
        if let Some((job, source)) = found {
            if searching {
                sched.sleep.found_work();
                searching = false;
            }
            if source == Source::Sibling {
                ctx.recorder.steals += 1;
            }
            let start = last_end.unwrap_or_else(|| shared.clock.raw());
            if short {
                ahead = local.pop();
                if let Some(next) = &ahead {
                    prefetch(next);
                }
            }
            let end = shared.execute(job, start, &mut ctx);
            // Under loom the models must be deterministic, and a wall-clock
            // reading is not: there the worker always looks ahead, so the
            // models check that path.
            short =
                cfg!(feature = "loom") || shared.clock.delta_as_nanos(start, end) < LOOKAHEAD_NS;
            last_end = Some(end);
            continue;
        }
        last_end = None;
        short = false;
        // Idle. Hand over buffered records and held slots at once, so that the
        // writer, a blocked producer, or shutdown waiting for the drain, does not
        // wait on us.
        shared.idle(&mut ctx);
        // Search (spin) until work is found, unless enough workers already do.
        if searching || sched.sleep.try_start_search() {
            let backoff = Backoff::new();
            while !backoff.is_completed() {
                backoff.snooze();
                if let Some((job, source)) = sched.find(ctx.index, &local, &mut rng, &mut view) {
                    sched.sleep.found_work();
                    searching = false;
                    if source == Source::Sibling {
                        ctx.recorder.steals += 1;
                    }
                    let start = shared.clock.raw();
                    last_end = Some(shared.execute(job, start, &mut ctx));
                    continue 'work;
                }
            }
            sched.sleep.end_search();
        }
        if shared.admission.is_drained() {
            break;
        }
        sched
            .sleep
            .sleep(|| sched.has_work() || shared.admission.is_drained());
        // `sleep` returns searching: a woken worker looks for its work.
        searching = true;
    }
    let wall_ns = shared.clock.delta_as_nanos(born, shared.clock.raw());
    WorkerExit { ctx, core, wall_ns }
}
