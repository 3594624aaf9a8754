//! Crash trials on the built binary: start a run, `SIGKILL` it at a random
//! moment, run again, repeat; then check what each durability mode promises.
//!
//! - Every unique key ends with exactly one succeeded record.
//! - Batch mode: each crash re-processes at most what was not yet committed:
//!   two batches (the one being committed and the one queued) plus the
//!   workers' buffers (64 records each).
//! - Group commit: a task that was reported done (in the run's `--done-log`)
//!   is never processed again.
//!
//! `TASKQ_CRASH_TRIALS` sets the number of kills per mode (default 4; `.ci/run`
//! runs more).

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use rusqlite::Connection;

const WORKERS: usize = 8;
const BATCH: usize = 64;

fn trials() -> usize {
    std::env::var("TASKQ_CRASH_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4)
}

/// Enough tasks that each trial is killed mid-run: a run does ~1,600 tasks/s
/// (8 workers × 5 ms) and is killed after 50–650 ms.
fn task_count() -> usize {
    (trials() * 700).max(2000)
}

fn write_tasks(path: &Path) {
    let lines: Vec<String> = (0..task_count())
        .map(|i| format!(r#"{{"id": {i}, "image_key": "img/{i:06}.jpg", "size": "400x400"}}"#))
        .collect();
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

/// Run number `n`: its effects log is `effects-n.log`, its done log `done-n.log`.
fn run(dir: &Path, durability: &str, n: usize) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_taskq"));
    cmd.current_dir(dir)
        .args([
            "run",
            "--tasks",
            "tasks.ndjson",
            "--db",
            "t.db",
            "--no-progress",
        ])
        .args(["--workers", &WORKERS.to_string(), "--latency-ms", "5"])
        .args(["--batch-size", &BATCH.to_string(), "--batch-ms", "5"])
        .args(["--durability", durability])
        .args(["--effects-log", &format!("effects-{n}.log")])
        .args(["--done-log", &format!("done-{n}.log")])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

/// A small seeded generator, so a failing trial can be replayed.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, bound: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % bound
    }
}

fn lines(path: &Path) -> Vec<(String, String)> {
    match std::fs::read_to_string(path) {
        Ok(text) => text
            .lines()
            .map(|l| {
                let (k, v) = l.split_once('\t').expect("key<TAB>value");
                (k.to_string(), v.to_string())
            })
            .collect(),
        Err(_) => Vec::new(),
    }
}

fn crash_trials(durability: &str, seed: u64) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_tasks(&d.join("tasks.ndjson"));
    let tasks = task_count();
    let mut rng = Lcg(seed);
    let mut killed = 0usize;
    let mut crashed = Vec::new();
    let runs = trials() + 1;
    for trial in 0..trials() {
        let mut child = run(d, durability, trial).spawn().unwrap();
        let after = 50 + rng.next(600);
        std::thread::sleep(Duration::from_millis(after));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            killed += 1;
            crashed.push(trial);
        }
        child.wait().unwrap();
    }
    // A last run to completion.
    let status = run(d, durability, runs - 1).status().unwrap();
    assert_eq!(
        status.code(),
        Some(0),
        "the final run must complete cleanly"
    );

    // Every unique key has exactly one succeeded record.
    let conn = Connection::open(d.join("t.db")).unwrap();
    let (rows, succeeded): (i64, i64) = conn
        .query_row(
            "SELECT count(*), sum(status = 'succeeded') FROM tasks",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((rows, succeeded), (tasks as i64, tasks as i64));

    // Processings per key over all runs, and per run.
    let mut processed: HashMap<String, usize> = HashMap::new();
    let mut processed_in: Vec<HashSet<String>> = Vec::new();
    for n in 0..runs {
        let mut keys = HashSet::new();
        for (key, _) in lines(&d.join(format!("effects-{n}.log"))) {
            *processed.entry(key.clone()).or_default() += 1;
            keys.insert(key);
        }
        processed_in.push(keys);
    }
    assert_eq!(
        processed.len(),
        tasks,
        "every key was processed at least once"
    );
    let reprocessed: usize = processed.values().map(|n| n - 1).sum();
    // Both modes: the trials test something only if runs were killed mid-way
    // after committing work that the later runs then skipped.
    assert!(
        killed > 0,
        "no run was killed mid-way: the trials test nothing (seed {seed})"
    );
    let last_run = processed_in[runs - 1].len();
    assert!(
        last_run < tasks,
        "the final run processed all {tasks} tasks: the killed runs committed nothing, so the trials test nothing (seed {seed})"
    );
    match durability {
        "batch" => {
            let bound = killed * (2 * BATCH + WORKERS * 64);
            assert!(
                reprocessed <= bound,
                "{reprocessed} re-processings after {killed} crashes exceed {bound} (seed {seed})"
            );
        }
        "group-commit" => {
            let mut acknowledged = 0;
            for &n in &crashed {
                for (key, outcome) in lines(&d.join(format!("done-{n}.log"))) {
                    if outcome != "succeeded" {
                        continue;
                    }
                    acknowledged += 1;
                    // Reported done in crashed run n: no later run may process it.
                    for (later, keys) in processed_in.iter().enumerate().skip(n + 1) {
                        assert!(
                            !keys.contains(&key),
                            "{key} was reported done in run {n}, then processed again in run {later} (seed {seed})"
                        );
                    }
                }
            }
            assert!(
                acknowledged > 0,
                "crashed runs acknowledged nothing: the trials test nothing (seed {seed})"
            );
        }
        other => unreachable!("{other}"),
    }
    eprintln!(
        "{durability}: {killed} crashes, {reprocessed} re-processings of {tasks} tasks (seed {seed})"
    );
}

#[test]
fn sigkill_trials_in_batch_mode() {
    crash_trials("batch", 0x5eed_0001);
}

#[test]
fn sigkill_trials_in_group_commit_mode() {
    crash_trials("group-commit", 0x5eed_0002);
}
