//! Command-line arguments (`clap`), turned into validated configurations.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::input::{InputFormat, ReaderOptions};
use crate::runner::{ProcessorKind, RunConfig};
use crate::store::StoreLocation;
use taskq::config::EngineConfig;
use taskq::error::Error;
use taskq::idempotency::{Durability, StoreConfig};
use taskq::processor::ErrorClass;
use taskq::processor::SimulatedConfig;
use taskq::retry::RetryPolicy;
use taskq::setting;
use taskq::setting::Choice;
use taskq::{AdmissionMode, PinMode};
use taskq_bench::generate::{GenerateOptions, OutputFormat};

/// taskq: a bounded, work-stealing task-queue engine for image-variant jobs.
#[derive(Debug, Parser)]
#[command(name = "taskq", version, about, long_about = None)]
pub struct Cli {
    /// Log events on stderr as text, or as JSON lines (one object per event,
    /// for log shippers). Which events: RUST_LOG (default `warn`; task-level
    /// events with `RUST_LOG=taskq=debug`, or `trace` for every task).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// How log events are written to stderr (`--log-format`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per line, the event's fields at its top level.
    Json,
}

/// A value parser for a setting the library names its values of
/// ([`Choice`]): `--help` lists each name with its line, and a wrong one is
/// refused with the list.
pub fn choice<T: Choice + Send + Sync>() -> impl clap::builder::TypedValueParser<Value = T> {
    use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
    PossibleValuesParser::new(
        T::CHOICES
            .iter()
            .map(|&(_, name, help)| PossibleValue::new(name).help(help)),
    )
    .map(|name| T::from_name(&name).expect("clap accepted one of CHOICES"))
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the tasks of a file (JSON array or NDJSON) and report.
    Run(Box<RunArgs>),
    /// Write a deterministic task file for tests and benchmarks.
    Generate(GenerateArgs),
    /// Benchmark taskq against the designs it replaces (results/ JSON, CSV, SVG).
    Bench(Box<taskq_bench::cli::BenchArgs>),
    /// Inspect, re-drive or purge the dead-letter queue.
    #[command(subcommand)]
    Dlq(DlqCommand),
    /// Write deterministic sample images and their task file into an object store.
    SeedImages(SeedImagesArgs),
    /// Create or upgrade the PostgreSQL queue's schema (the other queue
    /// commands do it too, when needed).
    Migrate(PgArgs),
    /// Put the tasks of a file into the PostgreSQL queue, deduplicated by
    /// idempotency key in the database.
    Enqueue(Box<EnqueueArgs>),
    /// Run a node of the PostgreSQL queue: claim tasks, run them on this
    /// machine's engine, write their outcomes back, until stopped (SIGTERM:
    /// finish what runs, hand back the rest, exit 143).
    Worker(Box<WorkerArgs>),
    /// Delete succeeded tasks of the PostgreSQL queue finalized longer ago
    /// than a retention (their keys may then be enqueued again).
    Prune(PruneArgs),
    /// Show the PostgreSQL queue: tasks by state, the oldest available
    /// task's age, retries, dead letters, and each node's heartbeat.
    Status(StatusArgs),
    /// Serve a web page over the PostgreSQL queue: counts and rates, nodes,
    /// dead letters (retry, purge), a task by key. Listens on 127.0.0.1
    /// unless told otherwise; any other address needs --auth-token.
    Dashboard(DashboardArgs),
}

/// `taskq dashboard`.
#[derive(Debug, Args)]
pub struct DashboardArgs {
    /// The queue.
    #[command(flatten)]
    pub pg: PgArgs,
    /// Where to listen, `HOST:PORT`.
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "HOST:PORT")]
    pub addr: String,
    /// The token every request must carry (`Authorization: Bearer TOKEN`, or
    /// open `/?token=TOKEN` once); required to listen off loopback.
    #[arg(
        long,
        env = "TASKQ_DASHBOARD_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub auth_token: Option<String>,
    /// Show the queue only: no retry or purge (POSTs are refused).
    #[arg(long)]
    pub read_only: bool,
}

/// The PostgreSQL queue to use.
#[derive(Debug, Args)]
pub struct PgArgs {
    /// The queue's database: `postgres://USER@HOST:PORT/DATABASE` (or
    /// key=value pairs), from this flag or TASKQ_DATABASE_URL.
    #[arg(long, env = "TASKQ_DATABASE_URL", value_name = "URL")]
    pub pg: String,
}

