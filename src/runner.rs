//! A run over a task file: check the file, start the engine, stream the records
//! to producer threads, show progress, drain, and report.
//!
//! # Steps
//!
//! 1. A regular file is read once in full first ([`precheck_path`]): a bad file
//!    (not JSON, truncated, trailing garbage, a record over the size limit) fails
//!    the run before any work starts, naming the file and line. Standard input
//!    cannot be read twice: it is checked as it streams, and a bad record stops
//!    admission at that record (the run drains what was admitted and fails).
//! 2. The engine starts.
//! 3. One reader thread parses records. Invalid tasks are counted and listed in
//!    the report with their line; valid ones go to `producers` threads (with one
//!    producer, the reader submits itself), each with its own
//!    [`Submitter`](crate::Submitter).
//! 4. When the input ends (or fails) the engine is shut down: admission closes,
//!    admitted tasks drain, the report is built.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, Receiver};
use std::time::Duration;

use serde::Serialize;

use crate::config::EngineConfig;
use crate::engine::{Engine, ProgressHandle, SubmitError, Submitter};
use crate::error::Error;
use crate::input::{open_path, precheck_path, InputFormat, ReaderOptions, Record};
use crate::metrics::{Report, RunStatus};
use crate::processor::{CpuHash, Noop, Processor, Simulated, SimulatedConfig};
use crate::task::Task;

/// Which processor a run uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ProcessorKind {
    /// The seed's blocking I/O, simulated (`--latency-ms`, faults, effects log).
    #[default]
    Simulated,
    /// Nothing: measures the engine alone.
    Noop,
    /// About 2 µs of hashing per task.
    Cpu,
}

/// Everything a file run needs.
#[derive(Clone, Debug, Serialize)]
pub struct RunConfig {
    /// The task file (`-` for standard input).
    pub tasks: PathBuf,
    /// How to read it.
    pub format: InputFormat,
    /// Largest accepted record, bytes.
    pub max_record_bytes: usize,
    /// Producer threads the records are spread over.
    pub producers: usize,
    /// The engine's settings.
    pub engine: EngineConfig,
    /// Which processor.
    pub processor: ProcessorKind,
    /// The simulated processor's settings.
    pub simulated: SimulatedConfig,
    /// Show a progress bar on stderr (only drawn when stderr is a terminal).
    pub progress: bool,
}

impl RunConfig {
    /// A run of `tasks` with default settings.
    pub fn new(tasks: impl Into<PathBuf>) -> Self {
        RunConfig {
            tasks: tasks.into(),
            format: InputFormat::Auto,
            max_record_bytes: ReaderOptions::default().max_record_bytes,
            producers: 1,
            engine: EngineConfig::default(),
            processor: ProcessorKind::Simulated,
            simulated: SimulatedConfig::default(),
            progress: false,
        }
    }

    /// Checks every setting.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the first bad setting.
    pub fn validate(&self) -> Result<(), Error> {
        self.engine.validate()?;
        self.simulated.validate()?;
        if !(1..=1024).contains(&self.producers) {
            return Err(Error::config(
                "producers",
                format!("must be between 1 and 1024, got {}", self.producers),
            ));
        }
        if self.max_record_bytes < 64 {
            return Err(Error::config(
                "max-record-bytes",
                format!("must be at least 64, got {}", self.max_record_bytes),
            ));
        }
        Ok(())
    }

    fn reader_options(&self) -> ReaderOptions {
        ReaderOptions {
            format: self.format,
            max_record_bytes: self.max_record_bytes,
            ..ReaderOptions::default()
        }
    }

    fn is_stdin(&self) -> bool {
        self.tasks.as_os_str() == "-"
    }
}

fn build_processor(config: &RunConfig) -> Result<Box<dyn Processor>, Error> {
    Ok(match config.processor {
        ProcessorKind::Simulated => Box::new(Simulated::new(config.simulated.clone())?),
        ProcessorKind::Noop => Box::new(Noop),
        ProcessorKind::Cpu => Box::new(CpuHash::for_micros(2.0)),
    })
}

