//! SIGINT/SIGTERM on the built binary: stop admitting, drain, report
//! `interrupted`, exit 130/143; a second signal exits at once; SQLite stays
//! consistent; a rerun processes only what was not finished.

use std::collections::HashSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use serde_json::Value;

const TASKS: usize = 3000;

fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let lines: Vec<String> = (0..TASKS)
        .map(|i| format!(r#"{{"image_key": "img/{i:06}.jpg", "size": "200x200"}}"#))
        .collect();
    std::fs::write(dir.path().join("tasks.ndjson"), lines.join("\n")).unwrap();
    dir
}

fn start(dir: &Path, latency_ms: &str, run: usize) -> Child {
    Command::new(env!("CARGO_BIN_EXE_taskq"))
        .current_dir(dir)
        .args([
            "run",
            "--tasks",
            "tasks.ndjson",
            "--db",
            "t.db",
            "--no-progress",
        ])
        .args(["--workers", "8", "--latency-ms", latency_ms])
        .args(["--effects-log", &format!("effects-{run}.log")])
        .args(["--report", &format!("report-{run}.json")])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} failed");
}

/// Waits until the run has processed something (so the signal lands mid-run).
fn wait_for_progress(dir: &Path, run: usize) {
    let log = dir.join(format!("effects-{run}.log"));
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0) == 0 {
        assert!(Instant::now() < deadline, "the run never started");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn keys(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| l.split('\t').next().unwrap().to_string())
        .collect()
}

fn integrity_ok(dir: &Path) -> i64 {
    let conn = Connection::open(dir.join("t.db")).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    conn.query_row(
        "SELECT count(*) FROM tasks WHERE status = 'succeeded'",
        [],
        |r| r.get(0),
    )
    .unwrap()
}

fn interrupt_then_resume(sig: &str, code: i32, name: &str) {
    let dir = setup();
    let d = dir.path();
    let child = start(d, "10", 0);
    wait_for_progress(d, 0);
    signal(&child, sig);
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(code),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("report-0.json")).unwrap()).unwrap();
    assert_eq!(report["status"], "interrupted");
    assert_eq!(report["interrupted_by"], name);
    let c = &report["counts"];
    let admitted = c["admitted"].as_u64().unwrap();
    assert!(
        admitted > 0 && admitted < TASKS as u64,
        "the signal must land mid-run: {c}"
    );
    // Drained: every admitted task completed, and its record is committed.
    assert_eq!(c["succeeded"].as_u64().unwrap(), admitted);
    assert_eq!(integrity_ok(d) as u64, admitted);

    // The rerun processes exactly the rest.
    let status = start(d, "0", 1).wait().unwrap();
    assert_eq!(status.code(), Some(0));
    let first: HashSet<String> = keys(&d.join("effects-0.log")).into_iter().collect();
    let second = keys(&d.join("effects-1.log"));
    assert_eq!(first.len() + second.len(), TASKS);
    assert!(
        second.iter().all(|k| !first.contains(k)),
        "a finished task ran again"
    );
    assert_eq!(integrity_ok(d), TASKS as i64);
}

#[test]
fn sigint_drains_reports_and_resumes() {
    interrupt_then_resume("-INT", 130, "SIGINT");
}

#[test]
fn sigterm_drains_reports_and_resumes() {
    interrupt_then_resume("-TERM", 143, "SIGTERM");
}

#[test]
fn a_second_signal_exits_at_once_leaving_sqlite_consistent() {
    let dir = setup();
    let d = dir.path();
    // Slow tasks: draining 200 admitted tasks of 500 ms on 8 workers would take
    // over 10 s; the second signal must not wait for that.
    let child = start(d, "500", 0);
    wait_for_progress(d, 0);
    signal(&child, "-INT");
    std::thread::sleep(Duration::from_millis(100));
    let sent = Instant::now();
    signal(&child, "-INT");
    let out = child.wait_with_output().unwrap();
    assert!(
        sent.elapsed() < Duration::from_secs(5),
        "took {:?}",
        sent.elapsed()
    );
    assert_eq!(out.status.code(), Some(130));
    let before = integrity_ok(d);
    // The rerun finishes everything; nothing recorded before runs again.
    let status = start(d, "0", 1).wait().unwrap();
    assert_eq!(status.code(), Some(0));
    assert_eq!(integrity_ok(d), TASKS as i64);
    let second = keys(&d.join("effects-1.log"));
    assert_eq!(second.len() as i64, TASKS as i64 - before);
}
