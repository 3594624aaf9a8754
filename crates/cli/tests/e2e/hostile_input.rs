//! Hostile task files through the built binary, each with its documented outcome.
//!
//! - **File level**: a file that cannot be read as a task file fails the run
//!   before any work: exit 1, one line on stderr, `error: <file>:<line>:...`
//!   naming what was expected, nothing processed (no effects-log line) and
//!   nothing recorded (no database, or one whose `tasks` table is empty).
//! - **Task level**: a well-formed record that is not a valid task is listed in
//!   `report.invalid_tasks` with its line and an error naming the field; it is
//!   never processed or recorded, and the good tasks around it succeed (exit 3).
//! - **Line level**: in NDJSON, a line that is not a JSON record (not UTF-8,
//!   not JSON, too deep, too long) is one invalid record, listed and named on
//!   stderr (`file:line: invalid record skipped: ...`) with the column and what
//!   was expected; the other lines run (exit 3). A JSON array that breaks stays
//!   a file-level error.
//!   Some odd-looking records are valid and must succeed (unicode keys, `a..b`).
//! - Ids are labels: duplicate ids with different keys both run.
//! - An idempotency key reused for other parameters is a conflict: the first
//!   use succeeds, the later one fails with kind `idempotency_conflict` (exit 3),
//!   in one file and across runs over the same database.
//!
//! Nothing may panic: stderr never says "panicked" and no exit code is 101.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use assert_cmd::Command;
use rusqlite::{Connection, OpenFlags};
use serde_json::Value;
use tempfile::TempDir;

/// The binary under test.
const BIN: &str = env!("CARGO_BIN_EXE_taskq");

/// The longest any one command may take before the test fails instead of hanging.
const TIMEOUT: Duration = Duration::from_secs(60);

/// How many commands run at once in the table-driven tests.
const PARALLEL: usize = 4;

// ---------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------

/// A scratch directory that is the working directory of every command, so
/// nothing a run writes by default lands in the crate.
struct Sandbox {
    dir: TempDir,
    runs: AtomicU32,
}

/// The paths one run writes, and what it left behind.
#[derive(Debug)]
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    elapsed: Duration,
    db: PathBuf,
    report: PathBuf,
    log: PathBuf,
}

impl Sandbox {
    fn new() -> Self {
        Sandbox {
            dir: TempDir::new().unwrap(),
            runs: AtomicU32::new(0),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `bytes` to `name` in the sandbox.
    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    /// Fresh names for one run's database, report and effects log.
    fn outputs(&self) -> (PathBuf, PathBuf, PathBuf) {
        let n = self.runs.fetch_add(1, Ordering::Relaxed);
        let p = |ext: &str| self.path().join(format!("run{n}.{ext}"));
        (p("db"), p("report.json"), p("effects.log"))
    }

    /// `taskq run --tasks <tasks> --db <db> --latency-ms 0 --report <r>
    /// --effects-log <e> <extra>` with fresh outputs.
    fn run(&self, tasks: &Path, extra: &[&str]) -> Run {
        let (db, report, log) = self.outputs();
        self.run_with(tasks, &db, &report, &log, extra, None)
    }

    /// A run with the given outputs; under `/usr/bin/time -v -o <rss>` when
    /// `rss` is set.
    fn run_with(
        &self,
        tasks: &Path,
        db: &Path,
        report: &Path,
        log: &Path,
        extra: &[&str],
        rss: Option<&Path>,
    ) -> Run {
        let mut cmd = match rss {
            Some(out) => {
                let mut cmd = Command::new("/usr/bin/time");
                cmd.arg("-v").arg("-o").arg(out).arg(BIN);
                cmd
            }
            None => Command::new(BIN),
        };
        cmd.current_dir(self.path())
            .env_remove("RUST_LOG")
            .timeout(TIMEOUT)
            .arg("run")
            .arg("--tasks")
            .arg(tasks)
            .arg("--db")
            .arg(db)
            .args(["--latency-ms", "0", "--report"])
            .arg(report)
            .arg("--effects-log")
            .arg(log)
            .args(extra);
        let start = Instant::now();
        let out = cmd.output().expect("taskq runs");
        Run {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            elapsed: start.elapsed(),
            db: db.to_owned(),
            report: report.to_owned(),
            log: log.to_owned(),
        }
    }
}

impl Run {
    /// No panic, no exit code 101, no death by a signal.
    fn check_no_panic(&self) -> Result<(), String> {
        if self.stderr.contains("panicked") || self.stdout.contains("panicked") {
            return Err(format!("taskq panicked: {self:#?}"));
        }
        match self.code {
            Some(101) => Err(format!("exit code 101 (a panic): {self:#?}")),
            None => Err(format!("killed by a signal: {self:#?}")),
            Some(_) => Ok(()),
        }
    }

    fn report(&self) -> Result<Value, String> {
        let text = std::fs::read_to_string(&self.report)
            .map_err(|e| format!("cannot read report {}: {e}", self.report.display()))?;
        serde_json::from_str(&text).map_err(|e| format!("report is not JSON ({e}): {text}"))
    }
}

/// The idempotency keys the effects log at `path` says were processed.
fn processed(path: &Path) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    let mut keys: Vec<String> = text
        .lines()
        .map(|l| l.split_once('\t').expect("key<TAB>attempt").0.to_owned())
        .collect();
    keys.sort();
    keys
}

/// The sorted idempotency keys in `table` (`tasks` or `dead_letter`) of the
/// database at `db`; empty when the database or the table does not exist.
fn recorded(db: &Path, table: &str) -> Vec<String> {
    if !db.exists() {
        return Vec::new();
    }
    let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .unwrap_or_else(|e| panic!("cannot open {}: {e}", db.display()));
    let exists: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
            [table],
            |r| r.get(0),
        )
        .unwrap();
    if exists == 0 {
        return Vec::new();
    }
    let mut stmt = conn
        .prepare(&format!(
            "SELECT idempotency_key FROM {table} ORDER BY idempotency_key"
        ))
        .unwrap();
    let keys = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    keys
}

/// The `(id, idempotency_key)` rows of `tasks`, sorted.
fn recorded_ids(db: &Path) -> Vec<(String, String)> {
    let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let mut stmt = conn
        .prepare("SELECT id, idempotency_key FROM tasks ORDER BY idempotency_key")
        .unwrap();
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    rows
}

fn u(v: &Value, pointer: &str) -> u64 {
    v.pointer(pointer)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("{pointer} is not an unsigned integer in {v:#}"))
}

