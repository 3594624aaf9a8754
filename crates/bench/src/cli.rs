//! `taskq bench`: its arguments and what the command does with them.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, ValueEnum};

use super::compare::{compare, record};
use super::driver::SubmitStyle;
use super::suite::{run_scenario, SuiteName};
use super::{
    git_commit, plot, report, today, BenchFile, DedupDurability, EngineKind, Faults, Machine,
    Scenario, Workload,
};

/// Exit code when `--compare` finds a regression.
pub const EXIT_REGRESSION: u8 = 4;

/// An `--engine` value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum EngineArg {
    /// taskq.
    Taskq,
    /// The seed's global-lock list.
    Baseline,
    /// Bounded queue + fixed thread pool.
    Classic,
    /// Peer: threads sharing one `std::sync::mpsc` receiver.
    Mpsc,
    /// Peer: threads sharing a bounded `crossbeam-channel`.
    Channel,
    /// Peer: `rayon::spawn` per task under a semaphore.
    Rayon,
    /// The three peers: mpsc, channel, rayon.
    Peers,
    /// Every engine: taskq, baseline, classic and the peers.
    All,
}

/// `taskq bench`.
#[derive(Debug, Args)]
#[command(after_help = "\
Results: a JSON and a CSV file (default results/bench-<workload>-<date>.json, or \
results/suite-<date>.json for --suite), and SVG plots beside them. Exit code 4: \
--compare found a regression.")]
pub struct BenchArgs {
    /// What each task does: nothing, ~2 µs of hashing, a --latency-ms sleep, or
    /// nothing with --duplicates repeated keys through each engine's
    /// idempotency (taskq's store; the Python designs' per-task SQLite INSERT OR
    /// IGNORE), a fresh database in $TMPDIR per run, checked after it.
    #[arg(long, value_enum, default_value_t = Workload::Sleep)]
    pub workload: Workload,
    /// Tasks per run (built in memory before timing).
    #[arg(long, default_value_t = 100)]
    pub tasks: usize,
    /// Worker threads of every engine.
    #[arg(long, default_value_t = 8)]
    pub workers: usize,
    /// Producer threads the tasks are split among.
    #[arg(long, default_value_t = 100)]
    pub producers: usize,
    /// Queue bound of taskq and classic (the baseline has none).
    #[arg(long, default_value_t = 200)]
    pub capacity: usize,
    /// Sleep per task of the `sleep` workload, milliseconds.
    #[arg(long, default_value_t = 30.0, value_name = "MS")]
    pub latency_ms: f64,
    /// Share of tasks repeating an earlier key (0..1); default 0.3 for dedup,
    /// 0 otherwise.
    #[arg(long, value_name = "RATIO")]
    pub duplicates: Option<f64>,
    /// dedup: how taskq makes records durable (batch: WAL + synchronous=NORMAL;
    /// group-commit: a task completes once its batch is committed with
    /// synchronous=FULL).
    #[arg(long, value_enum, default_value_t = DedupDurability::Batch)]
    pub durability: DedupDurability,
    /// `sleep` only: share of attempts that fail transiently (0..1), drawn
    /// per key and attempt from the repeat's seed. taskq retries through its
    /// delay queue, classic sleeps the backoff in its worker, the baseline
    /// does not retry. The same scenario also runs without failures first,
    /// and each engine's throughput with failures ÷ without is printed.
    #[arg(long, value_name = "RATE")]
    pub transient_rate: Option<f64>,
    /// With --transient-rate: retries of a failed task.
    #[arg(long, default_value_t = 3, requires = "transient_rate")]
    pub max_retries: u32,
    /// With --transient-rate: full-jitter backoff base, milliseconds (the
    /// delay after attempt n is uniform in [0, base·2^(n−1))).
    #[arg(
        long,
        default_value_t = 50,
        value_name = "MS",
        requires = "transient_rate"
    )]
    pub backoff_base_ms: u64,
    /// Engines to run (comma-separated).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "all")]
    pub engine: Vec<EngineArg>,
    /// Runs per engine; the report gives the median and the min-max.
    #[arg(long, default_value_t = 5)]
    pub repeat: usize,
    /// Queue the whole batch before any processing starts (the clock starts
    /// after the enqueue; capacity is raised to the task count).
    #[arg(long)]
    pub queue_first: bool,
    /// How taskq's producers submit: `batch` (submit_iter) or `each` (submit).
    #[arg(long, value_enum, default_value_t = SubmitStyle::Batch)]
    pub taskq_submit: SubmitStyle,
    /// Run once per worker count (comma-separated, like 1,2,4,8) and plot
    /// throughput by workers.
    #[arg(long, value_delimiter = ',', value_name = "N,N,...")]
    pub workers_sweep: Vec<usize>,
    /// The scenario's name in the results (default: the workload's name).
    #[arg(long)]
    pub name: Option<String>,
    /// Run a fixed suite of scenarios instead of one.
    #[arg(long, value_enum, conflicts_with_all = [
        "workload", "tasks", "workers", "producers", "capacity", "latency_ms",
        "duplicates", "engine", "repeat", "queue_first", "workers_sweep", "name", "taskq_submit",
        "durability", "transient_rate",
    ])]
    pub suite: Option<SuiteName>,
    /// Instead of running, read this result file (to print, compare or record it).
    #[arg(long, value_name = "PATH", conflicts_with = "suite")]
    pub load: Option<PathBuf>,
    /// Compare medians with this stored result file; exit 4 on a regression.
    #[arg(long, value_name = "PATH")]
    pub compare: Option<PathBuf>,
    /// Noise threshold of --compare, as a fraction (0.10: a median 10% worse).
    #[arg(long, default_value_t = 0.10, value_name = "FRACTION")]
    pub threshold: f64,
    /// Append a dated entry with these numbers to PERF.md's History section.
    #[arg(long)]
    pub record: bool,
    /// The Markdown file --record appends to.
    #[arg(long, default_value = "PERF.md", value_name = "PATH")]
    pub perf_md: PathBuf,
    /// Where the JSON goes (CSV and SVGs beside it, same stem).
    #[arg(long, value_name = "PATH")]
    pub report: Option<PathBuf>,
    /// Directory of the default result paths.
    #[arg(long, default_value = "results", value_name = "DIR")]
    pub results_dir: PathBuf,
    /// Do not draw the SVG plots.
    #[arg(long)]
    pub no_plots: bool,
    /// pg-noop/pg-sleep: the PostgreSQL server, as a URL of a database to
    /// connect to; each run creates a fresh database beside it and drops it.
    #[arg(long, env = "TASKQ_DATABASE_URL", value_name = "URL")]
    pub pg: Option<String>,
    /// pg-noop/pg-sleep: node counts (`taskq worker` processes on this
    /// machine), one set of runs each.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1",
        value_name = "N,N,..."
    )]
    pub nodes: Vec<usize>,
    /// pg-noop/pg-sleep: the insert→start latency runs' load, as a share of
    /// the median taskq rate measured at the same node count (0: no latency
    /// runs).
    #[arg(long, default_value_t = 0.5, value_name = "SHARE")]
    pub pg_load: f64,
    /// pg-noop/pg-sleep: how long each latency run produces, seconds.
    #[arg(long, default_value_t = 5.0, value_name = "SECONDS")]
    pub pg_load_seconds: f64,
    /// pg-noop/pg-sleep: an extra argument for every `taskq worker` (repeat
    /// it: `--node-arg=--durability --node-arg=group-commit`).
    #[arg(long, allow_hyphen_values = true, value_name = "ARG")]
    pub node_arg: Vec<String>,
}

