//! Repeats a scenario over its engines and aggregates the runs; the fixed suites.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::dedup::{fsync_ms, unique_keys, verify, DedupDurability, ScratchDir};
use super::driver::{run_once, SubmitStyle};
use super::ideal::ideal_makespan_s;
use super::workload::{build_tasks, simulated, single_thread_work_s, static_split_work_s};
use super::{
    available_cores, BenchError, EngineKind, EngineSummary, Faults, LatencySummary, Sample,
    Scenario, ScenarioResult, Stat, Workload,
};
use taskq::processor::Processor;

/// Runs every repeat of `scenario`, the engines in turn within each repeat,
/// and aggregates. `progress` is told about each run as it ends.
///
/// A `dedup` run gets a fresh database in a new [`ScratchDir`] and is
/// [`verify`]-checked after it ends; the directory is removed unless the
/// check failed.
///
/// # Errors
///
/// [`BenchError`] for a bad scenario, an engine that cannot start, or a
/// `dedup` run whose database fails the check.
pub fn run_scenario(
    scenario: &Scenario,
    progress: &mut dyn FnMut(&str),
) -> Result<ScenarioResult, BenchError> {
    scenario.validate()?;
    let mut processor: Arc<dyn Processor> = scenario.workload.processor(scenario, 0)?;
    let tasks = build_tasks(scenario);
    let dedup = scenario.workload == Workload::Dedup;
    let keys = if dedup {
        unique_keys(&tasks)
    } else {
        Default::default()
    };
    let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); scenario.engines.len()];
    let mut work_s = Vec::new();
    let mut split_s = Vec::new();
    let mut syncs = Vec::new();
    for r in 0..scenario.repeat {
        let seed = r as u64;
        let mut ideal_s = None;
        if let Some(faults) = &scenario.faults {
            // Each repeat fails different keys; an ideal pool replays them.
            let p = simulated(scenario, seed)?;
            ideal_s = Some(ideal_makespan_s(
                &tasks,
                scenario.workers,
                &p,
                &faults.policy(seed),
            ));
            processor = Arc::new(p);
        }
        if scenario.workload == Workload::Cpu {
            work_s.push(single_thread_work_s(&*processor, &tasks));
            split_s.push(static_split_work_s(
                &*processor,
                &tasks,
                scenario.workers.min(available_cores()),
            ));
        }
        if dedup {
            syncs.push(fsync_ms(ScratchDir::new()?.path())?);
        }
        for (e, &engine) in scenario.engines.iter().enumerate() {
            let mut scratch = dedup.then(ScratchDir::new).transpose()?;
            let db = scratch.as_ref().map(ScratchDir::db);
            let mut s = run_once(
                engine,
                scenario,
                &processor,
                tasks.clone(),
                db.as_deref(),
                seed,
            )?;
            let mut line = format!(
                "{} {} run {}/{}: {:.0} tasks/s, makespan {:.3} s",
                scenario.name,
                engine.name(),
                r + 1,
                scenario.repeat,
                s.throughput_per_s,
                s.makespan_s
            );
            if let (Some(dir), Some(db)) = (&mut scratch, &db) {
                match verify(engine, db, &keys, &s) {
                    Ok(rows) => s.db_rows = Some(rows),
                    Err(e) => {
                        dir.keep();
                        return Err(BenchError::Verify {
                            engine: engine.name(),
                            message: format!(
                                "{} (run {}; database kept at {})",
                                match e {
                                    BenchError::Verify { message, .. } => message,
                                    other => other.to_string(),
                                },
                                r + 1,
                                db.display()
                            ),
                        });
                    }
                }
                line.push_str(&format!(
                    ", {} duplicates, {} rows checked",
                    s.duplicates,
                    s.db_rows.unwrap_or(0)
                ));
            }
            s.ideal_makespan_s = ideal_s;
            progress(&line);
            samples[e].push(s);
        }
    }
    let mut result = summarize(scenario, samples, work_s);
    result.split_work_s = (!split_s.is_empty()).then(|| Stat::of(split_s));
    if dedup {
        result.fsync_ms = Some(Stat::of(syncs));
    }
    Ok(result)
}

