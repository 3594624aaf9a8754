//! `taskq migrate | enqueue | status` against the real PostgreSQL server
//! (`TASKQ_TEST_PG`, default `postgres://postgres@127.0.0.1:5432/postgres`).
//! Each test makes a database with a random name and drops it.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_taskq");

/// A database of the test's own, dropped at the end.
pub(crate) struct TestDb {
    name: String,
    pub(crate) url: String,
}

pub(crate) fn admin_url() -> String {
    std::env::var("TASKQ_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

pub(crate) fn admin() -> postgres::Client {
    postgres::Client::connect(&admin_url(), postgres::NoTls).unwrap_or_else(|e| {
        panic!(
            "PostgreSQL at {} does not answer ({e}); the PostgreSQL tests need it (set TASKQ_TEST_PG)",
            admin_url()
        )
    })
}

impl TestDb {
    pub(crate) fn new() -> Self {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("taskq_test_{}_{nanos}_{n}", std::process::id());
        admin()
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap();
        let base = admin_url();
        let (prefix, _) = base.rsplit_once('/').unwrap();
        TestDb {
            url: format!("{prefix}/{name}"),
            name,
        }
    }

    pub(crate) fn client(&self) -> postgres::Client {
        postgres::Client::connect(&self.url, postgres::NoTls).unwrap()
    }

    pub(crate) fn count(&self, sql: &str) -> i64 {
        self.client().query_one(sql, &[]).unwrap().get(0)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let _ = admin().batch_execute(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ));
    }
}

pub(crate) fn taskq(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .current_dir(dir)
        .env_remove("TASKQ_DATABASE_URL")
        .args(args)
        .output()
        .unwrap()
}

pub(crate) fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// NDJSON lines `img/{i % unique}.jpg` at 200x200 for i in 0..n.
pub(crate) fn write_tasks(path: &Path, n: usize, unique: usize) {
    let lines: Vec<String> = (0..n)
        .map(|i| {
            format!(
                r#"{{"id": "{i}", "image_key": "img/{:06}.jpg", "size": "200x200"}}"#,
                i % unique
            )
        })
        .collect();
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

/// A fresh database holding `n` tasks of `unique` keys (`write_tasks`),
/// enqueued with `extra` flags, and the folder holding `t.ndjson`.
pub(crate) fn enqueued(n: usize, unique: usize, extra: &[&str]) -> (TestDb, tempfile::TempDir) {
    let db = TestDb::new();
    let dir = tempfile::tempdir().unwrap();
    write_tasks(&dir.path().join("t.ndjson"), n, unique);
    let mut args = vec!["enqueue", "--pg", &db.url, "--tasks", "t.ndjson"];
    args.extend_from_slice(extra);
    let o = taskq(dir.path(), &args);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    (db, dir)
}

#[test]
fn migrate_creates_the_schema_once_and_refuses_a_newer_one() {
    let db = TestDb::new();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let o = taskq(d, &["migrate", "--pg", &db.url]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("migrated from version 0 to 3"),
        "{}",
        text(&o.stdout)
    );
    // The URL may come from the environment instead.
    let o = Command::new(BIN)
        .current_dir(d)
        .env("TASKQ_DATABASE_URL", &db.url)
        .arg("migrate")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("at version 3 already"),
        "{}",
        text(&o.stdout)
    );
    assert_eq!(db.count("SELECT count(*) FROM taskq_schema_version"), 3);
    // Storage settings of the churning table are in place.
    let options: Vec<String> = db
        .client()
        .query_one(
            "SELECT reloptions FROM pg_class WHERE relname = 'taskq_tasks'",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(
        options.contains(&"fillfactor=80".to_string()),
        "{options:?}"
    );

    // A database from a newer taskq is refused, and left as it is.
    db.client()
        .execute(
            "INSERT INTO taskq_schema_version VALUES (99, 'future', now())",
            &[],
        )
        .unwrap();
    for args in [
        &["migrate", "--pg", &db.url][..],
        &["status", "--pg", &db.url][..],
    ] {
        let o = taskq(d, args);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        let err = text(&o.stderr);
        assert!(
            err.contains(&format!(
                "queue schema version 99 is newer than this taskq understands ({})",
                taskq_pg::SCHEMA_VERSION
            )),
            "{err}"
        );
        assert!(
            err.contains(&db.name),
            "the error names the database: {err}"
        );
    }
    write_tasks(&d.join("t.ndjson"), 3, 3);
    let o = taskq(d, &["enqueue", "--pg", &db.url, "--tasks", "t.ndjson"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(db.count("SELECT count(*) FROM taskq_tasks"), 0);
}

/// Four processes enqueue the same file at once: the unique index is the
/// only arbiter, so each key is one task, and the processes' counts add up.
#[test]
fn concurrent_enqueues_of_the_same_keys_yield_one_task_each() {
    let db = TestDb::new();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_tasks(&d.join("t.ndjson"), 3000, 2000);
    let children: Vec<_> = (0..4)
        .map(|_| {
            Command::new(BIN)
                .current_dir(d)
                .args(["enqueue", "--pg", &db.url, "--tasks", "t.ndjson"])
                .args(["--batch-size", "100", "--json"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let (mut enqueued, mut duplicates) = (0, 0);
    for child in children {
        let o = child.wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["submitted"], 3000);
        assert_eq!(v["processor"], "simulated");
        enqueued += v["enqueued"].as_u64().unwrap();
        duplicates += v["duplicates"].as_u64().unwrap();
    }
    assert_eq!(enqueued, 2000);
    assert_eq!(duplicates, 4 * 3000 - 2000);
    assert_eq!(db.count("SELECT count(*) FROM taskq_tasks"), 2000);
    assert_eq!(
        db.count("SELECT count(DISTINCT idempotency_key) FROM taskq_tasks"),
        2000
    );
    assert_eq!(
        db.count("SELECT count(*) FROM taskq_tasks WHERE state = 'available' AND attempt = 0 AND max_attempts = 4"),
        2000
    );
    // The same keys for another processor are other tasks.
    let o = taskq(
        d,
        &[
            "enqueue",
            "--pg",
            &db.url,
            "--tasks",
            "t.ndjson",
            "--processor",
            "noop",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("enqueued 2000 of 3000 tasks from t.ndjson for noop"),
        "{}",
        text(&o.stdout)
    );
    assert_eq!(db.count("SELECT count(*) FROM taskq_tasks"), 4000);
}

#[test]
fn enqueue_skips_invalid_records_and_status_counts_by_state() {
    let db = TestDb::new();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("t.ndjson"),
        concat!(
            r#"{"image_key": "img/1.jpg", "size": "200x200"}"#,
            "\n",
            r#"{"image_key": "img/2.jpg", "size": "20x"}"#,
            "\n",
            r#"{"image_key": "img/3.jpg", "size": "64x64", "idempotency_key": "k3"}"#,
            "\n",
            r#"{"image_key": "img/1.jpg", "size": "200x200"}"#,
            "\n",
        ),
    )
    .unwrap();
    // No queue yet: status says so and creates nothing.
    let o = taskq(d, &["status", "--pg", &db.url]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("no taskq queue here yet"),
        "{}",
        text(&o.stderr)
    );
    assert_eq!(
        db.count("SELECT count(*) FROM pg_tables WHERE tablename LIKE 'taskq%'"),
        0
    );

    let o = taskq(d, &["enqueue", "--pg", &db.url, "--tasks", "t.ndjson"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("enqueued 2 of 3 tasks from t.ndjson for simulated into")
            && text(&o.stdout).contains("(1 duplicates, 1 invalid records skipped)"),
        "{}",
        text(&o.stdout)
    );
    assert!(
        text(&o.stderr).contains("t.ndjson:2: invalid record skipped: field `size`"),
        "{}",
        text(&o.stderr)
    );
    // An explicit idempotency key is the key.
    assert_eq!(
        db.count(
            "SELECT count(*) FROM taskq_tasks WHERE idempotency_key = 'k3' AND size = '64x64'"
        ),
        1
    );

    // Move the tasks along by hand, as nodes will: one running, one dead.
    let mut c = db.client();
    c.batch_execute(
        "INSERT INTO taskq_nodes (hostname, pid, processor) VALUES ('h1', 42, 'simulated');
         UPDATE taskq_tasks SET state = 'running', attempt = 2, lease_node = 1, leased_at = now()
           WHERE idempotency_key = 'k3';
         UPDATE taskq_tasks SET state = 'dead', attempt = 4, finalized_at = now(),
           last_error_class = 'permanent', last_error_kind = 'x', last_error = 'y'
           WHERE idempotency_key <> 'k3';",
    )
    .unwrap();
    let o = taskq(d, &["status", "--pg", &db.url, "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["schema_version"], taskq_pg::SCHEMA_VERSION);
    let p = &v["processors"][0];
    assert_eq!(
        (
            &p["processor"],
            &p["available"],
            &p["running"],
            &p["dead"],
            &p["retries"]
        ),
        (
            &Value::from("simulated"),
            &Value::from(0),
            &Value::from(1),
            &Value::from(1),
            &Value::from(4)
        )
    );
    assert_eq!(v["nodes"][0]["hostname"], "h1");
    assert_eq!(v["nodes"][0]["running"], 1);
    let o = taskq(d, &["status", "--pg", &db.url]);
    let out = text(&o.stdout);
    assert!(
        out.contains("simulated: 0 available (0 waiting to retry), 1 running, 0 succeeded, 1 dead; 4 retries"),
        "{out}"
    );
    assert!(out.contains("node 1 h1 pid 42 (simulated): alive"), "{out}");
}

#[test]
fn bad_servers_and_bad_files_are_named_and_nothing_is_done() {
    let db = TestDb::new();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_tasks(&d.join("t.ndjson"), 5, 5);
    // Nothing listens on port 1.
    let o = taskq(
        d,
        &[
            "enqueue",
            "--pg",
            "postgres://postgres@127.0.0.1:1/nowhere",
            "--tasks",
            "t.ndjson",
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("cannot connect to PostgreSQL 127.0.0.1:1/nowhere as postgres"),
        "{}",
        text(&o.stderr)
    );
    let o = taskq(d, &["status", "--pg", "host=127.0.0.1 port=notaport"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("invalid PostgreSQL URL"),
        "{}",
        text(&o.stderr)
    );
    // A database that does not exist is named.
    let missing = db.url.replace(&db.name, "taskq_no_such_db");
    let o = taskq(d, &["migrate", "--pg", &missing]);
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    assert!(
        err.contains("taskq_no_such_db") && err.contains("does not exist"),
        "{err}"
    );

    // A file that cannot be read fails before the database is touched.
    std::fs::write(
        d.join("bad.json"),
        "[{\"image_key\": \"img/1.jpg\", \"size\": \"2x2\"}, oops]",
    )
    .unwrap();
    for file in ["bad.json", "missing.json"] {
        let o = taskq(d, &["enqueue", "--pg", &db.url, "--tasks", file]);
        assert_eq!(o.status.code(), Some(1), "{file}");
        assert!(text(&o.stderr).contains(file), "{}", text(&o.stderr));
    }
    assert_eq!(
        db.count("SELECT count(*) FROM pg_tables WHERE tablename LIKE 'taskq%'"),
        0
    );
}

/// Keys in the effects logs, with how many times each was processed.
pub(crate) fn effects(paths: &[std::path::PathBuf]) -> std::collections::HashMap<String, u32> {
    let mut out = std::collections::HashMap::new();
    for p in paths {
        let Ok(text) = std::fs::read_to_string(p) else {
            continue;
        };
        for line in text.lines() {
            let key = line.split('\t').next().unwrap().to_string();
            *out.entry(key).or_insert(0) += 1;
        }
    }
    out
}

pub(crate) fn worker(dir: &Path, url: &str, extra: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir)
        .args(["worker", "--pg", url, "--heartbeat", "0.2"])
        .args(extra)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    cmd
}

pub(crate) fn wait_until(what: &str, mut ok: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !ok() {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(60),
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Three nodes share 2000 unique keys (3000 tasks, 10% of attempts failing
/// transiently): every key succeeds once in the database and is processed
/// once in all, and the nodes' counts add up.
#[test]
fn three_nodes_share_the_queue_and_each_key_succeeds_once() {
    let db = TestDb::new();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_tasks(&d.join("t.ndjson"), 3000, 2000);
    // Ten retries: with 10% of attempts failing, no key runs out of them.
    let o = taskq(
        d,
        &[
            "enqueue",
            "--pg",
            &db.url,
            "--tasks",
            "t.ndjson",
            "--max-retries",
            "10",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let logs: Vec<_> = (0..3).map(|i| d.join(format!("effects{i}.log"))).collect();
    let nodes: Vec<_> = logs
        .iter()
        .enumerate()
        .map(|(i, log)| {
            worker(
                d,
                &db.url,
                &[
                    "--workers",
                    "2",
                    "--latency-ms",
                    "1",
                    "--transient-rate",
                    "0.1",
                ],
            )
            .args([
                "--backoff-base-ms",
                "5",
                "--exit-when-empty",
                "--capacity",
                "64",
            ])
            .args(["--effects-log", log.to_str().unwrap()])
            .args(["--report", &format!("r{i}.json")])
            .spawn()
            .unwrap()
        })
        .collect();
    let (mut claimed, mut succeeded, mut retried) = (0, 0, 0);
    for (i, node) in nodes.into_iter().enumerate() {
        let o = node.wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
        let r: Value =
            serde_json::from_str(&std::fs::read_to_string(d.join(format!("r{i}.json"))).unwrap())
                .unwrap();
        claimed += r["claimed"].as_u64().unwrap();
        succeeded += r["settled"]["succeeded"].as_u64().unwrap();
        retried += r["settled"]["retried"].as_u64().unwrap();
        assert_eq!(r["settled"]["fenced"], 0);
    }
    assert_eq!(
        db.count("SELECT count(*) FROM taskq_tasks WHERE state = 'succeeded'"),
        2000
    );
    assert_eq!(succeeded, 2000);
    assert_eq!(claimed, succeeded + retried);
    assert!(retried > 0, "10% of attempts fail");
    let seen = effects(&logs);
    assert_eq!(seen.len(), 2000);
    assert!(seen.values().all(|&n| n == 1), "a key was processed twice");
    assert_eq!(
        db.count("SELECT count(*) FROM taskq_nodes WHERE state = 'left'"),
        3
    );
}

/// A node SIGKILLed mid-run: once its heartbeat is older than the rescue
/// timeout, another node puts its tasks back and finishes them. Only the
/// tasks it held can run twice; nothing is lost.
#[test]
fn a_killed_node_s_tasks_are_rescued_by_another() {
    let (db, dir) = enqueued(400, 400, &[]);
    let d = dir.path();
    let (log_a, log_b) = (d.join("a.log"), d.join("b.log"));
    let mut a = worker(
        d,
        &db.url,
        &["--workers", "2", "--latency-ms", "20", "--capacity", "30"],
    )
    .args(["--effects-log", log_a.to_str().unwrap()])
    .spawn()
    .unwrap();
    wait_until("node A to finish some tasks", || {
        db.count("SELECT count(*) FROM taskq_tasks WHERE state = 'succeeded'") >= 20
    });
    a.kill().unwrap();
    a.wait().unwrap();
    let held = db.count("SELECT count(*) FROM taskq_tasks WHERE state = 'running'");
    assert!(held > 0 && held <= 30, "node A held {held}");
    let b = worker(
        d,
        &db.url,
        &["--workers", "2", "--latency-ms", "1", "--rescue-after", "1"],
    )
    .args([
        "--exit-when-empty",
        "--effects-log",
        log_b.to_str().unwrap(),
    ])
    .args(["--report", "b.json"])
    .spawn()
    .unwrap();
    let o = b.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let r: Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("b.json")).unwrap()).unwrap();
    assert_eq!(r["rescued"]["nodes"], 1);
    assert_eq!(r["rescued"]["requeued"].as_i64().unwrap(), held);
    assert_eq!(
        db.count("SELECT count(*) FROM taskq_tasks WHERE state = 'succeeded'"),
        400
    );
    assert_eq!(
        db.count("SELECT count(*) FROM taskq_nodes WHERE state = 'dead'"),
        1
    );
    let seen = effects(&[log_a, log_b]);
    assert_eq!(seen.len(), 400, "every key processed");
    let twice = seen.values().filter(|&&n| n > 1).count() as i64;
    assert!(
        twice <= held,
        "{twice} keys ran twice, node A held only {held}"
    );
}

/// SIGTERM: the node finishes what runs, hands back what it claimed and did
/// not start (available again at once, the claim not counted), exits 143.
#[test]
fn sigterm_hands_back_unstarted_claims() {
    let (db, dir) = enqueued(100, 100, &[]);
    let d = dir.path();
    let a = worker(d, &db.url, &["--latency-ms", "100", "--capacity", "40"])
        .args(["--workers", "1", "--report", "a.json"])
        .spawn()
        .unwrap();
    wait_until("node A to claim", || {
        db.count("SELECT count(*) FROM taskq_tasks WHERE state = 'running'") >= 35
    });
    let pid = a.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let o = a.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(143), "{}", text(&o.stderr));
    let r: Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("a.json")).unwrap()).unwrap();
    let (done, back) = (
        r["settled"]["succeeded"].as_i64().unwrap(),
        r["handed_back"].as_i64().unwrap(),
    );
    assert!(back >= 30, "handed back {back}");
    assert_eq!(done + back, r["claimed"].as_i64().unwrap());
    assert_eq!(
        db.count("SELECT count(*) FROM taskq_tasks WHERE state = 'running'"),
        0
    );
    assert_eq!(
        db.count("SELECT count(*) FROM taskq_tasks WHERE state = 'available' AND attempt = 0"),
        100 - done
    );
    assert_eq!(
        db.count("SELECT count(*) FROM taskq_nodes WHERE state = 'left'"),
        1
    );
}

/// Fencing through the library: a node declared dead loses its tasks to
/// the rescue; another node claims them (attempt 2); the first node's late
/// success matches no row and is counted, not applied.
#[test]
fn late_writes_of_a_node_declared_dead_are_fenced_off() {
    use taskq_pg::node::{self, Settle};
    let (db, _dir) = enqueued(5, 5, &[]);
    let mut q = taskq_pg::Queue::connect(&db.url).unwrap();
    let first = node::register(&mut q, "h1", "simulated").unwrap();
    let second = node::register(&mut q, "h2", "simulated").unwrap();
    let claims = node::claim(&mut q, first, "simulated", 10).unwrap();
    assert_eq!(claims.len(), 5);
    assert!(claims.iter().all(|c| c.attempt == 1));
    // `first` falls silent: with a zero timeout the rescue declares it dead.
    db.client()
        .execute(
            "UPDATE taskq_nodes SET heartbeat_at = now() - interval '1 minute' WHERE node_id = $1",
            &[&first],
        )
        .unwrap();
    let r = node::rescue(
        &mut q,
        std::time::Duration::from_secs(30),
        std::time::Duration::from_secs(3600),
        100,
    )
    .unwrap();
    assert_eq!((r.ran, r.nodes, r.requeued), (true, 1, 5));
    assert!(
        !node::heartbeat(&mut q, first, &node::NodeStats::default()).unwrap(),
        "a dead node's heartbeat is refused"
    );
    let again = node::claim(&mut q, second, "simulated", 10).unwrap();
    assert!(again.iter().all(|c| c.attempt == 2));
    let late: Vec<_> = claims
        .iter()
        .map(|c| (c.id, c.attempt, Settle::Succeeded))
        .collect();
    let s = node::settle(&mut q, first, &late).unwrap();
    assert_eq!((s.succeeded, s.fenced), (0, 5));
    assert_eq!(
        db.count("SELECT count(*) FROM taskq_tasks WHERE state = 'running' AND attempt = 2"),
        5
    );
    let mine: Vec<_> = again
        .iter()
        .map(|c| (c.id, c.attempt, Settle::Succeeded))
        .collect();
    let s = node::settle(&mut q, second, &mine).unwrap();
    assert_eq!((s.succeeded, s.fenced), (5, 0));
}

/// `prune` deletes succeeded rows past the retention, in batches, and
/// nothing else; a pruned key enqueued again is a new task.
#[test]
fn prune_deletes_old_successes_only() {
    let (db, dir) = enqueued(10, 10, &[]);
    let d = dir.path();
    db.client()
        .batch_execute(
            "UPDATE taskq_tasks SET state = 'succeeded', attempt = 1,
               finalized_at = now() - interval '40 days' WHERE id <= 6;
             UPDATE taskq_tasks SET state = 'succeeded', attempt = 1,
               finalized_at = now() - interval '1 day' WHERE id = 7;
             UPDATE taskq_tasks SET state = 'dead', attempt = 4,
               finalized_at = now() - interval '40 days' WHERE id = 8;",
        )
        .unwrap();
    let o = taskq(
        d,
        &[
            "prune",
            "--pg",
            &db.url,
            "--older-than",
            "30d",
            "--batch-size",
            "4",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("pruned 6 succeeded tasks"),
        "{}",
        text(&o.stdout)
    );
    assert_eq!(db.count("SELECT count(*) FROM taskq_tasks"), 4);
    assert_eq!(
        db.count("SELECT count(*) FROM taskq_tasks WHERE state = 'dead'"),
        1
    );
    let o = taskq(d, &["enqueue", "--pg", &db.url, "--tasks", "t.ndjson"]);
    assert!(
        text(&o.stdout).contains("enqueued 6 of 10 tasks"),
        "{}",
        text(&o.stdout)
    );
    let o = taskq(d, &["prune", "--pg", &db.url, "--older-than", "30 days"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("expected a number and a unit"),
        "{}",
        text(&o.stderr)
    );
}

/// A queue at version 1 (with the index on `finalized_at` that version 2
/// drops) is upgraded in place; its tasks stay.
#[test]
fn a_version_1_queue_is_upgraded_to_the_current_version() {
    let (db, dir) = enqueued(5, 5, &[]);
    db.client()
        .batch_execute(
            "DELETE FROM taskq_schema_version WHERE version > 1;
             DROP INDEX taskq_tasks_dead;
             ALTER TABLE taskq_tasks DROP COLUMN attempts_granted;
             ALTER TABLE taskq_nodes DROP COLUMN workers, DROP COLUMN finished,
                 DROP COLUMN tasks_per_s, DROP COLUMN busy_ratio;
             CREATE INDEX taskq_tasks_finalized ON taskq_tasks (finalized_at)
                 WHERE state = 'succeeded';",
        )
        .unwrap();
    let o = taskq(dir.path(), &["migrate", "--pg", &db.url]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("migrated from version 1 to 3"),
        "{}",
        text(&o.stdout)
    );
    assert_eq!(
        db.count("SELECT count(*) FROM pg_indexes WHERE indexname = 'taskq_tasks_finalized'"),
        0
    );
    assert_eq!(
        db.count("SELECT count(*) FROM pg_indexes WHERE indexname = 'taskq_tasks_dead'"),
        1
    );
    assert_eq!(
        db.count("SELECT count(attempts_granted) + count(*) FROM taskq_tasks"),
        5,
        "a new, empty column"
    );
    assert_eq!(
        db.count("SELECT count(*) FROM information_schema.columns WHERE table_name = 'taskq_nodes' AND column_name IN ('workers', 'finished', 'tasks_per_s', 'busy_ratio')"),
        4
    );
}

/// A queue at version 2 (its nodes published nothing) read by `taskq
/// status`: read as it is, not migrated.
#[test]
fn status_reads_an_older_queue_without_migrating_it() {
    let (db, dir) = enqueued(5, 5, &[]);
    db.client()
        .batch_execute(
            "DELETE FROM taskq_schema_version WHERE version > 2;
             ALTER TABLE taskq_nodes DROP COLUMN workers, DROP COLUMN finished,
                 DROP COLUMN tasks_per_s, DROP COLUMN busy_ratio;
             INSERT INTO taskq_nodes (hostname, pid, processor) VALUES ('h', 1, 'simulated');",
        )
        .unwrap();
    let o = taskq(dir.path(), &["status", "--pg", &db.url]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(out.contains("(schema 2)"), "{out}");
    assert!(out.contains("node 1 h pid 1 (simulated): alive"), "{out}");
    assert_eq!(
        db.count("SELECT max(version)::bigint FROM taskq_schema_version"),
        2
    );
}

/// With each heartbeat a node publishes its workers, the tasks it has
/// finished, and its throughput and busy ratio over the last interval;
/// when it leaves, its final count, and no rates.
#[test]
fn a_node_publishes_its_throughput_and_busy_ratio_with_its_heartbeat() {
    let (db, dir) = enqueued(600, 600, &[]);
    let child = worker(
        dir.path(),
        &db.url,
        &["--workers", "2", "--latency-ms", "5", "--exit-when-empty"],
    )
    .spawn()
    .unwrap();
    let mut seen = None;
    wait_until("a heartbeat with rates", || {
        let row = db
            .client()
            .query_opt(
                "SELECT workers, finished, tasks_per_s, busy_ratio FROM taskq_nodes
                 WHERE state = 'alive' AND tasks_per_s > 0",
                &[],
            )
            .unwrap();
        seen = row.map(|r| {
            (
                r.get::<_, Option<i32>>(0),
                r.get::<_, i64>(1),
                r.get::<_, f64>(2),
                r.get::<_, f64>(3),
            )
        });
        seen.is_some()
    });
    let (workers, finished, rate, busy) = seen.unwrap();
    assert_eq!(workers, Some(2));
    assert!(finished > 0 && finished <= 600, "{finished}");
    // Two workers of 5 ms tasks: at most 400 tasks/s, and busy most of the
    // time (claims and write-backs aside).
    assert!(rate > 0.0 && rate < 450.0, "{rate}");
    assert!(busy > 0.2 && busy <= 1.0, "{busy}");
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let r = db
        .client()
        .query_one(
            "SELECT state, finished, tasks_per_s, busy_ratio FROM taskq_nodes",
            &[],
        )
        .unwrap();
    assert_eq!(r.get::<_, String>(0), "left");
    assert_eq!(r.get::<_, i64>(1), 600);
    assert_eq!(r.get::<_, Option<f64>>(2), None);
    assert_eq!(r.get::<_, Option<f64>>(3), None);
}

/// `--method copy` (binary COPY into a staging table) enqueues and
/// deduplicates exactly as the default: within the file, across batches,
/// and against what the queue holds.
#[test]
fn enqueue_by_copy_deduplicates_as_unnest_does() {
    let db = TestDb::new();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_tasks(&d.join("t.ndjson"), 50, 30);
    let args = [
        "enqueue",
        "--pg",
        &db.url,
        "--tasks",
        "t.ndjson",
        "--method",
        "copy",
        "--batch-size",
        "7",
        "--json",
    ];
    let o = taskq(d, &args);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (v["enqueued"].as_u64(), v["duplicates"].as_u64()),
        (Some(30), Some(20))
    );
    assert_eq!(
        db.count("SELECT count(DISTINCT idempotency_key) FROM taskq_tasks"),
        30
    );
    let o = taskq(d, &args);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (v["enqueued"].as_u64(), v["duplicates"].as_u64()),
        (Some(0), Some(50))
    );
    let o = taskq(
        d,
        &[
            "enqueue", "--pg", &db.url, "--tasks", "t.ndjson", "--method", "bulk",
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("unnest"), "{}", text(&o.stderr));
}

/// A node vacuums the tasks table once it holds `--vacuum-after` dead row
/// versions, and never with 0.
#[test]
fn a_node_vacuums_the_tasks_table_past_its_threshold() {
    let (db, dir) = enqueued(3000, 3000, &[]);
    let d = dir.path();
    let run = |after: &str, report: &str| {
        let o = worker(d, &db.url, &["--workers", "2", "--latency-ms", "2"])
            .args(["--exit-when-empty", "--vacuum-after", after])
            .args(["--report", report])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
        let r: Value =
            serde_json::from_str(&std::fs::read_to_string(d.join(report)).unwrap()).unwrap();
        r["vacuums"].as_u64().unwrap()
    };
    assert!(
        run("100", "a.json") >= 1,
        "3000 claims and completions leave 6000 dead rows"
    );
    let vacuumed =
        db.count("SELECT vacuum_count FROM pg_stat_user_tables WHERE relname = 'taskq_tasks'");
    assert!(vacuumed >= 1, "the server counted {vacuumed} vacuums");
    assert_eq!(
        db.count("SELECT count(*) FROM taskq_tasks WHERE state = 'succeeded'"),
        3000
    );
    // Nothing to do, and 0 turns it off.
    assert_eq!(run("0", "b.json"), 0);
}