/// `taskq enqueue`.
#[derive(Debug, Args)]
pub struct EnqueueArgs {
    /// The queue.
    #[command(flatten)]
    pub pg: PgArgs,
    /// Task file: a JSON array of tasks or NDJSON (one per line); `-` reads stdin.
    #[arg(long, value_name = "FILE")]
    pub tasks: PathBuf,
    /// The file's layout.
    #[arg(long, value_enum, default_value_t = FormatArg::Auto)]
    pub format: FormatArg,
    /// Stop at the first invalid record instead of skipping it (tasks before
    /// it stay enqueued).
    #[arg(long)]
    pub strict: bool,
    /// The processor the tasks are for: a key is done once per processor.
    #[arg(long, value_enum, default_value_t = ProcessorKind::Simulated)]
    pub processor: ProcessorKind,
    /// Retries of a transiently failed task (so at most this + 1 attempts).
    #[arg(long, default_value_t = 3)]
    pub max_retries: u32,
    /// Tasks per inserted batch (one statement and one transaction each).
    #[arg(long, default_value_t = taskq_pg::enqueue::DEFAULT_BATCH)]
    pub batch_size: usize,
    /// How each batch is sent: `unnest` (one INSERT of array parameters) or
    /// `copy` (binary COPY into a staging table, then one INSERT).
    #[arg(long, value_parser = choice::<taskq_pg::EnqueueMethod>(), default_value = "unnest")]
    pub method: taskq_pg::EnqueueMethod,
    /// Print the counts as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

impl EnqueueArgs {
    /// The reader's settings.
    pub fn reader_options(&self) -> ReaderOptions {
        ReaderOptions {
            format: self.format.into(),
            strict: self.strict,
            ..ReaderOptions::default()
        }
    }
}

/// `taskq worker`.
#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// The queue.
    #[command(flatten)]
    pub pg: PgArgs,
    /// The processor whose tasks this node claims.
    #[arg(long, value_enum, default_value_t = ProcessorKind::Simulated)]
    pub processor: ProcessorKind,
    /// The object store (`--processor thumbnail`): a directory, or
    /// `s3://BUCKET/PREFIX` (settings from AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID,
    /// AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ALLOW_HTTP).
    #[arg(long = "store", value_name = "DIR|s3://BUCKET/PREFIX")]
    pub object_store: Option<StoreLocation>,
    /// Worker threads [default: 8; with an S3 store, 8 per core].
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
    /// Most tasks this node holds at once (claimed and not yet written back).
    #[arg(long, default_value_t = 200)]
    pub capacity: usize,
    /// Pin workers to cores, as for `run`.
    #[arg(long, value_parser = choice::<PinMode>(), default_value = PinMode::Auto.name())]
    pub pin: PinMode,
    /// Exit (0) once the queue holds no available or running task of this
    /// processor.
    #[arg(long)]
    pub exit_when_empty: bool,
    /// Backoff base of a transient failure before the task is available
    /// again: drawn from [0, min(max, base·2^(attempt−1))).
    #[arg(long, default_value_t = 50, value_name = "MS")]
    pub backoff_base_ms: u64,
    /// Backoff cap.
    #[arg(long, default_value_t = 5000, value_name = "MS")]
    pub backoff_max_ms: u64,
    /// Seconds between this node's heartbeats.
    #[arg(long, default_value_t = 2.0, value_name = "SECONDS")]
    pub heartbeat: f64,
    /// A node silent this long is declared dead and its tasks go back to
    /// the queue.
    #[arg(long, default_value_t = 20.0, value_name = "SECONDS")]
    pub rescue_after: f64,
    /// A task claimed this long ago goes back to the queue whoever holds it
    /// (a hung processor; a completion the server lost in a crash).
    #[arg(long, default_value_t = 3600.0, value_name = "SECONDS")]
    pub deadline: f64,
    /// How a batch of outcomes is committed: `batch` does not wait for the
    /// server's WAL flush (a server crash can make the last fraction of a
    /// second of tasks run again, after the deadline); `group-commit` waits.
    #[arg(long, value_parser = choice::<Durability>(), default_value = Durability::Batch.name())]
    pub durability: Durability,
    /// Stop with an error once the server has been unreachable this long
    /// (the node reconnects with backoff until then).
    #[arg(long, default_value_t = 300.0, value_name = "SECONDS")]
    pub give_up_after: f64,
    /// Vacuum the tasks table once it holds this many dead row versions
    /// (one node at a time; 0: leave it to autovacuum). Every claim and
    /// completion leaves one, and claiming slows down as they pile up.
    #[arg(long, default_value_t = 500_000, value_name = "ROWS")]
    pub vacuum_after: u64,
    /// Write the node's JSON report here when it stops.
    #[arg(long, value_name = "PATH")]
    pub report: Option<PathBuf>,
    /// Serve the node's live metrics (Prometheus text format, a `node`
    /// label on every series) at http://HOST:PORT/metrics.
    #[arg(long, value_name = "HOST:PORT")]
    pub metrics_addr: Option<String>,
    /// The simulated processor.
    #[command(flatten)]
    pub simulated: SimulatedArgs,
}

