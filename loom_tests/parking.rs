//! Parking (promise 3): work published while a worker goes to sleep is always
//! taken, and `notify_all` wakes every parked worker.
//!
//! The models drive the real `Scheduler` (lanes, injector, `find`, `has_work`)
//! and its `Sleep`. The worker routine below is the engine's worker loop
//! (`scheduler::worker::run`) without the task execution: find, release the
//! slots held, check for the drain, park with the same predicate.

use std::sync::Arc;

use loom::thread;
use taskq::internals::{
    with_fault, Admission, Fault, LaneView, ReleaseBatch, Scheduler, Sleep, Worker,
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

/// Worker `index`: takes items until the admission is closed and drained, and
/// returns what it took. Each item holds one admission slot. Searching and
/// parking follow the engine's loop; the engine's idle spin (more `find`s
/// while searching) is left out: loom's interleavings cover the same states.
fn work(sched: &Scheduler<u32>, index: usize, local: &Worker<u32>, a: &Admission) -> Vec<u32> {
    let (mut rng, mut view) = (index as u64 + 1, LaneView::new());
    let mut release = ReleaseBatch::new(1);
    let mut taken = Vec::new();
    let sleep = Sleep::of(sched);
    let mut searching = false;
    loop {
        if let Some((item, _)) = sched.find(index, local, &mut rng, &mut view) {
            if searching {
                sleep.found_work();
                searching = false;
            }
            taken.push(item);
            if release.add(a).is_some() {
                sleep.notify_all();
            }
            continue;
        }
        if release.flush(a).is_some() {
            sleep.notify_all();
        }
        if searching || sleep.try_start_search() {
            sleep.end_search();
        }
        if a.is_drained() {
            return taken;
        }
        sleep.sleep(|| sched.has_work() || a.is_drained());
        searching = true;
    }
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
    check(2, fault, move || {
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
