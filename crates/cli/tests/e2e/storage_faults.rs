//! Storage faults on the built binary: a locked database, a read-only file, a
//! file that is not a taskq database, a corrupt one, a newer schema, the disk
//! filling up mid-run, an unwritable report path. Each gives a clear one-line
//! error and a non-zero exit; none loses an acknowledged record; a run that
//! cannot persist stops admitting instead of working on.

use std::collections::HashSet;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use serde_json::Value;

fn write_tasks(dir: &Path, n: usize) {
    let lines: Vec<String> = (0..n)
        .map(|i| format!(r#"{{"image_key": "img/{i:06}.jpg", "size": "200x200"}}"#))
        .collect();
    std::fs::write(dir.join("tasks.ndjson"), lines.join("\n")).unwrap();
}

fn taskq(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_taskq"));
    cmd.current_dir(dir)
        .args([
            "run",
            "--tasks",
            "tasks.ndjson",
            "--no-progress",
            "--latency-ms",
            "0",
        ])
        .args(["--effects-log", "effects.log", "--report", "report.json"]);
    cmd
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A one-line error naming `needle`, exit 1, no panic, no work done.
fn refused_before_work(dir: &Path, out: &Output, needle: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(err.starts_with("error: "), "{err}");
    assert!(err.contains(needle), "expected {needle:?} in {err}");
    let effects = std::fs::read_to_string(dir.join("effects.log")).unwrap_or_default();
    assert!(effects.is_empty(), "work was done before the error");
}

fn first_run(dir: &Path) {
    write_tasks(dir, 10);
    let out = taskq(dir).args(["--db", "t.db"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    std::fs::remove_file(dir.join("effects.log")).unwrap();
    write_tasks(dir, 20);
}

#[test]
fn a_locked_database_waits_the_busy_timeout_then_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    first_run(d);
    let holder = Connection::open(d.join("t.db")).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let start = Instant::now();
    let out = taskq(d)
        .args(["--db", "t.db", "--busy-timeout-ms", "300"])
        .output()
        .unwrap();
    let waited = start.elapsed();
    refused_before_work(d, &out, "database is locked");
    assert!(stderr(&out).contains("--busy-timeout-ms"));
    assert!(
        waited >= Duration::from_millis(250),
        "it must wait the busy timeout"
    );
    holder.execute_batch("ROLLBACK").unwrap();
    // Once the lock is gone the same command works.
    let out = taskq(d).args(["--db", "t.db"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}

#[cfg(unix)]
#[test]
fn a_read_only_database_fails_before_work() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    first_run(d);
    for f in ["t.db", "t.db-wal", "t.db-shm"] {
        if let Ok(meta) = std::fs::metadata(d.join(f)) {
            let mut p = meta.permissions();
            p.set_mode(0o444);
            std::fs::set_permissions(d.join(f), p).unwrap();
        }
    }
    std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    // Root ignores file modes: run the binary as an unprivileged user then.
    let mut cmd = if is_root() {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o777)).unwrap();
        std::fs::write(d.join("effects.log"), "").unwrap();
        std::fs::set_permissions(
            d.join("effects.log"),
            std::fs::Permissions::from_mode(0o666),
        )
        .unwrap();
        // The directory stays writable for the logs; the database files are not.
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(env!("CARGO_BIN_EXE_taskq"));
        c
    } else {
        Command::new(env!("CARGO_BIN_EXE_taskq"))
    };
    let out = cmd
        .current_dir(d)
        .args([
            "run",
            "--tasks",
            "tasks.ndjson",
            "--no-progress",
            "--latency-ms",
            "0",
        ])
        .args(["--effects-log", "effects.log", "--db", "t.db"])
        .output()
        .unwrap();
    refused_before_work(d, &out, "t.db");
    let err = stderr(&out);
    assert!(
        err.contains("read-only") || err.contains("readonly") || err.contains("unable to open"),
        "{err}"
    );
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

#[test]
fn a_file_that_is_not_a_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_tasks(d, 5);
    std::fs::write(
        d.join("notes.db"),
        "these are my notes, please do not overwrite them\n".repeat(100),
    )
    .unwrap();
    let out = taskq(d).args(["--db", "notes.db"]).output().unwrap();
    refused_before_work(d, &out, "not a SQLite database");
    assert!(std::fs::read_to_string(d.join("notes.db"))
        .unwrap()
        .starts_with("these are my notes"));
    // A SQLite file of another application is not touched either.
    Connection::open(d.join("other.db"))
        .unwrap()
        .execute_batch("CREATE TABLE people (name TEXT)")
        .unwrap();
    let out = taskq(d).args(["--db", "other.db"]).output().unwrap();
    refused_before_work(d, &out, "refusing to touch it");
}

#[test]
fn a_corrupt_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_tasks(d, 3000);
    let out = taskq(d).args(["--db", "t.db"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    std::fs::remove_file(d.join("effects.log")).unwrap();
    // Scribble over the table's pages (past the header and the schema page).
    let mut bytes = std::fs::read(d.join("t.db")).unwrap();
    assert!(bytes.len() > 64 * 1024, "the table must span several pages");
    for b in &mut bytes[40_000..60_000] {
        *b = 0xA5;
    }
    std::fs::write(d.join("t.db"), &bytes).unwrap();
    let out = taskq(d).args(["--db", "t.db"]).output().unwrap();
    refused_before_work(d, &out, "t.db");
    assert!(
        stderr(&out).contains("corrupt") || stderr(&out).contains("malformed"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    first_run(d);
    Connection::open(d.join("t.db"))
        .unwrap()
        .pragma_update(None, "user_version", 7)
        .unwrap();
    let out = taskq(d).args(["--db", "t.db"]).output().unwrap();
    refused_before_work(d, &out, "schema version 7 is newer");
}

#[test]
fn an_unwritable_report_path_fails_before_work() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_tasks(d, 5);
    let out = Command::new(env!("CARGO_BIN_EXE_taskq"))
        .current_dir(d)
        .args([
            "run",
            "--tasks",
            "tasks.ndjson",
            "--no-progress",
            "--latency-ms",
            "0",
        ])
        .args(["--effects-log", "effects.log", "--db", "t.db"])
        .args(["--report", "no/such/dir/report.json"])
        .output()
        .unwrap();
    refused_before_work(d, &out, "cannot write report no/such/dir/report.json");
}

/// The disk fills up mid-run (a file-size limit on the process): the writer
/// fails, admission stops, nothing more is run, the records acknowledged
/// before the failure are in the database or in the recovery file, and a rerun
/// after the disk is freed finishes the job.
#[test]
fn disk_full_mid_run_stops_admission_and_loses_no_acknowledged_record() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let tasks = 20_000;
    write_tasks(d, tasks);
    // bash: ignore SIGXFSZ (writes then fail with EFBIG) and cap files at 1 MiB.
    let script = format!(
        "trap '' XFSZ; ulimit -f 1024; exec {} run --tasks tasks.ndjson --no-progress \
         --latency-ms 0 --db t.db --batch-size 256 --effects-log effects.log \
         --done-log done.log --report report.json",
        env!("CARGO_BIN_EXE_taskq")
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(d)
        .stdout(Stdio::null())
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.contains("storage"), "{err}");
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["status"], "failed");
    let admitted = report["counts"]["admitted"].as_u64().unwrap();
    assert!(
        admitted < tasks as u64,
        "admission must stop: {}",
        report["counts"]
    );
    assert!(
        report["failures"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["kind"] == "storage_unavailable"),
        "queued tasks are not run once the store failed: {}",
        report["failures"]
    );

    // Every acknowledged success is in the database or in the recovery file.
    let acknowledged: HashSet<String> = std::fs::read_to_string(d.join("done.log"))
        .unwrap()
        .lines()
        .filter(|l| l.ends_with("\tsucceeded"))
        .map(|l| l.split('\t').next().unwrap().to_string())
        .collect();
    assert!(!acknowledged.is_empty());
    let mut kept: HashSet<String> = Connection::open(d.join("t.db"))
        .unwrap()
        .prepare("SELECT idempotency_key FROM tasks WHERE status = 'succeeded'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let recovery = std::fs::read_to_string(d.join("t.db.unsaved.ndjson")).unwrap_or_default();
    let mut saved = HashSet::new();
    for line in recovery.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["processor"], "simulated", "{line}");
        let key = v["record"]["task"]["idempotency_key"].as_str().unwrap();
        if v["record"]["status"] == "succeeded" {
            saved.insert(key.to_string());
        }
        kept.insert(key.to_string());
    }
    let lost: Vec<_> = acknowledged.difference(&kept).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged records lost, e.g. {:?}",
        lost.len(),
        lost.first()
    );

    // With room again, a rerun finishes: it first commits the recovery file
    // (the records it holds are done: their tasks are not run again), then
    // removes it, and every key ends up recorded once.
    let processed = |d: &Path| -> Vec<String> {
        std::fs::read_to_string(d.join("effects.log"))
            .unwrap()
            .lines()
            .map(|l| l.split('\t').next().unwrap().to_string())
            .collect()
    };
    let before = processed(d).len();
    let out = taskq(d).args(["--db", "t.db"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        !d.join("t.db.unsaved.ndjson").exists(),
        "the recovery file is replayed, then removed"
    );
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("report.json")).unwrap()).unwrap();
    assert_eq!(
        report["store"]["replayed"].as_u64(),
        Some(recovery.lines().count() as u64)
    );
    let again: Vec<_> = processed(d)[before..]
        .iter()
        .filter(|k| saved.contains(*k))
        .cloned()
        .collect();
    assert!(
        again.is_empty(),
        "{} tasks whose records were in the recovery file ran again, e.g. {:?}",
        again.len(),
        again.first()
    );
    let rows: i64 = Connection::open(d.join("t.db"))
        .unwrap()
        .query_row(
            "SELECT count(*) FROM tasks WHERE status = 'succeeded'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(rows, tasks as i64);
}