/// Runs `check` over `cases` on [`PARALLEL`] threads and fails with every
/// case that failed, not just the first.
fn check_all<T: Sync>(cases: &[T], check: impl Fn(&T) -> Result<(), String> + Sync) {
    let failures = Mutex::new(Vec::new());
    let next = AtomicU32::new(0);
    std::thread::scope(|scope| {
        for _ in 0..PARALLEL {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                let Some(case) = cases.get(i) else { break };
                if let Err(e) = check(case) {
                    failures.lock().unwrap().push(e);
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}

/// Fails with `message` unless `ok`.
fn ensure(ok: bool, message: impl FnOnce() -> String) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(message())
    }
}

// ---------------------------------------------------------------------------
// File level: the run fails before any work
// ---------------------------------------------------------------------------

/// A file that is not a readable task file.
struct FileCase {
    name: &'static str,
    bytes: Vec<u8>,
    extra: &'static [&'static str],
    /// What follows the path on the error line: `:line:column: ` (or `:line:`).
    at: &'static str,
    /// Part of what the error must say.
    says: &'static str,
}

const A: &str = r#"{"image_key": "img/a.jpg", "size": "200x200"}"#;
const B: &str = r#"{"image_key": "img/b.jpg", "size": "400x400"}"#;

/// `"{head}{A}{tail}"` as bytes.
fn with_a(head: &str, tail: &str) -> Vec<u8> {
    format!("{head}{A}{tail}").into_bytes()
}

fn file_cases() -> Vec<FileCase> {
    let case = |name, bytes: Vec<u8>, at, says| FileCase {
        name,
        bytes,
        extra: &[],
        at,
        says,
    };
    let deep_open = "[".repeat(100_000);
    let deep_objects = format!(
        r#"[{{"image_key": "img/a.jpg", "size": "1x1", "x": {}"#,
        r#"{"a": "#.repeat(100_000)
    );
    let deep_balanced = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    vec![
        // Empty and blank files.
        case(
            "empty",
            Vec::new(),
            ":1:1: ",
            "expected a JSON array of task objects or NDJSON (one object per line), \
             found end of file",
        ),
        case("whitespace only", b" \n\n\t ".to_vec(), ":3:3: ", "found end of file"),
        case("blank CRLF lines", b"\r\n\r\n".to_vec(), ":3:1: ", "found end of file"),
        case("a BOM only", b"\xEF\xBB\xBF".to_vec(), ":1:1: ", "found end of file"),
        // Not UTF-8.
        case(
            "UTF-16 with its BOM",
            b"\xFF\xFE[\x00]\x00".to_vec(),
            ":1:1: ",
            "invalid UTF-8 (byte 0xFF); task files must be UTF-8 text",
        ),
        case(
            "UTF-16 without a BOM",
            b"[\x00{\x00".to_vec(),
            ":1:2: ",
            "expected a task object or ']' after '[', found byte 0x00",
        ),
        case(
            "a Latin-1 key in an array",
            [&with_a("[\n", ",\n")[..], b"{\"image_key\": \"img/caf\xE9.jpg\", \"size\": \"1x1\"}\n]\n"].concat(),
            ":3:23: ",
            "invalid UTF-8 (byte 0xE9)",
        ),
        case(
            "a lone continuation byte",
            b"\x80".to_vec(),
            ":1:1: ",
            "invalid UTF-8 (byte 0x80)",
        ),
        case(
            "NUL bytes only",
            b"\x00\x00\x00".to_vec(),
            ":1:1: ",
            "found byte 0x00",
        ),
        // Truncated.
        case(
            "a truncated array",
            format!("[\n{A},\n{B}\n").into_bytes(),
            ":4:1: ",
            "unexpected end of file: the task array opened on line 1 is not closed (expected ',' or ']')",
        ),
        case(
            "a lone '['",
            b"[".to_vec(),
            ":1:2: ",
            "the task array opened on line 1 is not closed (expected a task or ']')",
        ),
        case(
            "'[{}' (an invalid task, then the end)",
            b"[{}".to_vec(),
            ":1:4: ",
            "the task array opened on line 1 is not closed",
        ),
        case(
            "a record cut off",
            with_a("[\n", ",\n{\"image_key\": \"img/b.jpg\", \"si"),
            ":3:31: ",
            "unexpected end of file: the task starting at line 3, column 1 is cut off",
        ),
        // Something after the array.
        case(
            "trailing garbage",
            with_a("[\n", "\n]\ngarbage\n"),
            ":4:1: ",
            "unexpected 'g' after the closing ']' of the task array (only whitespace may follow it)",
        ),
        case(
            "two arrays",
            b"[][]".to_vec(),
            ":1:3: ",
            "unexpected '[' after the closing ']'",
        ),
        case(
            "an extra ']'",
            with_a("[", "]]"),
            ":1:48: ",
            "unexpected ']' after the closing ']'",
        ),
        // Not an array or NDJSON at all.
        case("null", b"null".to_vec(), ":1:1: ", "found 'n'"),
        case("true", b"true\n".to_vec(), ":1:1: ", "found 't'"),
        case("a string", b"\"string\"".to_vec(), ":1:1: ", "found '\"'"),
        case("a number", b"42\n".to_vec(), ":1:1: ", "found '4'"),
        case("a negative number", b"-1".to_vec(), ":1:1: ", "found '-'"),
        case("a lone '}'", b"}".to_vec(), ":1:1: ", "found '}'"),
        case("' ]'", b" ]".to_vec(), ":1:2: ", "found ']'"),
        case("a comment", with_a("// tasks\n[", "]"), ":1:1: ", "found '/'"),
        case(
            "a PNG",
            b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR".to_vec(),
            ":1:1: ",
            "invalid UTF-8 (byte 0x89); task files must be UTF-8 text",
        ),
        // Auto-detection needs `[` or `{` first (see the line-level table for
        // the same file read with `--format ndjson`).
        case(
            "a text file whose first line is not JSON",
            with_a("hello\n", "\n"),
            ":1:1: ",
            "expected a JSON array of task objects or NDJSON (one object per line), found 'h'",
        ),
        case(
            "a BOM, then garbage",
            b"\xEF\xBB\xBFgarbage".to_vec(),
            ":1:1: ",
            "found 'g'",
        ),
        // Punctuation inside the array.
        case(
            "[1,2,]",
            b"[1,2,]".to_vec(),
            ":1:6: ",
            "expected a task object after ',' (no trailing comma allowed), found ']'",
        ),
        case(
            "a trailing comma after a task",
            with_a("[", ",]"),
            ":1:48: ",
            "no trailing comma allowed",
        ),
        case(
            "[,]",
            b"[,]".to_vec(),
            ":1:2: ",
            "expected a task object or ']' after '[', found ','",
        ),
        case(
            "a missing comma",
            format!("[{A} {B}]").into_bytes(),
            ":1:48: ",
            "expected ',' or ']' after a task, found '{'",
        ),
        case(
            "a doubled comma",
            format!("[{A},,{B}]").into_bytes(),
            ":1:48: ",
            "expected a task object after ',', found ','",
        ),
        case(
            "a leading zero",
            b"[01]".to_vec(),
            ":1:2: ",
            "invalid JSON: `01` is not a JSON value",
        ),
        case(
            "a misspelt literal",
            b"[tru]".to_vec(),
            ":1:2: ",
            "invalid JSON: `tru` is not a JSON value",
        ),
        case("NaN", b"[NaN]".to_vec(), ":1:2: ", "found 'N'"),
        // Broken records.
        case(
            "a raw NUL in a string",
            b"[{\"image_key\": \"img/a\x00b.jpg\", \"size\": \"1x1\"}]".to_vec(),
            ":1:22: ",
            "invalid JSON: control character",
        ),
        case(
            "a raw newline in a string",
            b"[{\"image_key\": \"img/a\nb.jpg\", \"size\": \"1x1\"}]".to_vec(),
            ":1:22: ",
            "invalid JSON: control character",
        ),
        // Bombs.
        case(
            "100k '[' (a nesting bomb)",
            deep_open.clone().into_bytes(),
            ":1:66: ",
            "task nests arrays/objects deeper than 64 levels (max_depth)",
        ),
        case(
            "100k nested objects in an unknown field",
            deep_objects.into_bytes(),
            ":1:427: ",
            "deeper than 64 levels",
        ),
        case(
            "a balanced 100k-deep array after a good task",
            format!("[\n{A},\n{deep_balanced}\n]\n").into_bytes(),
            ":3:65: ",
            "deeper than 64 levels",
        ),
        // Forced formats.
        FileCase {
            name: "NDJSON forced to be read as JSON",
            bytes: format!("{A}\n{B}\n").into_bytes(),
            extra: &["--format", "json"],
            at: ":1:1: ",
            says: "expected '[' to start a JSON array of task objects",
        },
    ]
}

/// Checks a run over a file that must fail before any work.
fn check_refused(run: &Run, path: &Path, at: &str, says: &str) -> Result<(), String> {
    run.check_no_panic()?;
    ensure(run.code == Some(1), || {
        format!("exit code {:?}, expected 1: {run:#?}", run.code)
    })?;
    let lines: Vec<&str> = run.stderr.lines().collect();
    ensure(lines.len() == 1, || {
        format!("expected one line on stderr: {run:#?}")
    })?;
    let prefix = format!("error: {}{at}", path.display());
    ensure(lines[0].starts_with(&prefix), || {
        format!(
            "expected the error to start with {prefix:?}, got {:?}",
            lines[0]
        )
    })?;
    ensure(lines[0].contains(says), || {
        format!("expected {says:?} in {:?}", lines[0])
    })?;
    ensure(run.stdout.is_empty(), || {
        format!("nothing on stdout expected: {run:#?}")
    })?;
    let effects = processed(&run.log);
    ensure(effects.is_empty(), || {
        format!("work started: effects {effects:?}")
    })?;
    let rows = recorded(&run.db, "tasks");
    ensure(rows.is_empty(), || format!("tasks were recorded: {rows:?}"))?;
    ensure(!run.report.exists(), || "a report was written".to_owned())?;
    Ok(())
}

#[test]
fn each_bad_file_fails_before_any_work_with_one_line_naming_file_and_line() {
    let dir = Sandbox::new();
    let cases = file_cases();
    assert!(cases.len() >= 40, "only {} file cases", cases.len());
    let paths: Vec<PathBuf> = cases
        .iter()
        .enumerate()
        .map(|(i, c)| dir.write(&format!("file{i:02}.tasks"), &c.bytes))
        .collect();
    let indexed: Vec<(usize, &FileCase)> = cases.iter().enumerate().collect();
    check_all(&indexed, |&(i, case)| {
        let run = dir.run(&paths[i], case.extra);
        check_refused(&run, &paths[i], case.at, case.says)
            .map_err(|e| format!("[{}] {e}", case.name))?;
        ensure(run.elapsed < Duration::from_secs(10), || {
            format!("[{}] took {:?}", case.name, run.elapsed)
        })
    });
}

// ---------------------------------------------------------------------------
// Line level: a broken NDJSON line is one invalid record
// ---------------------------------------------------------------------------

/// An NDJSON file with lines that are not JSON records.
struct LineCase {
    name: &'static str,
    bytes: Vec<u8>,
    extra: &'static [&'static str],
    /// `(line, index, what the error says, with its column)` of each invalid
    /// record, in order.
    invalid: Vec<(u64, u64, &'static str)>,
    /// How many valid records were submitted.
    submitted: u64,
    /// The idempotency keys processed (and recorded), sorted.
    processed: Vec<&'static str>,
}

const KEY_A: &str = "img/a.jpg:200x200";
const KEY_B: &str = "img/b.jpg:400x400";

#[rustfmt::skip]
fn line_cases() -> Vec<LineCase> {
    let case = |name, bytes: Vec<u8>, invalid: Vec<(u64, u64, &'static str)>, submitted, processed: Vec<&'static str>| {
        LineCase { name, bytes, extra: &[], invalid, submitted, processed }
    };
    let trailing = |column| match column {
        46 => "not JSON: trailing characters at column 46",
        _ => "not JSON: trailing characters at column 47",
    };
    vec![
        // Not UTF-8.
        case("a broken UTF-8 sequence in an NDJSON key",
            [&with_a("", "\n")[..], b"{\"image_key\": \"img/\xC3\x28.jpg\", \"size\": \"1x1\"}\n"].concat(),
            vec![(2, 1, "not UTF-8: byte 0xC3 at column 20; task files must be UTF-8 text")], 1, vec![KEY_A]),
        case("an overlong UTF-8 '/'",
            b"{\"image_key\": \"img/\xC0\xAF.jpg\", \"size\": \"1x1\"}\n".to_vec(),
            vec![(1, 0, "not UTF-8: byte 0xC0 at column 20; task files must be UTF-8 text")], 0, vec![]),
        case("a UTF-8-encoded surrogate",
            b"{\"image_key\": \"img/\xED\xA0\x80.jpg\", \"size\": \"1x1\"}\n".to_vec(),
            vec![(1, 0, "not UTF-8: byte 0xED at column 20; task files must be UTF-8 text")], 0, vec![]),
        case("a character cut by the end of the file",
            b"{\"image_key\": \"img/\xE6\x97".to_vec(),
            vec![(1, 0, "not UTF-8: byte 0xE6 at column 20; task files must be UTF-8 text")], 0, vec![]),
        // Cut off within the line.
        case("a lone '{'", b"{".to_vec(),
            vec![(1, 0, "not JSON: the line ends inside an object (expected '}') at column 1")], 0, vec![]),
        case("an unterminated string", b"{\"image_key\": \"img/a.jpg}\n".to_vec(),
            vec![(1, 0, "not JSON: the line ends inside a string (expected '\"') at column 25")], 0, vec![]),
        case("NDJSON with a broken line in the middle",
            format!("{A}\n{B}\n{{\"image_key\": \"img/c.jpg\", \"size\":\n{A}\n").into_bytes(),
            vec![(3, 2, "not JSON: the line ends where a value is expected at column 34")], 3, vec![KEY_A, KEY_B]),
        // Not JSON.
        case("two objects on one NDJSON line", format!("{A} {B}\n").into_bytes(),
            vec![(1, 0, trailing(47))], 0, vec![]),
        case("NDJSON lines with trailing commas", format!("{A},\n{B}\n").into_bytes(),
            vec![(1, 0, trailing(46))], 1, vec![KEY_B]),
        case("NDJSON separated by lone CRs", format!("{A}\r{B}\r").into_bytes(),
            vec![(1, 0, trailing(47))], 0, vec![]),
        case("a missing colon", b"{\"image_key\" \"img/a.jpg\", \"size\": \"1x1\"}\n".to_vec(),
            vec![(1, 0, "not JSON: expected `:` at column 14")], 0, vec![]),
        case("a key that is not a string", b"{1: 2}\n".to_vec(),
            vec![(1, 0, "not JSON: key must be a string at column 2")], 0, vec![]),
        case("single quotes", b"{'image_key': 'img/a.jpg', 'size': '1x1'}\n".to_vec(),
            vec![(1, 0, "not JSON: key must be a string at column 2")], 0, vec![]),
        case("a raw tab in a string", b"{\"image_key\": \"img/a\tb.jpg\", \"size\": \"1x1\"}\n".to_vec(),
            vec![(1, 0, "not JSON: control character (\\u0000-\\u001F) found while parsing a string at column 21")], 0, vec![]),
        case("an invalid escape", b"{\"image_key\": \"img/\\x41.jpg\", \"size\": \"1x1\"}\n".to_vec(),
            vec![(1, 0, "not JSON: invalid escape at column 21")], 0, vec![]),
        case("a lone surrogate escape", b"{\"image_key\": \"img/\\ud800.jpg\", \"size\": \"1x1\"}\n".to_vec(),
            vec![(1, 0, "not JSON: unexpected end of hex escape at column 26")], 0, vec![]),
        // Limits.
        case("100k '{' (an NDJSON nesting bomb)", "{".repeat(100_000).into_bytes(),
            vec![(1, 0, "nests arrays/objects deeper than 64 levels at column 65 (max_depth)")], 0, vec![]),
        case("100k '{' between two tasks", format!("{A}\n{}\n{B}\n", "{".repeat(100_000)).into_bytes(),
            vec![(2, 1, "nests arrays/objects deeper than 64 levels at column 65 (max_depth)")], 2, vec![KEY_A, KEY_B]),
        LineCase {
            name: "a record over --max-record-bytes",
            bytes: format!("{A}\n{{\"image_key\": \"img/b.jpg\", \"size\": \"1x1\", \"pad\": \"{}\"}}\n", "x".repeat(200)).into_bytes(),
            extra: &["--max-record-bytes", "100"],
            invalid: vec![(2, 1, "longer than 100 bytes (max_record_bytes); each task must fit in 100 bytes, the rest of the line was skipped")],
            submitted: 1,
            processed: vec![KEY_A],
        },
        // Forced formats.
        LineCase {
            name: "a pretty array forced to be read as NDJSON",
            bytes: format!("[\n{A},\n{B}\n]\n").into_bytes(),
            extra: &["--format", "ndjson"],
            invalid: vec![
                (1, 0, "not JSON: the line ends inside an array (expected ']') at column 1"),
                (2, 1, "not JSON: trailing characters at column 46"),
                (4, 3, "not JSON: expected value at column 1"),
            ],
            submitted: 1,
            processed: vec![KEY_B],
        },
        LineCase {
            name: "a text file whose first line is not JSON, forced to NDJSON",
            bytes: with_a("hello\n", "\n"),
            extra: &["--format", "ndjson"],
            invalid: vec![(1, 0, "not JSON: expected value at column 1")],
            submitted: 1,
            processed: vec![KEY_A],
        },
    ]
}

/// Checks a run over an NDJSON file with broken lines.
fn check_lines(run: &Run, path: &Path, case: &LineCase) -> Result<(), String> {
    run.check_no_panic()?;
    ensure(run.code == Some(3), || {
        format!("exit code {:?}, expected 3: {run:#?}", run.code)
    })?;
    let r = run.report()?;
    ensure(r["status"] == "completed", || {
        format!("status {}", r["status"])
    })?;
    let n = case.invalid.len() as u64;
    ensure(u(&r, "/counts/invalid") == n, || {
        format!("counts: {}", r["counts"])
    })?;
    ensure(u(&r, "/counts/submitted") == case.submitted, || {
        format!("counts: {}", r["counts"])
    })?;
    ensure(
        u(&r, "/counts/succeeded") + u(&r, "/counts/duplicates") == case.submitted,
        || format!("counts: {}", r["counts"]),
    )?;
    let listed = r["invalid_tasks"].as_array().cloned().unwrap_or_default();
    let warnings: Vec<&str> = run.stderr.lines().collect();
    ensure(
        listed.len() as u64 == n && warnings.len() as u64 == n,
        || format!("invalid_tasks: {listed:?}, stderr: {warnings:?}"),
    )?;
    for ((item, warning), (line, index, says)) in listed.iter().zip(&warnings).zip(&case.invalid) {
        ensure(item["line"] == *line && item["index"] == *index, || {
            format!("expected line {line}, index {index}: {item}")
        })?;
        ensure(item["error"] == *says, || {
            format!("expected {says:?}, got {}", item["error"])
        })?;
        let expected = format!("{}:{line}: invalid record skipped: {says}", path.display());
        ensure(*warning == expected, || {
            format!("expected {expected:?} on stderr, got {warning:?}")
        })?;
    }
    let effects = processed(&run.log);
    ensure(effects == case.processed, || {
        format!("processed {effects:?}")
    })?;
    let rows = recorded(&run.db, "tasks");
    ensure(rows == case.processed, || format!("recorded {rows:?}"))?;
    ensure(!run.stderr.contains("error"), || {
        format!("an error on stderr: {run:#?}")
    })
}

#[test]
fn each_broken_ndjson_line_is_one_invalid_record_and_the_rest_run() {
    let dir = Sandbox::new();
    let cases = line_cases();
    assert!(cases.len() >= 20, "only {} line cases", cases.len());
    let paths: Vec<PathBuf> = cases
        .iter()
        .enumerate()
        .map(|(i, c)| dir.write(&format!("line{i:02}.ndjson"), &c.bytes))
        .collect();
    let indexed: Vec<(usize, &LineCase)> = cases.iter().enumerate().collect();
    check_all(&indexed, |&(i, case)| {
        let run = dir.run(&paths[i], case.extra);
        check_lines(&run, &paths[i], case).map_err(|e| format!("[{}] {e}", case.name))
    });
}

/// Writes `{"image_key": "<100 MB of x>", "size": "200x200"}` (no newline) to
/// `path` in 1 MiB pieces, between `head` and `tail`.
fn write_huge_line(path: &Path, head: &str, tail: &str) {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    file.write_all(head.as_bytes()).unwrap();
    file.write_all(br#"{"image_key": ""#).unwrap();
    let piece = vec![b'x'; 1 << 20];
    for _ in 0..100 {
        file.write_all(&piece).unwrap();
    }
    file.write_all(br#"", "size": "200x200"}"#).unwrap();
    file.write_all(tail.as_bytes()).unwrap();
    file.flush().unwrap();
}

/// Peak resident set size in KiB from `/usr/bin/time -v` output.
fn max_rss_kib(time_output: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(time_output).ok()?;
    text.lines()
        .find_map(|l| l.trim().strip_prefix("Maximum resident set size (kbytes):"))
        .and_then(|v| v.trim().parse().ok())
}

#[test]
fn a_100_mb_line_is_refused_quickly_without_reading_it_into_memory() {
    let dir = Sandbox::new();
    // `/usr/bin/time -v` reports the child's peak RSS; without it only the time
    // is checked.
    let time_v = Path::new("/usr/bin/time").exists()
        && std::process::Command::new("/usr/bin/time")
            .args(["-v", "true"])
            .output()
            .is_ok_and(|o| o.status.success());
    // The peak RSS of a run of two small tasks: the engine's own memory (its
    // threads, SQLite, the Bloom filter), which the NDJSON run also starts.
    let baseline_kib = time_v.then(|| {
        let path = dir.write("small.ndjson", format!("{A}\n{B}\n").as_bytes());
        let (db, report, log) = dir.outputs();
        let rss_out = dir.path().join("small.time");
        let run = dir.run_with(&path, &db, &report, &log, &[], Some(&rss_out));
        assert_eq!(run.code, Some(0), "{run:#?}");
        max_rss_kib(&rss_out).expect("time -v reports the peak RSS")
    });
    let too_large = "longer than 1048576 bytes (max_record_bytes); each task must fit in \
                     1048576 bytes, the rest of the line was skipped";
    // In an array the line fails the run; in NDJSON it is one invalid record,
    // skipped as it streams by, and the next line runs.
    for (name, head, tail, ndjson) in [
        ("huge.ndjson", format!("{A}\n"), format!("\n{B}\n"), true),
        ("huge.json", format!("[{A},\n"), format!(",\n{B}]\n"), false),
    ] {
        let path = dir.path().join(name);
        write_huge_line(&path, &head, &tail);
        assert!(std::fs::metadata(&path).unwrap().len() > 100 << 20);
        let (db, report, log) = dir.outputs();
        let rss_out = dir.path().join(format!("{name}.time"));
        let run = dir.run_with(&path, &db, &report, &log, &[], time_v.then_some(&*rss_out));
        if ndjson {
            let case = LineCase {
                name,
                bytes: Vec::new(),
                extra: &[],
                invalid: vec![(2, 1, too_large)],
                submitted: 2,
                processed: vec![KEY_A, KEY_B],
            };
            check_lines(&run, &path, &case).unwrap();
        } else {
            check_refused(
                &run,
                &path,
                ":2:1: ",
                "a task record longer than 1048576 bytes starts here; \
                 each task must fit in 1048576 bytes (max_record_bytes)",
            )
            .unwrap();
        }
        // The NDJSON run reads the file twice (the precheck, then the run).
        assert!(
            run.elapsed < Duration::from_secs(20),
            "{name}: took {:?}",
            run.elapsed
        );
        if let Some(baseline) = baseline_kib {
            let kib = max_rss_kib(&rss_out).expect("time -v reports the peak RSS");
            // The file is 100 MiB; the reader holds at most one record (1 MiB)
            // and its read buffer (256 KiB). The JSON run fails before the
            // engine starts; the NDJSON run starts it, so it may use what a
            // run of two small tasks uses, and a bounded amount more: in a
            // release build on the 2-core machine the peak was 26-27 MiB above
            // the two-task run with a database and 8 MiB above it without one
            // (the allocator's reuse of the reader's freed buffers, at a
            // guess, not measured further). Reading the line into memory
            // would add 100 MiB.
            let limit = if ndjson {
                baseline + 40 * 1024
            } else {
                48 * 1024
            };
            assert!(
                kib < limit,
                "{name}: peak RSS {kib} KiB (limit {limit}, two small tasks {baseline}): \
                 the line was read into memory"
            );
            eprintln!(
                "{name}: done in {:?}, peak RSS {kib} KiB (two small tasks: {baseline} KiB)",
                run.elapsed
            );
        }
        std::fs::remove_file(&path).unwrap();
    }
}

// ---------------------------------------------------------------------------
// Task level: the bad task alone is refused
// ---------------------------------------------------------------------------

/// What a record must come to.
#[derive(Clone, Debug)]
enum Expect {
    /// An invalid task whose error contains this.
    Invalid(&'static str),
    /// A valid task with this idempotency key.
    Valid(String),
}

use Expect::{Invalid, Valid};

/// A record placed between two good tasks.
struct TaskCase {
    name: &'static str,
    /// One JSON value on one line.
    record: String,
    expect: Expect,
}

const GOOD_1: &str = r#"{"image_key": "img/good-1.jpg", "size": "200x200"}"#;
const GOOD_2: &str = r#"{"image_key": "img/good-2.jpg", "size": "200x200"}"#;
const GOOD_KEYS: [&str; 2] = ["img/good-1.jpg:200x200", "img/good-2.jpg:200x200"];

/// A task with this `image_key` JSON text and size `200x200`.
fn key(json: &str) -> String {
    format!(r#"{{"image_key": {json}, "size": "200x200"}}"#)
}

/// A task `img/x.jpg` with this `size` JSON text.
fn size(json: &str) -> String {
    format!(r#"{{"image_key": "img/x.jpg", "size": {json}}}"#)
}

/// A task `img/x.jpg` 200x200 with `field` set to this JSON text.
fn with(field: &str, json: &str) -> String {
    format!(r#"{{"image_key": "img/x.jpg", "size": "200x200", "{field}": {json}}}"#)
}

/// Every task-level case. One line each, so the table reads as a table.
#[rustfmt::skip]
fn task_cases() -> Vec<TaskCase> {
    let case = |name, record: String, expect| TaskCase { name, record, expect };
    let bad_size = "field `size`: expected WxH with 1 <= W,H <= 10000";
    let dotdot = "field `image_key`: must not contain a '..' segment";
    let relative = "field `image_key`: must be a relative path with '/' separators";
    let control = "field `image_key`: must not contain control characters";
    let segments = "field `image_key`: must not contain empty or '.' segments";
    let id = "field `id`: expected a string or a non-negative integer, got";
    let ok = |k: &str| Valid(format!("{k}:200x200"));
    let long = "k".repeat(10 * 1024);
    let max = "k".repeat(1024);
    vec![
        // Missing fields and wrong types.
        case("missing image_key", r#"{"size": "200x200"}"#.into(), Invalid("missing field `image_key`")),
        case("missing size", r#"{"image_key": "img/x.jpg"}"#.into(), Invalid("missing field `size`")),
        case("an empty object", "{}".into(), Invalid("missing field `image_key`")),
        case("image_key a number", key("123"), Invalid("field `image_key`: expected a string, got a number")),
        case("image_key null", key("null"), Invalid("field `image_key`: expected a string, got null")),
        case("image_key an array", key(r#"["img/x.jpg"]"#), Invalid("field `image_key`: expected a string, got an array")),
        case("image_key an object", key(r#"{"path": "img/x.jpg"}"#), Invalid("field `image_key`: expected a string, got an object")),
        case("image_key a boolean", key("true"), Invalid("field `image_key`: expected a string, got a boolean")),
        case("size a number", size("200"), Invalid("field `size`: expected a string, got a number")),
        case("size null", size("null"), Invalid("field `size`: expected a string, got null")),
        case("size an array", size("[200, 200]"), Invalid("field `size`: expected a string, got an array")),
        case("size an object", size(r#"{"w": 200, "h": 200}"#), Invalid("field `size`: expected a string, got an object")),
        case("a field given twice", r#"{"image_key": "img/x.jpg", "size": "1x1", "size": "2x2"}"#.into(), Invalid("field `size`: appears more than once in the task")),
        case("image_key given twice", r#"{"image_key": "img/x.jpg", "image_key": "img/y.jpg", "size": "1x1"}"#.into(), Invalid("field `image_key`: appears more than once")),
        case("a field name in another case", r#"{"Image_Key": "img/x.jpg", "size": "1x1"}"#.into(), Invalid("missing field `image_key`")),
        // Sizes.
        case("size 0x0", size(r#""0x0""#), Invalid(bad_size)),
        case("size -1x5", size(r#""-1x5""#), Invalid(bad_size)),
        case("size 99999x1", size(r#""99999x1""#), Invalid(bad_size)),
        case("size 10001x1", size(r#""10001x1""#), Invalid(bad_size)),
        case("size 1x10001", size(r#""1x10001""#), Invalid(bad_size)),
        case("size 200X200", size(r#""200X200""#), Invalid(bad_size)),
        case("size 200x", size(r#""200x""#), Invalid(bad_size)),
        case("size x200", size(r#""x200""#), Invalid(bad_size)),
        case("size 200x200x2", size(r#""200x200x2""#), Invalid(bad_size)),
        case("size with a leading space", size(r#"" 200x200""#), Invalid(bad_size)),
        case("size with a trailing space", size(r#""200x200 ""#), Invalid(bad_size)),
        case("size 200 x 200", size(r#""200 x 200""#), Invalid(bad_size)),
        case("size +200x200", size(r#""+200x200""#), Invalid(bad_size)),
        case("size empty", size(r#""""#), Invalid(bad_size)),
        case("size in full-width digits", size(r#""２００x２００""#), Invalid(bad_size)),
        case("size 1e3x1", size(r#""1e3x1""#), Invalid(bad_size)),
        case("size with six digits", size(r#""000200x200""#), Invalid(bad_size)),
        case("size with a NUL", size(r#""200x200\u0000""#), Invalid(bad_size)),
        case("size 1x1 (smallest)", size(r#""1x1""#), Valid("img/x.jpg:1x1".into())),
        case("size 10000x10000 (largest)", size(r#""10000x10000""#), Valid("img/x.jpg:10000x10000".into())),
        case("size with leading zeros (normalised)", size(r#""00200x0200""#), Valid("img/x.jpg:200x200".into())),
        // Keys that escape the store root.
        case("a leading '..'", key(r#""../etc/passwd""#), Invalid(dotdot)),
        case("a '..' in the middle", key(r#""img/../../etc/passwd""#), Invalid(dotdot)),
        case("a trailing '..'", key(r#""img/..""#), Invalid(dotdot)),
        case("'..' alone", key(r#""..""#), Invalid(dotdot)),
        case("an absolute path", key(r#""/etc/passwd""#), Invalid(relative)),
        case("a drive letter", key(r#""C:/x""#), Invalid(relative)),
        case("a drive-relative path", key(r#""C:x.jpg""#), Invalid(relative)),
        case("a backslash", key(r#""img\\a.jpg""#), Invalid(relative)),
        case("a UNC path", key(r#""\\\\server\\share\\a.jpg""#), Invalid(relative)),
        case("a '.' segment", key(r#""./img/a.jpg""#), Invalid(segments)),
        case("an empty segment", key(r#""img//a.jpg""#), Invalid(segments)),
        case("a trailing slash", key(r#""img/""#), Invalid(segments)),
        // Bytes a key must not hold.
        case("a NUL (\\u0000)", key(r#""img/a\u0000.jpg""#), Invalid("field `image_key`: must not contain NUL")),
        case("a control character (\\u0001)", key(r#""img/a\u0001.jpg""#), Invalid(control)),
        case("an escaped newline", key(r#""img/a\nb.jpg""#), Invalid(control)),
        case("an escaped ESC", key(r#""img/\u001b[31m.jpg""#), Invalid(control)),
        case("DEL", key(r#""img/a\u007f.jpg""#), Invalid(control)),
        case("a C1 control (NEL)", key(r#""img/a\u0085.jpg""#), Invalid(control)),
        case("a C1 control (CSI), raw UTF-8", key("\"img/a\u{9b}.jpg\""), Invalid(control)),
        case("a 10 KB key", key(&format!("{long:?}")), Invalid("field `image_key`: must be at most 1024 bytes, got 10240")),
        case("a 1025-byte key", key(&format!("\"{max}k\"")), Invalid("must be at most 1024 bytes, got 1025")),
        case("a 1024-byte key (the limit)", key(&format!("\"{max}\"")), ok(&max)),
        case("an empty key", key(r#""""#), Invalid("field `image_key`: must not be empty")),
        // Keys that look odd but are valid.
        case("a unicode key", key(r#""img/ünï/日本.jpg""#), ok("img/ünï/日本.jpg")),
        case("an escaped unicode key", key(r#""img\/\u00fc\u65e5\ud83d\ude00.jpg""#), ok("img/ü日😀.jpg")),
        case("'..' inside a name", key(r#""img/a..b.jpg""#), ok("img/a..b.jpg")),
        case("a '...' segment", key(r#""img/...""#), ok("img/...")),
        case("an escaped field name", r#"{"\u0069mage_key": "img/x.jpg", "size": "200x200"}"#.into(), ok("img/x.jpg")),
        // idempotency_key.
        case("idempotency_key empty", with("idempotency_key", r#""""#), Invalid("field `idempotency_key`: must not be empty")),
        case("idempotency_key a number", with("idempotency_key", "7"), Invalid("field `idempotency_key`: expected a string, got a number")),
        case("idempotency_key a boolean", with("idempotency_key", "false"), Invalid("field `idempotency_key`: expected a string, got a boolean")),
        case("idempotency_key an array", with("idempotency_key", r#"["k"]"#), Invalid("field `idempotency_key`: expected a string, got an array")),
        case("idempotency_key an object", with("idempotency_key", "{}"), Invalid("field `idempotency_key`: expected a string, got an object")),
        case("idempotency_key with a NUL", with("idempotency_key", r#""k\u0000""#), Invalid("field `idempotency_key`: must not contain NUL")),
        case("idempotency_key with a control character", with("idempotency_key", r#""k\u0007""#), Invalid("field `idempotency_key`: must not contain control characters")),
        case("idempotency_key of 10 KB", with("idempotency_key", &format!("{long:?}")), Invalid("field `idempotency_key`: must be at most 1024 bytes")),
        case("idempotency_key null (the default)", with("idempotency_key", "null"), ok("img/x.jpg")),
        case("idempotency_key '../x' (not a path)", with("idempotency_key", r#""../x""#), Valid("../x".into())),
        // id.
        case("id a boolean", with("id", "true"), Invalid("field `id`: expected a string or a non-negative integer, got a boolean")),
        case("id a float", with("id", "1.5"), Invalid(id)),
        case("id negative", with("id", "-1"), Invalid("field `id`: expected a string or a non-negative integer, got -1")),
        case("id past u64", with("id", "18446744073709551616"), Invalid(id)),
        case("id an array", with("id", "[1]"), Invalid("field `id`: expected a string or a non-negative integer, got an array")),
        case("id an object", with("id", "{}"), Invalid("field `id`: expected a string or a non-negative integer, got an object")),
        case("id null (the default)", with("id", "null"), ok("img/x.jpg")),
        case("id u64::MAX", with("id", "18446744073709551615"), ok("img/x.jpg")),
        case("id with control characters (a label)", with("id", r#""\u0000\u001b""#), ok("img/x.jpg")),
        // Records that are not objects.
        case("a record that is an array", "[1, 2]".into(), Invalid("expected a JSON object for a task, got an array")),
        case("a record that is an array of a task", format!("[{A}]"), Invalid("expected a JSON object for a task, got an array")),
        case("a record that is a number", "5".into(), Invalid("expected a JSON object for a task, got a number")),
        case("a record that is a string", r#""img/a.jpg""#.into(), Invalid("expected a JSON object for a task, got a string")),
        case("a record that is null", "null".into(), Invalid("expected a JSON object for a task, got null")),
        case("a record that is a boolean", "false".into(), Invalid("expected a JSON object for a task, got a boolean")),
        // Unknown fields are ignored, whatever they hold.
        case("unknown fields", r#"{"x": [1, {"y": null}], "image_key": "img/x.jpg", "size": "200x200", "z": 1e999}"#.into(), ok("img/x.jpg")),
    ]
}

/// The two layouts a record is tried in: `(name, text, line of the record)`.
fn layouts(record: &str) -> [(&'static str, String, u64); 2] {
    [
        ("ndjson", format!("{GOOD_1}\n{record}\n{GOOD_2}\n"), 2),
        ("json", format!("[\n{GOOD_1},\n{record},\n{GOOD_2}\n]\n"), 3),
    ]
}

/// Checks one task case in one layout.
fn check_task_case(dir: &Sandbox, case: &TaskCase, path: &Path, line: u64) -> Result<(), String> {
    let run = dir.run(path, &[]);
    run.check_no_panic()?;
    let r = run.report()?;
    let effects = processed(&run.log);
    let rows = recorded(&run.db, "tasks");
    let dead = recorded(&run.db, "dead_letter");
    ensure(r["status"] == "completed", || {
        format!("status {}: {run:#?}", r["status"])
    })?;
    ensure(dead.is_empty(), || format!("dead letters {dead:?}"))?;
    match &case.expect {
        Invalid(says) => {
            ensure(run.code == Some(3), || {
                format!("exit code {:?}, expected 3: {run:#?}", run.code)
            })?;
            ensure(u(&r, "/counts/invalid") == 1, || {
                format!("counts: {}", r["counts"])
            })?;
            ensure(u(&r, "/counts/submitted") == 2, || {
                format!("counts: {}", r["counts"])
            })?;
            ensure(u(&r, "/counts/succeeded") == 2, || {
                format!("counts: {}", r["counts"])
            })?;
            let listed = r["invalid_tasks"].as_array().cloned().unwrap_or_default();
            ensure(listed.len() == 1, || format!("invalid_tasks: {listed:?}"))?;
            let item = &listed[0];
            ensure(item["line"] == line && item["index"] == 1, || {
                format!("expected line {line}, index 1: {item}")
            })?;
            let error = item["error"].as_str().unwrap_or_default();
            ensure(error.contains(says), || {
                format!("expected {says:?} in {error:?}")
            })?;
            ensure(effects == GOOD_KEYS, || format!("processed {effects:?}"))?;
            ensure(rows == GOOD_KEYS, || format!("recorded {rows:?}"))?;
        }
        Valid(key) => {
            ensure(run.code == Some(0), || {
                format!("exit code {:?}, expected 0: {run:#?}", run.code)
            })?;
            ensure(u(&r, "/counts/invalid") == 0, || {
                format!("invalid: {}", r["invalid_tasks"])
            })?;
            ensure(u(&r, "/counts/succeeded") == 3, || {
                format!("counts: {}", r["counts"])
            })?;
            let mut expected: Vec<String> = GOOD_KEYS.iter().map(|k| k.to_string()).collect();
            expected.push(key.clone());
            expected.sort();
            ensure(effects == expected, || {
                format!("processed {effects:?}, expected {expected:?}")
            })?;
            ensure(rows == expected, || {
                format!("recorded {rows:?}, expected {expected:?}")
            })?;
        }
    }
    ensure(!run.stderr.contains("error"), || {
        format!("an error on stderr: {run:#?}")
    })
}

#[test]
fn each_bad_task_is_refused_alone_and_listed_with_its_line_and_field() {
    let dir = Sandbox::new();
    let cases = task_cases();
    let invalid = cases
        .iter()
        .filter(|c| matches!(c.expect, Invalid(_)))
        .count();
    assert!(invalid >= 40, "only {invalid} invalid task cases");
    let mut runs = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        for (layout, text, line) in layouts(&case.record) {
            let path = dir.write(&format!("task{i:03}.{layout}"), text.as_bytes());
            runs.push((case, layout, path, line));
        }
    }
    check_all(&runs, |(case, layout, path, line)| {
        check_task_case(&dir, case, path, *line)
            .map_err(|e| format!("[{} as {layout}] {e}", case.name))
    });
}

#[test]
fn all_bad_tasks_in_one_file_are_listed_in_order() {
    let dir = Sandbox::new();
    let cases = task_cases();
    let mut text = String::new();
    let mut invalid = Vec::new();
    let mut valid = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        text.push_str(&case.record);
        text.push('\n');
        match &case.expect {
            Invalid(says) => invalid.push((i as u64 + 1, *says)),
            Valid(key) => valid.push(key.clone()),
        }
    }
    valid.sort();
    valid.dedup();
    let path = dir.write("all.ndjson", text.as_bytes());
    let run = dir.run(&path, &[]);
    run.check_no_panic().unwrap();
    assert_eq!(run.code, Some(3), "{run:#?}");
    let r = run.report().unwrap();
    let listed = r["invalid_tasks"].as_array().unwrap();
    assert_eq!(listed.len(), invalid.len(), "{listed:#?}");
    for (item, (line, says)) in listed.iter().zip(&invalid) {
        assert_eq!(u(item, "/line"), *line, "{item}");
        assert_eq!(u(item, "/index"), line - 1, "{item}");
        assert!(
            item["error"].as_str().unwrap().contains(says),
            "{item}: {says}"
        );
    }
    // Several valid cases share `img/x.jpg:200x200`: processed once, the rest
    // are duplicates.
    assert_eq!(processed(&run.log), valid);
    assert_eq!(recorded(&run.db, "tasks"), valid);
    let valid_records = (cases.len() - invalid.len()) as u64;
    assert_eq!(u(&r, "/counts/submitted"), valid_records);
    assert_eq!(
        u(&r, "/counts/succeeded") + u(&r, "/counts/duplicates"),
        valid_records
    );
}

#[test]
fn top_level_nested_arrays_are_files_of_invalid_tasks() {
    let dir = Sandbox::new();
    let not_object = "expected a JSON object for a task, got an array";
    for (name, text, invalid, good) in [
        (
            "only_arrays.json",
            "[[1, 2], [3]]".to_owned(),
            vec![(1, 0), (1, 1)],
            0,
        ),
        (
            "empty_arrays.json",
            "[[], [[]]]".to_owned(),
            vec![(1, 0), (1, 1)],
            0,
        ),
        (
            "wrapped_task.json",
            format!("[\n[{A}],\n{B}\n]"),
            vec![(2, 0)],
            1,
        ),
    ] {
        let path = dir.write(name, text.as_bytes());
        let run = dir.run(&path, &[]);
        run.check_no_panic().unwrap();
        assert_eq!(run.code, Some(3), "{name}: {run:#?}");
        let r = run.report().unwrap();
        let listed = r["invalid_tasks"].as_array().unwrap();
        assert_eq!(listed.len(), invalid.len(), "{name}: {listed:?}");
        for (item, (line, index)) in listed.iter().zip(&invalid) {
            assert_eq!(
                (u(item, "/line"), u(item, "/index")),
                (*line, *index),
                "{name}"
            );
            assert_eq!(item["error"], not_object, "{name}");
        }
        assert_eq!(u(&r, "/counts/succeeded"), good, "{name}");
        assert_eq!(processed(&run.log).len() as u64, good, "{name}");
        assert_eq!(recorded(&run.db, "tasks").len() as u64, good, "{name}");
    }
    // A one-line array read as NDJSON is one record that is an array.
    let path = dir.write("array.ndjson", format!("[{A}, {B}]\n").as_bytes());
    let run = dir.run(&path, &["--format", "ndjson"]);
    run.check_no_panic().unwrap();
    assert_eq!(run.code, Some(3), "{run:#?}");
    let r = run.report().unwrap();
    assert_eq!(r["invalid_tasks"][0]["error"], not_object);
    assert_eq!(u(&r, "/counts/submitted"), 0);
    assert!(processed(&run.log).is_empty());
}

// ---------------------------------------------------------------------------
// Ids and idempotency keys
// ---------------------------------------------------------------------------

#[test]
fn duplicate_ids_with_different_keys_both_run() {
    let dir = Sandbox::new();
    let text = [
        r#"{"id": "same", "image_key": "img/a.jpg", "size": "200x200"}"#,
        r#"{"id": "same", "image_key": "img/b.jpg", "size": "200x200"}"#,
        r#"{"id": 7, "image_key": "img/c.jpg", "size": "200x200"}"#,
        r#"{"id": "7", "image_key": "img/d.jpg", "size": "200x200"}"#,
    ]
    .join("\n");
    let path = dir.write("ids.ndjson", text.as_bytes());
    let run = dir.run(&path, &[]);
    run.check_no_panic().unwrap();
    assert_eq!(run.code, Some(0), "{run:#?}");
    let r = run.report().unwrap();
    assert_eq!(u(&r, "/counts/succeeded"), 4);
    assert_eq!(u(&r, "/counts/duplicates"), 0);
    let keys = [
        "img/a.jpg:200x200",
        "img/b.jpg:200x200",
        "img/c.jpg:200x200",
        "img/d.jpg:200x200",
    ];
    assert_eq!(processed(&run.log), keys);
    let ids: Vec<(String, String)> = ["same", "same", "7", "7"]
        .iter()
        .zip(keys)
        .map(|(id, k)| (id.to_string(), k.to_owned()))
        .collect();
    assert_eq!(recorded_ids(&run.db), ids);
}

/// `{"image_key": ..., "size": ..., "idempotency_key": "order-1"}`.
fn order_1(image_key: &str, size: &str) -> String {
    format!(r#"{{"image_key": "{image_key}", "size": "{size}", "idempotency_key": "order-1"}}"#)
}

/// Checks a run in which `conflicts` tasks reusing `order-1` failed as
/// conflicts and `succeeded` succeeded.
fn assert_conflicts(run: &Run, succeeded: u64, duplicates: u64, conflicts: u64) -> Value {
    run.check_no_panic().unwrap();
    assert_eq!(run.code, Some(3), "{run:#?}");
    let r = run.report().unwrap();
    assert_eq!(r["status"], "completed");
    assert_eq!(u(&r, "/counts/succeeded"), succeeded, "{:#}", r["counts"]);
    assert_eq!(u(&r, "/counts/duplicates"), duplicates, "{:#}", r["counts"]);
    assert_eq!(u(&r, "/counts/failed"), conflicts, "{:#}", r["counts"]);
    assert_eq!(u(&r, "/counts/dead_lettered"), 0, "{:#}", r["counts"]);
    assert_eq!(u(&r, "/counts/invalid"), 0);
    let failures = r["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 1, "{failures:#?}");
    assert_eq!(failures[0]["kind"], "idempotency_conflict");
    assert_eq!(failures[0]["class"], "permanent");
    assert_eq!(u(&failures[0], "/count"), conflicts);
    r
}

#[test]
fn a_reused_idempotency_key_with_other_parameters_conflicts_in_one_file_and_across_runs() {
    let dir = Sandbox::new();
    let first = order_1("img/a.jpg", "200x200");
    let other_image = order_1("img/b.jpg", "200x200");
    let other_size = order_1("img/a.jpg", "400x400");
    let text = format!("{first}\n{other_image}\n{other_size}\n");
    let path = dir.write("reuse.ndjson", text.as_bytes());
    let (db, _, _) = dir.outputs();
    // One worker takes the tasks in file order, so the first use wins.
    let one_worker = ["--workers", "1"];

    let out = |n: &str| dir.path().join(n);
    let run = dir.run_with(
        &path,
        &db,
        &out("r1.json"),
        &out("e1.log"),
        &one_worker,
        None,
    );
    assert_conflicts(&run, 1, 0, 2);
    assert_eq!(
        processed(&run.log),
        ["order-1"],
        "only the first was processed"
    );
    assert_eq!(recorded_ids(&db), [("1".to_owned(), "order-1".to_owned())]);
    let conn = Connection::open_with_flags(&db, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let (image_key, size): (String, String) = conn
        .query_row("SELECT image_key, size FROM tasks", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    drop(conn);
    assert_eq!(
        (image_key.as_str(), size.as_str()),
        ("img/a.jpg", "200x200")
    );
    assert!(recorded(&db, "dead_letter").is_empty());

    // Again over the same database: the recorded use is a duplicate, the other
    // parameters still conflict, nothing is processed.
    let run = dir.run_with(&path, &db, &out("r2.json"), &out("e2.log"), &[], None);
    assert_conflicts(&run, 0, 1, 2);
    assert!(processed(&run.log).is_empty());

    // A later file that only reuses the key: a conflict with the history.
    let path = dir.write("reuse_later.ndjson", format!("{other_image}\n").as_bytes());
    let run = dir.run_with(&path, &db, &out("r3.json"), &out("e3.log"), &[], None);
    assert_conflicts(&run, 0, 0, 1);
    assert!(processed(&run.log).is_empty());
    assert_eq!(recorded_ids(&db), [("1".to_owned(), "order-1".to_owned())]);
}

#[test]
fn a_reused_idempotency_key_with_many_workers_runs_exactly_one_use() {
    // With 8 workers the order is not promised, but exactly one use of the key
    // is processed and every other one conflicts.
    let dir = Sandbox::new();
    let mut text = String::new();
    for i in 0..20 {
        text.push_str(&order_1(&format!("img/{i}.jpg"), "200x200"));
        text.push('\n');
    }
    let path = dir.write("reuse20.ndjson", text.as_bytes());
    let run = dir.run(&path, &["--workers", "8"]);
    assert_conflicts(&run, 1, 0, 19);
    assert_eq!(processed(&run.log), ["order-1"]);
    assert_eq!(recorded(&run.db, "tasks"), ["order-1"]);
}

// ---------------------------------------------------------------------------
// Bugs found by this file (fixed)
// ---------------------------------------------------------------------------

#[test]
fn out_of_range_numbers_in_task_fields_are_invalid_tasks() {
    let dir = Sandbox::new();
    // `"other": 1e999` is accepted (unknown fields are skipped), so 1e999 is
    // well-formed JSON to the reader; in a known field it must make an invalid
    // task, like `1.5` does, not a file error.
    for (name, record, says) in [
        ("id", with("id", "1e999"), "field `id`"),
        (
            "image_key",
            key("1e999"),
            "field `image_key`: expected a string, got a number",
        ),
        (
            "size",
            size("-1e999"),
            "field `size`: expected a string, got a number",
        ),
        (
            "record",
            "1e999".to_owned(),
            "expected a JSON object for a task, got a number",
        ),
    ] {
        for (layout, text, line) in layouts(&record) {
            let path = dir.write(&format!("{name}.{layout}"), text.as_bytes());
            let run = dir.run(&path, &[]);
            run.check_no_panic().unwrap();
            assert_eq!(run.code, Some(3), "{name} as {layout}: {run:#?}");
            let r = run.report().unwrap();
            assert_eq!(u(&r, "/invalid_tasks/0/line"), line);
            let error = r["invalid_tasks"][0]["error"].as_str().unwrap();
            assert!(error.contains(says), "{name} as {layout}: {error}");
            assert_eq!(processed(&run.log), GOOD_KEYS);
        }
    }
}

#[test]
fn file_errors_never_echo_control_characters() {
    let dir = Sandbox::new();
    for (name, bytes) in [
        // ESC c resets a terminal; backspaces rub out the file name shown.
        ("esc", b"[tc\x1bc]".to_vec()),
        ("backspace", b"[1\x08\x08\x08\x08\x08\x08]".to_vec()),
        // C1 controls, as UTF-8: CSI and NEL (a line break on some terminals).
        ("csi", "[\u{9b}31m]".as_bytes().to_vec()),
        ("nel", "\u{85}[]".as_bytes().to_vec()),
    ] {
        let path = dir.write(name, &bytes);
        let run = dir.run(&path, &[]);
        check_refused(&run, &path, ":1:", "").unwrap();
        let line = run.stderr.trim_end_matches('\n');
        assert!(
            !line.chars().any(char::is_control),
            "{name}: control characters on stderr: {line:?}"
        );
    }
}