impl BenchArgs {
    /// The engines named by `--engine`, in run order, without repeats.
    pub fn engines(&self) -> Vec<EngineKind> {
        let mut out: Vec<EngineKind> = Vec::new();
        for a in &self.engine {
            let add: &[EngineKind] = match a {
                EngineArg::Taskq => &[EngineKind::Taskq],
                EngineArg::Baseline => &[EngineKind::Baseline],
                EngineArg::Classic => &[EngineKind::Classic],
                EngineArg::Mpsc => &[EngineKind::Mpsc],
                EngineArg::Channel => &[EngineKind::Channel],
                EngineArg::Rayon => &[EngineKind::Rayon],
                EngineArg::Peers => &EngineKind::PEERS,
                EngineArg::All => &EngineKind::EVERY,
            };
            out.extend(add);
        }
        out.sort();
        out.dedup();
        out
    }

    /// The scenarios to run: the suite's, one per `--workers-sweep` count, or one.
    pub fn scenarios(&self) -> Vec<Scenario> {
        if let Some(suite) = self.suite {
            return suite.scenarios();
        }
        let name = self.name.clone().unwrap_or_else(|| {
            let mut n = self.workload.name().to_string();
            if self.queue_first {
                n.push_str("-queue-first");
            }
            if self.transient_rate.is_some() {
                n.push_str("-faults");
            }
            if self.workload == Workload::Dedup && self.durability != DedupDurability::Batch {
                n.push('-');
                n.push_str(self.durability.name());
            }
            n
        });
        let one = Scenario {
            name,
            workload: self.workload,
            tasks: self.tasks,
            workers: self.workers,
            producers: self.producers,
            capacity: self.capacity,
            latency_ms: self.latency_ms,
            duplicates: self
                .duplicates
                .unwrap_or_else(|| self.workload.default_duplicates()),
            queue_first: self.queue_first,
            repeat: self.repeat,
            engines: self.engines(),
            taskq_submit: self.taskq_submit,
            durability: self.durability,
            faults: self.faults(),
        };
        let sweep: Vec<Scenario> = if self.workers_sweep.is_empty() {
            vec![one]
        } else {
            self.workers_sweep
                .iter()
                .map(|&w| Scenario {
                    name: format!("{}-w{w}", one.name),
                    workers: w,
                    ..one.clone()
                })
                .collect()
        };
        if self.transient_rate.is_none() {
            return sweep;
        }
        // Each scenario with failures follows its fault-free twin.
        sweep
            .into_iter()
            .flat_map(|s| {
                let clean = Scenario {
                    name: format!("{}-fault-free", s.name),
                    faults: None,
                    ..s.clone()
                };
                [clean, s]
            })
            .collect()
    }

