//! The worker loop: find work, run it, release slots, spin, park, exit when drained.
//!
//! The loop is generic over a [`WorkerHost`] (what to do with a job, when
//! idle, when to exit): this module does not know the engine, whose host is
//! in `engine/worker.rs`.

use crate::sync::deque::Worker;
use crate::sync::Backoff;

use super::{LaneView, Scheduler, Source};

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
/// duration of the job it waits behind (`tests/engine/engine_promises.rs`,
/// `a_job_taken_ahead_waits_behind_one_job_at_most`).
const LOOKAHEAD_NS: u64 = 20_000;

/// What the worker loop needs from the engine: its scheduler, its drain, a
/// clock, and what to do with a job and when idle.
///
/// The loop ([`work`]) is generic over it so that the loom models
/// (`loom_tests/parking.rs`) run the engine's own loop, spin and lookahead
/// included, with a stand-in job; the engine's implementation is `Shared`'s
/// (in `engine/worker.rs`), and the loop is monomorphised for it, so the engine runs the same
/// code as before the loop was made generic.
#[doc(hidden)]
pub trait WorkerHost {
    /// What the scheduler queues.
    type Job;
    /// The worker's own state, handed to every call.
    type Ctx;
    /// The scheduler the worker takes jobs from.
    fn scheduler(&self) -> &Scheduler<Self::Job>;
    /// True once admission is closed and holds nothing: the worker exits.
    fn is_drained(&self) -> bool;
    /// A clock reading.
    fn now(&self) -> u64;
    /// Nanoseconds from reading `start` to reading `end`.
    fn nanos_between(&self, start: u64, end: u64) -> u64;
    /// Runs `job`, which the worker turned to at `start`; returns the clock
    /// reading at its end.
    fn execute(&self, job: Self::Job, start: u64, ctx: &mut Self::Ctx) -> u64;
    /// The worker found nothing to do (hand over what it holds).
    fn idle(&self, ctx: &mut Self::Ctx);
    /// The job the worker just took was stolen from a sibling.
    fn stolen(ctx: &mut Self::Ctx);
    /// A hint that `job` runs next (the engine prefetches it).
    fn prefetch(_job: &Self::Job) {}
}

/// The worker loop of worker `index`: find work, run it, release slots, spin,
/// park, and return once `host` is drained.
#[doc(hidden)]
#[inline]
pub fn work<H: WorkerHost>(host: &H, index: usize, local: &Worker<H::Job>, ctx: &mut H::Ctx) {
    let sched = host.scheduler();
    let mut rng = 0x2545_f491_4f6c_dd1d ^ ((index as u64 + 1) << 32);
    let mut view = LaneView::new();
    // End of the previous task while the worker goes straight on; `None` after idling.
    let mut last_end: Option<u64> = None;
    // Counted in `Sleep::searching` (see the protocol in `sleep.rs`).
    let mut searching = false;
    // The next job, taken from the local deque while the previous one was
    // short (see `LOOKAHEAD_NS`), with its first lines prefetched.
    let mut ahead: Option<H::Job> = None;
    // The previous job's service time was under `LOOKAHEAD_NS`.
    let mut short = false;
    'work: loop {
        let found = match ahead.take() {
            Some(job) => Some((job, Source::Local)),
            None => sched.find(index, local, &mut rng, &mut view),
        };
        if let Some((job, source)) = found {
            if searching {
                sched.sleep.found_work();
                searching = false;
            }
            if source == Source::Sibling {
                H::stolen(ctx);
            }
            let start = last_end.unwrap_or_else(|| host.now());
            if short {
                ahead = local.pop();
                if let Some(next) = &ahead {
                    H::prefetch(next);
                }
            }
            let end = host.execute(job, start, ctx);
            // Under loom the models must be deterministic, and a wall-clock
            // reading is not: there the worker always looks ahead, so the
            // models check that path.
            short = cfg!(feature = "loom") || host.nanos_between(start, end) < LOOKAHEAD_NS;
            last_end = Some(end);
            continue;
        }
        last_end = None;
        short = false;
        // Idle. Hand over buffered records and held slots at once, so that the
        // writer, a blocked producer, or shutdown waiting for the drain, does not
        // wait on us.
        host.idle(ctx);
        // Search (spin) until work is found, unless enough workers already do.
        if searching || sched.sleep.try_start_search() {
            let backoff = Backoff::new();
            while !backoff.is_completed() {
                backoff.snooze();
                if let Some((job, source)) = sched.find(index, local, &mut rng, &mut view) {
                    sched.sleep.found_work();
                    searching = false;
                    if source == Source::Sibling {
                        H::stolen(ctx);
                    }
                    let start = host.now();
                    last_end = Some(host.execute(job, start, ctx));
                    continue 'work;
                }
            }
            sched.sleep.end_search();
        }
        if host.is_drained() {
            break;
        }
        sched.sleep.sleep(|| sched.has_work() || host.is_drained());
        // `sleep` returns searching: a woken worker looks for its work.
        searching = true;
    }
}
