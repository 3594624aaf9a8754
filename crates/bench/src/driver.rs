//! Runs one engine once over a batch of tasks and measures it from outside.
//!
//! # Steps
//!
//! 1. Start the engine (taskq: `Engine::start`; baseline and classic: build the
//!    queue, and spawn the workers unless the batch is queued first).
//! 2. Split the tasks among the producer threads, which wait on a barrier.
//! 3. Release the barrier; the clock starts.
//! 4. Join the producers. Under `--queue-first` this ends the enqueue phase:
//!    the clock restarts and the workers are let go (taskq: the gate opens;
//!    the others: the workers spawn).
//! 5. Shut down / finish: every task completes and the workers exit; the
//!    clock stops.
//! 6. Build the [`Sample`]: taskq's own report for latency and depth, the
//!    observers' recorded times for baseline and classic.
//!
//! Under `dedup` the engine is given the run's database (a path in a fresh
//! directory): taskq opens it as its store (`EngineConfig::store`, with the
//! scenario's durability) in step 1, and `shutdown` in step 5 returns once the
//! writer has committed every record; baseline and classic create it as a
//! [`SeedDb`] in step 1 and claim each key with an autocommit `INSERT OR
//! IGNORE` before processing it.

use std::path::Path;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::workload::split;
use super::{BenchError, EngineKind, Sample, Scenario, Workload, WriterStats};
use crate::baseline::{
    Baseline, BaselineConfig, BaselineProducer, Classic, ClassicConfig, ClassicProducer, Job,
    Observer, SeedDb,
};
use crate::gate::Gate;
use crate::peers::{Peer, PeerConfig, PeerKind, PeerProducer};
use taskq::config::EngineConfig;
use taskq::engine::Engine;
use taskq::idempotency::StoreConfig;
use taskq::metrics::{Percentiles, Samples};
use taskq::processor::{Attempt, Output, ProcessError, Processor};
use taskq::retry::RetryPolicy;
use taskq::task::Task;

/// How taskq's producers hand it their tasks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum SubmitStyle {
    /// `Submitter::submit_iter`: admission slots reserved in chunks.
    #[default]
    Batch,
    /// `Submitter::submit`, one task at a time (as baseline and classic, which
    /// have no batch API, always do).
    Each,
}

/// Runs `engine` once over `tasks` (the caller's fresh copy) under `scenario`;
/// a `dedup` scenario deduplicates through a new database at `db`. `seed`
/// seeds the retry jitter of a scenario with [`faults`](Scenario::faults).
///
/// # Errors
///
/// [`BenchError`] when the engine or its database cannot start, or a `dedup`
/// scenario has no `db`.
pub fn run_once(
    engine: EngineKind,
    scenario: &Scenario,
    processor: &Arc<dyn Processor>,
    tasks: Vec<Task>,
    db: Option<&Path>,
    seed: u64,
) -> Result<Sample, BenchError> {
    let retry = scenario.faults.map(|f| f.policy(seed));
    let db = if scenario.workload == Workload::Dedup {
        Some(db.ok_or_else(|| BenchError::config("workload", "dedup runs need a database path"))?)
    } else {
        None
    };
    let seed_db = |path: &Path| {
        SeedDb::create(path).map_err(|cause| BenchError::Db {
            context: format!("cannot create {}", path.display()),
            cause,
        })
    };
    match engine {
        EngineKind::Taskq => run_taskq(scenario, processor, tasks, db, retry),
        EngineKind::Baseline => {
            let mut pool = Baseline::new(
                BaselineConfig {
                    workers: scenario.workers,
                    idle_poll: Duration::from_millis(1),
                },
                processor.clone(),
                quanta::Clock::new(),
            );
            if let Some(db) = db {
                pool = pool.with_seed_db(seed_db(db)?);
            }
            run_pool(scenario, pool, tasks)
        }
        EngineKind::Classic => {
            let mut pool = Classic::new(
                ClassicConfig {
                    workers: scenario.workers,
                    capacity: scenario.effective_capacity(),
                    retry,
                },
                processor.clone(),
                quanta::Clock::new(),
            );
            if let Some(db) = db {
                pool = pool.with_seed_db(seed_db(db)?);
            }
            run_pool(scenario, pool, tasks)
        }
        EngineKind::Mpsc | EngineKind::Channel | EngineKind::Rayon => {
            let kind = match engine {
                EngineKind::Mpsc => PeerKind::Mpsc,
                EngineKind::Channel => PeerKind::Channel,
                _ => PeerKind::Rayon,
            };
            let pool = Peer::new(
                kind,
                PeerConfig {
                    workers: scenario.workers,
                    capacity: scenario.effective_capacity(),
                    retry,
                },
                processor.clone(),
                quanta::Clock::new(),
                db.map(seed_db).transpose()?,
            )
            .map_err(|e| BenchError::io("cannot start rayon's pool", e))?;
            run_pool(scenario, pool, tasks)
        }
    }
}