    fn faults(&self) -> Option<Faults> {
        self.transient_rate.map(|transient_rate| Faults {
            transient_rate,
            max_retries: self.max_retries,
            backoff_base_ms: self.backoff_base_ms,
        })
    }

    fn stem(&self) -> String {
        match self.suite {
            Some(SuiteName::Standard) => "suite".into(),
            Some(s) => format!("suite-{}", s.name()),
            None => format!("bench-{}", self.workload.name()),
        }
    }
}

/// The command line as typed, for the record.
fn command_line() -> String {
    let mut words = vec!["taskq".to_string()];
    words.extend(std::env::args().skip(1).map(|a| {
        if a.contains(char::is_whitespace) || a.is_empty() {
            format!("'{a}'")
        } else {
            a
        }
    }));
    words.join(" ")
}

/// Runs `taskq bench`: results and tables go to `out`, progress to `log`.
///
/// # Errors
///
/// A bad setting (before anything runs), an engine that cannot start, or a
/// file that cannot be read or written.
pub fn run(args: &BenchArgs, out: &mut dyn Write, log: &mut dyn Write) -> anyhow::Result<ExitCode> {
    if !(0.0..1.0).contains(&args.threshold) {
        anyhow::bail!(
            "invalid setting --threshold: must be a fraction in [0, 1), got {}",
            args.threshold
        );
    }
    if args.workload.on_postgres() && args.load.is_none() && args.suite.is_none() {
        return run_pg(args, out, log);
    }
    let (file, json) = match &args.load {
        Some(path) => (BenchFile::load(path)?, path.clone()),
        None => {
            let file = measure(args, log)?;
            let json = report::json_path(
                args.report.as_deref(),
                &args.results_dir,
                &args.stem(),
                &file.date,
            );
            write_results(args, &file, &json, out)?;
            (file, json)
        }
    };
    write!(out, "{}", report::render(&file))?;
    let mut code = ExitCode::SUCCESS;
    if let Some(stored_path) = &args.compare {
        let stored = BenchFile::load(stored_path)?;
        let cmp = compare(&stored, &file, args.threshold);
        writeln!(out, "against {}:\n{}", stored_path.display(), cmp.render())?;
        if cmp.has_regressions() {
            code = ExitCode::from(EXIT_REGRESSION);
        }
    }
    if args.record {
        record(&args.perf_md, &file, &json)?;
        writeln!(out, "recorded in {}", args.perf_md.display())?;
    }
    Ok(code)
}