impl WorkerArgs {
    /// The node's settings.
    pub fn to_options(&self) -> Result<taskq_pg::worker::WorkerOptions, Error> {
        let seconds = |name: &'static str, v: f64| {
            if v.is_finite() && (0.05..=3600.0).contains(&v) {
                Ok(std::time::Duration::from_secs_f64(v))
            } else {
                Err(Error::config(
                    name,
                    format!("must be between 0.05 and 3600 seconds, got {v}"),
                ))
            }
        };
        let heartbeat = seconds("--heartbeat", self.heartbeat)?;
        let rescue_after = seconds("--rescue-after", self.rescue_after)?;
        let give_up_after = seconds("--give-up-after", self.give_up_after)?;
        let deadline =
            if self.deadline.is_finite() && (1.0..=7.0 * 86400.0).contains(&self.deadline) {
                std::time::Duration::from_secs_f64(self.deadline)
            } else {
                return Err(Error::config(
                    "--deadline",
                    format!(
                        "must be between 1 second and 7 days (604800), got {}",
                        self.deadline
                    ),
                ));
            };
        if rescue_after < heartbeat * 2 {
            return Err(Error::config(
                "--rescue-after",
                format!(
                    "must be at least two heartbeats ({:.2} s), got {:.2} s",
                    2.0 * self.heartbeat,
                    self.rescue_after
                ),
            ));
        }
        let options = taskq_pg::worker::WorkerOptions {
            engine: EngineConfig {
                workers: default_workers(self.workers, self.object_store.as_ref()),
                capacity: self.capacity,
                pin: self.pin,
                ..EngineConfig::default()
            },
            backoff: RetryPolicy {
                max_retries: 0,
                backoff_base_ms: self.backoff_base_ms,
                backoff_max_ms: self.backoff_max_ms,
                seed: self.simulated.seed,
            },
            heartbeat,
            rescue_after,
            deadline,
            durability: self.durability,
            give_up_after,
            vacuum_after: self.vacuum_after,
            exit_when_empty: self.exit_when_empty,
            ..taskq_pg::worker::WorkerOptions::default()
        };
        options.engine.validate()?;
        options.backoff.validate()?;
        Ok(options)
    }

    /// A run configuration that builds this node's processor.
    pub fn processor_config(&self) -> RunConfig {
        RunConfig {
            processor: self.processor,
            simulated: self.simulated.to_config(),
            object_store: self.object_store.clone(),
            ..RunConfig::new("-")
        }
    }
}

/// `taskq prune`.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// The queue.
    #[command(flatten)]
    pub pg: PgArgs,
    /// Retention: `30d`, `12h`, `90m` or `45s`.
    #[arg(long, value_parser = parse_age, value_name = "AGE")]
    pub older_than: std::time::Duration,
    /// Rows deleted per statement (each its own transaction).
    #[arg(long, default_value_t = 1000)]
    pub batch_size: usize,
}

/// `30d`, `12h`, `90m`, `45s` as a duration.
pub fn parse_age(s: &str) -> Result<std::time::Duration, String> {
    let expected = || format!("expected a number and a unit (30d, 12h, 90m, 45s), got {s:?}");
    let unit = s.chars().last().ok_or_else(expected)?;
    let secs = match unit {
        'd' => 86_400.0,
        'h' => 3_600.0,
        'm' => 60.0,
        's' => 1.0,
        _ => return Err(expected()),
    };
    let n: f64 = s[..s.len() - 1].parse().map_err(|_| expected())?;
    if !n.is_finite() || n < 0.0 || n * secs > 1e10 {
        return Err(expected());
    }
    Ok(std::time::Duration::from_secs_f64(n * secs))
}

/// `taskq status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The queue.
    #[command(flatten)]
    pub pg: PgArgs,
    /// Print the status as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// `taskq seed-images`.
#[derive(Debug, Args)]
pub struct SeedImagesArgs {
    /// The object store: a directory (created if missing), or
    /// `s3://BUCKET/PREFIX` (the bucket must exist).
    #[arg(long, value_name = "DIR|s3://BUCKET/PREFIX")]
    pub store: StoreLocation,
    /// How many images (every 4th is a PNG, the rest JPEGs).
    #[arg(long)]
    pub count: u64,
    /// Seed: the same seed gives the same images.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Image width, pixels.
    #[arg(long, default_value_t = 1024)]
    pub width: u32,
    /// Image height, pixels.
    #[arg(long, default_value_t = 768)]
    pub height: u32,
    /// Variant sizes each image gets a task for, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "200x200,400x400",
        value_name = "WxH,..."
    )]
    pub sizes: Vec<taskq::task::Size>,
}