/// A processor that waits for its [`Gate`] before every task.
struct Gated {
    inner: Arc<dyn Processor>,
    gate: Arc<Gate>,
}

impl Processor for Gated {
    fn process(&self, task: &Task, attempt: &Attempt) -> Result<Output, ProcessError> {
        self.gate.wait();
        self.inner.process(task, attempt)
    }
}

/// Spawns one producer thread per part, releases them together, joins them;
/// returns when the barrier was released.
fn produce<H: Send>(
    parts: Vec<Vec<Task>>,
    handles: Vec<H>,
    submit: impl Fn(&H, Vec<Task>) + Sync,
) -> Instant {
    let barrier = Barrier::new(parts.len() + 1);
    std::thread::scope(|scope| {
        let (barrier, submit) = (&barrier, &submit);
        let threads: Vec<_> = parts
            .into_iter()
            .zip(handles)
            .map(|(part, handle)| {
                scope.spawn(move || {
                    barrier.wait();
                    submit(&handle, part);
                    drop(handle);
                })
            })
            .collect();
        barrier.wait();
        let t0 = Instant::now();
        for t in threads {
            t.join().expect("a producer thread panicked");
        }
        t0
    })
}

fn run_taskq(
    scenario: &Scenario,
    processor: &Arc<dyn Processor>,
    tasks: Vec<Task>,
    db: Option<&Path>,
    retry: Option<RetryPolicy>,
) -> Result<Sample, BenchError> {
    let submitted = tasks.len() as u64;
    let gate = scenario.queue_first.then(|| Arc::new(Gate::new()));
    let processor: Arc<dyn Processor> = match &gate {
        Some(gate) => Arc::new(Gated {
            inner: processor.clone(),
            gate: gate.clone(),
        }),
        None => processor.clone(),
    };
    let engine = Engine::start(
        EngineConfig {
            workers: scenario.workers,
            capacity: scenario.effective_capacity(),
            store: db.map(|path| StoreConfig {
                durability: scenario.durability.into(),
                ..StoreConfig::new(path)
            }),
            retry: retry.unwrap_or_default(),
            ..EngineConfig::default()
        },
        processor,
    )?;
    let parts = split(tasks, scenario.producers);
    let submitters = (0..parts.len()).map(|_| engine.submitter()).collect();
    let style = scenario.taskq_submit;
    let mut t0 = produce(parts, submitters, |s, part| match style {
        SubmitStyle::Batch => {
            let _ = s.submit_iter(&mut part.into_iter());
        }
        SubmitStyle::Each => {
            for t in part {
                if s.submit(t).is_err() {
                    return;
                }
            }
        }
    });
    let mut enqueue_s = None;
    if let Some(gate) = gate {
        enqueue_s = Some(t0.elapsed().as_secs_f64());
        t0 = Instant::now();
        gate.open();
    }
    let started = engine.started_at();
    let report = engine.shutdown();
    // The clock stops where the engine's own `elapsed_s` does: every task
    // done, every record committed, every thread joined. Building the report
    // (merging histograms) is left out, as the other engines' latency
    // bookkeeping is.
    let makespan_s = (started + Duration::from_secs_f64(report.elapsed_s))
        .saturating_duration_since(t0)
        .as_secs_f64();
    let c = &report.counts;
    let completed = c.completed();
    let writer = report.store.as_ref().map(|st| WriterStats {
        batches: st.writer.batches,
        records: st.writer.records,
        commit_ms_mean: st.writer.commit_ms.mean,
        commit_ms_p99: st.writer.commit_ms.p99,
        evictions: st.writer.evictions,
        lookups: st.lookups,
    });
    Ok(Sample {
        first_error: report.errors.first().cloned(),
        retried: c.retried,
        writer,
        ..sample(
            submitted,
            completed,
            c.succeeded,
            c.duplicates,
            completed - c.succeeded - c.duplicates,
            makespan_s,
            report.latency_ms,
            // The admission high-water mark counts reserved slots. The parts
            // are sized iterators, so `submit_iter` never reserves past their
            // end; the cap is a guard, not a correction.
            report.queue_depth.max.min(submitted as usize),
            enqueue_s,
        )
    })
}

