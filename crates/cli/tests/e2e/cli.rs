//! The `taskq` command end to end, through the built binary: the README's main
//! command and its report, every class of bad file, bad tasks in a good file, bad
//! settings, standard input, reject-mode admission, `taskq generate`, and help.

use std::collections::HashSet;
use std::io::Read;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use assert_cmd::Command;
use serde_json::Value;
use tempfile::TempDir;

/// The binary under test.
const BIN: &str = env!("CARGO_BIN_EXE_taskq");

/// The longest any one command may take before the test fails instead of hanging.
const TIMEOUT: Duration = Duration::from_secs(120);

/// A scratch directory that is the working directory of every command a test
/// runs, with a copy of the crate's `examples/`, so the README's relative paths
/// work and nothing a run writes by default (a store, a log) lands in the crate.
struct Sandbox {
    dir: TempDir,
}

impl Sandbox {
    fn new() -> Self {
        let dir = TempDir::new().unwrap();
        let examples = dir.path().join("examples");
        std::fs::create_dir(&examples).unwrap();
        let source = Path::new(crate::ROOT).join("examples");
        for name in EXAMPLES {
            std::fs::copy(source.join(name), examples.join(name)).unwrap();
        }
        Sandbox { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A `taskq` command run in the sandbox.
    fn cmd(&self) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.current_dir(self.path())
            .env_remove("RUST_LOG")
            .timeout(TIMEOUT);
        cmd
    }

    fn run(&self, args: &[&str]) -> Outcome {
        outcome(self.cmd().args(args))
    }
}

/// The example task files the tests use.
const EXAMPLES: [&str; 3] = [
    "sample_tasks_small.json",
    "tasks_1000.json",
    "tasks_1000_dup.ndjson",
];

/// What a finished command left behind.
#[derive(Debug)]
struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn outcome(cmd: &mut Command) -> Outcome {
    let out = cmd.output().expect("taskq runs");
    Outcome {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// No panic message anywhere.
fn assert_no_panic(o: &Outcome) {
    assert!(
        !o.stderr.contains("panicked") && !o.stdout.contains("panicked"),
        "taskq panicked: {o:#?}"
    );
}

/// A failure with exactly one line on stderr, `error: ...`, and nothing on stdout;
/// returns that line.
fn assert_one_line_error(o: &Outcome, code: i32) -> String {
    assert_no_panic(o);
    assert_eq!(o.code, Some(code), "{o:#?}");
    let lines: Vec<&str> = o.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "expected one line on stderr: {o:#?}");
    assert!(lines[0].starts_with("error: "), "{o:#?}");
    assert!(o.stdout.is_empty(), "nothing on stdout expected: {o:#?}");
    lines[0].to_owned()
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read report {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("report is not JSON ({e}): {text}"))
}

fn u(v: &Value, pointer: &str) -> u64 {
    v.pointer(pointer)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("{pointer} is not an unsigned integer in {v:#}"))
}

fn f(v: &Value, pointer: &str) -> f64 {
    v.pointer(pointer)
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("{pointer} is not a number in {v:#}"))
}

fn s<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("{pointer} is not a string in {v:#}"))
}

/// Every key the report promises is present with the right type.
fn assert_report_shape(r: &Value) {
    for key in [
        "submitted",
        "admitted",
        "rejected",
        "invalid",
        "started",
        "attempts",
        "succeeded",
        "failed",
        "duplicates",
        "retried",
        "dead_lettered",
    ] {
        u(r, &format!("/counts/{key}"));
    }
    for dist in ["latency_ms", "service_ms"] {
        u(r, &format!("/{dist}/count"));
        for key in ["mean", "p50", "p95", "p99", "p999", "max"] {
            let x = f(r, &format!("/{dist}/{key}"));
            assert!(x.is_finite() && x >= 0.0, "{dist}.{key} = {x}");
        }
    }
    assert!(f(r, "/throughput_per_s") >= 0.0);
    assert!(f(r, "/elapsed_s") >= 0.0);
    u(r, "/queue_depth/capacity");
    u(r, "/queue_depth/max");
    assert!(f(r, "/queue_depth/mean") >= 0.0);
    f(r, "/rates/enqueue_per_s");
    f(r, "/rates/dequeue_per_s");
    u(r, "/rejections/full");
    u(r, "/rejections/closed");
    assert!(r["failures"].is_array());
    assert!(r["invalid_tasks"].is_array());
    assert!(r["errors"].is_array());
    let workers = r["workers"].as_array().expect("workers is an array");
    assert!(!workers.is_empty());
    for (i, w) in workers.iter().enumerate() {
        assert_eq!(u(w, "/index"), i as u64);
        let busy = f(w, "/busy_ratio");
        assert!((0.0..=1.0 + 1e-9).contains(&busy), "busy_ratio {busy}");
        u(w, "/steals");
        u(w, "/tasks");
        u(w, "/attempts");
    }
    assert!(matches!(
        s(r, "/status"),
        "completed" | "failed" | "interrupted"
    ));
    // Every setting of the run.
    for pointer in [
        "/config/tasks",
        "/config/format",
        "/config/max_record_bytes",
        "/config/producers",
        "/config/processor",
        "/config/progress",
        "/config/engine/workers",
        "/config/engine/capacity",
        "/config/engine/admission",
        "/config/engine/pin",
        "/config/simulated/latency_ms",
        "/config/simulated/jitter_ms",
        "/config/simulated/transient_rate",
        "/config/simulated/permanent_rate",
        "/config/simulated/seed",
        "/config/simulated/effects_log",
        "/config/engine/store",
        "/config/engine/retry/max_retries",
        "/config/engine/retry/backoff_base_ms",
        "/config/engine/retry/backoff_max_ms",
        "/config/engine/task_timeout_ms",
        "/config/engine/shutdown_timeout_ms",
        "/config/engine/panic_class",
    ] {
        assert!(
            r.pointer(pointer).is_some(),
            "config lacks {pointer}: {r:#}"
        );
    }
    if !r["config"]["engine"]["store"].is_null() {
        for key in [
            "path",
            "durability",
            "batch_size",
            "batch_ms",
            "cache_capacity",
            "busy_timeout_ms",
        ] {
            assert!(
                r["config"]["engine"]["store"].get(key).is_some(),
                "config.engine.store lacks {key}: {r:#}"
            );
        }
    }
}

/// The numbers of a finished run add up.
fn assert_report_consistent(r: &Value) {
    let c = |k: &str| u(r, &format!("/counts/{k}"));
    assert_eq!(c("submitted"), c("admitted") + c("rejected"), "{r:#}");
    assert_eq!(
        u(r, "/rejections/full") + u(r, "/rejections/closed"),
        c("rejected")
    );
    let completed = c("succeeded") + c("failed") + c("duplicates") + c("dead_lettered");
    assert_eq!(
        completed,
        c("admitted"),
        "every admitted task completes once"
    );
    assert_eq!(
        u(r, "/latency_ms/count"),
        completed,
        "one latency sample each"
    );
    assert_eq!(
        u(r, "/service_ms/count"),
        c("attempts"),
        "one service sample each"
    );
    let workers = r["workers"].as_array().unwrap();
    let sum = |k: &str| workers.iter().map(|w| u(w, &format!("/{k}"))).sum::<u64>();
    assert_eq!(sum("tasks"), completed, "worker tasks add up");
    assert_eq!(sum("attempts"), c("attempts"), "worker attempts add up");
    assert_eq!(workers.len() as u64, u(r, "/config/engine/workers"));
    assert_eq!(
        u(r, "/queue_depth/capacity"),
        u(r, "/config/engine/capacity")
    );
    assert!(u(r, "/queue_depth/max") <= u(r, "/queue_depth/capacity"));
    if completed > 0 {
        let p = |k: &str| f(r, &format!("/latency_ms/{k}"));
        assert!(p("p50") <= p("p95") && p("p95") <= p("p99"), "{r:#}");
        assert!(p("p99") <= p("p999") && p("p999") <= p("max"), "{r:#}");
        let elapsed = f(r, "/elapsed_s");
        assert!(elapsed > 0.0);
        let expected = completed as f64 / elapsed;
        let tp = f(r, "/throughput_per_s");
        assert!(
            (tp - expected).abs() <= expected * 1e-6 + 1e-9,
            "throughput {tp} != {completed} / {elapsed}"
        );
    }
}

/// The processings an effects log recorded: (key, attempt) per line.
fn effects(path: &Path) -> Vec<(String, u32)> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    text.lines()
        .map(|l| {
            let (key, attempt) = l.split_once('\t').expect("key<TAB>attempt");
            (key.to_owned(), attempt.parse().expect("attempt number"))
        })
        .collect()
}