impl SeedImagesArgs {
    /// The sample options these arguments give.
    pub fn to_options(&self) -> taskq_thumbnail::samples::SampleOptions {
        taskq_thumbnail::samples::SampleOptions {
            count: self.count,
            seed: self.seed,
            width: self.width,
            height: self.height,
            sizes: self.sizes.clone(),
        }
    }
}

/// `taskq dlq …`.
#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// List dead letters (oldest failure first), with the processor that failed each.
    List {
        /// Which database.
        #[command(flatten)]
        db: DlqDbArgs,
        /// Only this idempotency key.
        #[arg(long)]
        key: Option<String>,
        /// Only the dead letters this processor made.
        #[arg(long, value_enum)]
        processor: Option<ProcessorKind>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Run dead-lettered tasks again with the processor that failed them, with
    /// idempotency; clear the ones that succeed. With --pg: re-queue them for
    /// the `taskq worker` nodes (nothing runs here).
    Retry(Box<DlqRetryArgs>),
    /// Delete dead letters.
    Purge {
        /// Which database.
        #[command(flatten)]
        db: DlqDbArgs,
        /// Which dead letters.
        #[command(flatten)]
        selection: SelectionArgs,
        /// Only the dead letters this processor made (PostgreSQL queue only).
        #[arg(long, value_enum)]
        processor: Option<ProcessorKind>,
    },
}

/// The database of a `dlq` command: `--db PATH`, the one of `--store DIR`,
/// or the PostgreSQL queue of `--pg URL`.
#[derive(Debug, Args)]
pub struct DlqDbArgs {
    /// The database [default: taskq.db; with --store DIR: DIR/taskq.db].
    #[arg(long, value_name = "PATH")]
    pub db: Option<PathBuf>,
    /// An object store: `retry` reads and writes the thumbnail processor's
    /// images there. A directory's database is DIR/taskq.db (as for `run`);
    /// with `s3://BUCKET/PREFIX`, --db names the database.
    #[arg(long = "store", value_name = "DIR|s3://BUCKET/PREFIX")]
    pub object_store: Option<StoreLocation>,
    /// The PostgreSQL queue instead: `postgres://USER@HOST:PORT/DATABASE`
    /// (or key=value pairs). Without --pg, --db or --store,
    /// TASKQ_DATABASE_URL is used when set.
    // Not clap's `env`: clap counts a value from the environment as given,
    // so `--db` would conflict with an exported TASKQ_DATABASE_URL.
    #[arg(long, value_name = "URL", conflicts_with_all = ["db", "object_store"])]
    pub pg: Option<String>,
}

/// The variable naming the PostgreSQL queue when no flag names a database.
pub const DATABASE_URL_ENV: &str = "TASKQ_DATABASE_URL";

/// Where a `dlq` command's dead letters are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DlqTarget {
    /// A SQLite database file.
    Sqlite(PathBuf),
    /// The PostgreSQL queue of this URL; `from_env` when it came from
    /// TASKQ_DATABASE_URL rather than `--pg`.
    Pg {
        /// The connection string.
        url: String,
        /// Whether TASKQ_DATABASE_URL gave it.
        from_env: bool,
    },
}

impl DlqDbArgs {
    /// The database file these arguments name.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for an S3 store without `--db`.
    pub fn path(&self) -> Result<PathBuf, Error> {
        match (&self.db, &self.object_store) {
            (Some(db), _) => Ok(db.clone()),
            (None, Some(store)) => store.default_db(),
            (None, None) => Ok(PathBuf::from("taskq.db")),
        }
    }

    /// Where the dead letters are: `--pg URL`; the SQLite database of
    /// `--db` or `--store`; else TASKQ_DATABASE_URL when set and not
    /// empty; else `taskq.db`.
    pub fn target(&self) -> DlqTarget {
        self.target_with(std::env::var(DATABASE_URL_ENV).ok())
    }

    /// [`target`](Self::target) with the environment's value given.
    pub fn target_with(&self, env_url: Option<String>) -> DlqTarget {
        if let Some(url) = &self.pg {
            return DlqTarget::Pg {
                url: url.clone(),
                from_env: false,
            };
        }
        match env_url.filter(|u| !u.trim().is_empty()) {
            Some(url) if self.db.is_none() && self.object_store.is_none() => DlqTarget::Pg {
                url,
                from_env: true,
            },
            // An S3 store without --db names no file: `path` says so when
            // the command reads the database.
            _ => DlqTarget::Sqlite(self.path().unwrap_or_default()),
        }
    }
}

