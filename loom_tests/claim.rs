//! The idempotency claim (promises 4 and 5): one winner per key, every loser
//! told what the key is doing, and no key leaves the hot cache before its
//! record is committed.
//!
//! Every model drives `taskq::idempotency::ClaimTable` itself (the `Map` under
//! it is a loom `Mutex<HashMap>` in these builds). The eviction model adds the
//! real `Handoff` between the workers and a model writer thread that follows
//! the engine writer's order: commit the batch (here: insert its keys into a
//! loom `Mutex<HashSet>`, the model store), then `evict_committed` each key.
//! (The writer loop itself is crate-private and bound to a `StoreWriter`, so
//! the model runs that order, not `writer::run`.)

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use loom::sync::Mutex;
use loom::thread;
use taskq::idempotency::claim::KeyState;
use taskq::idempotency::handoff::Handoff;
use taskq::idempotency::{Claim, ClaimTable};
use taskq::internals::{with_fault, Fault};

use crate::check;

/// The one idempotency key every model claims.
const KEY: &str = "img/0.jpg:2x2";

/// A `ClaimTable`, with `fault` injected if any.
fn table(fault: Option<Fault>) -> Arc<ClaimTable> {
    Arc::new(match fault {
        Some(f) => with_fault(f, ClaimTable::new),
        None => ClaimTable::new(),
    })
}

/// The outcomes losers were told across all explored executions (test
/// bookkeeping outside the model), to check that a model reached each of them.
type Told = Arc<std::sync::Mutex<HashSet<&'static str>>>;

/// Asserts that every outcome in `expected` was told in some execution.
fn assert_told(told: &Told, expected: &[&str]) {
    let told = told.lock().unwrap();
    for outcome in expected {
        assert!(
            told.contains(outcome),
            "no explored execution told a loser {outcome}"
        );
    }
}

/// Three claimants, one key, one fingerprint. The winner marks the key done
/// at once, so a loser may find it in flight or done (each happens in some
/// execution).
fn same_key_model(fault: Option<Fault>) {
    let told = Told::default();
    let seen = told.clone();
    check(2, fault, move || {
        let seen = seen.clone();
        let t = table(fault);
        let fp = t.fingerprint("img/0.jpg", "2x2");
        let wins = Arc::new(AtomicUsize::new(0));
        let claimant = move |t: Arc<ClaimTable>, wins: Arc<AtomicUsize>| match t.claim(KEY, fp) {
            Claim::New => {
                let n = wins.fetch_add(1, SeqCst) + 1;
                assert_eq!(n, 1, "{n} winners for one key");
                t.finish(KEY, Some("out".into()));
            }
            Claim::InFlight => {
                seen.lock().unwrap().insert("InFlight");
            }
            Claim::Done(output) => {
                assert_eq!(output.as_deref(), Some("out"));
                seen.lock().unwrap().insert("Done");
            }
            other => panic!("a claimant with the same parameters was told {other:?}"),
        };
        let others: Vec<_> = (0..2)
            .map(|_| {
                let (t, wins, claimant) = (t.clone(), wins.clone(), claimant.clone());
                thread::spawn(move || claimant(t, wins))
            })
            .collect();
        claimant(t.clone(), wins.clone());
        for o in others {
            o.join().unwrap();
        }
        assert_eq!(wins.load(SeqCst), 1, "nobody won the key");
        assert_eq!(
            t.state(KEY),
            Some(KeyState::Done {
                fingerprint: fp,
                output: Some("out".into())
            })
        );
    });
    assert_told(&told, &["InFlight", "Done"]);
}

/// Promise 4: of concurrent claims of one key exactly one is `New`; the others
/// are told `InFlight` or `Done`, never `New`.
#[test]
fn one_winner_per_key() {
    same_key_model(None);
}

/// A look-up and an insert under two locks: two claimants both find the key
/// vacant and both win.
#[test]
#[should_panic(expected = "winners for one key")]
fn check_then_insert_makes_two_winners() {
    same_key_model(Some(Fault::CheckThenInsert));
}

/// Promise 4 for a reused key: two claimants with other parameters (other
/// fingerprints). Exactly one wins; the other is told `Contended` while the
/// winner is in flight, or `Conflict` once it is done, and `Conflict` only if
/// the winner had begun to finish. (Both happen in some execution.)
#[test]
fn other_parameters_are_contended_or_conflict() {
    let told = Told::default();
    let seen = told.clone();
    check(3, None, move || {
        let seen = seen.clone();
        let t = table(None);
        let fps = [
            t.fingerprint("img/0.jpg", "2x2"),
            t.fingerprint("img/1.jpg", "2x2"),
        ];
        let finishing = Arc::new([AtomicBool::new(false), AtomicBool::new(false)]);
        let wins = Arc::new(AtomicUsize::new(0));
        let claimant = move |i: usize,
                             t: Arc<ClaimTable>,
                             finishing: Arc<[AtomicBool; 2]>,
                             wins: Arc<AtomicUsize>| {
            match t.claim(KEY, fps[i]) {
                Claim::New => {
                    wins.fetch_add(1, SeqCst);
                    finishing[i].store(true, SeqCst);
                    t.finish(KEY, None);
                }
                Claim::Contended => {
                    seen.lock().unwrap().insert("Contended");
                }
                Claim::Conflict => {
                    assert!(
                        finishing[1 - i].load(SeqCst),
                        "Conflict before the winner finished"
                    );
                    seen.lock().unwrap().insert("Conflict");
                }
                other => panic!("a claimant with other parameters was told {other:?}"),
            }
        };
        let other = {
            let (t, finishing, wins) = (t.clone(), finishing.clone(), wins.clone());
            let claimant = claimant.clone();
            thread::spawn(move || claimant(1, t, finishing, wins))
        };
        claimant(0, t.clone(), finishing, wins.clone());
        other.join().unwrap();
        let n = wins.load(SeqCst);
        assert_eq!(n, 1, "{n} winners for one key");
    });
    assert_told(&told, &["Contended", "Conflict"]);
}