fn ndjson_task(key: &str) -> String {
    format!(r#"{{"image_key": "img/{key}.jpg", "size": "200x200"}}"#)
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("UTF-8 temp path")
}

// ---------------------------------------------------------------------------
// The README's main command
// ---------------------------------------------------------------------------

#[test]
fn readme_command_runs_and_prints_a_summary() {
    let dir = Sandbox::new();
    let o = dir.run(&[
        "run",
        "--tasks",
        "examples/sample_tasks_small.json",
        "--latency-ms",
        "1",
    ]);
    assert_no_panic(&o);
    assert_eq!(o.code, Some(0), "{o:#?}");
    assert!(o.stdout.starts_with("Completed: 5 succeeded"), "{o:#?}");
    assert!(o.stdout.contains("of 5 admitted"), "{o:#?}");
    assert!(o.stdout.contains("latency ms p50"), "{o:#?}");
    assert!(o.stdout.contains("queue depth max"), "{o:#?}");
    // stderr is not a terminal here: no progress bar, no noise.
    assert!(o.stderr.is_empty(), "{o:#?}");
}

#[test]
fn readme_command_writes_a_complete_consistent_report() {
    let dir = Sandbox::new();
    let report = dir.path().join("report.json");
    let log = dir.path().join("effects.log");
    let o = dir.run(&[
        "run",
        "--tasks",
        "examples/sample_tasks_small.json",
        "--latency-ms",
        "1",
        "--workers",
        "3",
        "--capacity",
        "7",
        "--seed",
        "11",
        "--effects-log",
        path_str(&log),
        "--report",
        path_str(&report),
    ]);
    assert_no_panic(&o);
    assert_eq!(o.code, Some(0), "{o:#?}");
    assert!(o.stdout.starts_with("Completed: 5 succeeded"), "{o:#?}");
    assert!(
        o.stdout.contains(&format!("report: {}", report.display())),
        "{o:#?}"
    );
    let r = read_json(&report);
    assert_report_shape(&r);
    assert_report_consistent(&r);
    assert_eq!(s(&r, "/status"), "completed");
    assert_eq!(u(&r, "/counts/submitted"), 5);
    assert_eq!(u(&r, "/counts/admitted"), 5);
    assert_eq!(u(&r, "/counts/succeeded"), 5);
    assert_eq!(u(&r, "/counts/started"), 5);
    assert_eq!(u(&r, "/counts/attempts"), 5);
    for k in [
        "rejected",
        "invalid",
        "failed",
        "duplicates",
        "retried",
        "dead_lettered",
    ] {
        assert_eq!(u(&r, &format!("/counts/{k}")), 0, "counts.{k}");
    }
    assert_eq!(u(&r, "/latency_ms/count"), 5);
    // Each attempt sleeps 1 ms: latency and service time are at least that.
    assert!(f(&r, "/service_ms/p50") >= 0.9, "{r:#}");
    assert!(
        f(&r, "/latency_ms/max") >= f(&r, "/service_ms/p50"),
        "{r:#}"
    );
    assert!(r["invalid_tasks"].as_array().unwrap().is_empty());
    assert!(r["errors"].as_array().unwrap().is_empty());
    // The config is the one given.
    assert_eq!(r["workers"].as_array().unwrap().len(), 3);
    assert_eq!(u(&r, "/config/engine/workers"), 3);
    assert_eq!(u(&r, "/config/engine/capacity"), 7);
    assert_eq!(u(&r, "/queue_depth/capacity"), 7);
    assert_eq!(u(&r, "/config/simulated/seed"), 11);
    assert_eq!(f(&r, "/config/simulated/latency_ms"), 1.0);
    assert_eq!(s(&r, "/config/engine/admission"), "block");
    assert_eq!(s(&r, "/config/processor"), "simulated");
    assert_eq!(s(&r, "/config/tasks"), "examples/sample_tasks_small.json");
    assert_eq!(s(&r, "/config/simulated/effects_log"), path_str(&log));
    assert_eq!(s(&r, "/config/engine/store/path"), "taskq.db");
    assert!(
        dir.path().join("taskq.db").exists(),
        "the default store is ./taskq.db"
    );
    // Each task was processed once.
    let mut done: Vec<String> = effects(&log).into_iter().map(|(k, _)| k).collect();
    done.sort();
    let expected: Vec<String> = [
        "img/000001.jpg:200x200",
        "img/000002.jpg:400x400",
        "img/000003.jpg:800x800",
        "img/000004.jpg:200x200",
        "img/000005.jpg:400x400",
    ]
    .map(String::from)
    .to_vec();
    assert_eq!(done, expected);
}

#[test]
fn report_dash_prints_the_json_to_stdout() {
    let dir = Sandbox::new();
    let o = dir.run(&[
        "run",
        "--tasks",
        "examples/sample_tasks_small.json",
        "--latency-ms",
        "1",
        "--report",
        "-",
    ]);
    assert_no_panic(&o);
    assert_eq!(o.code, Some(0), "{o:#?}");
    let r: Value = serde_json::from_str(&o.stdout)
        .unwrap_or_else(|e| panic!("stdout is not only the JSON report ({e}): {o:#?}"));
    assert_report_shape(&r);
    assert_report_consistent(&r);
    assert_eq!(u(&r, "/counts/succeeded"), 5);
    assert!(
        !o.stdout.contains("Completed:"),
        "no summary with --report -"
    );
}

#[test]
fn examples_of_1000_tasks_run_with_every_processor_and_four_producers() {
    let dir = Sandbox::new();
    let cases = [
        ("tasks_1000.json", "noop"),
        ("tasks_1000.json", "cpu"),
        ("tasks_1000.json", "simulated"),
        ("tasks_1000_dup.ndjson", "noop"),
        ("tasks_1000_dup.ndjson", "simulated"),
    ];
    for (i, (file, processor)) in cases.into_iter().enumerate() {
        let report = dir.path().join(format!("r{i}.json"));
        let db = dir.path().join(format!("r{i}.db"));
        let o = dir.run(&[
            "run",
            "--tasks",
            &format!("examples/{file}"),
            "--db",
            path_str(&db),
            "--latency-ms",
            "0",
            "--processor",
            processor,
            "--producers",
            "4",
            "--report",
            path_str(&report),
        ]);
        assert_no_panic(&o);
        assert_eq!(o.code, Some(0), "{file} {processor}: {o:#?}");
        let r = read_json(&report);
        assert_report_shape(&r);
        assert_report_consistent(&r);
        assert_eq!(s(&r, "/status"), "completed");
        assert_eq!(u(&r, "/counts/submitted"), 1000, "{file} {processor}");
        assert_eq!(u(&r, "/counts/admitted"), 1000, "{file} {processor}");
        assert_eq!(u(&r, "/counts/rejected"), 0);
        assert_eq!(u(&r, "/counts/invalid"), 0);
        assert_eq!(u(&r, "/config/producers"), 4);
        assert_eq!(s(&r, "/config/processor"), processor);
        // A clean run: every admitted task succeeded or was a duplicate.
        assert_eq!(
            u(&r, "/counts/succeeded") + u(&r, "/counts/duplicates"),
            1000,
            "{file} {processor}"
        );
        // 700 distinct keys in the dup example, 1000 in the other.
        let distinct = if file.ends_with(".json") { 1000 } else { 700 };
        assert_eq!(u(&r, "/counts/succeeded"), distinct, "{file} {processor}");
        assert_eq!(u(&r, "/counts/duplicates"), 1000 - distinct);
    }
}

#[test]
fn block_mode_at_capacity_one_with_four_producers_completes() {
    let dir = Sandbox::new();
    let report = dir.path().join("r.json");
    let o = dir.run(&[
        "run",
        "--tasks",
        "examples/tasks_1000.json",
        "--admission",
        "block",
        "--capacity",
        "1",
        "--workers",
        "1",
        "--producers",
        "4",
        "--latency-ms",
        "0",
        "--report",
        path_str(&report),
    ]);
    assert_no_panic(&o);
    assert_eq!(o.code, Some(0), "{o:#?}");
    let r = read_json(&report);
    assert_report_consistent(&r);
    assert_eq!(u(&r, "/counts/succeeded"), 1000);
    assert_eq!(u(&r, "/queue_depth/max"), 1);
}

/// Transient and permanent faults: the run finishes with exit code 3 and every
/// admitted task is accounted for exactly once.
#[test]
fn injected_faults_give_exit_code_3_and_counts_that_add_up() {
    let dir = Sandbox::new();
    let report = dir.path().join("r.json");
    let o = dir.run(&[
        "run",
        "--tasks",
        "examples/tasks_1000.json",
        "--latency-ms",
        "0",
        "--transient-rate",
        "0.3",
        "--permanent-rate",
        "0.05",
        "--backoff-base-ms",
        "1",
        "--backoff-max-ms",
        "5",
        "--report",
        path_str(&report),
    ]);
    assert_no_panic(&o);
    assert_eq!(o.code, Some(3), "{o:#?}");
    let r = read_json(&report);
    assert_report_shape(&r);
    assert_report_consistent(&r);
    assert_eq!(s(&r, "/status"), "completed");
    assert_eq!(u(&r, "/counts/admitted"), 1000);
    assert!(u(&r, "/counts/failed") + u(&r, "/counts/dead_lettered") > 0);
    // Transient failures are retried; the retries are counted.
    assert!(u(&r, "/counts/retried") > 0, "{r:#}");
    assert!(
        u(&r, "/counts/attempts") > u(&r, "/counts/started"),
        "{r:#}"
    );
    assert!(u(&r, "/counts/succeeded") > 0);
    let failures = r["failures"].as_array().unwrap();
    assert!(failures
        .iter()
        .any(|x| x["class"] == "permanent" && x["kind"] == "bad_source"));
}

// ---------------------------------------------------------------------------
// Bad files
// ---------------------------------------------------------------------------

/// One class of unreadable file: its bytes, and what the error must say.
struct BadFile {
    name: &'static str,
    bytes: Vec<u8>,
    extra: &'static [&'static str],
    /// `:line:` (or `:line:column:`) expected right after the path.
    at: &'static str,
    says: &'static str,
}

