//! A run over a task file: check the file, start the engine, stream the records
//! to producer threads, show progress, drain, and report.
//!
//! # Steps
//!
//! 1. A regular file is read once in full first ([`precheck_path`](crate::input::precheck_path)): a bad file
//!    (a JSON array that is broken, truncated or followed by garbage, an array
//!    element over the size limit) fails the run before any work starts, naming
//!    the file and line; a broken NDJSON line is one invalid record, counted,
//!    not fatal. With [`RunConfig::strict`] the first invalid record of any kind
//!    fails the run here. Standard input cannot be read twice: it is checked as
//!    it streams, and a bad record (with `strict`, any invalid one) stops
//!    admission at that record (the run drains what was admitted and fails).
//! 2. The engine starts.
//! 3. One reader thread parses records. Invalid tasks are counted and listed in
//!    the report with their line; valid ones go to `producers` threads (with one
//!    producer, the reader submits itself), each with its own
//!    [`Submitter`].
//! 4. When the input ends (or fails, or an [`Interrupt`] fires) the engine is
//!    shut down: admission closes, admitted tasks drain, the report is built.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::mpsc::{channel, sync_channel, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

use crate::input::InputError;
use crate::input::{
    open_path_as, precheck_path_as, source_name, InputFormat, ReaderOptions, Record,
};
use crate::live_page::{LivePage, RunAbout};
use crate::metrics::{MetricsEndpoint, Source};
use crate::store::{download, StoreLocation};
use taskq::config::EngineConfig;
use taskq::engine::{Engine, Observer, Outcome, ProgressHandle, SubmitError, Submitter};
use taskq::error::Error;
use taskq::metrics::{Report, RunStatus};
use taskq::processor::{CpuHash, Noop, Processor, Simulated, SimulatedConfig};
use taskq::setting;
use taskq::task::Task;
use taskq_thumbnail::object_store::{LocalStore, S3Store};
use taskq_thumbnail::samples::{seed_images, SampleOptions, TASKS_KEY};
use taskq_thumbnail::thumbnail::Thumbnail;
use taskq_thumbnail::thumbnail::VARIANTS_PREFIX;

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
    /// The real job: image variants over the object store at `--store`.
    Thumbnail,
}

impl ProcessorKind {
    /// Every kind.
    pub const ALL: [ProcessorKind; 4] = [
        ProcessorKind::Simulated,
        ProcessorKind::Noop,
        ProcessorKind::Cpu,
        ProcessorKind::Thumbnail,
    ];

    /// The name this kind's records carry
    /// ([`Processor::name`] of the processor it builds).
    pub fn record_name(self) -> &'static str {
        match self {
            ProcessorKind::Simulated => "simulated",
            ProcessorKind::Noop => "noop",
            ProcessorKind::Cpu => "cpu",
            ProcessorKind::Thumbnail => taskq_thumbnail::thumbnail::NAME,
        }
    }

    /// The kind whose records carry `name`, if this build has one.
    pub fn from_record_name(name: &str) -> Option<ProcessorKind> {
        Self::ALL.into_iter().find(|k| k.record_name() == name)
    }

    /// The kind as the command line writes it (`--processor thumbnail`).
    pub fn flag(self) -> &'static str {
        match self {
            ProcessorKind::Simulated => "simulated",
            ProcessorKind::Noop => "noop",
            ProcessorKind::Cpu => "cpu",
            ProcessorKind::Thumbnail => "thumbnail",
        }
    }
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
    /// Fail the run at the first invalid record (an invalid task or a broken
    /// NDJSON line) instead of skipping it: a regular file before any work
    /// starts, standard input when the record is reached.
    pub strict: bool,
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
    /// Append `key<TAB>outcome` for every task as it is reported done.
    pub done_log: Option<PathBuf>,
    /// The object store (the thumbnail processor's sources and variants): a
    /// directory or an S3 bucket and prefix.
    pub object_store: Option<StoreLocation>,
    /// The task file is the S3 store's `tasks.json` (`tasks` is then
    /// ignored): it is copied to a temporary file before the run, and named
    /// `s3://BUCKET/PREFIX/tasks.json` in errors.
    pub tasks_in_store: bool,
    /// When `tasks` does not exist yet, first write this many sample images
    /// and their task file into the object store.
    pub seed_images: Option<u64>,
    /// Serve the live values at `http://ADDR/metrics` while the run lasts
    /// (`HOST:PORT`, bound before any work starts).
    pub metrics_addr: Option<String>,
    /// Serve the run's live page at `http://ADDR/` while the run lasts
    /// (`HOST:PORT`, bound before any work starts).
    pub dashboard: Option<String>,
    /// The token the live page's requests must carry (required when
    /// `dashboard` is not a loopback address). Never written to a report.
    #[serde(skip)]
    pub dashboard_token: Option<String>,
}

