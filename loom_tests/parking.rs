//! Parking (promise 3): work published while a worker goes to sleep is always
//! taken, and `notify_all` wakes every parked worker.
//!
//! The models drive the real `Scheduler` (lanes, injector, `find`, `has_work`)
//! and its `Sleep`, and their workers run the engine's own worker loop
//! (`taskq::internals::worker_loop`, the body of `scheduler::worker::run`,
//! with its idle spin and its lookahead: under loom the worker always looks
//! ahead). Only the job is a stand-in (`Host` below): a number holding one
//! admission slot, which running it releases.

use std::sync::Arc;

use loom::thread;
use taskq::internals::{
    with_fault, worker_loop, Admission, Fault, ReleaseBatch, Scheduler, Sleep, Worker, WorkerHost,
};

use crate::check;

/// A scheduler for `workers` workers, with `fault` injected into its `Sleep`.
fn scheduler(workers: usize, fault: Option<Fault>) -> (Arc<Scheduler<u32>>, Vec<Worker<u32>>) {
    let (sched, locals) = match fault {
        Some(f) => with_fault(f, || Scheduler::new(workers)),
        None => Scheduler::new(workers),
    };
    (Arc::new(sched), locals)
}

/// The engine's side of a model worker: the real `Scheduler` and an
/// `Admission`; a job is a number that holds one admission slot, and running
/// it records it and releases the slot (through a `ReleaseBatch`, as the
/// engine does).
struct Host {
    sched: Arc<Scheduler<u32>>,
    a: Arc<Admission>,
}

/// A model worker's own state: what it took, and the slots it holds.
struct Ctx {
    taken: Vec<u32>,
    release: ReleaseBatch,
}

impl WorkerHost for Host {
    type Job = u32;
    type Ctx = Ctx;

    fn scheduler(&self) -> &Scheduler<u32> {
        &self.sched
    }

    fn is_drained(&self) -> bool {
        self.a.is_drained()
    }

    fn now(&self) -> u64 {
        0
    }

    fn nanos_between(&self, _start: u64, _end: u64) -> u64 {
        0
    }

    fn execute(&self, job: u32, start: u64, ctx: &mut Ctx) -> u64 {
        ctx.taken.push(job);
        if ctx.release.add(&self.a).is_some() {
            Sleep::of(&self.sched).notify_all();
        }
        start
    }

    fn idle(&self, ctx: &mut Ctx) {
        if ctx.release.flush(&self.a).is_some() {
            Sleep::of(&self.sched).notify_all();
        }
    }

    fn stolen(_ctx: &mut Ctx) {}
}

/// Worker `index`: runs the engine's worker loop (`worker_loop`: find, the
/// lookahead, spin, park, exit at the drain) until the admission is closed
/// and drained, and returns what it took.
fn work(
    sched: &Arc<Scheduler<u32>>,
    index: usize,
    local: &Worker<u32>,
    a: &Arc<Admission>,
) -> Vec<u32> {
    let host = Host {
        sched: sched.clone(),
        a: a.clone(),
    };
    let mut ctx = Ctx {
        taken: Vec::new(),
        release: ReleaseBatch::new(1),
    };
    worker_loop(&host, index, local, &mut ctx);
    ctx.taken
}

/// Spawns worker threads over `sched` and `a`.
fn spawn_workers(
    sched: &Arc<Scheduler<u32>>,
    locals: Vec<Worker<u32>>,
    a: &Arc<Admission>,
) -> Vec<thread::JoinHandle<Vec<u32>>> {
    locals
        .into_iter()
        .enumerate()
        .map(|(index, local)| {
            let (sched, a) = (sched.clone(), a.clone());
            thread::spawn(move || work(&sched, index, &local, &a))
        })
        .collect()
}

/// One worker; the main thread admits two items and publishes one on a
/// producer lane and one on the injector (the retry queue's way in) while the
/// worker looks for work and parks, then closes admission. If a wake-up is
/// lost the worker stays parked with an item queued: nothing else would wake
/// it (the close does not drain while the item holds its slot), and loom
/// reports the deadlock.
fn published_model(fault: Option<Fault>) {
    // Bound 3 for the broken variants: the worker's idle spin yields once
    // before it parks, which costs loom one preemption to reach the bug.
    let bound = if fault.is_some() { 3 } else { 2 };
    check(bound, fault, move || {
        let (sched, locals) = scheduler(1, fault);
        let a = Arc::new(Admission::new(2));
        let workers = spawn_workers(&sched, locals, &a);
        let lane = sched.open_lane();
        a.try_acquire().unwrap();
        sched.push_lane(&lane, 1);
        a.try_acquire().unwrap();
        sched.push(2);
        if a.close().is_some() {
            Sleep::of(&sched).notify_all();
        }
        let mut taken: Vec<u32> = workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect();
        taken.sort_unstable();
        assert_eq!(taken, [1, 2], "every published item is taken exactly once");
        sched.close_lane(lane);
    });
}

/// Promise 3: a task made available while the worker is going to sleep is
/// always taken, without another submission.
#[test]
fn work_published_while_parking_is_taken() {
    published_model(None);
}

/// Announcing and then waiting without a re-check misses work published just
/// before the announcement.
#[test]
#[should_panic(expected = "deadlock")]
fn no_recheck_loses_the_wakeup() {
    published_model(Some(Fault::NoRecheck));
}

/// A signal sent without the lock can fall between the worker's re-check and
/// its wait.
#[test]
#[should_panic(expected = "deadlock")]
fn unlocked_notify_loses_the_wakeup() {
    published_model(Some(Fault::UnlockedNotify));
}

/// A worker that parks still counted as searching makes publishers skip the
/// wake-up it needs.
#[test]
#[should_panic(expected = "deadlock")]
fn stale_search_loses_the_wakeup() {
    published_model(Some(Fault::StaleSearch));
}

/// Two idle workers; the main thread closes an empty admission, which is then
/// drained, and wakes everyone with `notify_all`.
fn notify_all_model(fault: Option<Fault>) {
    check(2, fault, move || {
        let (sched, locals) = scheduler(2, fault);
        let a = Arc::new(Admission::new(1));
        let workers = spawn_workers(&sched, locals, &a);
        assert!(a.close().is_some(), "an empty admission drains when closed");
        Sleep::of(&sched).notify_all();
        for w in workers {
            assert!(w.join().unwrap().is_empty());
        }
        assert_eq!(Sleep::of(&sched).sleepers(), 0);
        assert_eq!(Sleep::of(&sched).searching(), 0);
    });
}

/// `notify_all` wakes every parked worker (the end of a run).
#[test]
fn notify_all_wakes_every_parked_worker() {
    notify_all_model(None);
}

/// Without the re-check a worker parks after the drain and its wake-up.
#[test]
#[should_panic(expected = "deadlock")]
fn no_recheck_misses_the_drain() {
    notify_all_model(Some(Fault::NoRecheck));
}

/// Two workers, one item: exactly one of them takes it, whichever of them is
/// parked or searching when it is published, and both exit at the drain.
#[test]
fn two_workers_one_item_taken_once() {
    check(2, None, || {
        let (sched, locals) = scheduler(2, None);
        let a = Arc::new(Admission::new(1));
        let workers = spawn_workers(&sched, locals, &a);
        a.try_acquire().unwrap();
        sched.push(7);
        if a.close().is_some() {
            Sleep::of(&sched).notify_all();
        }
        let taken: Vec<u32> = workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect();
        assert_eq!(taken, [7]);
    });
}