fn bad_files() -> Vec<BadFile> {
    let a = ndjson_task("a");
    let b = ndjson_task("b");
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let padded = r#"{"image_key": "img/big.jpg", "size": "200x200", "pad": ""#.to_owned()
        + &"x".repeat(500)
        + "\"}";
    vec![
        BadFile {
            name: "not_json.json",
            bytes: b"hello, this is not JSON\n".to_vec(),
            extra: &[],
            at: ":1:1: ",
            says: "expected a JSON array of task objects or NDJSON",
        },
        BadFile {
            name: "empty.json",
            bytes: Vec::new(),
            extra: &[],
            at: ":1:1: ",
            says: "found end of file",
        },
        BadFile {
            name: "truncated_array.json",
            bytes: format!("[\n{a},\n{b}\n").into_bytes(),
            extra: &[],
            at: ":4:1: ",
            says: "unexpected end of file: the task array opened on line 1 is not closed",
        },
        BadFile {
            name: "truncated_record.json",
            bytes: format!("[\n{a},\n{{\"image_key\": \"img/b.jpg\", \"si").into_bytes(),
            extra: &[],
            at: ":3:",
            says: "is cut off",
        },
        BadFile {
            name: "trailing_garbage.json",
            bytes: format!("[\n{a},\n{b}\n]\ngarbage\n").into_bytes(),
            extra: &[],
            at: ":5:1: ",
            says: "after the closing ']' of the task array",
        },
        BadFile {
            name: "top_level_number.json",
            bytes: b"42\n".to_vec(),
            extra: &[],
            at: ":1:1: ",
            says: "found '4'",
        },
        BadFile {
            name: "top_level_string.json",
            bytes: b"\"tasks\"\n".to_vec(),
            extra: &[],
            at: ":1:1: ",
            says: "expected a JSON array of task objects or NDJSON",
        },
        BadFile {
            name: "invalid_utf8.json",
            bytes: [
                format!("[\n{a},\n").as_bytes(),
                b"{\"image_key\": \"img/\xff.jpg\", \"size\": \"200x200\"}\n]\n",
            ]
            .concat(),
            extra: &[],
            at: ":3:20: ",
            says: "invalid UTF-8 (byte 0xFF)",
        },
        BadFile {
            name: "record_too_large.json",
            bytes: format!("[\n{a},\n{padded}\n]\n").into_bytes(),
            extra: &["--max-record-bytes", "200"],
            at: ":3:1: ",
            says: "longer than 200 bytes",
        },
        BadFile {
            name: "nesting_bomb.json",
            bytes: format!("[\n{a},\n{deep}\n]\n").into_bytes(),
            extra: &[],
            at: ":3:65: ",
            says: "deeper than 64 levels",
        },
        BadFile {
            name: "image.png",
            bytes: b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR".to_vec(),
            extra: &[],
            at: ":1:1: ",
            says: "invalid UTF-8 (byte 0x89); task files must be UTF-8 text",
        },
        // Auto-detection needs `[` or `{` first; `--format ndjson` reads it.
        BadFile {
            name: "first_line_broken.ndjson",
            bytes: format!("garbage\n{a}\n").into_bytes(),
            extra: &[],
            at: ":1:1: ",
            says: "expected a JSON array of task objects or NDJSON",
        },
        BadFile {
            name: "ndjson_forced_json.ndjson",
            bytes: format!("{a}\n{b}\n").into_bytes(),
            extra: &["--format", "json"],
            at: ":1:1: ",
            says: "expected '[' to start a JSON array",
        },
    ]
}

#[test]
fn each_class_of_bad_file_fails_before_any_work_with_one_line_naming_file_and_line() {
    let dir = Sandbox::new();
    for bad in bad_files() {
        let path = dir.path().join(bad.name);
        std::fs::write(&path, &bad.bytes).unwrap();
        let log = dir.path().join(format!("{}.effects", bad.name));
        let report = dir.path().join(format!("{}.report", bad.name));
        let mut args = vec![
            "run",
            "--tasks",
            path_str(&path),
            "--latency-ms",
            "0",
            "--effects-log",
            path_str(&log),
            "--report",
            path_str(&report),
        ];
        args.extend_from_slice(bad.extra);
        let o = dir.run(&args);
        let line = assert_one_line_error(&o, 1);
        let prefix = format!("error: {}{}", path.display(), bad.at);
        assert!(
            line.starts_with(&prefix),
            "{}: expected the error to start with {prefix:?}, got {line:?}",
            bad.name
        );
        assert!(
            line.contains(bad.says),
            "{}: expected {:?} in {line:?}",
            bad.name,
            bad.says
        );
        // The precheck failed before the engine (and the processor) started.
        assert!(
            !log.exists(),
            "{}: the effects log was created, so work started",
            bad.name
        );
        assert!(!report.exists(), "{}: a report was written", bad.name);
        assert!(
            !dir.path().join("taskq.db").exists(),
            "{}: the store was created, so the engine started",
            bad.name
        );
    }
}

#[test]
fn missing_file_and_directory_errors_name_the_path() {
    let dir = Sandbox::new();
    let missing = dir.path().join("no-such-tasks.json");
    let log = dir.path().join("effects.log");
    let o = dir.run(&[
        "run",
        "--tasks",
        path_str(&missing),
        "--latency-ms",
        "0",
        "--effects-log",
        path_str(&log),
    ]);
    let line = assert_one_line_error(&o, 1);
    assert!(
        line.starts_with(&format!("error: {}: cannot open: ", missing.display())),
        "{line}"
    );
    assert!(line.contains("No such file or directory"), "{line}");
    assert!(!log.exists());

    let o = dir.run(&["run", "--tasks", path_str(dir.path()), "--latency-ms", "0"]);
    let line = assert_one_line_error(&o, 1);
    assert_eq!(
        line,
        format!(
            "error: {}: cannot open: is a directory",
            dir.path().display()
        )
    );
}

// ---------------------------------------------------------------------------
// Bad tasks in a good file
// ---------------------------------------------------------------------------

#[test]
fn invalid_tasks_are_rejected_alone_and_listed_with_their_line() {
    let dir = Sandbox::new();
    let ndjson = [
        ndjson_task("a"),
        r#"{"image_key": "img/b.jpg", "size": "0x0"}"#.to_owned(),
        ndjson_task("c"),
        String::new(),
        r#"{"size": "200x200"}"#.to_owned(),
        "[1]".to_owned(),
        r#"{"image_key": "img/d.jpg", "size": 200}"#.to_owned(),
        ndjson_task("e"),
    ]
    .join("\n")
        + "\n";
    let json = format!(
        "[\n{},\n{},\n{},\n{}\n]\n",
        ndjson_task("a"),
        r#"{"image_key": "", "size": "200x200"}"#,
        ndjson_task("c"),
        r#"{"image_key": "img/e.jpg", "size": "200x200", "id": -1}"#,
    );
    type Expected = &'static [(u64, u64, &'static str)];
    let cases: [(&str, String, Expected, &[&str]); 2] = [
        (
            "mixed.ndjson",
            ndjson,
            &[
                (2, 1, "field `size`"),
                (5, 3, "missing field `image_key`"),
                (6, 4, "expected a JSON object for a task, got an array"),
                (7, 5, "field `size`: expected a string, got a number"),
            ],
            &[
                "img/a.jpg:200x200",
                "img/c.jpg:200x200",
                "img/e.jpg:200x200",
            ],
        ),
        (
            "mixed.json",
            json,
            &[
                (3, 1, "field `image_key`: must not be empty"),
                (5, 3, "field `id`"),
            ],
            &["img/a.jpg:200x200", "img/c.jpg:200x200"],
        ),
    ];
    for (name, text, invalid, valid) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let report = dir.path().join(format!("{name}.report"));
        let log = dir.path().join(format!("{name}.effects"));
        let db = dir.path().join(format!("{name}.db"));
        let o = dir.run(&[
            "run",
            "--tasks",
            path_str(&path),
            "--db",
            path_str(&db),
            "--latency-ms",
            "0",
            "--effects-log",
            path_str(&log),
            "--report",
            path_str(&report),
        ]);
        assert_no_panic(&o);
        assert_eq!(o.code, Some(3), "{name}: {o:#?}");
        assert!(
            o.stdout.contains(&format!("{} invalid", invalid.len())),
            "{o:#?}"
        );
        let r = read_json(&report);
        assert_report_shape(&r);
        assert_report_consistent(&r);
        assert_eq!(s(&r, "/status"), "completed", "{name}");
        assert_eq!(u(&r, "/counts/invalid"), invalid.len() as u64, "{name}");
        assert_eq!(u(&r, "/counts/submitted"), valid.len() as u64, "{name}");
        assert_eq!(u(&r, "/counts/succeeded"), valid.len() as u64, "{name}");
        let listed = r["invalid_tasks"].as_array().unwrap();
        assert_eq!(listed.len(), invalid.len(), "{name}: {r:#}");
        for (item, (line, index, says)) in listed.iter().zip(invalid) {
            assert_eq!(u(item, "/line"), *line, "{name}: {item}");
            assert_eq!(u(item, "/index"), *index, "{name}: {item}");
            assert!(
                s(item, "/error").contains(says),
                "{name}: {item} lacks {says:?}"
            );
        }
        // Without reading the report, stderr says where each one is.
        let warnings: Vec<&str> = o.stderr.lines().collect();
        assert_eq!(warnings.len(), invalid.len(), "{name}: {o:#?}");
        for (warning, (line, _, says)) in warnings.iter().zip(invalid) {
            let at = format!("{}:{line}: invalid record skipped: ", path.display());
            assert!(
                warning.starts_with(&at) && warning.contains(says),
                "{name}: {warning:?} should start with {at:?} and name {says:?}"
            );
        }
        let mut done: Vec<String> = effects(&log).into_iter().map(|(k, _)| k).collect();
        done.sort();
        assert_eq!(done, valid, "{name}: the valid tasks ran, once each");
    }
}

