//! `taskq migrate | enqueue | status` against the real PostgreSQL server
//! (`TASKQ_TEST_PG`, default `postgres://postgres@127.0.0.1:5432/postgres`).
//! Each test makes a database with a random name and drops it.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_taskq");

/// A database of the test's own, dropped at the end.
struct TestDb {
    name: String,
    url: String,
}

fn admin_url() -> String {
    std::env::var("TASKQ_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn admin() -> postgres::Client {
    postgres::Client::connect(&admin_url(), postgres::NoTls).unwrap_or_else(|e| {
        panic!(
            "PostgreSQL at {} does not answer ({e}); the PostgreSQL tests need it (set TASKQ_TEST_PG)",
            admin_url()
        )
    })
}

impl TestDb {
    fn new() -> Self {
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

    fn client(&self) -> postgres::Client {
        postgres::Client::connect(&self.url, postgres::NoTls).unwrap()
    }

    fn count(&self, sql: &str) -> i64 {
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

fn taskq(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .current_dir(dir)
        .env_remove("TASKQ_DATABASE_URL")
        .args(args)
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// NDJSON lines `img/{i % unique}.jpg` at 200x200 for i in 0..n.
fn write_tasks(path: &Path, n: usize, unique: usize) {
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

#[test]
fn migrate_creates_the_schema_once_and_refuses_a_newer_one() {
    let db = TestDb::new();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let o = taskq(d, &["migrate", "--pg", &db.url]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("migrated from version 0 to 1"),
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
        text(&o.stdout).contains("at version 1 already"),
        "{}",
        text(&o.stdout)
    );
    assert_eq!(db.count("SELECT count(*) FROM taskq_schema_version"), 1);
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
            err.contains("queue schema version 99 is newer than this taskq understands (1)"),
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
    assert_eq!(v["schema_version"], 1);
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
