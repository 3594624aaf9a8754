//! The `taskq` command: parse, run, print the report, exit.

use std::fs::File;
use std::io::{BufWriter, ErrorKind, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context;
use clap::{CommandFactory, FromArgMatches};
use taskq::{Report, RunStatus};
use taskq_cli::cli::{Cli, Command, DlqCommand, DlqRetryArgs, DlqTarget, LogFormat};
use taskq_cli::dlq::Selection;
use taskq_cli::runner::ProcessorKind;
use taskq_cli::store::StoreLocation;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // SAFETY: no other thread exists yet, so none is using SQLite.
    unsafe { taskq::idempotency::tune_sqlite_process() };
    match run() {
        Ok(code) => code,
        Err(err) => {
            // A closed stdout (`taskq … | head`) is the reader's choice, not an error.
            if err
                .downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == ErrorKind::BrokenPipe)
            {
                return ExitCode::SUCCESS;
            }
            eprintln!("error: {:#}", named_by_flag(err));
            ExitCode::from(1)
        }
    }
}

/// The library names a bad setting by its field; the command line names its
/// flag ([`taskq_cli::cli::named_by_flag`]). Only a bare `taskq::Error` is
/// converted: one wrapped in context would lose it.
fn named_by_flag(err: anyhow::Error) -> anyhow::Error {
    if err.chain().count() > 1 {
        return err;
    }
    let err = match err.downcast::<taskq::Error>() {
        Ok(e) => return taskq_cli::flags::named_by_flag(e).into(),
        Err(err) => err,
    };
    match err.downcast::<taskq_bench::BenchError>() {
        Ok(taskq_bench::BenchError::Engine(e)) => taskq_cli::flags::named_by_flag(e).into(),
        Ok(other) => other.into(),
        Err(err) => err,
    }
}