/// `--key K` or `--all`: exactly one.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct SelectionArgs {
    /// Only the dead letter of this idempotency key.
    #[arg(long)]
    pub key: Option<String>,
    /// Every dead letter.
    #[arg(long)]
    pub all: bool,
}

impl SelectionArgs {
    /// The selection these arguments give.
    pub fn to_selection(&self) -> crate::dlq::Selection {
        match &self.key {
            Some(k) => crate::dlq::Selection::Key(k.clone()),
            None => crate::dlq::Selection::All,
        }
    }
}

/// `taskq dlq retry`.
#[derive(Debug, Args)]
pub struct DlqRetryArgs {
    /// Which database (and, for thumbnails, which object store).
    #[command(flatten)]
    pub db: DlqDbArgs,
    /// Which dead letters.
    #[command(flatten)]
    pub selection: SelectionArgs,
    /// Worker threads [default: 8; with an S3 store, 8 per core].
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
    /// Most tasks held at once.
    #[arg(long, default_value_t = 200)]
    pub capacity: usize,
    /// Write the JSON report here (`-`: to stdout instead of the summary).
    #[arg(long, value_name = "PATH")]
    pub report: Option<PathBuf>,
    /// Retry only the dead letters this processor made, with it (`thumbnail`
    /// needs `--store`); dead letters recorded before taskq kept processors
    /// are given to it. Default: the processor that made the selected dead
    /// letters. With --pg: re-queue only this processor's dead tasks.
    #[arg(long, value_enum)]
    pub processor: Option<ProcessorKind>,
    /// Settings of the simulated processor.
    #[command(flatten)]
    pub simulated: SimulatedArgs,
    /// Retries and timeouts.
    #[command(flatten)]
    pub retry: RetryArgs,
}

/// The arguments of `dlq retry` that the PostgreSQL queue uses; the others
/// (threads, report, processor and retry settings) only serve a re-drive
/// that runs the tasks here.
const DLQ_RETRY_PG_ARGS: &[&str] = &["db", "object_store", "pg", "key", "all", "processor"];

impl DlqRetryArgs {
    /// The flags given on the command line (`matches`: those of `dlq
    /// retry`) that only a SQLite re-drive uses, as `--name`: on the
    /// PostgreSQL queue, `retry` re-queues and the worker nodes run the
    /// tasks with their own settings, so these must not be given.
    pub fn sqlite_only_flags(matches: &clap::ArgMatches) -> Vec<String> {
        let cmd = <DlqRetryArgs as Args>::augment_args(clap::Command::new("retry"));
        cmd.get_arguments()
            .filter(|a| !DLQ_RETRY_PG_ARGS.contains(&a.get_id().as_str()))
            .filter(|a| {
                matches!(
                    matches.value_source(a.get_id().as_str()),
                    Some(clap::parser::ValueSource::CommandLine)
                        | Some(clap::parser::ValueSource::EnvVariable)
                )
            })
            .map(|a| match a.get_long() {
                Some(long) => format!("--{long}"),
                None => a.get_id().to_string(),
            })
            .collect()
    }

    /// The processor of `kind` with these arguments' settings.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for bad processor settings (or `--store` missing for
    /// the thumbnail processor), [`Error::Io`] when the effects log or the
    /// object store cannot be opened.
    pub fn to_processor(
        &self,
        kind: ProcessorKind,
    ) -> Result<std::sync::Arc<dyn taskq::Processor>, Error> {
        let mut run = RunConfig::new("-");
        run.processor = kind;
        // `--store` also names the database; only thumbnails read images there.
        run.object_store = self
            .db
            .object_store
            .clone()
            .filter(|_| kind == ProcessorKind::Thumbnail);
        run.simulated = self.simulated.to_config();
        run.validate()?;
        crate::runner::build_processor(&run)
    }

    /// The engine configuration these arguments give.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a setting that cannot even be converted.
    pub fn to_config(&self) -> Result<EngineConfig, Error> {
        Ok(EngineConfig {
            workers: default_workers(self.workers, self.db.object_store.as_ref()),
            capacity: self.capacity,
            store: Some(StoreConfig::new(self.db.path()?)),
            retry: RetryPolicy {
                max_retries: self.retry.max_retries,
                backoff_base_ms: self.retry.backoff_base_ms,
                backoff_max_ms: self.retry.backoff_max_ms,
                seed: self.simulated.seed,
            },
            task_timeout_ms: self.retry.task_timeout_ms,
            shutdown_timeout_ms: shutdown_timeout_ms(self.retry.shutdown_timeout)?,
            panic_class: self.retry.panic_class,
            ..EngineConfig::default()
        })
    }
}