/// Many invalid tasks: stderr names the first ten and counts the rest.
#[test]
fn many_invalid_tasks_are_named_ten_at_most_on_stderr() {
    let dir = Sandbox::new();
    let mut ndjson = String::new();
    for i in 0..25 {
        ndjson += &format!("{{\"image_key\": \"img/{i}.jpg\", \"size\": \"0x{i}\"}}\n");
    }
    ndjson += &ndjson_task("ok");
    ndjson += "\n";
    let o = outcome(
        dir.cmd()
            .args(["run", "--tasks", "-", "--latency-ms", "0"])
            .write_stdin(ndjson),
    );
    assert_no_panic(&o);
    assert_eq!(o.code, Some(3), "{o:#?}");
    assert!(o.stdout.contains("1 succeeded"), "{o:#?}");
    assert!(o.stdout.contains("25 invalid"), "{o:#?}");
    let lines: Vec<&str> = o.stderr.lines().collect();
    assert_eq!(lines.len(), 11, "{o:#?}");
    for (i, line) in lines[..10].iter().enumerate() {
        assert!(
            line.starts_with(&format!(
                "<stdin>:{}: invalid record skipped: field `size`",
                i + 1
            )),
            "{line}"
        );
    }
    assert!(
        lines[10].starts_with("<stdin>: 15 more invalid record(s) skipped"),
        "{}",
        lines[10]
    );
}

// ---------------------------------------------------------------------------
// Broken NDJSON lines, and --strict
// ---------------------------------------------------------------------------

/// An NDJSON file with lines that are not JSON records: each is one invalid
/// record and the other lines run.
struct BrokenLines {
    name: &'static str,
    bytes: Vec<u8>,
    extra: &'static [&'static str],
    /// `(line, index, what the error says)` of each invalid record.
    invalid: &'static [(u64, u64, &'static str)],
    /// The keys that run, sorted.
    valid: &'static [&'static str],
}

fn broken_lines() -> Vec<BrokenLines> {
    let (a, b, c) = (ndjson_task("a"), ndjson_task("b"), ndjson_task("c"));
    let padded = r#"{"image_key": "img/big.jpg", "size": "200x200", "pad": ""#.to_owned()
        + &"x".repeat(500)
        + "\"}";
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    vec![
        BrokenLines {
            name: "broken_line.ndjson",
            bytes: format!("{a}\n{b}\n{{\"image_key\": \"img/x.jpg\", \"size\":\n{c}\n")
                .into_bytes(),
            extra: &[],
            invalid: &[(
                3,
                2,
                "not JSON: the line ends where a value is expected at column 34",
            )],
            valid: &[
                "img/a.jpg:200x200",
                "img/b.jpg:200x200",
                "img/c.jpg:200x200",
            ],
        },
        BrokenLines {
            name: "not_utf8.ndjson",
            bytes: [
                format!("{a}\n").as_bytes(),
                b"{\"image_key\": \"img/\xff.jpg\", \"size\": \"200x200\"}\n",
                format!("{b}\n").as_bytes(),
            ]
            .concat(),
            extra: &[],
            invalid: &[(2, 1, "not UTF-8: byte 0xFF at column 20")],
            valid: &["img/a.jpg:200x200", "img/b.jpg:200x200"],
        },
        BrokenLines {
            name: "too_long.ndjson",
            bytes: format!("{a}\n{padded}\n{b}\n").into_bytes(),
            extra: &["--max-record-bytes", "200"],
            invalid: &[(2, 1, "longer than 200 bytes (max_record_bytes)")],
            valid: &["img/a.jpg:200x200", "img/b.jpg:200x200"],
        },
        BrokenLines {
            name: "nesting_bomb.ndjson",
            bytes: format!(
                "{a}\n{{\"image_key\": \"img/x.jpg\", \"size\": \"1x1\", \"x\": {deep}}}\n{b}\n"
            )
            .into_bytes(),
            extra: &[],
            invalid: &[(
                2,
                1,
                "nests arrays/objects deeper than 64 levels at column 111",
            )],
            valid: &["img/a.jpg:200x200", "img/b.jpg:200x200"],
        },
        BrokenLines {
            name: "first_line_broken.ndjson",
            bytes: format!("garbage\n{a}\n").into_bytes(),
            extra: &["--format", "ndjson"],
            invalid: &[(1, 0, "not JSON: expected value at column 1")],
            valid: &["img/a.jpg:200x200"],
        },
        BrokenLines {
            name: "mixed.ndjson",
            bytes: format!("{a}\n{{\"image_key\": \"img/b.jpg\", \"size\": \"0x0\"}}\n{{\n{c}\n")
                .into_bytes(),
            extra: &[],
            invalid: &[
                (2, 1, "field `size`"),
                (
                    3,
                    2,
                    "not JSON: the line ends inside an object (expected '}') at column 1",
                ),
            ],
            valid: &["img/a.jpg:200x200", "img/c.jpg:200x200"],
        },
    ]
}

#[test]
fn broken_ndjson_lines_are_invalid_records_and_the_rest_run() {
    let dir = Sandbox::new();
    for case in broken_lines() {
        let name = case.name;
        let path = dir.path().join(name);
        std::fs::write(&path, &case.bytes).unwrap();
        let report = dir.path().join(format!("{name}.report"));
        let log = dir.path().join(format!("{name}.effects"));
        let db = dir.path().join(format!("{name}.db"));
        let mut args = vec![
            "run",
            "--tasks",
            path_str(&path),
            "--db",
            path_str(&db),
            "--latency-ms",
            "0",
            "--effects-log",
            path_str(&log),
            "--report",
            path_str(&report),
        ];
        args.extend_from_slice(case.extra);
        let o = dir.run(&args);
        assert_no_panic(&o);
        assert_eq!(o.code, Some(3), "{name}: {o:#?}");
        let r = read_json(&report);
        assert_report_shape(&r);
        assert_report_consistent(&r);
        assert_eq!(s(&r, "/status"), "completed", "{name}");
        let n = case.invalid.len() as u64;
        assert_eq!(u(&r, "/counts/invalid"), n, "{name}");
        assert_eq!(
            u(&r, "/counts/submitted"),
            case.valid.len() as u64,
            "{name}"
        );
        assert_eq!(
            u(&r, "/counts/succeeded"),
            case.valid.len() as u64,
            "{name}"
        );
        let listed = r["invalid_tasks"].as_array().unwrap();
        assert_eq!(listed.len() as u64, n, "{name}: {r:#}");
        let warnings: Vec<&str> = o.stderr.lines().collect();
        assert_eq!(warnings.len() as u64, n, "{name}: {o:#?}");
        for ((item, warning), (line, index, says)) in listed.iter().zip(&warnings).zip(case.invalid)
        {
            assert_eq!(
                (u(item, "/line"), u(item, "/index")),
                (*line, *index),
                "{name}: {item}"
            );
            assert!(
                s(item, "/error").contains(says),
                "{name}: {item} lacks {says:?}"
            );
            let at = format!("{}:{line}: invalid record skipped: ", path.display());
            assert!(
                warning.starts_with(&at) && warning.contains(says),
                "{name}: {warning:?} should start with {at:?} and name {says:?}"
            );
        }
        let mut done: Vec<String> = effects(&log).into_iter().map(|(k, _)| k).collect();
        done.sort();
        assert_eq!(done, case.valid, "{name}: the other lines ran, once each");
    }
}

#[test]
fn strict_fails_at_the_first_invalid_record_before_any_work() {
    let dir = Sandbox::new();
    let (a, b) = (ndjson_task("a"), ndjson_task("b"));
    let after = "(strict: the first invalid record fails the run)";
    let cases = [
        (
            "invalid_task.ndjson",
            format!("{a}\n{{\"image_key\": \"img/x.jpg\", \"size\": \"0x0\"}}\n{b}\n"),
            ":2: invalid task: field `size`: expected WxH",
        ),
        (
            "broken_line.ndjson",
            format!("{a}\n{{\"image_key\": \"img/x.jpg\", \"size\":\n{b}\n"),
            ":2:34: invalid JSON: EOF while parsing a value",
        ),
        (
            "invalid_task.json",
            format!("[\n{a},\n[1],\n{b}\n]\n"),
            ":3: invalid task: expected a JSON object for a task, got an array",
        ),
    ];
    for (name, text, says) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let log = dir.path().join(format!("{name}.effects"));
        let report = dir.path().join(format!("{name}.report"));
        let o = dir.run(&[
            "run",
            "--tasks",
            path_str(&path),
            "--strict",
            "--latency-ms",
            "0",
            "--effects-log",
            path_str(&log),
            "--report",
            path_str(&report),
        ]);
        let line = assert_one_line_error(&o, 1);
        let prefix = format!("error: {}{says}", path.display());
        assert!(
            line.starts_with(&prefix),
            "{name}: {line:?} should start with {prefix:?}"
        );
        if says.contains("invalid task") {
            assert!(line.ends_with(after), "{name}: {line}");
        }
        // The precheck refused the file: nothing ran, nothing was recorded.
        assert!(!log.exists(), "{name}: work started");
        assert!(!report.exists(), "{name}: a report was written");
        assert!(
            !dir.path().join("taskq.db").exists(),
            "{name}: the engine started"
        );
    }
    // A file without an invalid record runs as without --strict.
    let path = dir.path().join("good.ndjson");
    std::fs::write(&path, format!("{a}\n\n{b}\n")).unwrap();
    let o = dir.run(&[
        "run",
        "--tasks",
        path_str(&path),
        "--strict",
        "--no-db",
        "--latency-ms",
        "0",
    ]);
    assert_no_panic(&o);
    assert_eq!(o.code, Some(0), "{o:#?}");
    assert!(o.stdout.contains("2 succeeded"), "{o:#?}");
}