/// In which order the model writer commits and evicts.
#[derive(Clone, Copy, PartialEq, Eq)]
enum WriterOrder {
    /// The engine's: commit the batch, then evict its keys.
    CommitThenEvict,
    /// A broken writer (model side): evict, then commit.
    EvictThenCommit,
}

/// Everything the eviction model shares between its threads.
struct Shared {
    table: ClaimTable,
    handoff: Handoff<String>,
    /// The model store: keys whose record is committed.
    store: Mutex<HashSet<String>>,
    /// Set by a worker just before it marks the key done.
    finished: AtomicBool,
    /// Processings of the key (promise 4: exactly one).
    processed: AtomicUsize,
}

/// One job of the key on a worker, as `engine::execute` runs it: claim (step
/// 1); on `New` look the key up in the store (step 2) and give the claim up if
/// it is recorded; else process, mark done and hand the record to the writer
/// (step 3). Returns whether the claim was `New` after another worker had
/// finished the key (the path through eviction).
fn job(s: &Shared) -> bool {
    let fp = s.table.fingerprint("img/0.jpg", "2x2");
    match s.table.claim(KEY, fp) {
        Claim::New => {
            let after_finish = s.finished.load(SeqCst);
            let recorded = s.store.lock().unwrap().contains(KEY);
            if after_finish {
                assert!(
                    recorded,
                    "the key left the cache before its record was committed"
                );
            }
            if recorded {
                s.table.abandon(KEY);
            } else {
                s.processed.fetch_add(1, SeqCst);
                s.finished.store(true, SeqCst);
                s.table.finish(KEY, None);
                s.handoff
                    .send(KEY.to_string())
                    .expect("open while workers run");
            }
            after_finish
        }
        Claim::InFlight | Claim::Done(_) => false,
        other => panic!("same parameters, told {other:?}"),
    }
}

/// The writer: batches from the hand-off until it is closed and drained,
/// each committed and its keys evicted (cache capacity 0: every committed key
/// is evicted), in `order`.
fn writer(s: &Shared, order: WriterOrder) {
    let mut batch = Vec::new();
    while s.handoff.recv_batch(Duration::ZERO, &mut batch) {
        let commit = |batch: &[String]| s.store.lock().unwrap().extend(batch.iter().cloned());
        if order == WriterOrder::EvictThenCommit {
            for key in &batch {
                s.table.evict_committed(key);
            }
            commit(&batch);
        } else {
            commit(&batch);
            for key in &batch {
                s.table.evict_committed(key);
            }
        }
        batch.clear();
    }
}

/// Two workers run a job of the same key, the writer commits and evicts
/// behind them. A worker that wins the key after the other finished it must
/// find the key in the store; the key is processed exactly once; after the
/// writer is done the key is out of the cache and a claim is `New` again.
fn eviction_model(order: WriterOrder, fault: Option<Fault>) {
    let evicted_path_seen = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = evicted_path_seen.clone();
    check(2, fault, move || {
        let s = Arc::new(Shared {
            table: match fault {
                Some(f) => with_fault(f, ClaimTable::new),
                None => ClaimTable::new(),
            },
            handoff: Handoff::new(1, 1),
            store: Mutex::new(HashSet::new()),
            finished: AtomicBool::new(false),
            processed: AtomicUsize::new(0),
        });
        let w = {
            let s = s.clone();
            thread::spawn(move || writer(&s, order))
        };
        let a = {
            let s = s.clone();
            thread::spawn(move || job(&s))
        };
        let b = job(&s);
        let a = a.join().unwrap();
        s.handoff.close();
        w.join().unwrap();
        if a || b {
            seen.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        let n = s.processed.load(SeqCst);
        assert_eq!(n, 1, "the key was processed {n} times");
        assert!(s.store.lock().unwrap().contains(KEY), "the record was lost");
        assert_eq!(
            s.table.state(KEY),
            None,
            "the committed key was not evicted"
        );
        let fp = s.table.fingerprint("img/0.jpg", "2x2");
        assert_eq!(s.table.claim(KEY, fp), Claim::New, "evicted, so new again");
    });
    assert!(
        evicted_path_seen.load(std::sync::atomic::Ordering::Relaxed),
        "no explored execution claimed the key again after its eviction"
    );
}

/// Promises 4 and 5: an entry is never released before its record is
/// committed, so a key that left the cache is always found in the store, and
/// after the writer's eviction a claim is `New` again.
#[test]
fn no_release_before_commit() {
    eviction_model(WriterOrder::CommitThenEvict, None);
}

/// `finish` that gives the entry up at once: the other worker wins the key
/// before the record is committed, and processes it again.
#[test]
#[should_panic(expected = "left the cache before its record was committed")]
fn early_release_loses_the_key() {
    eviction_model(WriterOrder::CommitThenEvict, Some(Fault::EarlyRelease));
}

/// A writer that evicts before it commits (a model-side fault: the writer
/// loop is not injectable): the same window, opened by the writer.
#[test]
#[should_panic(expected = "left the cache before its record was committed")]
fn evict_before_commit_loses_the_key() {
    eviction_model(WriterOrder::EvictThenCommit, None);
}