impl RunConfig {
    /// A run of `tasks` with default settings.
    pub fn new(tasks: impl Into<PathBuf>) -> Self {
        RunConfig {
            tasks: tasks.into(),
            format: InputFormat::Auto,
            max_record_bytes: ReaderOptions::default().max_record_bytes,
            strict: false,
            producers: 1,
            engine: EngineConfig::default(),
            processor: ProcessorKind::Simulated,
            simulated: SimulatedConfig::default(),
            progress: false,
            done_log: None,
            object_store: None,
            tasks_in_store: false,
            seed_images: None,
            metrics_addr: None,
            dashboard: None,
            dashboard_token: None,
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
                setting::PRODUCERS,
                format!("must be between 1 and 1024, got {}", self.producers),
            ));
        }
        match (self.processor, &self.object_store) {
            (ProcessorKind::Thumbnail, None) => {
                return Err(Error::config(
                    setting::OBJECT_STORE,
                    "the thumbnail processor needs --store DIR or --store s3://BUCKET/PREFIX, \
                     the object store holding its images",
                ))
            }
            (ProcessorKind::Thumbnail, Some(_)) => {}
            (other, Some(_)) => {
                return Err(Error::config(
                    setting::OBJECT_STORE,
                    format!(
                        "is used by --processor thumbnail only, not by --processor {}",
                        format!("{other:?}").to_lowercase()
                    ),
                ))
            }
            (_, None) => {}
        }
        if self.seed_images.is_some() && self.object_store.is_none() {
            return Err(Error::config(setting::SEED_IMAGES, "needs --store"));
        }
        if self.tasks_in_store && !matches!(self.object_store, Some(StoreLocation::S3(_))) {
            return Err(Error::config(
                setting::TASKS,
                "only an S3 store (--store s3://…) holds the task file read from the store",
            ));
        }
        if let Some(n) = self.seed_images {
            SampleOptions::new(n).validate().map_err(|_| {
                Error::config(
                    setting::SEED_IMAGES,
                    format!(
                        "must be between 1 and {}, got {n}",
                        taskq_thumbnail::samples::MAX_SAMPLE_IMAGES
                    ),
                )
            })?;
        }
        if self.max_record_bytes < 64 {
            return Err(Error::config(
                setting::MAX_RECORD_BYTES,
                format!("must be at least 64, got {}", self.max_record_bytes),
            ));
        }
        Ok(())
    }

    fn reader_options(&self) -> ReaderOptions {
        ReaderOptions {
            format: self.format,
            max_record_bytes: self.max_record_bytes,
            strict: self.strict,
            ..ReaderOptions::default()
        }
    }

    fn is_stdin(&self) -> bool {
        self.tasks.as_os_str() == "-"
    }
}

/// The processor `config` asks for. The thumbnail processor's store is
/// opened, locked for as long as the processor lives (one run per store), and
/// swept of temporary files left by interrupted writes.
///
/// # Errors
///
/// [`Error::Config`] for bad processor settings, [`Error::StoreInUse`] when
/// another run holds the object store, [`Error::Io`] when the effects log or
/// the object store cannot be opened.
pub fn build_processor(config: &RunConfig) -> Result<Arc<dyn Processor>, Error> {
    build_processor_with(config, None)
}

/// As [`build_processor`], over `s3` when the store is that S3 store
/// already opened.
fn build_processor_with(
    config: &RunConfig,
    s3: Option<&S3Store>,
) -> Result<Arc<dyn Processor>, Error> {
    Ok(match config.processor {
        ProcessorKind::Simulated => Arc::new(Simulated::new(config.simulated.clone())?),
        ProcessorKind::Noop => Arc::new(Noop),
        ProcessorKind::Cpu => Arc::new(CpuHash::for_micros(2.0)),
        ProcessorKind::Thumbnail => {
            let location = config.object_store.as_ref().ok_or_else(|| {
                Error::config(
                    setting::OBJECT_STORE,
                    "the thumbnail processor needs --store",
                )
            })?;
            let root = match location {
                StoreLocation::Dir(root) => root,
                StoreLocation::S3(location) => {
                    let store = match s3 {
                        Some(store) => store.clone(),
                        None => StoreLocation::open_s3(location)?,
                    };
                    // Requests take milliseconds: one CPU slot per core, so
                    // that workers waiting on S3 leave the cores to the rest.
                    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
                    return Ok(Arc::new(Thumbnail::new(store).with_cpu_slots(cores)));
                }
            };
            let mut store = LocalStore::open(root)?;
            // One run per store, held as long as the processor: the sweep
            // below would otherwise delete another run's writes in progress.
            store.lock()?;
            // Temporary files of writes a crash interrupted: no key names them.
            let swept = store.sweep_temp(VARIANTS_PREFIX).map_err(|e| {
                Error::io(
                    format!("cannot clean the object store {}", root.display()),
                    std::io::Error::other(e.to_string()),
                )
            })?;
            if swept > 0 {
                tracing::info!(swept, "removed temporary files of interrupted writes");
            }
            Arc::new(Thumbnail::new(store))
        }
    })
}

