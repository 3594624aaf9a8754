//! `taskq run --dashboard`: the run's live page over HTTP while the run
//! lasts. Its numbers grow and never go back, stay within the bound, and
//! once every task is done they are the report's; it needs its token off
//! loopback, and a bad address or a missing token fails the run before any
//! work.

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::dashboard::http;
use crate::metrics::announced;
use crate::pg::text;

const BIN: &str = env!("CARGO_BIN_EXE_taskq");

/// A run with its live page on a free loopback port, and the port.
pub(crate) fn spawn_run(
    dir: &Path,
    extra: &[&str],
    env: &[(&str, &str)],
) -> (Child, u16, std::thread::JoinHandle<String>) {
    let mut child = Command::new(BIN)
        .current_dir(dir)
        .env_remove("TASKQ_DASHBOARD_TOKEN")
        .envs(env.iter().copied())
        .args(["run", "--no-progress", "--report", "r.json", "--db", "t.db"])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (port, stderr) = announced(&mut child, "taskq: dashboard at http://", "/");
    (child, port, stderr)
}

/// NDJSON lines of `n` tasks, every fifth a duplicate of the one before.
pub(crate) fn lines(n: usize) -> String {
    (0..n)
        .map(|i| {
            let k = if i % 5 == 4 { i - 1 } else { i };
            format!("{{\"image_key\": \"img/{k:06}.jpg\", \"size\": \"64x64\"}}\n")
        })
        .collect()
}

fn view(port: u16, headers: &[(&str, &str)]) -> Value {
    let r = http(port, "GET", "/live.json", headers, "");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("content-type"), Some("application/json"));
    serde_json::from_str(&r.body).unwrap()
}

fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("a count: {v}"))
}

/// A run fed on stdin: its live view, read while it runs, only grows and
/// stays within the capacity; its pages are HTML with the security
/// headers and refuse anything but GET; once every task is done (stdin
/// still open) the view's counts are the report's.
#[test]
fn a_run_s_live_page_grows_within_the_bound_and_ends_equal_to_its_report() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, port, stderr) = spawn_run(
        dir.path(),
        &[
            "--tasks",
            "-",
            "--workers",
            "2",
            "--capacity",
            "32",
            "--latency-ms",
            "1",
            "--transient-rate",
            "0.2",
            "--backoff-base-ms",
            "1",
            "--backoff-max-ms",
            "4",
            "--dashboard",
            "127.0.0.1:0",
        ],
        &[],
    );
    let total = 600;
    let mut stdin = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        stdin.write_all(lines(total).as_bytes()).unwrap();
        stdin
    });

    let mut views = Vec::new();
    let start = Instant::now();
    loop {
        let v = view(port, &[]);
        let done = n(&v["completed"]) == total as u64;
        views.push(v);
        if done {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the run did not finish"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(views.len() >= 2, "the run was seen only once");
    for pair in views.windows(2) {
        for k in [
            "submitted",
            "admitted",
            "started",
            "succeeded",
            "retried",
            "duplicates",
        ] {
            assert!(
                n(&pair[1]["counts"][k]) >= n(&pair[0]["counts"][k]),
                "{k} went back"
            );
        }
        assert!(n(&pair[1]["completed"]) >= n(&pair[0]["completed"]));
    }
    for v in &views {
        assert!(n(&v["depth"]) <= n(&v["capacity"]), "{v}");
        assert_eq!(v["capacity"], 32);
        assert_eq!(v["expected"], Value::Null, "stdin has no total");
        let workers = v["workers"].as_array().unwrap();
        assert_eq!(workers.len(), 2);
        for w in workers {
            let busy = w["busy_ratio"].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&busy), "{w}");
        }
    }
    let last = views.last().unwrap().clone();
    let tasks: u64 = last["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| n(&w["tasks"]))
        .sum();
    assert_eq!(tasks + n(&last["completed_by_writer"]), total as u64);
    assert_eq!(n(&last["latency_ms"]["count"]), total as u64);
    let buckets: u64 = last["histogram"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| n(&b["count"]))
        .sum();
    assert_eq!(buckets, total as u64, "each latency sample in one bar");

    // The page and its live part.
    let page = http(port, "GET", "/", &[], "");
    assert_eq!(page.status, 200);
    assert!(page
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));
    let csp = page.header("content-security-policy").unwrap();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert!(page.body.contains("<div id=live>"), "{}", page.body);
    assert!(
        page.body
            .contains(&format!("<span id=completed>{total}</span>")),
        "{}",
        page.body
    );
    let part = http(port, "GET", "/live", &[], "");
    assert_eq!(part.status, 200);
    assert!(part.body.contains("<table id=workers>") && part.body.contains("<svg id=histogram"));
    assert_eq!(http(port, "POST", "/", &[], "").status, 405);
    assert_eq!(http(port, "GET", "/nothing", &[], "").status, 404);

    drop(feeder.join().unwrap());
    let status = child.wait().unwrap();
    let stderr = stderr.join().unwrap();
    assert!(
        status.code() == Some(0) || status.code() == Some(3),
        "{stderr}"
    );
    let r: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("r.json")).unwrap()).unwrap();
    for k in [
        "submitted",
        "admitted",
        "started",
        "attempts",
        "succeeded",
        "failed",
        "duplicates",
        "retried",
        "dead_lettered",
    ] {
        assert_eq!(last["counts"][k], r["counts"][k], "{k}");
    }
    assert!(!r.to_string().contains("dashboard_token"));
}

/// Off loopback the page needs its token: without it the run refuses to
/// start (exit 1, before any work: no store is made); with it, a request
/// without the token is refused and one with it is answered. A bad address
/// fails the same way, naming its flag.
#[test]
fn off_loopback_the_live_page_needs_its_token_and_a_bad_address_fails_first() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("t.ndjson"), lines(400)).unwrap();
    for (addr, flag) in [
        ("0.0.0.0:0", "--dashboard-token"),
        ("not-an-address", "--dashboard"),
        ("127.0.0.1:99999", "--dashboard"),
    ] {
        let o = Command::new(BIN)
            .current_dir(d)
            .env_remove("TASKQ_DASHBOARD_TOKEN")
            .args([
                "run",
                "--tasks",
                "t.ndjson",
                "--db",
                "t.db",
                "--dashboard",
                addr,
            ])
            .output()
            .unwrap();
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{addr}: {err}");
        assert!(err.contains(flag), "{addr}: {err}");
        assert!(!err.contains("panicked"), "{err}");
        assert!(!d.join("t.db").exists(), "{addr}: the store was made");
    }

    let (mut child, port, stderr) = spawn_run(
        d,
        &[
            "--tasks",
            "t.ndjson",
            "--workers",
            "1",
            "--latency-ms",
            "5",
            "--dashboard",
            "0.0.0.0:0",
        ],
        &[("TASKQ_DASHBOARD_TOKEN", "s3cret")],
    );
    assert_eq!(http(port, "GET", "/live.json", &[], "").status, 401);
    assert_eq!(
        http(port, "GET", "/", &[("Authorization", "Bearer wrong")], "").status,
        401
    );
    let v = view(port, &[("Authorization", "Bearer s3cret")]);
    assert_eq!(v["expected"], 400, "a file's valid tasks are counted first");
    let cookie = http(port, "GET", "/?token=s3cret", &[], "");
    assert_eq!(cookie.status, 303);
    assert!(cookie.header("set-cookie").unwrap().contains("HttpOnly"));
    drop(child.stdin.take());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{}", stderr.join().unwrap());
}