fn shutdown_timeout_ms(seconds: Option<f64>) -> Result<Option<u64>, Error> {
    match seconds {
        None => Ok(None),
        Some(s) if s.is_finite() && (0.0..=86_400.0).contains(&s) => {
            Ok(Some((s * 1000.0).round() as u64))
        }
        Some(s) => Err(Error::config(
            setting::SHUTDOWN_TIMEOUT,
            format!("must be between 0 and 86400 seconds, got {s}"),
        )),
    }
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

impl From<FormatArg> for InputFormat {
    fn from(f: FormatArg) -> Self {
        match f {
            FormatArg::Auto => InputFormat::Auto,
            FormatArg::Json => InputFormat::Json,
            FormatArg::Ndjson => InputFormat::Ndjson,
        }
    }
}

/// Worker threads: `given`, else 8, or 8 per core with an S3 store, whose
/// requests keep a worker waiting for milliseconds: the thumbnail processor
/// then lets one worker per core run its CPU stages at a time
/// ([`Thumbnail::with_cpu_slots`](taskq_thumbnail::Thumbnail::with_cpu_slots)),
/// and the others wait on requests.
pub fn default_workers(given: Option<usize>, store: Option<&StoreLocation>) -> usize {
    match (given, store) {
        (Some(n), _) => n,
        (None, Some(StoreLocation::S3(_))) => {
            8 * std::thread::available_parallelism().map_or(1, |n| n.get())
        }
        (None, _) => 8,
    }
}

/// `taskq run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Task file: a JSON array of tasks or NDJSON (one per line); `-` reads
    /// stdin. Default with `--store`: the store's `tasks.json`.
    #[arg(long, value_name = "FILE", required_unless_present = "object_store")]
    pub tasks: Option<PathBuf>,
    /// The object store, where `--processor thumbnail` reads sources and
    /// writes `variants/{WxH}/{image_key}`: a directory, or
    /// `s3://BUCKET/PREFIX` (settings from AWS_ENDPOINT_URL,
    /// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ALLOW_HTTP;
    /// the run's records stay in the local --db).
    #[arg(long = "store", value_name = "DIR|s3://BUCKET/PREFIX")]
    pub object_store: Option<StoreLocation>,
    /// If the store's `tasks.json` does not exist yet, first write N sample images
    /// (1024x768) and that task file into the store.
    #[arg(
        long,
        value_name = "N",
        requires = "object_store",
        conflicts_with = "tasks"
    )]
    pub seed_images: Option<u64>,
    /// Input format.
    #[arg(long, value_enum, default_value_t = FormatArg::Auto)]
    pub format: FormatArg,
    /// Worker threads [default: 8; with an S3 store, 8 per core].
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
    /// Most tasks held at once (queued, running, or waiting for a retry).
    #[arg(long, default_value_t = 200)]
    pub capacity: usize,
    /// At capacity: `block` parks the producer, `reject` refuses and counts the task.
    #[arg(long, value_parser = choice::<AdmissionMode>(), default_value = AdmissionMode::Block.name())]
    pub admission: AdmissionMode,
    /// Producer threads the file's tasks are spread over (the seed used 100).
    #[arg(long, default_value_t = 1)]
    pub producers: usize,
    /// Pin workers to cores: `auto` pins when workers do not outnumber the
    /// allowed cores, `on` always (round-robin), `off` never.
    #[arg(long, value_parser = choice::<PinMode>(), default_value = PinMode::Auto.name())]
    pub pin: PinMode,
    /// Write the JSON report here (`-`: to stdout instead of the summary).
    #[arg(long, value_name = "PATH")]
    pub report: Option<PathBuf>,
    /// Do not draw the progress bar (it is only drawn when stderr is a terminal).
    #[arg(long)]
    pub no_progress: bool,
    /// Append `key<TAB>outcome` for every task the moment it is reported done.
    #[arg(long, value_name = "PATH")]
    pub done_log: Option<PathBuf>,
    /// Serve live metrics (Prometheus text format) at http://HOST:PORT/metrics
    /// while the run lasts.
    #[arg(long, value_name = "HOST:PORT")]
    pub metrics_addr: Option<String>,
    /// Show the run live in a web page at http://HOST:PORT/ while it lasts:
    /// progress, depth against capacity, each worker's busy ratio and
    /// steals, latency percentiles.
    #[arg(long, value_name = "HOST:PORT")]
    pub dashboard: Option<String>,
    /// The token every request to the live page must carry
    /// (`Authorization: Bearer TOKEN`, or open `/?token=TOKEN` once);
    /// required to listen off loopback.
    #[arg(
        long,
        env = "TASKQ_DASHBOARD_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub dashboard_token: Option<String>,
    /// Largest accepted input record, in bytes.
    #[arg(long, default_value_t = 1 << 20, value_name = "BYTES")]
    pub max_record_bytes: usize,
    /// Fail the run (exit 1) at the first invalid record, an invalid task or a
    /// broken NDJSON line, instead of skipping it: a regular file is checked
    /// before any work starts; on stdin admission stops at that record.
    #[arg(long)]
    pub strict: bool,
    /// The processor: `simulated` (the seed's blocking I/O), `noop`, `cpu`
    /// (about 2 µs of hashing), or `thumbnail` (real variants; needs `--store`).
    #[arg(long, value_enum, default_value_t = ProcessorKind::Simulated)]
    pub processor: ProcessorKind,
    /// Settings of the simulated processor.
    #[command(flatten)]
    pub simulated: SimulatedArgs,
    /// Idempotency and persistence.
    #[command(flatten)]
    pub store: StoreArgs,
    /// Retries and timeouts.
    #[command(flatten)]
    pub retry: RetryArgs,
}

