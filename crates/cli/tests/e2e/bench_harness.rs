//! The benchmark harness: the ported baselines process every task exactly once,
//! bench reports add up, `--compare` flags a slowdown and passes an unchanged
//! run, `--record` appends to PERF.md, and the result files are written.
//! Small task counts and 1-2 ms latencies; no assertion depends on timing.

use std::sync::Arc;
use std::time::Duration;

use assert_cmd::Command;
use taskq::{Output, ProcessError, Processor, Simulated, SimulatedConfig, Task};
use taskq_bench::baseline::{
    Baseline, BaselineConfig, Classic, ClassicConfig, Job, Observer, SeedDb,
};
use taskq_bench::compare::compare;
use taskq_bench::report::fault_ratios;
use taskq_bench::suite::run_scenario;
use taskq_bench::{BenchFile, DedupDurability, EngineKind, Faults, Scenario, Workload};
use tempfile::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_taskq");
const TIMEOUT: Duration = Duration::from_secs(120);

/// Records the id of every task a worker completed, and whether it succeeded.
struct Ids(Vec<(u64, bool)>);

impl Observer for Ids {
    fn completed(&mut self, job: Job, _finished_at: u64, result: Result<Output, ProcessError>) {
        self.0
            .push((job.task.id().parse().unwrap(), result.is_ok()));
    }
}

fn tasks(n: u64) -> Vec<Task> {
    (0..n)
        .map(|i| {
            Task::new(&format!("img/{i:06}.jpg"), "200x200".parse().unwrap())
                .unwrap()
                .with_id(i.to_string())
        })
        .collect()
}

fn sleep_ms(ms: f64) -> Arc<dyn Processor> {
    Arc::new(
        Simulated::new(SimulatedConfig {
            latency_ms: ms,
            ..SimulatedConfig::default()
        })
        .unwrap(),
    )
}

/// Every id in 0..n exactly once, all successful.
fn assert_exactly_once(observers: Vec<Ids>, n: u64) {
    let mut seen: Vec<(u64, bool)> = observers.into_iter().flat_map(|o| o.0).collect();
    assert!(seen.iter().all(|(_, ok)| *ok));
    seen.sort_unstable();
    let ids: Vec<u64> = seen.into_iter().map(|(id, _)| id).collect();
    assert_eq!(ids, (0..n).collect::<Vec<_>>());
}

/// Runs `submit` on 4 producer threads over `n` tasks split among them.
fn produce<P: Clone + Send>(n: u64, producer: P, submit: fn(&P, Task)) {
    let all = tasks(n);
    std::thread::scope(|s| {
        for part in all.chunks((n as usize).div_ceil(4)) {
            let p = producer.clone();
            s.spawn(move || part.iter().cloned().for_each(|t| submit(&p, t)));
        }
    });
}

#[test]
fn baseline_processes_every_task_exactly_once() {
    for (processor, n) in [(sleep_ms(1.0), 60), (Arc::new(taskq::Noop) as _, 5_000)] {
        let mut b = Baseline::new(
            BaselineConfig {
                workers: 4,
                ..BaselineConfig::default()
            },
            processor,
            quanta::Clock::new(),
        );
        b.start(|_| Ids(Vec::new())).unwrap();
        produce(n, b.producer(), |p, t| p.submit(t));
        assert_exactly_once(b.finish(), n);
    }
}

#[test]
fn baseline_drains_a_batch_queued_before_its_workers() {
    let mut b = Baseline::new(
        BaselineConfig {
            workers: 3,
            ..BaselineConfig::default()
        },
        Arc::new(taskq::Noop),
        quanta::Clock::new(),
    );
    produce(1_000, b.producer(), |p, t| p.submit(t));
    b.start(|_| Ids(Vec::new())).unwrap();
    assert_exactly_once(b.finish(), 1_000);
}

#[test]
fn classic_processes_every_task_exactly_once() {
    for (processor, n, capacity) in [
        (sleep_ms(1.0), 60, 8),
        (Arc::new(taskq::Noop) as _, 5_000, 1),
        (Arc::new(taskq::Noop) as _, 5_000, 64),
    ] {
        let mut c = Classic::new(
            ClassicConfig {
                workers: 4,
                capacity,
                retry: None,
            },
            processor,
            quanta::Clock::new(),
        );
        c.start(|_| Ids(Vec::new())).unwrap();
        produce(n, c.producer(), |p, t| p.submit(t));
        assert_exactly_once(c.finish(), n);
    }
}