/// Baseline, classic and the peers, behind one shape.
trait Pool: Send {
    type Producer: Send;
    fn producer(&self) -> Self::Producer;
    fn submit(producer: &Self::Producer, task: Task);
    fn start(&mut self, observer: impl FnMut(usize) -> Recording) -> std::io::Result<()>;
    fn finish(self) -> Vec<Recording>;
}

impl Pool for Baseline<Recording> {
    type Producer = BaselineProducer;
    fn producer(&self) -> BaselineProducer {
        Baseline::producer(self)
    }
    fn submit(producer: &BaselineProducer, task: Task) {
        producer.submit(task);
    }
    fn start(&mut self, observer: impl FnMut(usize) -> Recording) -> std::io::Result<()> {
        Baseline::start(self, observer)
    }
    fn finish(self) -> Vec<Recording> {
        Baseline::finish(self)
    }
}

impl Pool for Classic<Recording> {
    type Producer = ClassicProducer;
    fn producer(&self) -> ClassicProducer {
        Classic::producer(self)
    }
    fn submit(producer: &ClassicProducer, task: Task) {
        producer.submit(task);
    }
    fn start(&mut self, observer: impl FnMut(usize) -> Recording) -> std::io::Result<()> {
        Classic::start(self, observer)
    }
    fn finish(self) -> Vec<Recording> {
        Classic::finish(self)
    }
}

impl Pool for Peer<Recording> {
    type Producer = PeerProducer;
    fn producer(&self) -> PeerProducer {
        Peer::producer(self)
    }
    fn submit(producer: &PeerProducer, task: Task) {
        producer.submit(task);
    }
    fn start(&mut self, observer: impl FnMut(usize) -> Recording) -> std::io::Result<()> {
        Peer::start(self, observer)
    }
    fn finish(self) -> Vec<Recording> {
        Peer::finish(self)
    }
}

/// A worker's record of its completions: (submitted, finished) raw clock
/// readings, turned into latencies and depths after the clock stopped.
struct Recording {
    times: Vec<(u64, u64)>,
    succeeded: u64,
    failed: u64,
    duplicates: u64,
    retried: u64,
    first_error: Option<String>,
}

impl Observer for Recording {
    #[inline]
    fn completed(&mut self, job: Job, finished_at: u64, result: Result<Output, ProcessError>) {
        self.times.push((job.submitted_at, finished_at));
        match result {
            Ok(_) => self.succeeded += 1,
            Err(e) => {
                self.failed += 1;
                if self.first_error.is_none() {
                    self.first_error = Some(format!("{}: {}", e.kind, e.message));
                }
            }
        }
    }

    #[inline]
    fn duplicate(&mut self, job: Job, finished_at: u64) {
        self.times.push((job.submitted_at, finished_at));
        self.duplicates += 1;
    }

    fn retrying(&mut self, _: &Job, _: u32, _: Duration) {
        self.retried += 1;
    }
}

