//! `taskq dlq list | retry | purge --pg` against the real PostgreSQL server:
//! dead rows made by worker nodes, listed, re-queued for the nodes (which
//! then finish them) and purged; bad servers and missing or newer schemas
//! refused with nothing changed.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

use crate::pg::{effects, taskq, text, worker, write_tasks, TestDb};

/// The key `write_tasks` gives its i-th image.
fn key(i: usize) -> String {
    format!("img/{i:06}.jpg:200x200")
}

fn ok(o: &Output) -> String {
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    text(&o.stdout)
}

fn enqueue(d: &Path, url: &str, n: usize, extra: &[&str]) {
    write_tasks(&d.join("t.ndjson"), n, n);
    let mut args = vec!["enqueue", "--pg", url, "--tasks", "t.ndjson"];
    args.extend_from_slice(extra);
    ok(&taskq(d, &args));
}

/// Runs one simulated node until the queue holds nothing for it, with
/// `extra` flags (the failure rates), logging its work to `log`.
fn drain(d: &Path, url: &str, log: &str, extra: &[&str]) -> Value {
    let o = worker(d, url, &["--latency-ms", "1", "--backoff-base-ms", "1"])
        .args(["--exit-when-empty", "--workers", "2"])
        .args(["--effects-log", log, "--report", "node.json"])
        .args(extra)
        .output()
        .unwrap();
    ok(&o);
    serde_json::from_str(&std::fs::read_to_string(d.join("node.json")).unwrap()).unwrap()
}