/// Checks the object store root; with `--seed-images N` and no task file yet,
/// creates it and writes the samples and their task file into it.
fn seed_if_needed(config: &RunConfig) -> Result<(), Error> {
    let Some(StoreLocation::Dir(root)) = &config.object_store else {
        return Ok(());
    };
    match config.seed_images {
        Some(n) if !config.tasks.exists() => {
            let mut store = LocalStore::create(root)?;
            store.lock()?;
            seed_images(&store, &SampleOptions::new(n))?;
        }
        // A missing root is named as such, not as a missing task file in it.
        _ => drop(LocalStore::open(root)?),
    }
    Ok(())
}

/// The S3 store's task file, copied to a temporary file, and its name;
/// with `--seed-images N` and no task file yet, the samples and their task
/// file are written into the store first.
fn store_task_file(
    config: &RunConfig,
    store: &S3Store,
) -> Result<(tempfile::NamedTempFile, String), Error> {
    let name = store.location().url_of(TASKS_KEY);
    if let Some(file) = download(store, TASKS_KEY, &name)? {
        return Ok((file, name));
    }
    if let Some(n) = config.seed_images {
        seed_images(store, &SampleOptions::new(n))?;
        if let Some(file) = download(store, TASKS_KEY, &name)? {
            return Ok((file, name));
        }
    }
    Err(Error::io(
        format!("cannot read the task file {name}"),
        std::io::Error::new(std::io::ErrorKind::NotFound, "no such object"),
    ))
}

/// The `--done-log` observer: one line per task as it is reported done
/// (`key<TAB>succeeded|duplicate|failed|dead_lettered`), each written with one
/// `write(2)` on an append-only file, so the lines of concurrent completions
/// never interleave and a line is in the file before anything later happens.
/// Auditors compare it with the effects log: in group-commit mode no task in it
/// may ever be processed again.
struct DoneLog(std::fs::File);

impl DoneLog {
    fn open(path: &std::path::Path) -> Result<Self, Error> {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map(DoneLog)
            .map_err(|e| Error::io(format!("cannot open done log {}", path.display()), e))
    }
}

impl Observer for DoneLog {
    fn on_complete(&self, task: &Task, outcome: Outcome<'_>) {
        use std::io::Write;
        let what = match outcome {
            Outcome::Succeeded { .. } => "succeeded",
            Outcome::Duplicate { .. } => "duplicate",
            Outcome::Failed { .. } => "failed",
            Outcome::DeadLettered { .. } => "dead_lettered",
        };
        let line = format!("{}\t{what}\n", task.idempotency_key());
        // An audit aid: a failed write must not fail the task.
        let _ = (&self.0).write_all(line.as_bytes());
    }
}

/// Stops a [`run`] from another thread (a signal handler): admission closes,
/// admitted work drains, and the report is marked interrupted.
#[derive(Clone, Default)]
pub struct Interrupt {
    inner: Arc<Mutex<InterruptState>>,
}

#[derive(Default)]
struct InterruptState {
    signal: Option<i32>,
    engine: Option<ProgressHandle>,
    wake: Option<Sender<Event>>,
}

impl Interrupt {
    /// A handle nothing has triggered yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Interrupts the run with `signal` (its number, for the exit code).
    /// Returns false if it had already been interrupted (the caller may then
    /// exit at once).
    pub fn trigger(&self, signal: i32) -> bool {
        let mut st = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if st.signal.is_some() {
            return false;
        }
        st.signal = Some(signal);
        if let Some(engine) = &st.engine {
            engine.close();
        }
        if let Some(wake) = &st.wake {
            let _ = wake.send(Event::Interrupted);
        }
        true
    }

    /// The signal that interrupted the run, if any.
    pub fn signal(&self) -> Option<i32> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).signal
    }

    fn attach(&self, engine: ProgressHandle, wake: Sender<Event>) {
        let mut st = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if st.signal.is_some() {
            engine.close();
            let _ = wake.send(Event::Interrupted);
        }
        st.engine = Some(engine);
        st.wake = Some(wake);
    }
}