/// `--workload pg-noop|pg-sleep`: see [`crate::pg`].
fn run_pg(args: &BenchArgs, out: &mut dyn Write, log: &mut dyn Write) -> anyhow::Result<ExitCode> {
    use crate::pg::{PgBench, PgEngine};
    let Some(url) = args.pg.clone() else {
        anyhow::bail!(
            "--workload {} needs a PostgreSQL server: --pg URL or TASKQ_DATABASE_URL",
            args.workload.name()
        );
    };
    let mut engines = Vec::new();
    for e in &args.engine {
        match e {
            EngineArg::Taskq => engines.push(PgEngine::Taskq),
            EngineArg::Classic => engines.push(PgEngine::ClassicPg),
            EngineArg::All => engines.extend([PgEngine::Taskq, PgEngine::ClassicPg]),
            other @ (EngineArg::Baseline
            | EngineArg::Mpsc
            | EngineArg::Channel
            | EngineArg::Rayon
            | EngineArg::Peers) => anyhow::bail!(
                "invalid setting --engine: the PostgreSQL workloads run taskq and classic (classic-pg), not {}",
                format!("{other:?}").to_lowercase()
            ),
        }
    }
    engines.dedup();
    let taskq_bin = match std::env::var_os("TASKQ_BIN") {
        Some(p) => PathBuf::from(p),
        None => std::env::current_exe().context("cannot find the taskq binary")?,
    };
    let bench = PgBench {
        workload: args.workload.name().to_string(),
        admin_url: url,
        taskq_bin,
        tasks: args.tasks,
        workers: args.workers,
        capacity: args.capacity,
        latency_ms: args.latency_ms,
        nodes: args.nodes.clone(),
        repeat: args.repeat,
        engines,
        load: args.pg_load,
        load_seconds: args.pg_load_seconds,
        worker_flags: args.node_arg.clone(),
    };
    let _ = writeln!(log, "running {} on PostgreSQL", args.workload.name());
    let file = bench.run(command_line(), log)?;
    let json = report::json_path(
        args.report.as_deref(),
        &args.results_dir,
        &args.stem(),
        &file.date,
    );
    if let Some(dir) = json.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    std::fs::write(&json, serde_json::to_string_pretty(&file)? + "\n")
        .with_context(|| format!("cannot write {}", json.display()))?;
    writeln!(out, "results: {}", json.display())?;
    write!(out, "{}", file.render())?;
    Ok(ExitCode::SUCCESS)
}

/// Runs every scenario and collects the results.
fn measure(args: &BenchArgs, log: &mut dyn Write) -> anyhow::Result<BenchFile> {
    let scenarios = args.scenarios();
    // Refuse a bad setting before anything runs.
    for s in &scenarios {
        s.validate()?;
    }
    let mut results = Vec::with_capacity(scenarios.len());
    for s in &scenarios {
        let _ = writeln!(log, "running {}", s.describe());
        let mut progress = |line: &str| {
            let _ = writeln!(log, "  {line}");
        };
        results
            .push(run_scenario(s, &mut progress).with_context(|| format!("scenario {}", s.name))?);
    }
    Ok(BenchFile {
        suite: args.suite.map(|s| s.name().to_string()),
        date: today(),
        commit: git_commit(),
        command: command_line(),
        machine: Machine::current(),
        scenarios: results,
    })
}

fn write_results(
    args: &BenchArgs,
    file: &BenchFile,
    json: &Path,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let csv = report::write(file, json)?;
    writeln!(out, "results: {} {}", json.display(), csv.display())?;
    if !args.no_plots {
        let plots = plot::write_all(file, json, !args.workers_sweep.is_empty())?;
        let names: Vec<String> = plots.iter().map(|p| p.display().to_string()).collect();
        writeln!(out, "plots: {}", names.join(" "))?;
    }
    Ok(())
}