#[test]
fn strict_on_stdin_stops_admission_at_the_first_invalid_record() {
    let dir = Sandbox::new();
    for (name, bad, says) in [
        (
            "invalid task",
            r#"{"image_key": "img/c.jpg", "size": "0x0"}"#,
            "<stdin>:3: invalid task: field `size`",
        ),
        (
            "broken line",
            r#"{"image_key": "img/c.jpg", "size": "200x200""#,
            "<stdin>:3:44: invalid JSON: EOF while parsing an object",
        ),
    ] {
        let input = [
            ndjson_task("a"),
            ndjson_task("b"),
            bad.to_owned(),
            ndjson_task("d"),
        ]
        .join("\n")
            + "\n";
        let report = dir.path().join("r.json");
        let log = dir
            .path()
            .join(format!("{}.effects", name.replace(' ', "_")));
        let o = outcome(
            dir.cmd()
                .args([
                    "run",
                    "--tasks",
                    "-",
                    "--strict",
                    "--no-db",
                    "--latency-ms",
                    "0",
                    "--effects-log",
                    path_str(&log),
                    "--report",
                    path_str(&report),
                ])
                .write_stdin(input),
        );
        assert_no_panic(&o);
        assert_eq!(o.code, Some(1), "{name}: {o:#?}");
        assert!(
            o.stdout.starts_with("Failed: 2 succeeded"),
            "{name}: {o:#?}"
        );
        assert!(
            o.stderr.starts_with(&format!("error: {says}")),
            "{name}: {o:#?}"
        );
        let r = read_json(&report);
        assert_report_consistent(&r);
        assert_eq!(s(&r, "/status"), "failed", "{name}");
        assert_eq!(r["errors"].as_array().unwrap().len(), 1, "{name}: {r:#}");
        assert!(s(&r, "/errors/0").starts_with(says), "{name}: {r:#}");
        // The tasks before the record ran; none after it was admitted.
        assert_eq!(u(&r, "/counts/submitted"), 2, "{name}");
        assert_eq!(u(&r, "/counts/invalid"), 0, "{name}");
        let mut done: Vec<String> = effects(&log).into_iter().map(|(k, _)| k).collect();
        done.sort();
        assert_eq!(done, ["img/a.jpg:200x200", "img/b.jpg:200x200"], "{name}");
    }
}

// ---------------------------------------------------------------------------
// Bad settings
// ---------------------------------------------------------------------------

#[test]
fn bad_settings_fail_with_one_line_naming_the_setting() {
    let dir = Sandbox::new();
    let log = dir.path().join("effects.log");
    let cases: &[(&[&str], &str)] = &[
        (&["--workers", "0"], "--workers"),
        (&["--workers", "100000"], "--workers"),
        (&["--capacity", "0"], "--capacity"),
        (&["--producers", "0"], "--producers"),
        (&["--producers", "5000"], "--producers"),
        (&["--transient-rate", "1.5"], "--transient-rate"),
        (&["--transient-rate", "NaN"], "--transient-rate"),
        (&["--permanent-rate=-0.1"], "--permanent-rate"),
        (&["--latency-ms=-1"], "--latency-ms"),
        (&["--latency-ms", "inf"], "--latency-ms"),
        (&["--jitter-ms=-2"], "--jitter-ms"),
        (&["--max-record-bytes", "10"], "--max-record-bytes"),
        (&["--batch-size", "0"], "--batch-size"),
        (&["--cache-capacity", "0"], "--cache-capacity"),
        (&["--max-retries", "100000"], "--max-retries"),
        (&["--backoff-max-ms", "0"], "--backoff-max-ms"),
    ];
    for (extra, setting) in cases {
        let mut args = vec![
            "run",
            "--tasks",
            "examples/sample_tasks_small.json",
            "--effects-log",
            path_str(&log),
        ];
        args.extend_from_slice(extra);
        let o = dir.run(&args);
        let line = assert_one_line_error(&o, 1);
        assert!(
            line.starts_with(&format!("error: invalid setting {setting}: ")),
            "{extra:?}: {line}"
        );
        assert!(
            !log.exists(),
            "{extra:?}: work started despite a bad setting"
        );
        assert!(
            !dir.path().join("taskq.db").exists(),
            "{extra:?}: store created"
        );
    }
}

#[test]
fn usage_errors_exit_2_and_name_the_argument() {
    let dir = Sandbox::new();
    let cases: &[(&[&str], &str)] = &[
        (&["--admission", "maybe"], "'--admission <ADMISSION>'"),
        (&["--processor", "gpu"], "'--processor <PROCESSOR>'"),
        (&["--workers", "many"], "'--workers <N>'"),
        (&["--capacity", "1.5"], "'--capacity <CAPACITY>'"),
        (&["--durability", "maybe"], "'--durability <DURABILITY>'"),
        (&["--db", "x.db", "--no-db"], "'--no-db'"),
        (&["--bogus"], "'--bogus'"),
    ];
    for (extra, named) in cases {
        let mut args = vec!["run", "--tasks", "examples/sample_tasks_small.json"];
        args.extend_from_slice(extra);
        let o = dir.run(&args);
        assert_no_panic(&o);
        assert_eq!(o.code, Some(2), "{extra:?}: {o:#?}");
        let first = o.stderr.lines().next().unwrap_or_default();
        assert!(first.starts_with("error: "), "{extra:?}: {o:#?}");
        assert!(first.contains(named), "{extra:?}: {first:?} lacks {named}");
        assert!(o.stdout.is_empty());
    }
    // Missing required argument and unknown subcommand.
    for args in [&["run"][..], &["frobnicate"][..], &[][..]] {
        let o = dir.run(args);
        assert_no_panic(&o);
        assert_eq!(o.code, Some(2), "{args:?}: {o:#?}");
    }
}

/// `--latency-ms -1` (space-separated) should be refused naming `--latency-ms`,
/// like `--latency-ms=-1` is.
#[test]

fn negative_values_are_refused_naming_the_setting() {
    let dir = Sandbox::new();
    let cases: &[(&[&str], &str)] = &[
        (&["--permanent-rate", "-0.1"], "--permanent-rate"),
        (&["--latency-ms", "-1"], "--latency-ms"),
        (&["--transient-rate", "-0.5"], "--transient-rate"),
        (&["--jitter-ms", "-2"], "--jitter-ms"),
    ];
    for (extra, setting) in cases {
        let mut args = vec!["run", "--tasks", "examples/sample_tasks_small.json"];
        args.extend_from_slice(extra);
        let o = dir.run(&args);
        assert_no_panic(&o);
        assert_ne!(o.code, Some(0), "{extra:?}: {o:#?}");
        let first = o.stderr.lines().next().unwrap_or_default();
        assert!(
            first.contains(setting),
            "{extra:?}: {first:?} does not name {setting}"
        );
    }
}

#[test]
fn output_paths_that_cannot_be_written_fail_cleanly() {
    let dir = Sandbox::new();
    let nowhere = dir.path().join("no-such-dir");
    let report = nowhere.join("r.json");
    let o = dir.run(&[
        "run",
        "--tasks",
        "examples/sample_tasks_small.json",
        "--latency-ms",
        "0",
        "--report",
        path_str(&report),
    ]);
    assert_no_panic(&o);
    assert_eq!(o.code, Some(1), "{o:#?}");
    assert_eq!(o.stderr.lines().count(), 1, "{o:#?}");
    assert!(
        o.stderr
            .starts_with(&format!("error: cannot write report {}", report.display())),
        "{o:#?}"
    );

    let log = nowhere.join("effects.log");
    let o = dir.run(&[
        "run",
        "--tasks",
        "examples/sample_tasks_small.json",
        "--latency-ms",
        "0",
        "--effects-log",
        path_str(&log),
    ]);
    let line = assert_one_line_error(&o, 1);
    assert!(
        line.starts_with(&format!("error: cannot open effects log {}", log.display())),
        "{line}"
    );
}

#[test]

fn io_errors_state_the_os_error_once() {
    let dir = Sandbox::new();
    let log = dir.path().join("no-such-dir").join("effects.log");
    let o = dir.run(&[
        "run",
        "--tasks",
        "examples/sample_tasks_small.json",
        "--latency-ms",
        "0",
        "--effects-log",
        path_str(&log),
    ]);
    let line = assert_one_line_error(&o, 1);
    assert_eq!(line.matches("(os error 2)").count(), 1, "{line}");

    let db = dir.path().join("no-such-dir").join("t.db");
    let o = dir.run(&[
        "run",
        "--tasks",
        "examples/sample_tasks_small.json",
        "--latency-ms",
        "0",
        "--db",
        path_str(&db),
    ]);
    let line = assert_one_line_error(&o, 1);
    assert_eq!(
        line.matches("unable to open database file").count(),
        1,
        "{line}"
    );
}