/// Idempotency and persistence settings.
#[derive(Debug, Args)]
pub struct StoreArgs {
    /// SQLite database holding the task records and dead letters
    /// [default: taskq.db; with --store DIR: DIR/taskq.db].
    #[arg(long, value_name = "PATH")]
    pub db: Option<PathBuf>,
    /// Run without a database: no idempotency, no records, no dead-letter queue.
    #[arg(long, conflicts_with = "db")]
    pub no_db: bool,
    /// `batch`: records committed in batches, a crash may redo the last batch;
    /// `group-commit`: a task is done only once its record is committed (fsync).
    #[arg(long, value_parser = choice::<Durability>(), default_value = Durability::Batch.name())]
    pub durability: Durability,
    /// Records per committed batch, at most.
    #[arg(long, default_value_t = 1024)]
    pub batch_size: usize,
    /// Commit a batch at most this long after its first record.
    #[arg(long, default_value_t = 10, value_name = "MS")]
    pub batch_ms: u64,
    /// Committed keys kept in the in-memory hot cache.
    #[arg(long, default_value_t = 100_000, value_name = "KEYS")]
    pub cache_capacity: usize,
    /// How long to wait for a database locked by another process.
    #[arg(long, default_value_t = 5000, value_name = "MS")]
    pub busy_timeout_ms: u64,
}

/// Retry and timeout settings.
#[derive(Debug, Args)]
pub struct RetryArgs {
    /// Retries of a transiently failed task (so at most this + 1 attempts).
    #[arg(long, default_value_t = 3)]
    pub max_retries: u32,
    /// Backoff base: the delay after attempt n is drawn from [0, min(max, base·2^(n−1))).
    #[arg(long, default_value_t = 50, value_name = "MS")]
    pub backoff_base_ms: u64,
    /// Backoff cap.
    #[arg(long, default_value_t = 5000, value_name = "MS")]
    pub backoff_max_ms: u64,
    /// An attempt running longer than this fails as a transient timeout.
    #[arg(long, value_name = "MS")]
    pub task_timeout_ms: Option<u64>,
    /// At shutdown, wait at most this long for admitted work, then dead-letter
    /// what has not run (kind `shutdown`). Default: wait for everything.
    #[arg(long, allow_negative_numbers = true, value_name = "SECONDS")]
    pub shutdown_timeout: Option<f64>,
    /// How a panicking processor's attempt is classed.
    #[arg(long, value_parser = choice::<ErrorClass>(), default_value = ErrorClass::Permanent.name())]
    pub panic_class: ErrorClass,
}

