//! The idempotency claim (promises 4 and 5): one winner per key, every loser
//! told what the key is doing, and no key leaves the hot cache before its
//! record is committed.
//!
//! Every model drives `taskq::idempotency::ClaimTable` itself (the `Map` under
//! it is a loom `Mutex<HashMap>` in these builds). The eviction model runs the
//! engine's whole path of a key: workers claim it with the engine's claim step
//! (`ClaimTable::claim_with_history`: the table, then the real Bloom filter,
//! then the store), and hand their records through the real `Handoff` to the
//! engine's writer loop (`taskq::internals::run_writer`), which commits them,
//! adds the keys to the filter and evicts them. Only the store is a stand-in:
//! a loom `Mutex<HashSet>` of committed keys, written through `StoreWriter`
//! and read as the workers' history lookup.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use loom::sync::Mutex;
use loom::thread;
use taskq::idempotency::claim::KeyState;
use taskq::idempotency::handoff::Handoff;
use taskq::idempotency::{
    Claim, ClaimTable, Pending, RecordStatus, Recorded, StoreError, StoreWriter, TaskRecord,
};
use taskq::internals::{run_writer, with_fault, Bloom, Fault, WriterSettings};
use taskq::Task;

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

/// The model store: keys whose record is committed. The writer commits into
/// it through `StoreWriter`; the workers look keys up in it.
#[derive(Clone, Default)]
struct MemStore(Arc<Mutex<HashSet<String>>>);

impl MemStore {
    fn contains(&self, key: &str) -> bool {
        self.0.lock().unwrap().contains(key)
    }

    /// The history lookup of the claim step.
    fn lookup(&self, key: &str) -> Option<Recorded> {
        self.contains(key).then(|| Recorded {
            image_key: IMAGE.into(),
            size: SIZE.into(),
            output_key: None,
        })
    }
}

impl StoreWriter for MemStore {
    fn commit(&mut self, batch: &[Pending]) -> Result<(), StoreError> {
        let mut store = self.0.lock().unwrap();
        for p in batch {
            store.insert(p.record.task.idempotency_key().to_string());
        }
        Ok(())
    }
}

/// The image key and size every job of `KEY` has.
const IMAGE: &str = "img/0.jpg";
const SIZE: &str = "2x2";

/// Everything the eviction model shares between its threads.
struct Shared {
    table: ClaimTable,
    bloom: Bloom,
    handoff: Handoff<Pending>,
    store: MemStore,
    /// Set by a worker just before it marks the key done.
    finished: AtomicBool,
    /// Processings of the key (promise 4: exactly one).
    processed: AtomicUsize,
}

/// How a job of the key ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ended {
    /// It won the key and processed it.
    Processed,
    /// The cache told it the key was in flight or done.
    DuplicateInCache,
    /// The key had left the cache: the Bloom filter and the store told it
    /// the key was recorded (the path through eviction).
    DuplicateInStore,
}

/// One job of the key on a worker, as `engine::execute` runs it: the claim
/// step (`claim_with_history`: cache, Bloom filter, store); on `New` process,
/// mark done and hand the record to the writer.
fn job(s: &Shared) -> Ended {
    let fp = s.table.fingerprint(IMAGE, SIZE);
    let mut looked_up = None;
    let claim = s
        .table
        .claim_with_history(&s.bloom, KEY, fp, || {
            let found = s.store.lookup(KEY);
            looked_up = Some(found.is_some());
            Ok::<_, StoreError>(found)
        })
        .expect("the model store does not fail");
    match claim {
        Claim::New => {
            assert!(
                !s.finished.load(SeqCst),
                "the key left the cache before its record was committed"
            );
            s.processed.fetch_add(1, SeqCst);
            s.finished.store(true, SeqCst);
            s.table.finish(KEY, None);
            let task = Task::new(IMAGE, SIZE.parse().unwrap()).unwrap();
            let pending = Pending {
                record: TaskRecord {
                    task,
                    status: RecordStatus::Succeeded,
                    finished_at: 0,
                    output_key: None,
                },
                dead: None,
                ack: None,
            };
            s.handoff.send(pending).expect("open while workers run");
            Ended::Processed
        }
        Claim::Done(_) if looked_up == Some(true) => Ended::DuplicateInStore,
        Claim::InFlight | Claim::Done(_) => Ended::DuplicateInCache,
        other => panic!("same parameters, told {other:?}"),
    }
}

/// Two workers run a job of the same key, the engine's writer loop commits
/// and evicts behind them (cache capacity 0: every committed key is evicted).
/// A worker that wins the key must not find it finished by the other (it left
/// the cache unrecorded); the key is processed exactly once; after the writer
/// is done the key is recorded, out of the cache, and a claim of it is
/// answered from the store.
fn eviction_model(fault: Option<Fault>) {
    let evicted_path_seen = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = evicted_path_seen.clone();
    check(2, fault, move || {
        let build = || {
            let settings = WriterSettings::new(Duration::ZERO, 0, None, "model");
            (ClaimTable::new(), settings)
        };
        let (table, settings) = match fault {
            Some(f) => with_fault(f, build),
            None => build(),
        };
        let s = Arc::new(Shared {
            table,
            bloom: Bloom::with_capacity(1),
            handoff: Handoff::new(1, 1),
            store: MemStore::default(),
            finished: AtomicBool::new(false),
            processed: AtomicUsize::new(0),
        });
        let w = {
            let s = s.clone();
            thread::spawn(move || {
                let report = run_writer(
                    Box::new(s.store.clone()),
                    &s.handoff,
                    &s.table,
                    &s.bloom,
                    settings,
                    |_, result| assert!(result.is_ok()),
                );
                assert_eq!(report.records, 1, "one record committed");
            })
        };
        let a = {
            let s = s.clone();
            thread::spawn(move || job(&s))
        };
        let b = job(&s);
        let a = a.join().unwrap();
        s.handoff.close();
        w.join().unwrap();
        if a == Ended::DuplicateInStore || b == Ended::DuplicateInStore {
            seen.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        let n = s.processed.load(SeqCst);
        assert_eq!(n, 1, "the key was processed {n} times");
        assert!(s.store.contains(KEY), "the record was lost");
        assert_eq!(
            s.table.state(KEY),
            None,
            "the committed key was not evicted"
        );
        assert_eq!(job(&s), Ended::DuplicateInStore, "found through the store");
    });
    assert!(
        evicted_path_seen.load(std::sync::atomic::Ordering::Relaxed),
        "no explored execution claimed the key again after its eviction"
    );
}

/// Promises 4 and 5: an entry is never released before its record is
/// committed, so a key that left the cache is always found through the Bloom
/// filter and the store, and is processed once.
#[test]
fn no_release_before_commit() {
    eviction_model(None);
}

/// `finish` that gives the entry up at once: the other worker wins the key
/// before the record is committed, and processes it again.
#[test]
#[should_panic(expected = "left the cache before its record was committed")]
fn early_release_loses_the_key() {
    eviction_model(Some(Fault::EarlyRelease));
}

/// The engine's writer loop with `Fault::EvictBeforeCommit`: it evicts a
/// batch's keys before it commits the batch, the same window, opened by the
/// writer.
#[test]
#[should_panic(expected = "left the cache before its record was committed")]
fn evict_before_commit_loses_the_key() {
    eviction_model(Some(Fault::EvictBeforeCommit));
}