// ---------------------------------------------------------------------------
// Standard input
// ---------------------------------------------------------------------------

#[test]
fn stdin_ndjson_and_json_are_read() {
    let dir = Sandbox::new();
    let tasks: Vec<String> = (0..50).map(|i| ndjson_task(&format!("s{i:03}"))).collect();
    let inputs = [
        ("ndjson", tasks.join("\n") + "\n"),
        ("json", format!("[\n{}\n]\n", tasks.join(",\n"))),
    ];
    for (name, input) in inputs {
        let report = dir.path().join(format!("{name}.report"));
        let log = dir.path().join(format!("{name}.effects"));
        let db = dir.path().join(format!("{name}.db"));
        let o = outcome(
            dir.cmd()
                .args([
                    "run",
                    "--tasks",
                    "-",
                    "--db",
                    path_str(&db),
                    "--latency-ms",
                    "0",
                    "--producers",
                    "2",
                    "--effects-log",
                    path_str(&log),
                    "--report",
                    path_str(&report),
                ])
                .write_stdin(input),
        );
        assert_no_panic(&o);
        assert_eq!(o.code, Some(0), "{name}: {o:#?}");
        let r = read_json(&report);
        assert_report_shape(&r);
        assert_report_consistent(&r);
        assert_eq!(s(&r, "/status"), "completed");
        assert_eq!(u(&r, "/counts/succeeded"), 50, "{name}");
        assert_eq!(s(&r, "/config/tasks"), "-");
        assert_eq!(effects(&log).len(), 50, "{name}");
    }
}

#[test]
fn stdin_broken_ndjson_line_is_one_invalid_record() {
    let dir = Sandbox::new();
    let report = dir.path().join("r.json");
    let input = [
        ndjson_task("a"),
        r#"{"image_key": "img/c.jpg", "size": "200x200""#.to_owned(),
        ndjson_task("d"),
    ]
    .join("\n")
        + "\n";
    let o = outcome(
        dir.cmd()
            .args([
                "run",
                "--tasks",
                "-",
                "--no-db",
                "--latency-ms",
                "0",
                "--report",
            ])
            .arg(&report)
            .write_stdin(input),
    );
    assert_no_panic(&o);
    assert_eq!(o.code, Some(3), "{o:#?}");
    assert_eq!(
        o.stderr,
        "<stdin>:2: invalid record skipped: not JSON: the line ends inside an object \
         (expected '}') at column 44\n"
    );
    let r = read_json(&report);
    assert_eq!(s(&r, "/status"), "completed");
    assert_eq!(u(&r, "/counts/invalid"), 1);
    assert_eq!(u(&r, "/counts/succeeded"), 2);
}

#[test]
fn stdin_bad_record_stops_admission_there_and_fails_the_run() {
    let dir = Sandbox::new();
    let report = dir.path().join("r.json");
    let log = dir.path().join("effects.log");
    // A JSON array that breaks: there is no next record to go on at.
    let input = format!(
        "[\n{},\n{},\n{},\n{},\n{}\n]\n",
        ndjson_task("a"),
        ndjson_task("b"),
        r#"{"image_key": "img/c.jpg" "size": "200x200"}"#,
        ndjson_task("d"),
        ndjson_task("e"),
    );
    let o = outcome(
        dir.cmd()
            .args([
                "run",
                "--tasks",
                "-",
                "--latency-ms",
                "0",
                "--effects-log",
                path_str(&log),
                "--report",
                path_str(&report),
            ])
            .write_stdin(input),
    );
    assert_no_panic(&o);
    assert_eq!(o.code, Some(1), "{o:#?}");
    assert!(o.stdout.starts_with("Failed: 2 succeeded"), "{o:#?}");
    assert!(o.stdout.contains("1 error(s)"), "{o:#?}");
    assert!(o.stderr.starts_with("error: <stdin>:4:27: "), "{o:#?}");
    let r = read_json(&report);
    assert_report_shape(&r);
    assert_report_consistent(&r);
    assert_eq!(s(&r, "/status"), "failed");
    let errors = r["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{r:#}");
    let error = errors[0].as_str().unwrap();
    assert_eq!(error, "<stdin>:4:27: invalid JSON: expected `,` or `}`");
    // The tasks before the bad record ran; none after it was admitted.
    assert_eq!(u(&r, "/counts/submitted"), 2);
    assert_eq!(u(&r, "/counts/succeeded"), 2);
    let mut done: Vec<String> = effects(&log).into_iter().map(|(k, _)| k).collect();
    done.sort();
    assert_eq!(done, ["img/a.jpg:200x200", "img/b.jpg:200x200"]);
}

#[test]
fn stdin_that_is_not_a_task_file_fails() {
    let dir = Sandbox::new();
    for input in ["", "not json\n", "42\n"] {
        let o = outcome(
            dir.cmd()
                .args(["run", "--tasks", "-", "--latency-ms", "0", "--report", "-"])
                .write_stdin(input),
        );
        assert_no_panic(&o);
        assert_eq!(o.code, Some(1), "{input:?}: {o:#?}");
        let r: Value = serde_json::from_str(&o.stdout).expect("JSON report on stdout");
        assert_eq!(s(&r, "/status"), "failed");
        assert_eq!(u(&r, "/counts/submitted"), 0);
        let error = r["errors"][0].as_str().unwrap();
        assert!(error.starts_with("<stdin>:1:1: "), "{error}");
    }
}

/// A failed run should say why on stderr: with `--report -` the only trace of
/// the error is inside the JSON on stdout, while stderr is empty and the exit
/// code is 1.
#[test]

fn stdin_failure_is_reported_on_stderr() {
    let dir = Sandbox::new();
    let input = format!("[{},\n{{\"image_key\": }}]\n", ndjson_task("a"));
    let o = outcome(
        dir.cmd()
            .args(["run", "--tasks", "-", "--latency-ms", "0", "--report", "-"])
            .write_stdin(input),
    );
    assert_no_panic(&o);
    assert_eq!(o.code, Some(1), "{o:#?}");
    assert!(o.stderr.contains("<stdin>:2:"), "{o:#?}");
}

// ---------------------------------------------------------------------------
// Admission
// ---------------------------------------------------------------------------

#[test]
fn reject_mode_at_capacity_one_rejects_and_counts() {
    let dir = Sandbox::new();
    let report = dir.path().join("r.json");
    let o = dir.run(&[
        "run",
        "--tasks",
        "examples/tasks_1000.json",
        "--admission",
        "reject",
        "--capacity",
        "1",
        "--workers",
        "1",
        "--producers",
        "4",
        "--latency-ms",
        "2",
        "--report",
        path_str(&report),
    ]);
    assert_no_panic(&o);
    assert_eq!(o.code, Some(3), "{o:#?}");
    let r = read_json(&report);
    assert_report_shape(&r);
    assert_report_consistent(&r);
    assert_eq!(s(&r, "/status"), "completed");
    let c = |k: &str| u(&r, &format!("/counts/{k}"));
    assert_eq!(c("submitted"), 1000);
    assert!(c("rejected") > 0, "{r:#}");
    assert!(c("admitted") > 0, "{r:#}");
    assert_eq!(c("admitted") + c("rejected"), c("submitted"));
    assert_eq!(u(&r, "/rejections/full"), c("rejected"));
    assert_eq!(c("succeeded"), c("admitted"));
    assert_eq!(u(&r, "/queue_depth/max"), 1);
    assert_eq!(s(&r, "/config/engine/admission"), "reject");
    assert!(o.stdout.contains(&format!("({} rejected", c("rejected"))));
}

/// The mean queue depth can never exceed the capacity (Promise 1).
#[test]

fn mean_queue_depth_never_exceeds_capacity() {
    let dir = Sandbox::new();
    let report = dir.path().join("r.json");
    let o = dir.run(&[
        "run",
        "--tasks",
        "examples/tasks_1000.json",
        "--capacity",
        "1",
        "--workers",
        "1",
        "--producers",
        "4",
        "--latency-ms",
        "0",
        "--report",
        path_str(&report),
    ]);
    assert_eq!(o.code, Some(0), "{o:#?}");
    let r = read_json(&report);
    let mean = f(&r, "/queue_depth/mean");
    let max = u(&r, "/queue_depth/max") as f64;
    assert!(mean <= 1.0 + 1e-9, "mean depth {mean} > capacity 1");
    assert!(mean <= max + 1e-9, "mean depth {mean} > max depth {max}");
}

/// Promise 4: one key, one processing. The dup example repeats 300 keys.
#[test]
fn duplicate_keys_are_processed_once() {
    let dir = Sandbox::new();
    let report = dir.path().join("r.json");
    let log = dir.path().join("effects.log");
    let o = dir.run(&[
        "run",
        "--tasks",
        "examples/tasks_1000_dup.ndjson",
        "--latency-ms",
        "0",
        "--producers",
        "4",
        "--effects-log",
        path_str(&log),
        "--report",
        path_str(&report),
    ]);
    assert_no_panic(&o);
    assert_eq!(o.code, Some(0), "{o:#?}");
    let r = read_json(&report);
    assert_report_consistent(&r);
    assert_eq!(u(&r, "/counts/succeeded"), 700, "{r:#}");
    assert_eq!(u(&r, "/counts/duplicates"), 300, "{r:#}");
    let keys: Vec<String> = effects(&log).into_iter().map(|(k, _)| k).collect();
    let distinct: HashSet<&String> = keys.iter().collect();
    assert_eq!(keys.len(), distinct.len(), "a key was processed twice");
    assert_eq!(distinct.len(), 700);
}