/// The rows as (key, state, attempt, max_attempts), by id.
fn rows(db: &TestDb) -> Vec<(String, String, i32, i32)> {
    db.client()
        .query(
            "SELECT idempotency_key, state, attempt, max_attempts FROM taskq_tasks ORDER BY id",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect()
}

fn list_json(d: &Path, url: &str, extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["dlq", "list", "--pg", url, "--json"];
    args.extend_from_slice(extra);
    let out = ok(&taskq(d, &args));
    serde_json::from_str::<Value>(&out)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// A queue of the simulated processor with keys 0–1 succeeded, 2–4 dead of
/// a permanent failure at attempt 1 (of 2), 5–7 dead of transient failures
/// at attempt 2 (of 2), and keys 0–1 of the noop processor available.
fn queue_with_dead_tasks(d: &Path, db: &TestDb) {
    let url = db.url.as_str();
    let retries = ["--max-retries", "1"];
    enqueue(d, url, 2, &retries);
    let r = drain(d, url, "ok.log", &[]);
    assert_eq!(r["settled"]["succeeded"], 2);
    enqueue(d, url, 5, &retries);
    let r = drain(d, url, "perm.log", &["--permanent-rate", "1"]);
    assert_eq!(r["settled"]["dead"], 3);
    enqueue(d, url, 8, &retries);
    let r = drain(d, url, "trans.log", &["--transient-rate", "1"]);
    assert_eq!(
        (&r["settled"]["retried"], &r["settled"]["dead"]),
        (&3.into(), &3.into())
    );
    enqueue(d, url, 2, &["--processor", "noop"]);
    let want: Vec<_> = (0..8)
        .map(|i| match i {
            0 | 1 => (key(i), "succeeded".to_string(), 1, 2),
            2..=4 => (key(i), "dead".to_string(), 1, 2),
            _ => (key(i), "dead".to_string(), 2, 2),
        })
        .chain((0..2).map(|i| (key(i), "available".to_string(), 0, 4)))
        .collect();
    assert_eq!(rows(db), want);
}

/// Dead rows made by nodes are listed with their errors; `retry --key`
/// then `retry --all` re-queue them for the nodes (attempt kept, as many
/// attempts again granted), and a node finishes each at its next attempt.
#[test]
fn dead_tasks_are_listed_then_requeued_and_finished_by_a_node() {
    let db = TestDb::new();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let url = db.url.as_str();
    let name = url.rsplit('/').next().unwrap();
    queue_with_dead_tasks(d, &db);

    // The table: oldest death first, each with its error and attempts.
    let out = ok(&taskq(d, &["dlq", "list", "--pg", url]));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 7, "{out}");
    assert!(
        lines[0].starts_with("6 dead task(s) in 127.0.0.1:5432/") && lines[0].contains(name),
        "{out}"
    );
    for (line, i) in lines[1..].iter().zip(2..) {
        assert!(
            line.starts_with(&format!("{}\tsimulated\t", key(i))),
            "{out}"
        );
        if i < 5 {
            assert!(
                line.contains("\tpermanent bad_source\tattempts 1 of 2\tdied "),
                "{out}"
            );
            assert!(line.ends_with("cannot be decoded (injected)"), "{out}");
        } else {
            assert!(
                line.contains("\ttransient unavailable\tattempts 2 of 2\tdied "),
                "{out}"
            );
        }
    }
    let all = list_json(d, url, &[]);
    assert_eq!(all.len(), 6);
    let first = &all[0];
    assert_eq!(first["idempotency_key"], key(2).as_str());
    assert_eq!(first["processor"], "simulated");
    assert_eq!(first["image_key"], "img/000002.jpg");
    assert_eq!(first["size"], "200x200");
    assert_eq!(first["task_id"], "2");
    assert_eq!(
        (&first["attempts"], &first["max_attempts"]),
        (&1.into(), &2.into())
    );
    assert_eq!(first["error_class"], "permanent");
    assert_eq!(first["error_kind"], "bad_source");
    let at = first["finalized_at"].as_str().unwrap();
    assert!(
        at.len() == 27 && at.ends_with('Z') && at.as_bytes()[10] == b'T',
        "{at}"
    );
    let stamps: Vec<&str> = all
        .iter()
        .map(|v| v["finalized_at"].as_str().unwrap())
        .collect();
    assert!(stamps.windows(2).all(|w| w[0] <= w[1]), "{stamps:?}");
    // Filters: a key, a processor.
    let one = list_json(d, url, &["--key", &key(6)]);
    assert_eq!(one.len(), 1);
    assert_eq!(one[0]["error_class"], "transient");
    assert!(list_json(d, url, &["--processor", "noop"]).is_empty());
    assert_eq!(list_json(d, url, &["--processor", "simulated"]).len(), 6);

    // One key re-queued: available now, attempt kept, two attempts granted.
    let out = ok(&taskq(d, &["dlq", "retry", "--pg", url, "--key", &key(2)]));
    assert!(
        out.contains("re-queued 1 dead task(s) into 127.0.0.1:5432/")
            && out.contains("; running `taskq worker` nodes will take them"),
        "{out}"
    );
    let (state, attempt, max, finalized, class): (String, i32, i32, bool, Option<String>) = {
        let r = db
            .client()
            .query_one(
                "SELECT state, attempt, max_attempts, finalized_at IS NULL AND run_at <= now(),
                        last_error_class
                 FROM taskq_tasks WHERE idempotency_key = $1",
                &[&key(2)],
            )
            .unwrap();
        (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4))
    };
    assert_eq!(
        (state.as_str(), attempt, max, finalized),
        ("available", 1, 3, true)
    );
    assert_eq!(
        class.as_deref(),
        Some("permanent"),
        "the last error is kept"
    );
    let r = drain(d, url, "retry1.log", &[]);
    assert_eq!(
        (&r["claimed"], &r["settled"]["succeeded"]),
        (&1.into(), &1.into())
    );
    let seen = std::fs::read_to_string(d.join("retry1.log")).unwrap();
    assert_eq!(
        seen,
        format!("{}\t2\n", key(2)),
        "attempt 2, after attempt 1"
    );

    // The rest, of the simulated processor: the noop tasks are not dead and
    // stay as they are.
    let out = ok(&taskq(
        d,
        &[
            "dlq",
            "retry",
            "--pg",
            url,
            "--all",
            "--processor",
            "simulated",
        ],
    ));
    assert!(
        out.contains("re-queued 5 dead task(s) of simulated into "),
        "{out}"
    );
    let r = drain(d, url, "retry2.log", &[]);
    assert_eq!(r["settled"]["succeeded"], 5);
    let seen = effects(&[d.join("retry2.log")]);
    assert_eq!(seen.len(), 5);
    let log = std::fs::read_to_string(d.join("retry2.log")).unwrap();
    for i in 3..8 {
        let next = if i < 5 { 2 } else { 3 };
        assert!(log.contains(&format!("{}\t{next}\n", key(i))), "{log}");
    }
    let want: Vec<_> = (0..8)
        .map(|i| match i {
            0 | 1 => (key(i), "succeeded".to_string(), 1, 2),
            2..=4 => (key(i), "succeeded".to_string(), 2, 3),
            _ => (key(i), "succeeded".to_string(), 3, 4),
        })
        .chain((0..2).map(|i| (key(i), "available".to_string(), 0, 4)))
        .collect();
    assert_eq!(rows(&db), want, "every attempt count only grew");
    let out = ok(&taskq(d, &["dlq", "retry", "--pg", url, "--all"]));
    assert!(out.starts_with("no dead tasks to re-queue in "), "{out}");
    let out = ok(&taskq(d, &["dlq", "list", "--pg", url]));
    assert!(out.starts_with("0 dead task(s) in "), "{out}");
}