/// A panicking processor is a failure, not a lost task or a dead worker.
#[test]
fn baselines_count_a_panic_as_a_failure() {
    struct Panics;
    impl Processor for Panics {
        fn process(&self, t: &Task, _: &taskq::Attempt) -> Result<Output, ProcessError> {
            if t.id() == "3" {
                panic!("injected");
            }
            Ok(Output::default())
        }
    }
    let mut c = Classic::new(
        ClassicConfig {
            workers: 2,
            capacity: 4,
            retry: None,
        },
        Arc::new(Panics),
        quanta::Clock::new(),
    );
    c.start(|_| Ids(Vec::new())).unwrap();
    produce(10, c.producer(), |p, t| p.submit(t));
    let seen: Vec<(u64, bool)> = c.finish().into_iter().flat_map(|o| o.0).collect();
    assert_eq!(seen.len(), 10);
    assert_eq!(
        seen.iter().filter(|(_, ok)| !ok).collect::<Vec<_>>(),
        [&(3, false)]
    );
}

fn small(workload: Workload, queue_first: bool) -> Scenario {
    Scenario {
        name: format!("{}-test", workload.name()),
        workload,
        tasks: 50,
        workers: 3,
        producers: 4,
        capacity: 8,
        latency_ms: 1.0,
        duplicates: 0.0,
        queue_first,
        repeat: 2,
        engines: EngineKind::EVERY.to_vec(),
        taskq_submit: Default::default(),
        durability: Default::default(),
        faults: None,
    }
}

#[test]
fn bench_reports_add_up() {
    for (workload, queue_first) in [
        (Workload::Sleep, false),
        (Workload::Noop, true),
        (Workload::Cpu, false),
    ] {
        let scenario = small(workload, queue_first);
        let mut lines = 0;
        let result = run_scenario(&scenario, &mut |_| lines += 1).unwrap();
        assert_eq!(lines, 2 * 6, "one progress line per run");
        assert_eq!(result.engines.len(), 6);
        for e in &result.engines {
            assert_eq!(e.runs, 2);
            assert_eq!(e.samples.len(), 2);
            for s in &e.samples {
                assert_eq!(s.submitted, 50, "{:?}", e.engine);
                assert_eq!(s.completed, 50, "{:?}", e.engine);
                assert_eq!(s.succeeded + s.failed, s.completed);
                assert_eq!(s.latency_ms.count, 50, "one latency sample per task");
                assert!(
                    s.depth_max >= 1 && s.depth_max <= 50,
                    "{:?} {}",
                    e.engine,
                    s.depth_max
                );
                assert!(s.makespan_s > 0.0 && s.throughput_per_s > 0.0);
                assert_eq!(s.enqueue_s.is_some(), queue_first);
                if !queue_first && e.engine != EngineKind::Baseline {
                    // Bounded engines never hold more than capacity, plus one
                    // task per worker (running) and per producer (in hand).
                    assert!(s.depth_max <= 8 + 3 + 4, "{:?} {}", e.engine, s.depth_max);
                }
            }
            assert_eq!(e.error_rate, 0.0);
            assert_eq!(e.ideal_makespan_s.is_some(), workload == Workload::Sleep);
            assert_eq!(e.parallel_efficiency.is_some(), workload == Workload::Cpu);
            assert!(e.vs_baseline.is_some());
            // taskq against the best of the peers that ran beside it.
            match e.vs_best_peer {
                Some((peer, ratio)) => {
                    assert_eq!(e.engine, EngineKind::Taskq);
                    assert!(peer.is_peer() && ratio > 0.0, "{peer:?} {ratio}");
                }
                None => assert_ne!(e.engine, EngineKind::Taskq),
            }
        }
        assert_eq!(
            result.engine(EngineKind::Baseline).unwrap().vs_baseline,
            Some(1.0)
        );
        assert_eq!(result.work_s.is_some(), workload == Workload::Cpu);
    }
}

