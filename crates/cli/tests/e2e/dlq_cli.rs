//! `taskq dlq list | retry | purge` on the built binary.

use std::path::Path;

use assert_cmd::Command;
use serde_json::Value;

fn taskq(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_taskq"));
    cmd.current_dir(dir);
    cmd
}

fn write_tasks(dir: &Path, n: usize) {
    let lines: Vec<String> = (0..n)
        .map(|i| format!(r#"{{"image_key": "img/{i:06}.jpg", "size": "200x200"}}"#))
        .collect();
    std::fs::write(dir.join("tasks.ndjson"), lines.join("\n")).unwrap();
}

fn list(dir: &Path) -> Vec<Value> {
    let out = taskq(dir)
        .args(["dlq", "list", "--db", "t.db", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<Value>(&out.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn retry_redrives_and_clears_purge_removes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_tasks(d, 6);
    // Every key fails permanently: all six are dead-lettered (exit 3).
    let out = taskq(d)
        .args([
            "run",
            "--tasks",
            "tasks.ndjson",
            "--db",
            "t.db",
            "--latency-ms",
            "0",
        ])
        .args(["--permanent-rate", "1", "--report", "r.json"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let letters = list(d);
    assert_eq!(letters.len(), 6);
    assert_eq!(letters[0]["kind"], "bad_source");
    assert_eq!(letters[0]["class"], "permanent");

    // The table form names every key.
    let out = taskq(d)
        .args(["dlq", "list", "--db", "t.db"])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("6 dead letter(s)"), "{text}");
    assert!(text.contains("img/000003.jpg:200x200"));

    // Purge one by key.
    let out = taskq(d)
        .args([
            "dlq",
            "purge",
            "--db",
            "t.db",
            "--key",
            "img/000000.jpg:200x200",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("purged 1"));
    assert_eq!(list(d).len(), 5);

    // Re-drive one key with the fault gone: it succeeds and leaves the queue.
    let out = taskq(d)
        .args([
            "dlq",
            "retry",
            "--db",
            "t.db",
            "--key",
            "img/000001.jpg:200x200",
        ])
        .args(["--latency-ms", "0", "--report", "-"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let json_end = stdout.rfind("}\n").unwrap() + 1;
    let report: Value = serde_json::from_str(&stdout[..json_end]).unwrap();
    assert_eq!(report["counts"]["succeeded"], 1);
    assert!(stdout.contains("cleared 1 dead letter(s)"));
    assert_eq!(list(d).len(), 4);

    // Re-drive all with the fault still there: they stay, with more attempts.
    let out = taskq(d)
        .args(["dlq", "retry", "--db", "t.db", "--all", "--latency-ms", "0"])
        .args(["--permanent-rate", "1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let letters = list(d);
    assert_eq!(letters.len(), 4);
    assert!(letters.iter().all(|l| l["attempts"] == 2), "{letters:?}");

    // Re-drive the rest with the fault gone: all succeed and leave the queue.
    let out = taskq(d)
        .args(["dlq", "retry", "--db", "t.db", "--all", "--latency-ms", "0"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(list(d).is_empty());

    // Purge --all on an empty queue is fine; a missing database is an error.
    let out = taskq(d)
        .args(["dlq", "purge", "--db", "t.db", "--all"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let out = taskq(d)
        .args(["dlq", "list", "--db", "nope.db"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope.db"));
    assert!(
        !d.join("nope.db").exists(),
        "listing must not create a database"
    );
}

#[test]
fn purge_needs_a_selection() {
    let dir = tempfile::tempdir().unwrap();
    let out = taskq(dir.path())
        .args(["dlq", "purge", "--db", "t.db"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