/// Aggregates per-engine samples (`samples[i]` belongs to `scenario.engines[i]`)
/// into summaries; `work_s` holds the single-thread work time per repeat (`cpu`).
pub fn summarize(
    scenario: &Scenario,
    samples: Vec<Vec<Sample>>,
    work_s: Vec<f64>,
) -> ScenarioResult {
    let cores_used = scenario.workers.min(available_cores()) as f64;
    // The work of the batch: the fastest single-thread pass. A pass slowed by a
    // noisy neighbour would inflate every efficiency computed from it; the
    // fastest one is the least disturbed (and the most demanding baseline).
    let work = work_s.iter().copied().reduce(f64::min);
    let ideal = scenario.ideal_makespan_s();
    let mut engines: Vec<EngineSummary> = scenario
        .engines
        .iter()
        .zip(samples)
        .map(|(&engine, runs)| {
            let stat = |f: fn(&Sample) -> f64| Stat::of(runs.iter().map(f));
            let makespan_s = stat(|s| s.makespan_s);
            let (completed, failed) = runs
                .iter()
                .fold((0, 0), |(c, f), s| (c + s.completed, f + s.failed));
            let efficiency =
                work.map(|w| Stat::of(runs.iter().map(|s| w / (cores_used * s.makespan_s))));
            EngineSummary {
                engine,
                runs: runs.len(),
                throughput_per_s: stat(|s| s.throughput_per_s),
                makespan_s,
                latency_ms: LatencySummary {
                    mean: stat(|s| s.latency_ms.mean),
                    p50: stat(|s| s.latency_ms.p50),
                    p95: stat(|s| s.latency_ms.p95),
                    p99: stat(|s| s.latency_ms.p99),
                },
                error_rate: if completed == 0 {
                    0.0
                } else {
                    failed as f64 / completed as f64
                },
                depth_max: runs.iter().map(|s| s.depth_max).max().unwrap_or(0),
                depth_mean: stat(|s| s.depth_mean).median,
                ideal_makespan_s: ideal,
                makespan_vs_ideal: ideal.map(|i| makespan_s.median / i),
                vs_baseline: None,
                vs_best_peer: None,
                parallel_efficiency: efficiency,
                enqueue_s: scenario
                    .queue_first
                    .then(|| stat(|s| s.enqueue_s.unwrap_or(f64::NAN))),
                duplicates: (scenario.workload == Workload::Dedup)
                    .then(|| stat(|s| s.duplicates as f64)),
                vs_ideal_on_failures: scenario
                    .faults
                    .map(|_| stat(|s| s.makespan_s / s.ideal_makespan_s.unwrap_or(f64::NAN))),
                samples: runs,
            }
        })
        .collect();
    let baseline = engines
        .iter()
        .find(|e| e.engine == EngineKind::Baseline)
        .map(|e| e.throughput_per_s.median);
    if let Some(b) = baseline.filter(|&b| b > 0.0) {
        for e in &mut engines {
            e.vs_baseline = Some(e.throughput_per_s.median / b);
        }
    }
    let best_peer = engines
        .iter()
        .filter(|e| e.engine.is_peer())
        .map(|e| (e.engine, e.throughput_per_s.median))
        .max_by(|a, b| a.1.total_cmp(&b.1));
    if let Some((peer, p)) = best_peer.filter(|&(_, p)| p > 0.0) {
        for e in engines.iter_mut().filter(|e| e.engine == EngineKind::Taskq) {
            e.vs_best_peer = Some((peer, e.throughput_per_s.median / p));
        }
    }
    ScenarioResult {
        scenario: scenario.clone(),
        engines,
        work_s: (!work_s.is_empty()).then(|| Stat::of(work_s)),
        split_work_s: None,
        fsync_ms: None,
    }
}

