//! Command-line arguments (`clap`), turned into validated configurations.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::admission::AdmissionMode;
use crate::config::{EngineConfig, PinMode};
use crate::generate::{GenerateOptions, OutputFormat};
use crate::input::InputFormat;
use crate::processor::SimulatedConfig;
use crate::runner::{ProcessorKind, RunConfig};

/// taskq: a bounded, work-stealing task-queue engine for image-variant jobs.
#[derive(Debug, Parser)]
#[command(name = "taskq", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the tasks of a file (JSON array or NDJSON) and report.
    Run(RunArgs),
    /// Write a deterministic task file for tests and benchmarks.
    Generate(GenerateArgs),
}

/// Input formats on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    /// Detect from the first byte: `[` is a JSON array, `{` NDJSON.
    Auto,
    /// A JSON array of task objects.
    Json,
    /// One task object per line.
    Ndjson,
}

/// `taskq run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Task file: a JSON array of tasks or NDJSON (one per line); `-` reads stdin.
    #[arg(long, value_name = "FILE")]
    pub tasks: PathBuf,
    /// Input format.
    #[arg(long, value_enum, default_value_t = FormatArg::Auto)]
    pub format: FormatArg,
    /// Worker threads.
    #[arg(long, default_value_t = 8)]
    pub workers: usize,
    /// Most tasks held at once (queued, running, or waiting for a retry).
    #[arg(long, default_value_t = 200)]
    pub capacity: usize,
    /// At capacity: `block` parks the producer, `reject` refuses and counts the task.
    #[arg(long, value_enum, default_value_t = AdmissionMode::Block)]
    pub admission: AdmissionMode,
    /// Producer threads the file's tasks are spread over (the seed used 100).
    #[arg(long, default_value_t = 1)]
    pub producers: usize,
    /// Pin workers to cores: `auto` pins when workers do not outnumber the
    /// allowed cores, `on` always (round-robin), `off` never.
    #[arg(long, value_enum, default_value_t = PinMode::Auto)]
    pub pin: PinMode,
    /// Write the JSON report here (`-`: to stdout instead of the summary).
    #[arg(long, value_name = "PATH")]
    pub report: Option<PathBuf>,
    /// Do not draw the progress bar (it is only drawn when stderr is a terminal).
    #[arg(long)]
    pub no_progress: bool,
    /// Largest accepted input record, in bytes.
    #[arg(long, default_value_t = 1 << 20, value_name = "BYTES")]
    pub max_record_bytes: usize,
    /// The processor: `simulated` (the seed's blocking I/O), `noop`, or `cpu`
    /// (about 2 µs of hashing).
    #[arg(long, value_enum, default_value_t = ProcessorKind::Simulated)]
    pub processor: ProcessorKind,
    /// Settings of the simulated processor.
    #[command(flatten)]
    pub simulated: SimulatedArgs,
}

/// The simulated processor's settings.
#[derive(Debug, Args)]
pub struct SimulatedArgs {
    /// Simulated I/O time per attempt, milliseconds.
    #[arg(long, default_value_t = 30.0, value_name = "MS")]
    pub latency_ms: f64,
    /// Each attempt's latency is drawn uniformly from latency ± jitter.
    #[arg(long, default_value_t = 0.0, value_name = "MS")]
    pub jitter_ms: f64,
    /// Share of attempts failing transiently (0..1), seeded per key and attempt.
    #[arg(long, default_value_t = 0.0, value_name = "P")]
    pub transient_rate: f64,
    /// Share of keys failing permanently (0..1), seeded per key.
    #[arg(long, default_value_t = 0.0, value_name = "P")]
    pub permanent_rate: f64,
    /// Seed of every simulated draw.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Append `key<TAB>attempt` for every processing performed, written through.
    #[arg(long, value_name = "PATH")]
    pub effects_log: Option<PathBuf>,
}

impl SimulatedArgs {
    /// The processor settings these arguments give.
    pub fn to_config(&self) -> SimulatedConfig {
        SimulatedConfig {
            latency_ms: self.latency_ms,
            jitter_ms: self.jitter_ms,
            transient_rate: self.transient_rate,
            permanent_rate: self.permanent_rate,
            seed: self.seed,
            effects_log: self.effects_log.clone(),
        }
    }
}

impl RunArgs {
    /// The run configuration these arguments give (validated by
    /// [`RunConfig::validate`] when run).
    pub fn to_config(&self) -> RunConfig {
        RunConfig {
            tasks: self.tasks.clone(),
            format: match self.format {
                FormatArg::Auto => InputFormat::Auto,
                FormatArg::Json => InputFormat::Json,
                FormatArg::Ndjson => InputFormat::Ndjson,
            },
            max_record_bytes: self.max_record_bytes,
            producers: self.producers,
            engine: EngineConfig {
                workers: self.workers,
                capacity: self.capacity,
                admission: self.admission,
                pin: self.pin,
                release_batch: None,
            },
            processor: self.processor,
            simulated: self.simulated.to_config(),
            progress: !self.no_progress,
        }
    }
}

/// Output formats of `taskq generate`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum GenFormatArg {
    /// A JSON array, one task per line.
    Json,
    /// One task object per line.
    Ndjson,
}

/// `taskq generate`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// How many tasks.
    #[arg(long)]
    pub count: u64,
    /// Where to write them (`-`: stdout).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = GenFormatArg::Json)]
    pub format: GenFormatArg,
    /// Share of tasks repeating an earlier task's key (0..1).
    #[arg(long, default_value_t = 0.0, value_name = "RATIO")]
    pub duplicates: f64,
    /// Seed: the same seed gives the same file.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

impl GenerateArgs {
    /// The generator options these arguments give.
    pub fn to_options(&self) -> GenerateOptions {
        GenerateOptions {
            count: self.count,
            format: match self.format {
                GenFormatArg::Json => OutputFormat::Json,
                GenFormatArg::Ndjson => OutputFormat::Ndjson,
            },
            duplicates: self.duplicates,
            seed: self.seed,
        }
    }
}