fn run() -> anyhow::Result<ExitCode> {
    // The matches too: `dlq retry` on PostgreSQL asks which flags were given.
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    init_logging(cli.log_format)?;
    match cli.command {
        Command::Run(args) => {
            let config = args.to_config()?;
            if let Some(p) = args.report.as_deref().filter(|p| p.as_os_str() != "-") {
                // Fail before any work starts, not after it, if the report cannot be written.
                // The temporary file is removed when dropped.
                drop(
                    report_tempfile(p)
                        .with_context(|| format!("cannot write report {}", p.display()))?,
                );
            }
            let interrupt = taskq_cli::runner::Interrupt::new();
            watch_signals(interrupt.clone())?;
            let report = taskq_cli::runner::run_with(&config, &interrupt).map_err(|e| match e {
                taskq_cli::runner::RunError::Engine(e) => anyhow::Error::from(e),
                taskq_cli::runner::RunError::Input(e) => anyhow::Error::from(e),
            })?;
            if report.status == RunStatus::Failed {
                for e in &report.errors {
                    eprintln!("error: {e}");
                }
            }
            warn_invalid(&report, &config.tasks);
            emit(&report, args.report.as_deref())?;
            Ok(ExitCode::from(taskq_cli::runner::exit_code(&report)))
        }
        Command::Generate(args) => {
            let opts = args.to_options();
            opts.validate()?;
            let written = if args.out.as_os_str() == "-" {
                taskq_bench::generate::write_tasks(&opts, std::io::stdout().lock())
            } else {
                let file = File::create(&args.out)
                    .with_context(|| format!("cannot create {}", args.out.display()))?;
                taskq_bench::generate::write_tasks(&opts, BufWriter::new(file))
            };
            let written = match written {
                Err(e) if e.kind() == ErrorKind::BrokenPipe => return Ok(ExitCode::SUCCESS),
                other => other.with_context(|| format!("cannot write {}", args.out.display()))?,
            };
            if args.out.as_os_str() != "-" {
                eprintln!("wrote {written} tasks to {}", args.out.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench(args) => {
            taskq_bench::cli::run(&args, &mut std::io::stdout(), &mut std::io::stderr())
        }
        Command::Dlq(cmd) => {
            let retry = matches
                .subcommand_matches("dlq")
                .and_then(|m| m.subcommand_matches("retry"));
            dlq(cmd, retry)
        }
        Command::Migrate(args) => {
            let (target, r) = taskq_cli::pg::migrate(&args.pg)?;
            let mut out = std::io::stdout().lock();
            if r.from == r.to {
                writeln!(out, "{target}: queue schema at version {} already", r.to)?;
            } else {
                writeln!(
                    out,
                    "{target}: queue schema migrated from version {} to {}",
                    r.from, r.to
                )?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Enqueue(args) => {
            let outcome = taskq_cli::pg::enqueue(&args)?;
            let name = taskq_cli::input::source_name(&args.tasks);
            let mut err = std::io::stderr().lock();
            for r in outcome.invalid_records.iter().take(INVALID_SHOWN) {
                let _ = writeln!(
                    err,
                    "{name}:{}: invalid record skipped: {}",
                    r.line, r.error
                );
            }
            let shown = outcome.invalid_records.len().min(INVALID_SHOWN) as u64;
            if outcome.invalid > shown {
                let _ = writeln!(
                    err,
                    "{name}: {} more invalid record(s) skipped (--json lists the first {})",
                    outcome.invalid - shown,
                    taskq::metrics::MAX_INVALID_LISTED
                );
            }
            let mut out = std::io::stdout().lock();
            if args.json {
                writeln!(out, "{}", serde_json::to_string_pretty(&outcome)?)?;
            } else {
                writeln!(out, "{}", outcome.summary(&args.tasks))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Worker(args) => {
            let options = args.to_options()?;
            let processor = taskq_cli::runner::build_processor(&args.processor_config())?;
            let (term, int) = (
                Arc::new(AtomicBool::new(false)),
                Arc::new(AtomicBool::new(false)),
            );
            let stop = Arc::new(AtomicBool::new(false));
            for (signal, flag) in [
                (signal_hook::consts::SIGTERM, &term),
                (signal_hook::consts::SIGINT, &int),
            ] {
                signal_hook::flag::register(signal, flag.clone())
                    .and_then(|_| signal_hook::flag::register(signal, stop.clone()))
                    .context("cannot install signal handlers")?;
            }
            // Bound before the node registers: a bad address fails first.
            let mut metrics = args
                .metrics_addr
                .as_deref()
                .map(taskq_cli::metrics::MetricsEndpoint::bind)
                .transpose()?;
            let mut serving = Ok(());
            let report =
                taskq_pg::worker::run_watched(&args.pg.pg, processor, &options, &stop, |view| {
                    if let Some(endpoint) = &mut metrics {
                        serving = endpoint.serve(taskq_cli::metrics::Source::Node(view));
                        endpoint.announce();
                    }
                })?;
            serving?;
            let s = &report.settled;
            writeln!(
                std::io::stdout().lock(),
                "node {} ({}) on {}: claimed {}, {} succeeded, {} retried, {} dead-lettered, {} fenced off, {} handed back{}{}",
                report
                    .node_ids
                    .iter()
                    .map(|id| id.to_string())
                    .collect::<Vec<_>>()
                    .join(", then "),
                report.processor,
                report.target,
                report.claimed,
                s.succeeded,
                s.retried,
                s.dead,
                s.fenced,
                report.handed_back,
                match report.reconnects {
                    0 => String::new(),
                    n => format!("; reconnected {n} times"),
                },
                match report.declared_dead {
                    0 => String::new(),
                    n => format!("; declared dead {n} times and registered again"),
                }
            )?;
            if let Some(path) = &args.report {
                std::fs::write(path, serde_json::to_string_pretty(&report)? + "\n")
                    .with_context(|| format!("cannot write report {}", path.display()))?;
            }
            Ok(if term.load(Ordering::SeqCst) {
                ExitCode::from(143)
            } else if int.load(Ordering::SeqCst) {
                ExitCode::from(130)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Prune(args) => {
            let mut queue = taskq_pg::Queue::connect(&args.pg.pg)?;
            taskq_pg::schema::ensure(&mut queue)?;
            let n = taskq_pg::node::prune(&mut queue, args.older_than, args.batch_size)?;
            writeln!(
                std::io::stdout().lock(),
                "{}: pruned {n} succeeded tasks finalized more than {} s ago",
                queue.target(),
                args.older_than.as_secs()
            )?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Status(args) => {
            let status = taskq_cli::pg::status(&args.pg.pg)?;
            let mut out = std::io::stdout().lock();
            if args.json {
                writeln!(out, "{}", serde_json::to_string_pretty(&status)?)?;
            } else {
                write!(out, "{status}")?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Dashboard(args) => {
            let dashboard =
                taskq_cli::dashboard::Dashboard::bind(&taskq_cli::dashboard::DashboardOptions {
                    url: args.pg.pg.clone(),
                    addr: args.addr.clone(),
                    token: args.auth_token.clone(),
                    read_only: args.read_only,
                })
                .map_err(|e| match e {
                    taskq_cli::dashboard::DashboardError::Config(e) => anyhow::Error::from(e),
                    taskq_cli::dashboard::DashboardError::Queue(e) => anyhow::Error::from(e),
                })?;
            let stop = Arc::new(AtomicBool::new(false));
            for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
                signal_hook::flag::register(signal, stop.clone())
                    .context("cannot install signal handlers")?;
            }
            eprintln!(
                "taskq: dashboard at http://{}/{}",
                dashboard.local_addr(),
                if args.read_only { " (read-only)" } else { "" }
            );
            dashboard.serve(&stop);
            Ok(ExitCode::SUCCESS)
        }
        Command::SeedImages(args) => {
            let options = args.to_options();
            options.validate()?;
            let (s, tasks) = match &args.store {
                StoreLocation::Dir(dir) => {
                    let mut store = taskq_thumbnail::object_store::LocalStore::create(dir)?;
                    store.lock()?;
                    let s = taskq_thumbnail::samples::seed_images(&store, &options)?;
                    let tasks = dir.join(taskq_thumbnail::samples::TASKS_KEY);
                    (s, tasks.display().to_string())
                }
                StoreLocation::S3(location) => {
                    let store = StoreLocation::open_s3(location)?;
                    let s = taskq_thumbnail::samples::seed_images(&store, &options)?;
                    (s, location.url_of(taskq_thumbnail::samples::TASKS_KEY))
                }
            };
            writeln!(
                std::io::stdout().lock(),
                "wrote {} images ({:.1} MiB) and {} tasks to {tasks}",
                s.images,
                s.bytes as f64 / (1024.0 * 1024.0),
                s.tasks,
            )?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `taskq dlq …`: on the PostgreSQL queue ([`dlq_pg`]) or a SQLite
/// database. `retry` holds the matches of `dlq retry`, when that was the
/// command.
fn dlq(cmd: DlqCommand, retry: Option<&clap::ArgMatches>) -> anyhow::Result<ExitCode> {
    let target = match &cmd {
        DlqCommand::List { db, .. } | DlqCommand::Purge { db, .. } => db.target(),
        DlqCommand::Retry(args) => args.db.target(),
    };
    if let DlqTarget::Pg { url, from_env } = target {
        return dlq_pg(cmd, &url, from_env, retry);
    }
    let mut out = std::io::stdout().lock();
    match cmd {
        DlqCommand::List {
            db,
            key,
            processor,
            json,
        } => {
            let db = db.path()?;
            let selection = key.map_or(Selection::All, Selection::Key);
            let mut letters = taskq_cli::dlq::list(&db, &selection)?;
            if let Some(p) = processor {
                letters.retain(|l| l.processor == p.record_name());
            }
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&letters)?)?;
            } else {
                writeln!(out, "{} dead letter(s) in {}", letters.len(), db.display())?;
                for d in &letters {
                    writeln!(
                        out,
                        "{key}\t{processor}\t{class} {kind}\tattempts {attempts}\t{message}",
                        key = d.task.idempotency_key(),
                        processor = taskq_cli::dlq::processor_label(&d.processor),
                        class = d.class,
                        kind = d.kind,
                        attempts = d.attempts,
                        message = d.message,
                    )?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        DlqCommand::Purge {
            db,
            selection,
            processor,
        } => {
            let db = db.path()?;
            if processor.is_some() {
                anyhow::bail!(
                    "--processor selects dead tasks to purge on the PostgreSQL queue (--pg URL) \
                     only; purge {} by --key or --all; nothing was changed",
                    db.display()
                );
            }
            let n = taskq_cli::dlq::purge(&db, &selection.to_selection())?;
            writeln!(out, "purged {n} dead letter(s) from {}", db.display())?;
            Ok(ExitCode::SUCCESS)
        }
        DlqCommand::Retry(args) => {
            let db = args.db.path()?;
            let selection = args.selection.to_selection();
            let config = args.to_config()?;
            // Every check comes before anything is written: a dead letter is
            // retried with the processor that made it, or not at all.
            let (kind, adopt) = match args.processor {
                Some(kind) => (kind, true),
                None => match retry_kind(&db, &selection, args.db.object_store.is_some())? {
                    Some(kind) => (kind, false),
                    None => {
                        writeln!(out, "no dead letters to retry in {}", db.display())?;
                        return Ok(ExitCode::SUCCESS);
                    }
                },
            };
            let processor = args.to_processor(kind)?;
            let retried = taskq_cli::dlq::retry(config, processor.clone(), &selection, adopt)?;
            let mut report = retried.report;
            report.processor = processor.report().map(|mut p| {
                p.finish(report.elapsed_s);
                p
            });
            drop(out);
            emit(&report, args.report.as_deref())?;
            let mut out = std::io::stdout().lock();
            if retried.adopted > 0 {
                writeln!(
                    out,
                    "gave {} dead letter(s) recorded before taskq kept processors to {}",
                    retried.adopted,
                    processor.name()
                )?;
            }
            writeln!(
                out,
                "cleared {} dead letter(s) whose task now succeeded",
                retried.cleared
            )?;
            if !retried.skipped.0.is_empty() {
                writeln!(
                    out,
                    "left {} dead letter(s) of other processors ({}): retry them without --processor",
                    retried.skipped.0.iter().map(|(_, n)| n).sum::<u64>(),
                    retried.skipped.describe()
                )?;
            }
            Ok(ExitCode::from(taskq_cli::runner::exit_code(&report)))
        }
    }
}

/// `taskq dlq …` on the PostgreSQL queue at `url` (from TASKQ_DATABASE_URL
/// when `from_env`). `retry` re-queues the dead tasks for the worker nodes
/// instead of running them here, so it refuses the flags of a local re-drive
/// (exit 2) before connecting.
fn dlq_pg(
    cmd: DlqCommand,
    url: &str,
    from_env: bool,
    retry: Option<&clap::ArgMatches>,
) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    match cmd {
        DlqCommand::List {
            key,
            processor,
            json,
            ..
        } => {
            let processor = processor.map(|p| p.record_name());
            let (target, dead) = taskq_cli::pg::dlq_list(url, key.as_deref(), processor)?;
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&dead)?)?;
            } else {
                writeln!(out, "{} dead task(s) in {target}", dead.len())?;
                for d in &dead {
                    writeln!(
                        out,
                        "{key}\t{processor}\t{class} {kind}\tattempts {attempts} of {max}\tdied {at}\t{message}",
                        key = d.idempotency_key,
                        processor = d.processor,
                        class = d.error_class.as_deref().unwrap_or("-"),
                        kind = d.error_kind.as_deref().unwrap_or("-"),
                        attempts = d.attempts,
                        max = d.max_attempts,
                        at = d.finalized_at,
                        message = d.error.as_deref().unwrap_or(""),
                    )?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        DlqCommand::Purge {
            selection,
            processor,
            ..
        } => {
            let processor = processor.map(|p| p.record_name());
            let (target, n) = taskq_cli::pg::dlq_purge(url, &selection.to_selection(), processor)?;
            writeln!(
                out,
                "purged {n} dead task(s){} from {target}",
                of_processor(processor)
            )?;
            Ok(ExitCode::SUCCESS)
        }
        DlqCommand::Retry(args) => {
            let given = retry
                .map(DlqRetryArgs::sqlite_only_flags)
                .unwrap_or_default();
            if !given.is_empty() {
                let (source, hint) = if from_env {
                    (
                        "the PostgreSQL queue of TASKQ_DATABASE_URL",
                        " (pass --db PATH to re-drive a SQLite database here instead)",
                    )
                } else {
                    ("the PostgreSQL queue (--pg)", "")
                };
                eprintln!(
                    "error: `dlq retry` on {source} re-queues the dead tasks for the `taskq \
                     worker` nodes, which run them with their own settings: {} {} not apply \
                     there; nothing was changed{hint}",
                    given.join(", "),
                    if given.len() == 1 { "does" } else { "do" }
                );
                return Ok(ExitCode::from(2));
            }
            let processor = args.processor.map(|p| p.record_name());
            let (target, n) =
                taskq_cli::pg::dlq_retry(url, &args.selection.to_selection(), processor)?;
            if n == 0 {
                writeln!(
                    out,
                    "no dead tasks{} to re-queue in {target}",
                    of_processor(processor)
                )?;
            } else {
                writeln!(
                    out,
                    "re-queued {n} dead task(s){} into {target}; running `taskq worker` nodes \
                     will take them",
                    of_processor(processor)
                )?;
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// ` of P` when a processor filter was given.
fn of_processor(processor: Option<&str>) -> String {
    processor.map(|p| format!(" of {p}")).unwrap_or_default()
}

/// The processor that made the selected dead letters, checked to be one this
/// binary can run with the settings given; `None` when nothing is selected.
fn retry_kind(
    db: &Path,
    selection: &Selection,
    has_store: bool,
) -> anyhow::Result<Option<ProcessorKind>> {
    let by = taskq_cli::dlq::processors(db, selection)?;
    let db = db.display();
    let (name, n) = match by.0.as_slice() {
        [] => return Ok(None),
        [(name, n)] => (name, n),
        _ => anyhow::bail!(
            "the selected dead letters in {db} were made by several processors ({}); \
             retry one processor's at a time with --processor; nothing was changed",
            by.describe()
        ),
    };
    if name == taskq::idempotency::UNKNOWN_PROCESSOR {
        anyhow::bail!(
            "{n} dead letter(s) in {db} were recorded before taskq kept processors: say which \
             processor to retry them with (--processor simulated|noop|cpu|thumbnail); nothing \
             was changed"
        );
    }
    let Some(kind) = ProcessorKind::from_record_name(name) else {
        anyhow::bail!(
            "{n} dead letter(s) in {db} were made by processor {name:?}, which this taskq \
             cannot run (it runs {}); retry them with the program that made them; nothing was \
             changed",
            ProcessorKind::ALL.map(|k| k.record_name()).join(", ")
        );
    };
    if kind == ProcessorKind::Thumbnail && !has_store {
        anyhow::bail!(
            "{n} dead letter(s) in {db} were made by {name}: retrying them needs --store DIR or \
             --store s3://BUCKET/PREFIX, the object store holding their images; nothing was changed"
        );
    }
    Ok(Some(kind))
}

/// Installs the log subscriber: events on stderr, filtered by `RUST_LOG`
/// (default `warn`), as text or JSON lines.
fn init_logging(format: LogFormat) -> anyhow::Result<()> {
    use tracing_subscriber::EnvFilter;
    let directives = std::env::var("RUST_LOG").unwrap_or_default();
    let directives = if directives.trim().is_empty() {
        "warn"
    } else {
        directives.as_str()
    };
    let filter = EnvFilter::builder().parse(directives).map_err(|e| {
        anyhow::anyhow!("invalid RUST_LOG {directives:?}: {e} (expected e.g. taskq=debug)")
    })?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init(),
    };
    installed.map_err(|e| anyhow::anyhow!("cannot install the log subscriber: {e}"))
}

/// First SIGINT/SIGTERM: stop admitting, drain, report (exit 130/143). A second
/// one: exit at once. SQLite stays consistent either way: every batch is one
/// transaction in a WAL file, so an interrupted commit is simply not there.
fn watch_signals(interrupt: taskq_cli::runner::Interrupt) -> anyhow::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])
        .context("cannot install signal handlers")?;
    std::thread::Builder::new()
        .name("taskq-signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                if interrupt.trigger(signal) {
                    eprintln!("taskq: stopping admission and draining (again to exit at once)");
                } else {
                    std::process::exit(128 + signal);
                }
            }
        })
        .context("cannot start the signal thread")?;
    Ok(())
}

/// How many invalid records a run names on stderr (the report lists up to
/// [`taskq::metrics::MAX_INVALID_LISTED`]).
const INVALID_SHOWN: usize = 10;

/// Names the first invalid records (invalid tasks, broken NDJSON lines) on
/// stderr, `file:line: ...`, so that a run without `--report` still says where
/// they are.
fn warn_invalid(report: &Report, tasks: &Path) {
    if report.counts.invalid == 0 {
        return;
    }
    let name = taskq_cli::input::source_name(tasks);
    let mut err = std::io::stderr().lock();
    let shown = report.invalid_tasks.iter().take(INVALID_SHOWN);
    let n = shown.len() as u64;
    for t in shown {
        let _ = writeln!(
            err,
            "{name}:{}: invalid record skipped: {}",
            t.line, t.error
        );
    }
    let more = report.counts.invalid.saturating_sub(n);
    if more > 0 {
        let _ = writeln!(
            err,
            "{name}: {more} more invalid record(s) skipped (a --report lists the first {})",
            taskq::metrics::MAX_INVALID_LISTED
        );
    }
}

/// Prints the summary (or the JSON, with `--report -`) and writes the report file.
fn emit(report: &Report, path: Option<&Path>) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match path {
        Some(p) if p.as_os_str() == "-" => writeln!(out, "{}", report.to_json())?,
        Some(p) => {
            writeln!(out, "{}", report.summary())?;
            write_report(report, p)?;
            writeln!(out, "report: {}", p.display())?;
        }
        None => writeln!(out, "{}", report.summary())?,
    }
    Ok(())
}

/// Writes the report through a temporary file renamed into place, readable by
/// its owner only, so that a reader never sees half a report.
///
/// The temporary file has a random name and is created with `O_EXCL` (so a
/// link planted in the directory is never followed), and the rename replaces
/// whatever is at `path` (a link there is replaced, not followed).
fn write_report(report: &Report, path: &Path) -> anyhow::Result<()> {
    let context = || format!("cannot write report {}", path.display());
    let mut tmp = report_tempfile(path).with_context(context)?;
    let file = tmp.as_file_mut();
    file.write_all(report.to_json().as_bytes())
        .and_then(|()| file.write_all(b"\n"))
        .and_then(|()| file.sync_all())
        .with_context(context)?;
    tmp.persist(path)
        .map_err(|e| e.error)
        .with_context(context)?;
    Ok(())
}

/// A new temporary file beside the report `target` (mode 0600 on Unix:
/// `tempfile`'s default), removed when dropped unless persisted.
fn report_tempfile(target: &Path) -> std::io::Result<tempfile::NamedTempFile> {
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "report".into());
    tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .tempfile_in(dir)
}