/// The fixed sets of scenarios `taskq bench --suite` runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum SuiteName {
    /// The numbers PERF.md tracks: the seed scenario, the seed scenario with
    /// 10% of attempts failing transiently (9 repeats, each failing other
    /// keys; compared with the fault-free one), 1M no-op tasks, a 50k
    /// backlog queued first, CPU-bound tasks, and deduplication (200k keys
    /// with 30% repeats through taskq in both durability modes; 500 keys
    /// through every engine, since the Python designs commit each new key
    /// with a few fsyncs: ~80 keys/s at 5 ms per fsync, one minute per 5k
    /// keys); 5 repeats each.
    Standard,
    /// The same shapes, tiny (a few seconds in all): for tests and CI.
    Smoke,
}

impl SuiteName {
    /// The lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            SuiteName::Standard => "standard",
            SuiteName::Smoke => "smoke",
        }
    }

    /// The scenarios, in run order.
    pub fn scenarios(self) -> Vec<Scenario> {
        let all = EngineKind::EVERY.to_vec();
        let python = EngineKind::ALL.to_vec();
        let base = |name: &str, workload, tasks, workers, producers, capacity| Scenario {
            name: name.into(),
            workload,
            tasks,
            workers,
            producers,
            capacity,
            latency_ms: 0.0,
            duplicates: 0.0,
            queue_first: false,
            repeat: 5,
            engines: all.clone(),
            taskq_submit: SubmitStyle::Batch,
            durability: DedupDurability::Batch,
            faults: None,
        };
        let dedup = |name: &str, tasks, engines: &[EngineKind], durability| Scenario {
            duplicates: 0.3,
            engines: engines.to_vec(),
            durability,
            ..base(name, Workload::Dedup, tasks, 2, 1, 1024)
        };
        match self {
            SuiteName::Standard => vec![
                Scenario::seed(),
                Scenario {
                    name: "seed-faults".into(),
                    faults: Some(Faults::seed()),
                    repeat: 9,
                    ..Scenario::seed()
                },
                Scenario {
                    engines: vec![
                        EngineKind::Taskq,
                        EngineKind::Classic,
                        EngineKind::Mpsc,
                        EngineKind::Channel,
                        EngineKind::Rayon,
                    ],
                    ..base("noop-1m", Workload::Noop, 1_000_000, 2, 1, 1024)
                },
                Scenario {
                    queue_first: true,
                    ..base("noop-50k-queue-first", Workload::Noop, 50_000, 2, 1, 1024)
                },
                base("cpu-100k", Workload::Cpu, 100_000, 2, 1, 1024),
                dedup(
                    "dedup-200k",
                    200_000,
                    &[EngineKind::Taskq],
                    DedupDurability::Batch,
                ),
                dedup(
                    "dedup-200k-group-commit",
                    200_000,
                    &[EngineKind::Taskq],
                    DedupDurability::GroupCommit,
                ),
                // The peers claim keys as classic does (an autocommit
                // INSERT per task): the Python designs suffice here.
                dedup("dedup-500", 500, &python, DedupDurability::Batch),
            ],
            SuiteName::Smoke => {
                let seed = Scenario {
                    name: "seed-smoke".into(),
                    tasks: 40,
                    workers: 4,
                    producers: 8,
                    capacity: 16,
                    latency_ms: 1.0,
                    repeat: 2,
                    ..Scenario::seed()
                };
                vec![
                    seed.clone(),
                    Scenario {
                        name: "seed-faults-smoke".into(),
                        faults: Some(Faults {
                            backoff_base_ms: 2,
                            ..Faults::seed()
                        }),
                        ..seed
                    },
                    Scenario {
                        repeat: 2,
                        ..base("noop-smoke", Workload::Noop, 2_000, 2, 2, 64)
                    },
                    Scenario {
                        repeat: 2,
                        queue_first: true,
                        ..base("noop-queue-first-smoke", Workload::Noop, 500, 2, 1, 64)
                    },
                    Scenario {
                        repeat: 2,
                        ..base("cpu-smoke", Workload::Cpu, 500, 2, 1, 64)
                    },
                    Scenario {
                        repeat: 2,
                        ..dedup("dedup-smoke", 300, &python, DedupDurability::GroupCommit)
                    },
                ]
            }
        }
    }
}