fn run_pool<P: Pool>(
    scenario: &Scenario,
    mut pool: P,
    tasks: Vec<Task>,
) -> Result<Sample, BenchError> {
    let submitted = tasks.len() as u64;
    let per_worker = tasks.len() / scenario.workers + 1;
    let recording = |_| Recording {
        times: Vec::with_capacity(per_worker),
        succeeded: 0,
        failed: 0,
        duplicates: 0,
        retried: 0,
        first_error: None,
    };
    let start_error = |e| BenchError::io("cannot start a worker thread", e);
    if !scenario.queue_first {
        pool.start(recording).map_err(start_error)?;
    }
    let parts = split(tasks, scenario.producers);
    let producers = (0..parts.len()).map(|_| pool.producer()).collect();
    let mut t0 = produce(parts, producers, |p, part| {
        for t in part {
            P::submit(p, t);
        }
    });
    let mut enqueue_s = None;
    if scenario.queue_first {
        enqueue_s = Some(t0.elapsed().as_secs_f64());
        t0 = Instant::now();
        pool.start(recording).map_err(start_error)?;
    }
    let recordings = pool.finish();
    let makespan_s = t0.elapsed().as_secs_f64();

    let clock = quanta::Clock::new();
    let mut latency = Samples::new();
    let (mut succeeded, mut failed, mut duplicates, mut retried) = (0, 0, 0, 0);
    let mut submits = Vec::with_capacity(submitted as usize);
    let mut finishes = Vec::with_capacity(submitted as usize);
    let first_error = recordings.iter().find_map(|r| r.first_error.clone());
    for r in &recordings {
        succeeded += r.succeeded;
        failed += r.failed;
        duplicates += r.duplicates;
        retried += r.retried;
        for &(s, f) in &r.times {
            latency.record(clock.delta_as_nanos(s, f));
            submits.push(s);
            finishes.push(f);
        }
    }
    Ok(Sample {
        first_error,
        retried,
        ..sample(
            submitted,
            succeeded + failed + duplicates,
            succeeded,
            duplicates,
            failed,
            makespan_s,
            latency.percentiles(),
            max_depth(submits, finishes),
            enqueue_s,
        )
    })
}

/// The most tasks held at once, from every task's submit and finish times
/// (a finish at the same instant as a submit counts first).
fn max_depth(mut submits: Vec<u64>, mut finishes: Vec<u64>) -> usize {
    submits.sort_unstable();
    finishes.sort_unstable();
    let (mut depth, mut max, mut f) = (0usize, 0usize, 0usize);
    for s in submits {
        while f < finishes.len() && finishes[f] <= s {
            depth -= 1;
            f += 1;
        }
        depth += 1;
        max = max.max(depth);
    }
    max
}

#[allow(clippy::too_many_arguments)]
fn sample(
    submitted: u64,
    completed: u64,
    succeeded: u64,
    duplicates: u64,
    failed: u64,
    makespan_s: f64,
    latency_ms: Percentiles,
    depth_max: usize,
    enqueue_s: Option<f64>,
) -> Sample {
    let per_s = |n: f64| {
        if makespan_s > 0.0 {
            n / makespan_s
        } else {
            0.0
        }
    };
    Sample {
        submitted,
        completed,
        succeeded,
        failed,
        makespan_s,
        throughput_per_s: per_s(completed as f64),
        // Little's law: Σ residence ÷ the window the tasks were held in (from
        // the first submission: the enqueue phase counts under queue-first).
        depth_mean: latency_ms.mean / 1e3 * latency_ms.count as f64
            / (makespan_s + enqueue_s.unwrap_or(0.0)).max(f64::MIN_POSITIVE),
        latency_ms,
        depth_max,
        enqueue_s,
        duplicates,
        db_rows: None,
        first_error: None,
        retried: 0,
        ideal_makespan_s: None,
        writer: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_sweep() {
        // [0,10) [1,2) [3,4) [3,5): at most 3 held (time 3).
        assert_eq!(max_depth(vec![0, 1, 3, 3], vec![10, 2, 4, 5]), 3);
        // Back to back: a finish at 5 frees the slot for the submit at 5.
        assert_eq!(max_depth(vec![0, 5], vec![5, 9]), 1);
        assert_eq!(max_depth(vec![], vec![]), 0);
    }
}