/// Runs `config` to the end and returns the report.
///
/// A bad task is listed in the report and the rest run; a bad file or setting
/// fails before any work starts (or, on standard input, stops admission at the
/// bad record: the report is then marked failed and carries the error).
///
/// # Errors
///
/// [`Error::Config`] for a bad setting, [`Error::Input`] for a bad file found
/// before work started, [`Error::Io`] when a thread cannot start.
pub fn run(config: &RunConfig) -> Result<Report, Error> {
    config.validate()?;
    let expected = if config.is_stdin() {
        None
    } else {
        Some(precheck_path(&config.tasks, config.reader_options())?.tasks)
    };
    let reader = open_path(&config.tasks, config.reader_options())?;
    let processor = build_processor(config)?;
    let engine = Engine::start(config.engine.clone(), processor)?;

    let progress = config
        .progress
        .then(|| spawn_progress(engine.progress_handle(), expected));
    let outcome = std::thread::scope(|scope| feed(scope, &engine, reader, config.producers));
    let mut report = engine.shutdown();
    if let Some((stop, handle)) = progress {
        drop(stop);
        let _ = handle.join();
    }
    report.config = serde_json::to_value(config).unwrap_or_default();
    for (line, index, error) in outcome.invalid {
        report.add_invalid(line, index, error);
    }
    report.counts.invalid = outcome.invalid_count;
    if let Some(e) = outcome.error {
        report.status = RunStatus::Failed;
        report.errors.push(e.to_string());
    }
    Ok(report)
}

struct FeedOutcome {
    /// The first `MAX_INVALID_LISTED` invalid records.
    invalid: Vec<(u64, u64, String)>,
    invalid_count: u64,
    error: Option<Error>,
}

/// Reads every record and submits the valid ones; returns what was refused.
fn feed<'scope, R: std::io::BufRead>(
    scope: &'scope std::thread::Scope<'scope, '_>,
    engine: &Engine,
    reader: crate::input::TaskReader<R>,
    producers: usize,
) -> FeedOutcome {
    let mut outcome = FeedOutcome {
        invalid: Vec::new(),
        invalid_count: 0,
        error: None,
    };
    let mut sinks = Vec::new();
    let mut handles = Vec::new();
    if producers > 1 {
        for _ in 0..producers {
            let (tx, rx) = sync_channel::<Task>(256);
            let submitter = engine.submitter();
            handles.push(scope.spawn(move || produce(&submitter, rx)));
            sinks.push(tx);
        }
    }
    let direct = engine.submitter();
    let mut next = 0usize;
    for record in reader {
        match record {
            Ok(Record::Task { task, .. }) => {
                if sinks.is_empty() {
                    if submit_one(&direct, task).is_err() {
                        break;
                    }
                } else {
                    // Round-robin; a producer that stopped (engine closed) drops out.
                    if sinks[next].send(task).is_err() {
                        break;
                    }
                    next = (next + 1) % sinks.len();
                }
            }
            Ok(Record::Invalid { line, index, error }) => {
                outcome.invalid_count += 1;
                if outcome.invalid.len() < crate::metrics::MAX_INVALID_LISTED {
                    outcome.invalid.push((line, index, error.to_string()));
                }
            }
            Err(e) => {
                outcome.error = Some(Error::Input(e));
                break;
            }
        }
    }
    drop(sinks);
    for h in handles {
        let _ = h.join();
    }
    outcome
}

/// Submits one task; a task refused because the engine is full (reject mode) is
/// counted by the engine and skipped. `Err` means the engine closed.
fn submit_one(submitter: &Submitter, task: Task) -> Result<(), ()> {
    match submitter.submit(task) {
        Ok(()) | Err(SubmitError::Full(_)) => Ok(()),
        Err(SubmitError::Closed(_)) => Err(()),
    }
}

fn produce(submitter: &Submitter, rx: Receiver<Task>) {
    for task in rx {
        if submit_one(submitter, task).is_err() {
            return;
        }
    }
}

/// A thread that redraws a progress bar every 100 ms until `stop` is dropped.
fn spawn_progress(
    engine: ProgressHandle,
    expected: Option<u64>,
) -> (std::sync::mpsc::Sender<()>, std::thread::JoinHandle<()>) {
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let handle = std::thread::spawn(move || {
        if !std::io::stderr().is_terminal() {
            return;
        }
        let bar = match expected {
            Some(n) => indicatif::ProgressBar::new(n),
            None => indicatif::ProgressBar::no_length(),
        };
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{elapsed_precise} [{bar:40}] {pos}/{len} tasks {per_sec} {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        loop {
            let p = engine.progress();
            bar.set_position(p.completed);
            bar.set_message(format!("depth {}", p.depth));
            match stopped.recv_timeout(Duration::from_millis(100)) {
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => continue,
                _ => break,
            }
        }
        bar.finish_and_clear();
    });
    (stop, handle)
}

/// The exit code for a finished run: 0 when every admitted task succeeded (or
/// was a duplicate) and nothing was refused; 3 when the run finished but some
/// tasks were invalid, rejected, failed or dead-lettered; 1 when the run failed
/// (the error is in the report).
pub fn exit_code(report: &Report) -> u8 {
    let c = &report.counts;
    match report.status {
        RunStatus::Failed => 1,
        RunStatus::Interrupted => 130,
        RunStatus::Completed if c.invalid + c.rejected + c.failed + c.dead_lettered > 0 => 3,
        RunStatus::Completed => 0,
    }
}