/// `purge` deletes dead rows only (by key, by processor, all), skipping a
/// row another session holds locked.
#[test]
fn purge_deletes_dead_rows_only_and_skips_locked_ones() {
    let db = TestDb::new();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let url = db.url.as_str();
    queue_with_dead_tasks(d, &db);
    // One noop task dead too, by hand.
    db.client()
        .batch_execute(
            "UPDATE taskq_tasks SET state = 'dead', attempt = 1, finalized_at = now(),
               last_error_class = 'permanent', last_error_kind = 'x', last_error = 'y'
             WHERE processor = 'noop' AND idempotency_key = 'img/000000.jpg:200x200'",
        )
        .unwrap();
    let dead = |db: &TestDb| db.count("SELECT count(*) FROM taskq_tasks WHERE state = 'dead'");
    assert_eq!(dead(&db), 7);

    // A key that is not dead: nothing.
    let out = ok(&taskq(d, &["dlq", "purge", "--pg", url, "--key", &key(1)]));
    assert!(
        out.starts_with("purged 0 dead task(s) from 127.0.0.1:5432/"),
        "{out}"
    );
    // A key dead under both processors, only the noop one.
    let out = ok(&taskq(
        d,
        &[
            "dlq",
            "purge",
            "--pg",
            url,
            "--key",
            &key(0),
            "--processor",
            "noop",
        ],
    ));
    assert!(
        out.starts_with("purged 1 dead task(s) of noop from "),
        "{out}"
    );
    let out = ok(&taskq(d, &["dlq", "purge", "--pg", url, "--key", &key(2)]));
    assert!(out.starts_with("purged 1 dead task(s) from "), "{out}");
    assert_eq!(dead(&db), 5);

    // Another session holds one dead row: purge --all leaves it.
    let mut holder = db.client();
    let mut tx = holder.transaction().unwrap();
    tx.execute(
        "SELECT 1 FROM taskq_tasks WHERE idempotency_key = $1 AND processor = 'simulated'
         FOR UPDATE",
        &[&key(7)],
    )
    .unwrap();
    let out = ok(&taskq(d, &["dlq", "purge", "--pg", url, "--all"]));
    assert!(out.starts_with("purged 4 dead task(s) from "), "{out}");
    tx.commit().unwrap();
    assert_eq!(dead(&db), 1);
    let out = ok(&taskq(d, &["dlq", "purge", "--pg", url, "--all"]));
    assert!(out.starts_with("purged 1 dead task(s) from "), "{out}");
    assert_eq!(dead(&db), 0);
    assert_eq!(
        db.count("SELECT count(*) FROM taskq_tasks WHERE state = 'succeeded'"),
        2
    );
    assert_eq!(
        db.count("SELECT count(*) FROM taskq_tasks WHERE state = 'available'"),
        1,
        "the noop task that was not dead"
    );
    // A purged key enqueued again is a new task.
    enqueue(d, url, 3, &[]);
    assert_eq!(
        db.count("SELECT count(*) FROM taskq_tasks WHERE processor = 'simulated'"),
        3
    );
}