/// The simulated processor's settings.
#[derive(Debug, Args)]
pub struct SimulatedArgs {
    /// Simulated I/O time per attempt, milliseconds.
    #[arg(
        long,
        allow_negative_numbers = true,
        default_value_t = 30.0,
        value_name = "MS"
    )]
    pub latency_ms: f64,
    /// Each attempt's latency is drawn uniformly from latency ± jitter.
    #[arg(
        long,
        allow_negative_numbers = true,
        default_value_t = 0.0,
        value_name = "MS"
    )]
    pub jitter_ms: f64,
    /// Share of attempts failing transiently (0..1), seeded per key and attempt.
    #[arg(
        long,
        allow_negative_numbers = true,
        default_value_t = 0.0,
        value_name = "P"
    )]
    pub transient_rate: f64,
    /// Share of keys failing permanently (0..1), seeded per key.
    #[arg(
        long,
        allow_negative_numbers = true,
        default_value_t = 0.0,
        value_name = "P"
    )]
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
    /// The run configuration these arguments give (further validated by
    /// [`RunConfig::validate`] when run).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a setting that cannot even be converted.
    pub fn to_config(&self) -> Result<RunConfig, Error> {
        let shutdown_timeout_ms = shutdown_timeout_ms(self.retry.shutdown_timeout)?;
        let tasks_key = taskq_thumbnail::samples::TASKS_KEY;
        let (tasks, tasks_in_store) = match (&self.tasks, &self.object_store) {
            (Some(t), _) => (t.clone(), false),
            (None, Some(StoreLocation::Dir(store))) => (store.join(tasks_key), false),
            (None, Some(StoreLocation::S3(_))) => (PathBuf::from(tasks_key), true),
            (None, None) => {
                return Err(Error::config(
                    setting::TASKS,
                    "a task file is needed (or --store, to read the store's tasks.json)",
                ))
            }
        };
        // A store keeps its own records: keys like `img/000001.jpg:200x200`
        // recorded by another job in ./taskq.db must not count as done here.
        // An S3 store keeps images only: its records' file is named.
        let db = match (&self.store.db, &self.object_store) {
            (Some(db), _) => db.clone(),
            (None, Some(store)) if !self.store.no_db => store.default_db()?,
            (None, _) => PathBuf::from("taskq.db"),
        };
        Ok(RunConfig {
            tasks,
            format: self.format.into(),
            max_record_bytes: self.max_record_bytes,
            strict: self.strict,
            producers: self.producers,
            engine: EngineConfig {
                workers: default_workers(self.workers, self.object_store.as_ref()),
                capacity: self.capacity,
                admission: self.admission,
                pin: self.pin,
                release_batch: None,
                store: (!self.store.no_db).then_some(StoreConfig {
                    path: db,
                    durability: self.store.durability,
                    batch_size: self.store.batch_size,
                    batch_ms: self.store.batch_ms,
                    cache_capacity: self.store.cache_capacity,
                    busy_timeout_ms: self.store.busy_timeout_ms,
                }),
                retry: RetryPolicy {
                    max_retries: self.retry.max_retries,
                    backoff_base_ms: self.retry.backoff_base_ms,
                    backoff_max_ms: self.retry.backoff_max_ms,
                    seed: self.simulated.seed,
                },
                task_timeout_ms: self.retry.task_timeout_ms,
                shutdown_timeout_ms,
                panic_class: self.retry.panic_class,
            },
            processor: self.processor,
            simulated: self.simulated.to_config(),
            progress: !self.no_progress,
            done_log: self.done_log.clone(),
            object_store: self.object_store.clone(),
            tasks_in_store,
            seed_images: self.seed_images,
            metrics_addr: self.metrics_addr.clone(),
            dashboard: self.dashboard.clone(),
            dashboard_token: self.dashboard_token.clone(),
        })
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

pub use crate::flags::{flag_for, named_by_flag, FLAGS, NO_FLAG};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_default_to_8_or_8_per_core_on_s3() {
        let s3: StoreLocation = "s3://bucket/p".parse().unwrap();
        let dir: StoreLocation = "some/dir".parse().unwrap();
        let cores = std::thread::available_parallelism().unwrap().get();
        assert_eq!(default_workers(None, None), 8);
        assert_eq!(default_workers(None, Some(&dir)), 8);
        assert_eq!(default_workers(None, Some(&s3)), 8 * cores);
        assert_eq!(default_workers(Some(3), Some(&s3)), 3);
    }

    fn list_db(args: &[&str]) -> DlqDbArgs {
        let cli = Cli::try_parse_from(["taskq", "dlq", "list"].iter().chain(args)).unwrap();
        match cli.command {
            Command::Dlq(DlqCommand::List { db, .. }) => db,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn dlq_target_is_pg_from_the_flag_or_the_environment_unless_a_db_is_named() {
        let env = || Some("postgres://e@h/q".to_string());
        let pg = |url: &str, from_env| DlqTarget::Pg {
            url: url.into(),
            from_env,
        };
        assert_eq!(
            list_db(&["--pg", "postgres://f@h/q"]).target_with(env()),
            pg("postgres://f@h/q", false)
        );
        assert_eq!(
            list_db(&[]).target_with(env()),
            pg("postgres://e@h/q", true)
        );
        assert_eq!(
            list_db(&[]).target_with(Some(" ".into())),
            DlqTarget::Sqlite("taskq.db".into())
        );
        assert_eq!(
            list_db(&["--db", "x.db"]).target_with(env()),
            DlqTarget::Sqlite("x.db".into())
        );
        assert_eq!(
            list_db(&["--store", "s"]).target_with(env()),
            DlqTarget::Sqlite("s/taskq.db".into())
        );
        assert!(Cli::try_parse_from(["taskq", "dlq", "list", "--pg", "u", "--db", "x"]).is_err());
    }
}