/// A run is resumable: a second run of the same file over the same store skips
/// every recorded task as a duplicate; `--no-db` turns idempotency off.
#[test]
fn rerun_over_the_same_store_skips_recorded_tasks() {
    let dir = Sandbox::new();
    let log = dir.path().join("effects.log");
    let run = |extra: &[&str]| {
        let mut args = vec![
            "run",
            "--tasks",
            "examples/sample_tasks_small.json",
            "--latency-ms",
            "0",
            "--effects-log",
            path_str(&log),
            "--report",
            "-",
        ];
        args.extend_from_slice(extra);
        let o = dir.run(&args);
        assert_no_panic(&o);
        assert_eq!(o.code, Some(0), "{extra:?}: {o:#?}");
        let r: Value = serde_json::from_str(&o.stdout).expect("JSON report");
        assert_report_shape(&r);
        assert_report_consistent(&r);
        r
    };
    let first = run(&[]);
    assert_eq!(u(&first, "/counts/succeeded"), 5);
    assert_eq!(effects(&log).len(), 5);

    let second = run(&[]);
    assert_eq!(u(&second, "/counts/succeeded"), 0);
    assert_eq!(u(&second, "/counts/duplicates"), 5);
    assert_eq!(u(&second, "/counts/started"), 0);
    assert_eq!(effects(&log).len(), 5, "nothing was processed again");

    let other_store = run(&["--db", "other.db"]);
    assert_eq!(u(&other_store, "/counts/succeeded"), 5);
    assert_eq!(effects(&log).len(), 10);

    let no_db = run(&["--no-db"]);
    assert!(no_db["config"]["engine"]["store"].is_null());
    assert_eq!(u(&no_db, "/counts/succeeded"), 5);
    assert_eq!(effects(&log).len(), 15);
}

#[test]

fn negative_shutdown_timeout_is_refused() {
    let dir = Sandbox::new();
    for value in ["--shutdown-timeout=-1", "--shutdown-timeout=NaN"] {
        let o = dir.run(&[
            "run",
            "--tasks",
            "examples/sample_tasks_small.json",
            "--latency-ms",
            "0",
            value,
        ]);
        assert_no_panic(&o);
        assert_ne!(o.code, Some(0), "{value}: {o:#?}");
        assert!(o.stderr.contains("--shutdown-timeout"), "{value}: {o:#?}");
    }
}

/// A reader that goes away early (`taskq run ... --report - | head`) must not
/// make taskq panic.
#[test]

fn closed_stdout_does_not_panic() {
    let dir = Sandbox::new();
    let mut child = std::process::Command::new(BIN)
        .current_dir(dir.path())
        .args([
            "run",
            "--tasks",
            "examples/sample_tasks_small.json",
            "--latency-ms",
            "20",
            "--report",
            "-",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Close the reading end before taskq writes anything.
    drop(child.stdout.take());
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_ne!(status.code(), Some(101), "{stderr}");
}

// ---------------------------------------------------------------------------
// Logs and the report file
// ---------------------------------------------------------------------------

/// A run of 1000 tasks with injected transient and permanent failures, into
/// its own database.
fn failing_run(dir: &Sandbox, db: &str, report: &str) -> Command {
    let mut cmd = dir.cmd();
    cmd.args([
        "run",
        "--tasks",
        "examples/tasks_1000.json",
        "--latency-ms",
        "0",
        "--transient-rate",
        "0.3",
        "--permanent-rate",
        "0.05",
        "--backoff-base-ms",
        "1",
        "--backoff-max-ms",
        "5",
        "--db",
        db,
        "--report",
        report,
    ]);
    cmd
}

#[test]
fn rust_log_prints_task_events_on_stderr_as_text_or_json_lines() {
    let dir = Sandbox::new();

    // Default: warnings only, so nothing about single tasks.
    let o = outcome(&mut failing_run(&dir, "quiet.db", "quiet.json"));
    assert_no_panic(&o);
    assert_eq!(o.code, Some(3), "{o:#?}");
    assert!(!o.stderr.contains("DEBUG"), "{o:#?}");
    assert!(!o.stderr.contains("task_id"), "{o:#?}");

    // RUST_LOG=taskq=debug: retries and dead letters, named, on stderr.
    let o = outcome(failing_run(&dir, "text.db", "text.json").env("RUST_LOG", "taskq=debug"));
    assert_no_panic(&o);
    assert_eq!(o.code, Some(3), "{o:#?}");
    assert!(o.stdout.starts_with("Completed:"), "logs stay off stdout");
    for needle in [
        " DEBUG ",
        "outcome=\"retry_scheduled\"",
        "outcome=\"dead_lettered\"",
        "task_id=",
        "idempotency_key=img/",
        "attempt=",
        "class=permanent",
        "kind=bad_source",
        "delay_ms=",
    ] {
        assert!(o.stderr.contains(needle), "no {needle:?} in {}", o.stderr);
    }
    // Successes are `trace`, not `debug`.
    assert!(!o.stderr.contains("outcome=\"succeeded\""));

    // --log-format json (a global flag, before or after the subcommand): one
    // JSON object per line, the fields at the top level.
    let o = outcome(
        failing_run(&dir, "json.db", "json.json")
            .arg("--log-format")
            .arg("json")
            .env("RUST_LOG", "taskq=debug"),
    );
    assert_no_panic(&o);
    assert_eq!(o.code, Some(3), "{o:#?}");
    let r = read_json(&dir.path().join("json.json"));
    let mut by_outcome = std::collections::HashMap::<String, u64>::new();
    for line in o.stderr.lines() {
        let e: Value = serde_json::from_str(line)
            .unwrap_or_else(|err| panic!("not a JSON line ({err}): {line}"));
        assert!(e.is_object(), "{line}");
        assert_eq!(e["level"], "DEBUG", "{line}");
        let Some(kind) = e["outcome"].as_str() else {
            continue;
        };
        assert!(e["task_id"].is_string(), "{line}");
        assert!(s(&e, "/idempotency_key").starts_with("img/"), "{line}");
        assert!(u(&e, "/attempt") >= 1, "{line}");
        assert!(
            ["transient", "permanent"].contains(&s(&e, "/class")),
            "{line}"
        );
        assert!(!s(&e, "/kind").is_empty(), "{line}");
        if kind == "retry_scheduled" {
            u(&e, "/delay_ms");
        }
        *by_outcome.entry(kind.to_owned()).or_default() += 1;
    }
    // One event per retry and per dead letter: the report's own counts.
    assert_eq!(by_outcome["retry_scheduled"], u(&r, "/counts/retried"));
    assert_eq!(by_outcome["dead_lettered"], u(&r, "/counts/dead_lettered"));
    assert_eq!(by_outcome.len(), 2, "{by_outcome:?}");

    // `trace` adds one event per success.
    let o = outcome(
        dir.cmd()
            .args(["--log-format", "json", "run", "--db", "trace.db"])
            .args(["--tasks", "examples/sample_tasks_small.json"])
            .args(["--latency-ms", "0"])
            .env("RUST_LOG", "taskq=trace"),
    );
    assert_eq!(o.code, Some(0), "{o:#?}");
    let succeeded = o
        .stderr
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["outcome"] == "succeeded")
        .count();
    assert_eq!(succeeded, 5, "{}", o.stderr);

    // A bad RUST_LOG is named, not ignored.
    let o = outcome(
        dir.cmd()
            .args(["run", "--tasks", "examples/sample_tasks_small.json"])
            .env("RUST_LOG", "taskq=loud"),
    );
    let line = assert_one_line_error(&o, 1);
    assert!(
        line.starts_with("error: invalid RUST_LOG \"taskq=loud\""),
        "{line}"
    );
}

/// The report goes through a temporary file: a link planted at any name in
/// its directory (the temporary file's old, predictable name
/// `.<report>.<pid>.tmp`, or the report's own name) is never followed, and
/// the files it points to stay untouched.
#[cfg(unix)]
#[test]
fn the_report_never_follows_a_planted_link() {
    use std::io::Write;
    use std::os::unix::fs::{symlink, PermissionsExt};
    let dir = Sandbox::new();
    let victim = dir.path().join("victim");
    let victim_too = dir.path().join("victim-too");
    std::fs::write(&victim, b"precious").unwrap();
    std::fs::write(&victim_too, b"precious too").unwrap();
    let report = dir.path().join("r.json");
    symlink(&victim_too, &report).unwrap();
    // Standard input keeps the run open while the link is planted.
    let mut child = std::process::Command::new(BIN)
        .current_dir(dir.path())
        .env_remove("RUST_LOG")
        .args(["run", "--tasks", "-", "--latency-ms", "0", "--report"])
        .arg(&report)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let predictable = dir.path().join(format!(".r.json.{}.tmp", child.id()));
    // The start-up check may hold that name for a moment: plant once it is free.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while let Err(e) = symlink(&victim, &predictable) {
        assert!(std::time::Instant::now() < deadline, "cannot plant: {e}");
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut stdin = child.stdin.take().unwrap();
    for i in 0..5 {
        writeln!(stdin, "{}", ndjson_task(&format!("link{i}"))).unwrap();
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    assert_eq!(std::fs::read(&victim_too).unwrap(), b"precious too");
    let meta = std::fs::symlink_metadata(&report).unwrap();
    assert!(meta.is_file(), "the link at the report's name is replaced");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(u(&read_json(&report), "/counts/succeeded"), 5);
    // No temporary file is left behind; the planted link is left alone.
    let left: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    let planted = predictable
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert_eq!(left, vec![planted], "{left:?}");
}

// ---------------------------------------------------------------------------
// taskq generate
// ---------------------------------------------------------------------------

#[test]
fn generate_is_deterministic_and_readable_by_run() {
    let dir = Sandbox::new();
    let gen = |name: &str, seed: &str| {
        let path = dir.path().join(name);
        let o = dir.run(&[
            "generate",
            "--count",
            "100",
            "--out",
            path_str(&path),
            "--format",
            "ndjson",
            "--duplicates",
            "0.2",
            "--seed",
            seed,
        ]);
        assert_no_panic(&o);
        assert_eq!(o.code, Some(0), "{o:#?}");
        assert_eq!(
            o.stderr.trim_end(),
            format!("wrote 100 tasks to {}", path.display())
        );
        std::fs::read(&path).unwrap()
    };
    let first = gen("a.ndjson", "5");
    let second = gen("b.ndjson", "5");
    assert_eq!(first, second, "same options, same bytes");
    assert_ne!(first, gen("c.ndjson", "6"), "another seed, another file");

    // `--out -` writes the same bytes to stdout.
    let o = dir
        .cmd()
        .args([
            "generate",
            "--count",
            "100",
            "--out",
            "-",
            "--format",
            "ndjson",
            "--duplicates",
            "0.2",
            "--seed",
            "5",
        ])
        .output()
        .unwrap();
    assert!(o.status.success());
    assert_eq!(o.stdout, first);

    // 100 lines, 20 of them repeating an earlier key.
    let text = String::from_utf8(first).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 100);
    let keys: HashSet<(String, String)> = lines
        .iter()
        .map(|t| (s(t, "/image_key").to_owned(), s(t, "/size").to_owned()))
        .collect();
    assert_eq!(keys.len(), 80);

    // taskq run reads it.
    let report = dir.path().join("r.json");
    let o = dir.run(&[
        "run",
        "--tasks",
        path_str(&dir.path().join("a.ndjson")),
        "--latency-ms",
        "0",
        "--report",
        path_str(&report),
    ]);
    assert_no_panic(&o);
    assert_eq!(o.code, Some(0), "{o:#?}");
    let r = read_json(&report);
    assert_report_consistent(&r);
    assert_eq!(u(&r, "/counts/submitted"), 100);
    assert_eq!(u(&r, "/counts/invalid"), 0);
    assert_eq!(u(&r, "/counts/succeeded"), 80);
    assert_eq!(u(&r, "/counts/duplicates"), 20);

    // The JSON layout is read too.
    let json = dir.path().join("a.json");
    let o = dir.run(&[
        "generate",
        "--count",
        "100",
        "--out",
        path_str(&json),
        "--seed",
        "5",
    ]);
    assert_eq!(o.code, Some(0), "{o:#?}");
    let o = dir.run(&[
        "run",
        "--tasks",
        path_str(&json),
        "--latency-ms",
        "0",
        "--format",
        "json",
        "--db",
        "json.db",
    ]);
    assert_eq!(o.code, Some(0), "{o:#?}");
    assert!(o.stdout.starts_with("Completed: 100 succeeded"), "{o:#?}");
}

#[test]
fn generate_refuses_a_duplicate_share_over_one() {
    let dir = Sandbox::new();
    let out = dir.path().join("g.ndjson");
    let o = dir.run(&[
        "generate",
        "--count",
        "100",
        "--out",
        path_str(&out),
        "--format",
        "ndjson",
        "--duplicates",
        "2",
    ]);
    let line = assert_one_line_error(&o, 1);
    assert!(
        line.contains("--duplicates must be a share between 0.0 and 1.0, got 2"),
        "{line}"
    );
    let o = dir.run(&[
        "generate",
        "--count",
        "10",
        "--out",
        "-",
        "--duplicates",
        "1.5",
    ]);
    let line = assert_one_line_error(&o, 1);
    assert!(line.contains("--duplicates"), "{line}");
}

#[test]

fn generate_with_bad_options_leaves_the_output_file_alone() {
    let dir = Sandbox::new();
    let out = dir.path().join("keep.ndjson");
    std::fs::write(&out, "precious\n").unwrap();
    let o = dir.run(&[
        "generate",
        "--count",
        "100",
        "--out",
        path_str(&out),
        "--duplicates",
        "2",
    ]);
    assert_ne!(o.code, Some(0));
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "precious\n");
    assert!(!o.stderr.contains("cannot write"), "{}", o.stderr);
}

