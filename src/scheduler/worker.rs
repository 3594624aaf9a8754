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
    'work: loop {
        if let Some((job, source)) = sched.find(ctx.index, &local, &mut rng, &mut view) {
            if searching {
                sched.sleep.found_work();
                searching = false;
            }
            if source == Source::Sibling {
                ctx.recorder.steals += 1;
            }
            let start = last_end.unwrap_or_else(|| shared.clock.raw());
            last_end = Some(shared.execute(job, start, &mut ctx));
            continue;
        }
        last_end = None;
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