/// With injected failures, taskq (delay queue) and classic (sleeping in the
/// worker) retry the same attempts, since both draw them from the same seeded
/// processor and policy, and end with the same failures; the baseline does not
/// retry, so it fails every task whose first attempt failed.
#[test]
fn fault_scenarios_retry_the_same_attempts_in_taskq_and_classic() {
    let scenario = Scenario {
        faults: Some(Faults {
            transient_rate: 0.3,
            max_retries: 2,
            backoff_base_ms: 2,
        }),
        tasks: 200,
        repeat: 3,
        ..small(Workload::Sleep, false)
    };
    let result = run_scenario(&scenario, &mut |_| {}).unwrap();
    let runs = |k| &result.engine(k).unwrap().samples;
    let (taskq, classic, baseline) = (
        runs(EngineKind::Taskq),
        runs(EngineKind::Classic),
        runs(EngineKind::Baseline),
    );
    for r in 0..3 {
        let (t, c, b) = (&taskq[r], &classic[r], &baseline[r]);
        for s in [t, c, b] {
            assert_eq!((s.submitted, s.completed), (200, 200));
            assert_eq!(s.succeeded + s.failed, 200);
        }
        // ~30% of 200 first attempts fail, then ~30% of those, ...
        assert!(t.retried > 30 && t.retried < 120, "{}", t.retried);
        assert_eq!((t.retried, t.failed), (c.retried, c.failed), "run {r}");
        // Three failed attempts in a row: 0.3^3 = 2.7% of the tasks.
        assert!(t.failed < 20, "{}", t.failed);
        assert_eq!(b.retried, 0);
        assert!(b.failed > 30 && b.failed < 100, "{}", b.failed);
        // The ideal pool replays this run's failures: at least the extra
        // attempts' rounds, the same for every engine.
        let ideal = t.ideal_makespan_s.unwrap();
        assert!(ideal >= (200 + t.retried).div_ceil(3) as f64 * 0.001 - 1e-9);
        assert_eq!(c.ideal_makespan_s, Some(ideal));
    }
    for e in &result.engines {
        assert!(e.vs_ideal_on_failures.unwrap().median > 0.0);
    }
    // Each repeat draws different failures.
    assert!(
        taskq
            .windows(2)
            .any(|w| w[0].retried != w[1].retried || w[0].failed != w[1].failed),
        "{:?}",
        taskq.iter().map(|s| s.retried).collect::<Vec<_>>()
    );
}