// ---------------------------------------------------------------------------
// Help
// ---------------------------------------------------------------------------

#[test]
fn help_mentions_the_commands_and_every_flag() {
    let dir = Sandbox::new();
    let o = dir.run(&["--help"]);
    assert_eq!(o.code, Some(0), "{o:#?}");
    for word in [
        "run",
        "generate",
        "dlq",
        "seed-images",
        "bench",
        "--help",
        "--version",
    ] {
        assert!(o.stdout.contains(word), "taskq --help lacks {word}");
    }

    let o = dir.run(&["run", "--help"]);
    assert_eq!(o.code, Some(0), "{o:#?}");
    for value in ["block", "reject", "simulated", "noop", "cpu", "ndjson"] {
        assert!(o.stdout.contains(value), "taskq run --help lacks {value}");
    }

    let o = dir.run(&["generate", "--help"]);
    assert_eq!(o.code, Some(0), "{o:#?}");
    for flag in ["--count", "--out", "--format", "--duplicates", "--seed"] {
        assert!(
            o.stdout.contains(flag),
            "taskq generate --help lacks {flag}"
        );
    }

    let o = dir.run(&["--version"]);
    assert_eq!(o.code, Some(0));
    assert!(o.stdout.starts_with("taskq "), "{o:#?}");
}

#[test]

fn help_has_no_rustdoc_link_syntax() {
    let dir = Sandbox::new();
    let o = dir.run(&["run", "--help"]);
    assert_eq!(o.code, Some(0));
    assert!(!o.stdout.contains("](crate::"), "{}", o.stdout);
}

/// The long flags a `--help` text lists (`--help` itself aside).
fn help_flags(help: &str) -> std::collections::BTreeSet<String> {
    help.lines()
        .filter_map(|l| {
            let l = l.trim_start();
            // `-h, --help`: a short flag first.
            let b = l.as_bytes();
            let l = if b.len() > 4 && b[0] == b'-' && b[1] != b'-' && b[2] == b',' {
                l[3..].trim_start()
            } else {
                l
            };
            l.strip_prefix("--").map(|r| {
                let name: String = r
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                    .collect();
                format!("--{name}")
            })
        })
        .filter(|f| f != "--help")
        .collect()
}

/// The long flags in the README's synopsis lines that start with `command`
/// (and their continuation lines), inside the code block under `heading`.
fn readme_flags(heading: &str, command: &str) -> std::collections::BTreeSet<String> {
    let readme = std::fs::read_to_string(format!("{}/README.md", crate::ROOT)).unwrap();
    let section = readme
        .split("\n## ")
        .find(|s| s.starts_with(heading))
        .unwrap_or_else(|| panic!("README has no section {heading:?}"));
    let block = section
        .split("```")
        .nth(1)
        .unwrap_or_else(|| panic!("README section {heading:?} has no code block"));
    let mut flags = std::collections::BTreeSet::new();
    let mut inside = false;
    for line in block.lines() {
        if line.starts_with("taskq ") {
            inside = line.starts_with(command);
        }
        if !inside {
            continue;
        }
        for (i, _) in line.match_indices("--") {
            let name: String = line[i + 2..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            flags.insert(format!("--{name}"));
        }
    }
    assert!(!flags.is_empty(), "README has no synopsis of {command:?}");
    flags
}

/// The README's synopses and the commands' `--help` list the same flags,
/// both ways, so neither can drift from the other.
#[test]
fn readme_synopses_list_exactly_the_flags_of_help() {
    let dir = Sandbox::new();
    // Flags of `taskq` itself show in every subcommand's help; the README
    // documents them once, not in each synopsis.
    let o = dir.run(&["--help"]);
    let global = help_flags(&o.stdout);
    let global: std::collections::BTreeSet<_> =
        global.into_iter().filter(|f| f != "--version").collect();
    let readme = std::fs::read_to_string(format!("{}/README.md", crate::ROOT)).unwrap();
    for flag in &global {
        assert!(
            readme.contains(flag.as_str()),
            "README never mentions {flag}"
        );
    }
    for (heading, args) in [
        ("`taskq run`", &["run"][..]),
        (
            "Failures, retries and the dead-letter queue",
            &["dlq", "list"][..],
        ),
        (
            "Failures, retries and the dead-letter queue",
            &["dlq", "purge"][..],
        ),
    ] {
        let mut help_args = args.to_vec();
        help_args.push("--help");
        let o = dir.run(&help_args);
        assert_eq!(o.code, Some(0), "{o:#?}");
        let help: std::collections::BTreeSet<_> =
            help_flags(&o.stdout).difference(&global).cloned().collect();
        let readme = readme_flags(heading, &format!("taskq {}", args.join(" ")));
        let missing: Vec<_> = help.difference(&readme).collect();
        let extra: Vec<_> = readme.difference(&help).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "taskq {}: README synopsis lacks {missing:?}; README lists {extra:?} that --help does not",
            args.join(" ")
        );
    }
}