enum Event {
    Fed,
    Interrupted,
}

/// Runs `config` to the end and returns the report.
///
/// A bad task is listed in the report and the rest run; a bad file or setting
/// fails before any work starts (or, on standard input, stops admission at the
/// bad record: the report is then marked failed and carries the error).
///
/// # Errors
///
/// [`RunError::Input`] for a bad file found before work started, and
/// [`RunError::Engine`] with [`Error::Config`] for a bad setting,
/// [`Error::Store`] when the database cannot be opened, [`Error::Io`] when a
/// thread cannot start.
pub fn run(config: &RunConfig) -> Result<Report, RunError> {
    run_with(config, &Interrupt::new())
}

/// Like [`run`], stopping early when `interrupt` is triggered: admission
/// closes, admitted tasks drain (bounded by the shutdown timeout), and the
/// report says `interrupted`.
///
/// # Errors
///
/// As [`run`].
pub fn run_with(config: &RunConfig, interrupt: &Interrupt) -> Result<Report, RunError> {
    config.validate()?;
    let mut metrics = config
        .metrics_addr
        .as_deref()
        .map(MetricsEndpoint::bind)
        .transpose()?;
    let mut dashboard = config
        .dashboard
        .as_deref()
        .map(|addr| LivePage::bind(addr, config.dashboard_token.as_deref()))
        .transpose()?;
    // An S3 store is opened (and its bucket checked) before anything else.
    let s3 = match &config.object_store {
        Some(StoreLocation::S3(location)) => Some(StoreLocation::open_s3(location)?),
        _ => None,
    };
    seed_if_needed(config)?;
    let from_store = match &s3 {
        Some(store) if config.tasks_in_store => Some(store_task_file(config, store)?),
        _ => None,
    };
    let (tasks, name) = match &from_store {
        Some((file, name)) => (file.path().to_path_buf(), name.clone()),
        None => (config.tasks.clone(), source_name(&config.tasks)),
    };
    let expected = if config.is_stdin() && from_store.is_none() {
        None
    } else {
        Some(precheck_path_as(&tasks, &name, config.reader_options())?.tasks)
    };
    let reader = open_path_as(&tasks, &name, config.reader_options())?;
    let processor = build_processor_with(config, s3.as_ref())?;
    let mut builder = Engine::builder(config.engine.clone());
    if let Some(path) = &config.done_log {
        builder = builder.observer(DoneLog::open(path)?);
    }
    let engine = builder.start(processor.clone())?;
    if let Some(endpoint) = &mut metrics {
        endpoint.serve(Source::Run(engine.progress_handle()))?;
        endpoint.announce();
    }
    if let Some(page) = &mut dashboard {
        let about = RunAbout {
            source: name.clone(),
            expected,
            processor: processor.name().to_string(),
        };
        page.serve(engine.progress_handle(), about)?;
        page.announce();
    }

    let progress = config
        .progress
        .then(|| spawn_progress(engine.progress_handle(), expected));
    let (wake, events) = channel();
    interrupt.attach(engine.progress_handle(), wake.clone());
    // The feeder runs on its own thread, so that an interrupt does not have to
    // wait for a read from a stalled standard input to return.
    let state = Arc::new(Mutex::new(FeedOutcome::default()));
    let submitters: Vec<Submitter> = (0..config.producers).map(|_| engine.submitter()).collect();
    let feeder = {
        let state = state.clone();
        std::thread::Builder::new()
            .name("taskq-reader".into())
            .spawn(move || {
                feed(reader, submitters, &state);
                let _ = wake.send(Event::Fed);
            })
            .map_err(|e| Error::io("cannot start the reader thread", e))?
    };
    let interrupted = matches!(events.recv(), Ok(Event::Interrupted));
    if !interrupted {
        let _ = feeder.join();
    }
    let mut report = engine.shutdown();
    if let Some((stop, handle)) = progress {
        drop(stop);
        let _ = handle.join();
    }
    report.config = serde_json::to_value(config).unwrap_or_default();
    if let Some(mut own) = processor.report() {
        own.finish(report.elapsed_s);
        report.processor = Some(own);
    }
    let outcome = std::mem::take(&mut *state.lock().unwrap_or_else(|p| p.into_inner()));
    for (line, index, error) in outcome.invalid {
        report.add_invalid(line, index, error);
    }
    report.counts.invalid = outcome.invalid_count;
    if let Some(e) = outcome.error {
        report.status = RunStatus::Failed;
        report.errors.push(e.to_string());
    }
    if let Some(signal) = interrupt.signal() {
        if report.status == RunStatus::Completed {
            report.status = RunStatus::Interrupted;
        }
        report.interrupted_by = Some(signal_name(signal));
    }
    Ok(report)
}