#[test]
fn failures_need_the_sleep_workload_and_a_rate_below_one() {
    let faults = |transient_rate| {
        Some(Faults {
            transient_rate,
            ..Faults::seed()
        })
    };
    let bad = [
        (
            Scenario {
                faults: faults(0.1),
                ..small(Workload::Noop, false)
            },
            "--transient-rate: injected failures need the sleep workload",
        ),
        (
            Scenario {
                faults: faults(1.0),
                ..small(Workload::Sleep, false)
            },
            "--transient-rate: must be a share in [0, 1)",
        ),
        (
            Scenario {
                faults: Some(Faults {
                    max_retries: 1000,
                    ..Faults::seed()
                }),
                ..small(Workload::Sleep, false)
            },
            // The library names the field; the command line, its flag (below).
            "invalid setting retry.max_retries: must be at most 100",
        ),
    ];
    for (scenario, message) in bad {
        let e = scenario.validate().unwrap_err().to_string();
        assert!(e.contains(message), "{e}");
    }
    let out = std::process::Command::new(BIN)
        .args(["bench", "--transient-rate", "0.1", "--max-retries", "1000"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("error: invalid setting --max-retries: must be at most 100"),
        "{stderr}"
    );
}

/// `--transient-rate` runs the fault-free twin first and prints each
/// engine's throughput with failures ÷ without.
#[test]
fn transient_rate_from_the_cli_runs_a_fault_free_twin() {
    let dir = TempDir::new().unwrap();
    let stdout = bench_ok(
        &dir,
        &[
            "--tasks",
            "40",
            "--latency-ms",
            "1",
            "--workers",
            "4",
            "--producers",
            "4",
            "--repeat",
            "2",
            "--engine",
            "taskq,classic,peers",
            "--transient-rate",
            "0.2",
            "--backoff-base-ms",
            "2",
            "--no-plots",
            "--report",
            "f.json",
        ],
    );
    assert!(
        stdout.contains("sleep-faults vs sleep-faults-fault-free"),
        "{stdout}"
    );
    let file = BenchFile::load(&dir.path().join("f.json")).unwrap();
    let names: Vec<&str> = file
        .scenarios
        .iter()
        .map(|r| r.scenario.name.as_str())
        .collect();
    assert_eq!(names, ["sleep-faults-fault-free", "sleep-faults"]);
    assert_eq!(file.scenarios[0].scenario.faults, None);
    let f = file.scenarios[1].scenario.faults.unwrap();
    assert_eq!(
        (f.transient_rate, f.max_retries, f.backoff_base_ms),
        (0.2, 3, 2)
    );
    let ratios = fault_ratios(&file);
    assert_eq!(ratios.len(), 1);
    assert_eq!(
        ratios[0].ratios.len(),
        5,
        "taskq, classic and the three peers"
    );
    let ideal = ratios[0].ideal.unwrap();
    assert!(ideal > 0.0 && ideal <= 1.0, "{ideal}");
    let retried = |k| {
        file.scenarios[1]
            .engine(k)
            .unwrap()
            .samples
            .iter()
            .map(|s| s.retried)
            .sum::<u64>()
    };
    assert!(retried(EngineKind::Taskq) > 0);
    // The failures are drawn per key and attempt: every engine that
    // retries meets the same ones.
    for e in [
        EngineKind::Classic,
        EngineKind::Mpsc,
        EngineKind::Channel,
        EngineKind::Rayon,
    ] {
        assert_eq!(retried(EngineKind::Taskq), retried(e), "{e:?}");
    }

    let out = bench(&dir, &["--workload", "noop", "--transient-rate", "0.1"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--transient-rate"), "{stderr}");
    let out = bench(&dir, &["--backoff-base-ms", "5"]);
    assert!(
        !out.status.success(),
        "--backoff-base-ms needs --transient-rate"
    );
}

/// Every engine deduplicates through its database: each unique key processed
/// once, each repeat detected, one row per unique key (the harness checks the
/// file after every run and fails otherwise), in both taskq durability modes.
#[test]
fn dedup_runs_every_engine_and_checks_its_database() {
    for durability in [DedupDurability::Batch, DedupDurability::GroupCommit] {
        // Durability is taskq's: one peer (claiming keys as classic does)
        // runs in the first round only.
        let mut engines = EngineKind::ALL.to_vec();
        if durability == DedupDurability::Batch {
            engines.push(EngineKind::Channel);
        }
        let scenario = Scenario {
            tasks: 400,
            duplicates: 0.3,
            durability,
            engines: engines.clone(),
            ..small(Workload::Dedup, false)
        };
        let result = run_scenario(&scenario, &mut |_| {}).unwrap();
        assert_eq!(result.engines.len(), engines.len());
        for e in &result.engines {
            assert_eq!(e.duplicates.unwrap().median, 120.0, "{:?}", e.engine);
            for s in &e.samples {
                assert_eq!(
                    (
                        s.submitted,
                        s.completed,
                        s.succeeded,
                        s.duplicates,
                        s.failed
                    ),
                    (400, 400, 280, 120, 0),
                    "{:?}",
                    e.engine
                );
                assert_eq!(s.db_rows, Some(280), "{:?}", e.engine);
                assert_eq!(s.latency_ms.count, 400, "one latency sample per key");
            }
        }
    }
}

/// The Python designs' per-task claim, directly: repeats are never processed,
/// and the table ends with one row per key.
#[test]
fn seed_db_claims_each_key_once_across_workers() {
    let dir = TempDir::new().unwrap();
    let db = SeedDb::create(dir.path().join("seed.db")).unwrap();
    let mut pool = Classic::new(
        ClassicConfig {
            workers: 3,
            capacity: 4,
            retry: None,
        },
        Arc::new(taskq::Noop),
        quanta::Clock::new(),
    )
    .with_seed_db(db.clone());
    struct Count(u64, u64);
    impl Observer for Count {
        fn completed(&mut self, _: Job, _: u64, r: Result<Output, ProcessError>) {
            assert!(r.is_ok());
            self.0 += 1;
        }
        fn duplicate(&mut self, _: Job, _: u64) {
            self.1 += 1;
        }
    }
    pool.start(|_| Count(0, 0)).unwrap();
    let p = pool.producer();
    for i in 0..90u64 {
        // Keys 0..30, each three times.
        p.submit(tasks(30)[(i % 30) as usize].clone());
    }
    let counts = pool.finish();
    let processed: u64 = counts.iter().map(|c| c.0).sum();
    let duplicates: u64 = counts.iter().map(|c| c.1).sum();
    assert_eq!((processed, duplicates), (30, 60));
    let rows: i64 = db
        .connect()
        .unwrap()
        .query_row("SELECT count(*) FROM tasks", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 30);
}

#[test]
fn dedup_from_the_cli_defaults_to_30_percent_duplicates() {
    let dir = TempDir::new().unwrap();
    let stdout = bench_ok(
        &dir,
        &[
            "--workload",
            "dedup",
            "--tasks",
            "200",
            "--workers",
            "2",
            "--producers",
            "1",
            "--repeat",
            "1",
            "--engine",
            "taskq,classic",
            "--durability",
            "group-commit",
            "--no-plots",
            "--report",
            "d.json",
        ],
    );
    assert!(stdout.contains("detected 60 duplicates"), "{stdout}");
    let file = BenchFile::load(&dir.path().join("d.json")).unwrap();
    let s = &file.scenarios[0].scenario;
    assert_eq!(s.name, "dedup-group-commit");
    assert_eq!(
        (s.duplicates, s.durability),
        (0.3, DedupDurability::GroupCommit)
    );
}

fn bench(dir: &TempDir, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .current_dir(dir.path())
        .arg("bench")
        .args(args)
        .timeout(TIMEOUT)
        .output()
        .unwrap()
}

/// Runs `taskq bench` and checks it succeeded; returns its stdout.
fn bench_ok(dir: &TempDir, args: &[&str]) -> String {
    let out = bench(dir, args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// A small CLI run writing its results under `dir`; returns the JSON's path.
fn cli_run(dir: &TempDir) -> std::path::PathBuf {
    let stdout = bench_ok(
        dir,
        &[
            "--workload",
            "sleep",
            "--tasks",
            "30",
            "--latency-ms",
            "2",
            "--workers",
            "3",
            "--producers",
            "5",
            "--capacity",
            "10",
            "--repeat",
            "2",
            "--report",
            "r/run.json",
        ],
    );
    for engine in ["taskq", "baseline", "classic", "mpsc", "channel", "rayon"] {
        assert!(stdout.contains(engine), "{stdout}");
    }
    assert!(stdout.contains("taskq ÷ best peer ("), "{stdout}");
    dir.path().join("r/run.json")
}

#[test]
fn results_are_written_as_json_csv_and_svg() {
    let dir = TempDir::new().unwrap();
    let json = cli_run(&dir);
    let file = BenchFile::load(&json).unwrap();
    assert_eq!(file.scenarios.len(), 1);
    let s = &file.scenarios[0];
    assert_eq!((s.scenario.tasks, s.engines.len()), (30, 6));
    let csv = std::fs::read_to_string(json.with_extension("csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 7, "header + one row per engine:\n{csv}");
    let columns = lines[0].split(',').count();
    assert!(
        lines.iter().all(|l| l.split(',').count() == columns),
        "{csv}"
    );
    for plot in ["run-throughput.svg", "run-latency.svg"] {
        let svg = std::fs::read_to_string(dir.path().join("r").join(plot)).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("taskq"), "{plot}");
    }
}

#[test]
fn default_paths_are_dated_under_results() {
    let dir = TempDir::new().unwrap();
    bench_ok(
        &dir,
        &[
            "--workload",
            "noop",
            "--tasks",
            "200",
            "--producers",
            "2",
            "--workers",
            "2",
            "--repeat",
            "1",
            "--engine",
            "taskq,classic",
            "--no-plots",
        ],
    );
    let date = taskq_bench::today();
    assert!(dir
        .path()
        .join(format!("results/bench-noop-{date}.json"))
        .exists());
    assert!(dir
        .path()
        .join(format!("results/bench-noop-{date}.csv"))
        .exists());
}

/// `file` with every taskq throughput ten times higher: a stored run so much
/// faster that no amount of noise in this one can hide the slowdown.
fn faster(file: &BenchFile) -> BenchFile {
    let mut f = file.clone();
    for s in &mut f.scenarios {
        for e in &mut s.engines {
            if e.engine == EngineKind::Taskq {
                let t = &mut e.throughput_per_s;
                (t.median, t.min, t.max) = (t.median * 10.0, t.min * 10.0, t.max * 10.0);
            }
        }
    }
    f
}

#[test]
fn compare_flags_a_slowdown_and_passes_an_unchanged_run() {
    let dir = TempDir::new().unwrap();
    let json = cli_run(&dir);
    let file = BenchFile::load(&json).unwrap();

    let same = compare(&file, &file, 0.10);
    assert!(!same.has_regressions(), "{}", same.render());
    assert_eq!(same.findings.len(), 6 * 2, "two numbers per engine");
    let slower = compare(&faster(&file), &file, 0.10);
    let regressions: Vec<_> = slower.regressions().collect();
    assert_eq!(regressions.len(), 1, "{}", slower.render());
    assert_eq!(
        (regressions[0].engine, regressions[0].metric),
        (EngineKind::Taskq, "throughput/s")
    );

    // Through the CLI: exit 0 against itself, 4 against the faster stored run.
    let out = bench(&dir, &["--load", "r/run.json", "--compare", "r/run.json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("no regressions"));
    let stored = dir.path().join("r/faster.json");
    std::fs::write(&stored, serde_json::to_string(&faster(&file)).unwrap()).unwrap();
    let out = bench(
        &dir,
        &["--load", "r/run.json", "--compare", "r/faster.json"],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(4), "{stdout}");
    assert!(stdout.contains("REGRESSION"), "{stdout}");
}

#[test]
fn compare_skips_scenarios_whose_settings_differ() {
    let dir = TempDir::new().unwrap();
    let file = BenchFile::load(&cli_run(&dir)).unwrap();
    let mut other = faster(&file);
    other.scenarios[0].scenario.tasks += 1;
    let c = compare(&other, &file, 0.10);
    assert!(!c.has_regressions());
    assert_eq!(c.skipped.len(), 1, "{}", c.render());
}

#[test]
fn record_appends_to_perf_md_history_and_keeps_the_rest() {
    let dir = TempDir::new().unwrap();
    cli_run(&dir);
    let perf = dir.path().join("PERF.md");
    std::fs::write(
        &perf,
        "# Performance\n\nCurrent numbers by hand.\n\n## Notes\n\nkeep\n",
    )
    .unwrap();
    for _ in 0..2 {
        bench_ok(
            &dir,
            &["--load", "r/run.json", "--record", "--perf-md", "PERF.md"],
        );
    }
    let text = std::fs::read_to_string(&perf).unwrap();
    assert!(
        text.starts_with("# Performance\n\nCurrent numbers by hand.\n\n## Notes\n\nkeep\n"),
        "{text}"
    );
    assert_eq!(text.matches("## History").count(), 1, "{text}");
    assert_eq!(text.matches("| sleep | taskq |").count(), 2, "{text}");
}

#[test]
fn smoke_suite_runs_every_scenario() {
    let dir = TempDir::new().unwrap();
    let stdout = bench_ok(&dir, &["--suite", "smoke", "--report", "suite.json"]);
    let file = BenchFile::load(&dir.path().join("suite.json")).unwrap();
    assert_eq!(file.suite.as_deref(), Some("smoke"));
    assert_eq!(file.scenarios.len(), 6);
    assert!(
        stdout.contains("seed-faults-smoke vs seed-smoke"),
        "{stdout}"
    );
    let out = bench(&dir, &["--suite", "smoke", "--workers", "3"]);
    assert!(!out.status.success(), "--suite takes no scenario settings");
}
