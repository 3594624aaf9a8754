//! Records know the processor that made them, on the built binary: a key one
//! processor recorded is not done for another, and `dlq retry` re-drives a
//! dead letter only with the processor that failed it.

use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;
use serde_json::Value;

fn taskq(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_taskq"));
    cmd.current_dir(dir).env_remove("RUST_LOG");
    cmd
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn seed(dir: &Path, count: &str) -> PathBuf {
    let out = taskq(dir)
        .args(["seed-images", "--store", "s", "--count", count])
        .args(["--width", "64", "--height", "48"])
        .output()
        .unwrap();
    ok(&out);
    dir.join("s")
}

fn variants(store: &Path) -> usize {
    fn walk(p: &Path) -> usize {
        std::fs::read_dir(p).map_or(0, |rd| {
            rd.map(|e| e.unwrap().path())
                .map(|p| if p.is_dir() { walk(&p) } else { 1 })
                .sum()
        })
    }
    walk(&store.join("variants"))
}

/// `taskq run --processor thumbnail --store s`, reporting to `r.json`.
fn thumbnail_run(dir: &Path) -> Output {
    taskq(dir)
        .args(["run", "--processor", "thumbnail", "--store", "s"])
        .args(["--no-progress", "--report", "r.json"])
        .output()
        .unwrap()
}

fn report(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("r.json")).unwrap()).unwrap()
}

fn letters(dir: &Path, args: &[&str]) -> Vec<Value> {
    let out = taskq(dir)
        .args(["dlq", "list", "--json"])
        .args(args)
        .output()
        .unwrap();
    serde_json::from_str::<Value>(&ok(&out))
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// The simulated processor (the default) records every key of a store's task
/// file; a thumbnail run on the same database still writes every variant,
/// and its summary says what it found.
#[test]
fn simulated_records_do_not_make_a_thumbnail_run_skip() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let store = seed(d, "3");
    let out = taskq(d)
        .args(["run", "--tasks", "s/tasks.json", "--db", "s/taskq.db"])
        .args(["--latency-ms", "0", "--no-progress"])
        .output()
        .unwrap();
    ok(&out);
    assert_eq!(
        variants(&store),
        0,
        "the simulated processor writes no image"
    );

    let out = thumbnail_run(d);
    let text = ok(&out);
    assert_eq!(variants(&store), 6, "{text}");
    let r = report(d);
    assert_eq!(r["counts"]["succeeded"], 6);
    assert_eq!(r["counts"]["duplicates"], 0);
    assert_eq!(r["store"]["processor"], "thumbnail/v1");
    assert_eq!(r["store"]["other_processors"][0]["processor"], "simulated");
    assert_eq!(r["store"]["other_processors"][0]["succeeded"], 6);
    assert!(
        text.contains(
            "0 already done in taskq.db (thumbnail/v1 records); \
             6 records of simulated there do not count for thumbnail/v1"
        ),
        "{text}"
    );

    // Run again: now every key is the thumbnail processor's own.
    let out = thumbnail_run(d);
    let text = ok(&out);
    assert_eq!(report(d)["counts"]["duplicates"], 6);
    assert!(text.contains("6 already done in taskq.db"), "{text}");
}

/// A thumbnail task dead-lettered for a missing source is never turned into
/// a success by `dlq retry`: without `--store` the command refuses and
/// changes nothing; with it, the thumbnail processor runs it again and it
/// stays dead-lettered.
#[test]
fn a_dead_lettered_thumbnail_stays_dead_after_dlq_retry() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let store = seed(d, "2");
    let tasks = std::fs::read_to_string(store.join("tasks.json")).unwrap();
    let tasks: Vec<Value> = serde_json::from_str(&tasks).unwrap();
    let missing = tasks[0]["image_key"].as_str().unwrap().to_string();
    std::fs::remove_file(store.join(&missing)).unwrap();
    let out = thumbnail_run(d);
    assert_eq!(out.status.code(), Some(3));
    let before = letters(d, &["--store", "s"]);
    assert_eq!(before.len(), 2, "both sizes of the missing image");
    assert!(before.iter().all(|l| l["processor"] == "thumbnail/v1"));
    let db = std::fs::read(store.join("taskq.db")).unwrap();

    // Without --store: refused, nothing changed (the default processor used
    // to be the simulated one, which "succeeded" after a sleep).
    let out = taskq(d)
        .args(["dlq", "retry", "--all", "--db", "s/taskq.db"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("needs --store DIR"), "{err}");
    assert!(err.contains("nothing was changed"), "{err}");
    assert_eq!(std::fs::read(store.join("taskq.db")).unwrap(), db);
    assert_eq!(letters(d, &["--db", "s/taskq.db"]), before);

    // With --store: the thumbnail processor runs them, and they fail again.
    let out = taskq(d)
        .args([
            "dlq", "retry", "--all", "--store", "s", "--report", "r.json",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("cleared 0 dead letter(s)"), "{text}");
    assert_eq!(report(d)["counts"]["dead_lettered"], 2);
    let after = letters(d, &["--store", "s"]);
    assert_eq!(after.len(), 2);
    assert!(after.iter().all(|l| l["attempts"] == 2), "{after:?}");
    let conn = rusqlite::Connection::open(store.join("taskq.db")).unwrap();
    let done: i64 = conn
        .query_row(
            "SELECT count(*) FROM tasks WHERE status = 'succeeded' AND image_key = ?1",
            [&missing],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(done, 0, "no success is recorded for the missing source");

    // Naming another processor retries none of them.
    let out = taskq(d)
        .args([
            "dlq",
            "retry",
            "--all",
            "--store",
            "s",
            "--processor",
            "simulated",
        ])
        .args(["--latency-ms", "0"])
        .output()
        .unwrap();
    let text = ok(&out);
    assert!(
        text.contains("left 2 dead letter(s) of other processors (thumbnail/v1: 2)"),
        "{text}"
    );
    assert_eq!(letters(d, &["--store", "s"]).len(), 2);
}

/// `dlq list` reads a database it cannot write to.
#[cfg(unix)]
#[test]
fn dlq_list_reads_a_read_only_database() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let db = d.join("ro");
    std::fs::create_dir(&db).unwrap();
    let tasks: String = (0..3)
        .map(|i| format!("{{\"image_key\": \"img/{i}.jpg\", \"size\": \"10x10\"}}\n"))
        .collect();
    std::fs::write(d.join("tasks.ndjson"), tasks).unwrap();
    let out = taskq(d)
        .args(["run", "--tasks", "tasks.ndjson", "--db", "ro/t.db"])
        .args([
            "--latency-ms",
            "0",
            "--permanent-rate",
            "1",
            "--no-progress",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let before = std::fs::read(db.join("t.db")).unwrap();
    std::fs::set_permissions(db.join("t.db"), std::fs::Permissions::from_mode(0o444)).unwrap();
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o555)).unwrap();
    // Root ignores file modes: list as an unprivileged user then.
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap();
    let mut cmd = if root {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(env!("CARGO_BIN_EXE_taskq"));
        c
    } else {
        Command::new(env!("CARGO_BIN_EXE_taskq"))
    };
    let out = cmd
        .current_dir(d)
        .args(["dlq", "list", "--db", "ro/t.db"])
        .output()
        .unwrap();
    let text = ok(&out);
    assert!(text.starts_with("3 dead letter(s) in ro/t.db"), "{text}");
    assert!(
        text.contains("img/1.jpg:10x10\tsimulated\tpermanent"),
        "{text}"
    );
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(std::fs::read(db.join("t.db")).unwrap(), before);
}