/// Why a file run could not start: the engine's error, or the task file's.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A setting, the store, a thread or a file of the engine's.
    #[error(transparent)]
    Engine(#[from] Error),
    /// The task file is unreadable or malformed (found before work started).
    #[error(transparent)]
    Input(#[from] InputError),
}

fn signal_name(signal: i32) -> String {
    match signal {
        2 => "SIGINT".into(),
        15 => "SIGTERM".into(),
        n => format!("signal {n}"),
    }
}

#[derive(Default)]
struct FeedOutcome {
    /// The first `MAX_INVALID_LISTED` invalid records.
    invalid: Vec<(u64, u64, String)>,
    invalid_count: u64,
    error: Option<InputError>,
}

/// Reads every record and submits the valid ones; records what was refused in
/// `state` as it goes.
fn feed<R: std::io::BufRead>(
    reader: crate::input::TaskReader<R>,
    mut submitters: Vec<Submitter>,
    state: &Mutex<FeedOutcome>,
) {
    if submitters.len() == 1 {
        let direct = submitters.pop().expect("one producer");
        read_all(reader, state, |task| submit_one(&direct, task));
        return;
    }
    std::thread::scope(|scope| {
        let mut sinks = Vec::new();
        for submitter in submitters {
            let (tx, rx) = sync_channel::<Task>(256);
            scope.spawn(move || {
                for task in rx {
                    if !submit_one(&submitter, task) {
                        return;
                    }
                }
            });
            sinks.push(tx);
        }
        let mut next = 0usize;
        // Round-robin; a producer that stopped (engine closed) ends the reading.
        read_all(reader, state, |task| {
            let sent = sinks[next].send(task).is_ok();
            next = (next + 1) % sinks.len();
            sent
        });
    });
}

/// Hands every valid task to `dispatch` until it returns false.
fn read_all<R: std::io::BufRead>(
    reader: crate::input::TaskReader<R>,
    state: &Mutex<FeedOutcome>,
    mut dispatch: impl FnMut(Task) -> bool,
) {
    for record in reader {
        match record {
            Ok(Record::Task { task, .. }) => {
                if !dispatch(task) {
                    return;
                }
            }
            Ok(Record::Invalid { line, index, error }) => {
                let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
                st.invalid_count += 1;
                if st.invalid.len() < taskq::metrics::MAX_INVALID_LISTED {
                    st.invalid.push((line, index, error.to_string()));
                }
            }
            Err(e) => {
                state.lock().unwrap_or_else(|p| p.into_inner()).error = Some(e);
                return;
            }
        }
    }
}

/// Submits one task; a task refused because the engine is full (reject mode)
/// is counted by the engine and skipped. False once the engine closed.
fn submit_one(submitter: &Submitter, task: Task) -> bool {
    !matches!(submitter.submit(task), Err(SubmitError::Closed(_)))
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
/// (the error is in the report); 130 or 143 when interrupted by SIGINT or
/// SIGTERM.
pub fn exit_code(report: &Report) -> u8 {
    let c = &report.counts;
    match report.status {
        RunStatus::Failed => 1,
        RunStatus::Interrupted => match report.interrupted_by.as_deref() {
            Some("SIGTERM") => 143,
            _ => 130,
        },
        RunStatus::Completed if c.invalid + c.rejected + c.failed + c.dead_lettered > 0 => 3,
        RunStatus::Completed => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `dlq retry` finds the processor of a dead letter by the name its
    /// records carry: each kind's name is the one its processor records.
    #[test]
    fn each_kind_names_its_records_as_its_processor_does() {
        let dir = tempfile::tempdir().unwrap();
        for kind in ProcessorKind::ALL {
            let mut config = RunConfig::new("-");
            config.processor = kind;
            if kind == ProcessorKind::Thumbnail {
                config.object_store = Some(StoreLocation::Dir(dir.path().to_path_buf()));
            }
            let processor = build_processor(&config).unwrap();
            assert_eq!(processor.name(), kind.record_name(), "{kind:?}");
            assert_eq!(
                ProcessorKind::from_record_name(kind.record_name()),
                Some(kind)
            );
        }
        assert_eq!(ProcessorKind::from_record_name(""), None);
        assert_eq!(ProcessorKind::from_record_name("thumbnail/v0"), None);
    }
}