/// An unreachable server, a database without a queue or with a newer
/// schema: each `dlq` command names it, exits 1 and changes nothing.
/// Flags of a local re-drive are refused with --pg (exit 2), and --pg with
/// --db or --store.
#[test]
fn bad_servers_missing_or_newer_schemas_and_local_flags_are_refused() {
    let db = TestDb::new();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let url = db.url.as_str();
    let name = url.rsplit('/').next().unwrap();
    let commands = |url: &str| -> Vec<Vec<String>> {
        [
            &["dlq", "list", "--pg", url][..],
            &["dlq", "retry", "--pg", url, "--all"][..],
            &["dlq", "purge", "--pg", url, "--all"][..],
        ]
        .iter()
        .map(|a| a.iter().map(|s| s.to_string()).collect())
        .collect()
    };
    let run = |args: &[String]| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        taskq(d, &args)
    };

    for args in commands("postgres://postgres@127.0.0.1:1/nowhere") {
        let o = run(&args);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        assert!(
            text(&o.stderr)
                .contains("cannot connect to PostgreSQL 127.0.0.1:1/nowhere as postgres"),
            "{}",
            text(&o.stderr)
        );
    }
    // No queue yet: said so, and nothing is created.
    for args in commands(url) {
        let o = run(&args);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        let err = text(&o.stderr);
        assert!(
            err.contains("no taskq queue here yet") && err.contains(name),
            "{err}"
        );
    }
    assert_eq!(
        db.count("SELECT count(*) FROM pg_tables WHERE tablename LIKE 'taskq%'"),
        0
    );

    // Dead rows, then a newer schema: refused, rows as they were.
    enqueue(d, url, 3, &["--max-retries", "0"]);
    let r = crate::pg::worker(d, url, &["--latency-ms", "1", "--exit-when-empty"])
        .args(["--permanent-rate", "1"])
        .output()
        .unwrap();
    ok(&r);
    let before = rows(&db);
    assert!(before.iter().all(|r| r.1 == "dead"), "{before:?}");
    // Flags of a local re-drive make no sense on the queue.
    let o = taskq(
        d,
        &[
            "dlq",
            "retry",
            "--pg",
            url,
            "--all",
            "--workers",
            "3",
            "--seed",
            "1",
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    let err = text(&o.stderr);
    assert!(
        err.contains("--workers, --seed do not apply there; nothing was changed"),
        "{err}"
    );
    for extra in [["--db", "x.db"], ["--store", "s"]] {
        let o = taskq(
            d,
            &["dlq", "purge", "--pg", url, "--all", extra[0], extra[1]],
        );
        assert_eq!(o.status.code(), Some(2));
        assert!(
            text(&o.stderr).contains("cannot be used with"),
            "{}",
            text(&o.stderr)
        );
    }
    assert_eq!(rows(&db), before);

    db.client()
        .execute(
            "INSERT INTO taskq_schema_version VALUES (99, 'future', now())",
            &[],
        )
        .unwrap();
    for args in commands(url) {
        let o = run(&args);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        let err = text(&o.stderr);
        assert!(
            err.contains(&format!(
                "queue schema version 99 is newer than this taskq understands ({})",
                taskq_pg::SCHEMA_VERSION
            )) && err.contains(name),
            "{err}"
        );
    }
    assert_eq!(rows(&db), before);
}

/// TASKQ_DATABASE_URL names the queue when no flag names a database; an
/// explicit --db (or --store) still means that SQLite database.
#[test]
fn the_environment_names_the_queue_unless_a_database_flag_is_given() {
    let db = TestDb::new();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    enqueue(d, &db.url, 2, &["--max-retries", "0"]);
    let o = worker(d, &db.url, &["--latency-ms", "1", "--exit-when-empty"])
        .args(["--permanent-rate", "1"])
        .output()
        .unwrap();
    ok(&o);
    let with_env = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_taskq"))
            .current_dir(d)
            .env("TASKQ_DATABASE_URL", &db.url)
            .args(args)
            .output()
            .unwrap()
    };
    let out = ok(&with_env(&["dlq", "list"]));
    assert!(
        out.starts_with("2 dead task(s) in 127.0.0.1:5432/"),
        "{out}"
    );
    let o = with_env(&["dlq", "list", "--db", "local.db"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("local.db"), "{}", text(&o.stderr));
    let o = with_env(&["dlq", "retry", "--all", "--max-retries", "5"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("of TASKQ_DATABASE_URL")
            && text(&o.stderr).contains("pass --db PATH"),
        "{}",
        text(&o.stderr)
    );
    let out = ok(&with_env(&["dlq", "retry", "--all"]));
    assert!(out.starts_with("re-queued 2 dead task(s) into "), "{out}");
    assert_eq!(
        db.count("SELECT count(*) FROM taskq_tasks WHERE state = 'available' AND max_attempts = 2"),
        2
    );
}

/// Every re-drive grants the budget the task was enqueued with, not the
/// growing `max_attempts` of its last life.
#[test]
fn each_re_drive_grants_the_first_budget_again() {
    let db = TestDb::new();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let url = db.url.as_str();
    enqueue(d, url, 1, &["--max-retries", "1"]);
    let die = |attempt: i32| {
        db.client()
            .execute(
                "UPDATE taskq_tasks SET state = 'dead', attempt = $1, finalized_at = now(),
                     last_error_class = 'transient', last_error_kind = 'x', last_error = 'y'",
                &[&attempt],
            )
            .unwrap();
    };
    let budget = || -> (i32, Option<i32>) {
        let r = db
            .client()
            .query_one(
                "SELECT max_attempts, attempts_granted FROM taskq_tasks",
                &[],
            )
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!(budget(), (2, None));
    die(2);
    ok(&taskq(d, &["dlq", "retry", "--pg", url, "--all"]));
    assert_eq!(budget(), (4, Some(2)));
    die(4);
    ok(&taskq(d, &["dlq", "retry", "--pg", url, "--all"]));
    assert_eq!(budget(), (6, Some(2)), "two more, not four");
}
