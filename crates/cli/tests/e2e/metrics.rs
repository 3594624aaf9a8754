//! `--metrics-addr`: the live endpoint of `taskq run` and `taskq worker`,
//! scraped over HTTP while the process runs, parsed by the Prometheus
//! project's OpenMetrics parser (Python `prometheus_client`, strict), and
//! compared with the report the process writes at the end.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::pg::{enqueued, text, worker};

const BIN: &str = env!("CARGO_BIN_EXE_taskq");

/// One parsed sample.
#[derive(Debug, Clone, serde::Deserialize)]
struct Sample {
    family: String,
    #[serde(rename = "type")]
    kind: String,
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// The port a child asked for `--metrics-addr 127.0.0.1:0` serves on, read
/// from the line it prints on stderr; the rest of stderr is kept, and
/// returned by the handle once the child closes it.
fn announced_port(child: &mut Child) -> (u16, std::thread::JoinHandle<String>) {
    announced(child, "taskq: metrics at http://", "/metrics")
}

/// The port in the stderr line `PREFIX HOST:PORT SUFFIX` of a child, and a
/// handle that returns the rest of its stderr once the child closes it.
pub(crate) fn announced(
    child: &mut Child,
    prefix: &'static str,
    suffix: &'static str,
) -> (u16, std::thread::JoinHandle<String>) {
    use std::io::BufRead;
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let rest = std::thread::spawn(move || {
        let mut all = String::new();
        for line in std::io::BufReader::new(stderr).lines() {
            let line = line.unwrap_or_default();
            if let Some(addr) = line
                .strip_prefix(prefix)
                .and_then(|l| l.strip_suffix(suffix))
            {
                let _ = tx.send(addr.rsplit_once(':').unwrap().1.parse::<u16>().unwrap());
            }
            all += &line;
            all += "\n";
        }
        all
    });
    let port = rx
        .recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("taskq announces {prefix:?} on stderr"));
    (port, rest)
}

/// An HTTP request to the endpoint: (status, content type, body), or None
/// while nothing listens.
fn get(port: u16, method: &str, path: &str) -> Option<(u16, String, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).ok()?;
    let (head, body) = raw.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let content_type = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-type")
                .then(|| v.trim().to_string())
        })
        .unwrap_or_default();
    Some((status, content_type, body.to_string()))
}

/// Parses an exposition with the strict OpenMetrics parser.
fn parse(exposition: &str) -> Vec<Sample> {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/e2e/support/openmetrics.py"
    );
    let mut child = Command::new("python3")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs the OpenMetrics parser");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(exposition.as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(
        o.status.success(),
        "the OpenMetrics parser refused the exposition (needs `pip install prometheus_client`): {}\n---\n{exposition}",
        text(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

/// Scrapes and parses, checking the response.
fn scrape(port: u16) -> Vec<Sample> {
    let (status, content_type, body) = get(port, "GET", "/metrics").expect("the endpoint answers");
    assert_eq!(status, 200, "{body}");
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    parse(&body)
}

/// The value of the one sample named `name` whose labels include `labels`.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    let hits: Vec<&Sample> = samples
        .iter()
        .filter(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .collect();
    assert_eq!(hits.len(), 1, "{name} {labels:?}: {hits:?}");
    hits[0].value
}

fn completed(samples: &[Sample]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == "taskq_tasks_completed_total")
        .map(|s| s.value)
        .sum()
}

/// Waits for the endpoint to answer and `done` to hold on a scrape; returns
/// every scrape made on the way.
fn scrape_until(
    port: u16,
    child: &mut Child,
    done: impl Fn(&[Sample]) -> bool,
) -> Vec<Vec<Sample>> {
    let start = Instant::now();
    let mut seen = Vec::new();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("taskq exited ({status}) before the scrapes were done");
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out; last scrape: {:?}",
            seen.last()
        );
        if get(port, "GET", "/metrics").is_some() {
            let samples = scrape(port);
            let finished = done(&samples);
            seen.push(samples);
            if finished {
                return seen;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Counters never go back from one scrape to the next.
fn assert_monotonic(scrapes: &[Vec<Sample>]) {
    for pair in scrapes.windows(2) {
        for s in pair[0].iter().filter(|s| s.kind == "counter") {
            let later = pair[1]
                .iter()
                .find(|t| t.name == s.name && t.labels == s.labels)
                .unwrap_or_else(|| panic!("{} {:?} disappeared", s.name, s.labels));
            assert!(
                later.value >= s.value,
                "{} went from {} to {}",
                s.name,
                s.value,
                later.value
            );
        }
    }
}

/// The endpoint's engine series equal the report's counts.
fn assert_matches_report(m: &[Sample], r: &Value, labels: &[(&str, &str)]) {
    let c = &r["counts"];
    let n = |v: &Value| v.as_u64().unwrap() as f64;
    for (name, field) in [
        ("taskq_tasks_submitted_total", "submitted"),
        ("taskq_tasks_admitted_total", "admitted"),
        ("taskq_tasks_rejected_total", "rejected"),
        ("taskq_tasks_started_total", "started"),
        ("taskq_attempts_total", "attempts"),
        ("taskq_retries_total", "retried"),
    ] {
        assert_eq!(value(m, name, labels), n(&c[field]), "{name}");
    }
    for (outcome, field) in [
        ("succeeded", "succeeded"),
        ("duplicate", "duplicates"),
        ("dead_lettered", "dead_lettered"),
        ("failed", "failed"),
    ] {
        let mut l = labels.to_vec();
        l.push(("outcome", outcome));
        assert_eq!(
            value(m, "taskq_tasks_completed_total", &l),
            n(&c[field]),
            "{outcome}"
        );
    }
    assert_eq!(
        value(m, "taskq_task_latency_seconds_count", labels),
        n(&r["latency_ms"]["count"])
    );
    assert_eq!(
        value(m, "taskq_task_service_seconds_count", labels),
        n(&r["service_ms"]["count"])
    );
    let mut inf = labels.to_vec();
    inf.push(("le", "+Inf"));
    assert_eq!(
        value(m, "taskq_task_latency_seconds_bucket", &inf),
        n(&r["latency_ms"]["count"])
    );
    let mean_ms = r["latency_ms"]["mean"].as_f64().unwrap();
    let sum_s = value(m, "taskq_task_latency_seconds_sum", labels);
    let count = n(&r["latency_ms"]["count"]);
    assert!(
        (sum_s / count * 1e3 - mean_ms).abs() <= mean_ms * 0.01 + 1e-3,
        "latency sum {sum_s} s over {count} against the report's mean {mean_ms} ms"
    );
    assert_eq!(value(m, "taskq_queue_depth", labels), 0.0);
    assert_eq!(
        value(m, "taskq_queue_depth_max", labels),
        n(&r["queue_depth"]["max"])
    );
    assert_eq!(
        value(m, "taskq_queue_capacity", labels),
        n(&r["queue_depth"]["capacity"])
    );
    let workers = r["workers"].as_array().unwrap();
    assert_eq!(value(m, "taskq_workers", labels), workers.len() as f64);
    assert_eq!(value(m, "taskq_workers_busy", labels), 0.0);
    let mut steals = 0.0;
    for w in workers {
        let index = w["index"].to_string();
        let mut l = labels.to_vec();
        l.push(("worker", &index));
        assert_eq!(value(m, "taskq_worker_tasks_total", &l), n(&w["tasks"]));
        assert_eq!(value(m, "taskq_worker_steals_total", &l), n(&w["steals"]));
        steals += n(&w["steals"]);
    }
    assert_eq!(value(m, "taskq_steals_total", labels), steals);
}

fn spawn_run(dir: &Path, extra: &[&str]) -> Child {
    Command::new(BIN)
        .current_dir(dir)
        .args(["run", "--tasks", "-", "--no-progress", "--report", "r.json"])
        .args(["--metrics-addr", "127.0.0.1:0"])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// A run fed on stdin: scraped while it runs, its counters grow and never
/// go back; once every task is done (stdin still open) the endpoint's
/// counts are the report's, to the task, with retries, dead letters and
/// duplicates among them.
#[test]
fn a_run_s_endpoint_parses_and_ends_equal_to_its_report() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut child = spawn_run(
        d,
        &[
            "--db",
            "t.db",
            "--workers",
            "3",
            "--capacity",
            "64",
            "--latency-ms",
            "0.2",
            "--transient-rate",
            "0.2",
            "--permanent-rate",
            "0.05",
            "--backoff-base-ms",
            "1",
            "--backoff-max-ms",
            "5",
            "--seed",
            "11",
        ],
    );
    let n = 3000;
    let mut input = String::new();
    for i in 0..n {
        // 2500 keys: 500 tasks repeat a key.
        input += &format!(
            "{{\"id\": \"{i}\", \"image_key\": \"img/{:06}.jpg\", \"size\": \"200x200\"}}\n",
            i % 2500
        );
    }
    let (port, stderr) = announced_port(&mut child);
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).unwrap();
    stdin.flush().unwrap();
    let scrapes = scrape_until(port, &mut child, |m| completed(m) == n as f64);
    assert_monotonic(&scrapes);
    let last = scrapes.last().unwrap().clone();
    // Other paths and methods are refused.
    assert_eq!(get(port, "GET", "/").unwrap().0, 404);
    assert_eq!(get(port, "POST", "/metrics").unwrap().0, 405);
    drop(stdin);
    let status = child.wait().unwrap();
    // 3: the run completed with dead letters.
    assert_eq!(status.code(), Some(3), "{}", stderr.join().unwrap());
    let r: Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("r.json")).unwrap()).unwrap();
    assert_eq!(r["counts"]["admitted"], n);
    assert!(
        r["counts"]["retried"].as_u64().unwrap() > 0,
        "{}",
        r["counts"]
    );
    assert!(
        r["counts"]["dead_lettered"].as_u64().unwrap() > 0,
        "{}",
        r["counts"]
    );
    // 500 tasks repeat a key; those whose key was dead-lettered run again.
    let duplicates = r["counts"]["duplicates"].as_u64().unwrap();
    assert!((400..=500).contains(&duplicates), "{}", r["counts"]);
    assert_matches_report(&last, &r, &[]);
    // No `node` label outside distributed mode.
    assert!(last.iter().all(|s| !s.labels.contains_key("node")));
    // The families a user's Prometheus expects, typed.
    let types: BTreeMap<&str, &str> = last
        .iter()
        .map(|s| (s.family.as_str(), s.kind.as_str()))
        .collect();
    for (family, kind) in [
        ("taskq_tasks_completed", "counter"),
        ("taskq_retries", "counter"),
        ("taskq_queue_depth", "gauge"),
        ("taskq_queue_capacity", "gauge"),
        ("taskq_workers_busy", "gauge"),
        ("taskq_steals", "counter"),
        ("taskq_task_latency_seconds", "histogram"),
        ("taskq_task_service_seconds", "histogram"),
    ] {
        assert_eq!(
            types.get(family).copied(),
            Some(kind),
            "{family}: {types:?}"
        );
    }
}

/// A bad address, or one in use, fails the run before any work starts
/// (exit 1, as every invalid setting), naming the flag.
#[test]
fn a_bad_or_taken_metrics_address_fails_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = taken.local_addr().unwrap().to_string();
    for addr in ["not-an-address", "127.0.0.1:99999", taken.as_str()] {
        let o = Command::new(BIN)
            .current_dir(d)
            .args([
                "run",
                "--tasks",
                "-",
                "--db",
                "t.db",
                "--metrics-addr",
                addr,
            ])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(1), "{addr}: {}", text(&o.stderr));
        let err = text(&o.stderr);
        assert!(err.contains("--metrics-addr"), "{addr}: {err}");
        assert!(!err.contains("panicked"), "{err}");
        assert!(!d.join("t.db").exists(), "{addr}: the store was created");
    }
}

/// A worker node's endpoint: every series carries the node's id; once the
/// queue is drained the node's counts equal the report it writes at
/// SIGTERM, and its claims equal the tasks.
#[test]
fn a_worker_node_s_endpoint_is_labelled_and_ends_equal_to_its_report() {
    let (db, dir) = enqueued(400, 400, &[]);
    let d = dir.path();
    let mut child = worker(
        d,
        &db.url,
        &["--latency-ms", "1", "--transient-rate", "0.1"],
    )
    .args([
        "--workers",
        "4",
        "--report",
        "w.json",
        "--backoff-base-ms",
        "1",
    ])
    .args(["--backoff-max-ms", "5", "--metrics-addr", "127.0.0.1:0"])
    .spawn()
    .unwrap();
    let (port, stderr) = announced_port(&mut child);
    // Done: first nothing left in the queue (a transient failure is written
    // back and claimed again later), then a scrape taken after that shows
    // nothing held and every claim completed.
    let mut scrapes = vec![scrape(port)];
    crate::pg::wait_until("the queue to drain", || {
        db.count("SELECT count(*) FROM taskq_tasks WHERE state IN ('available', 'running')") == 0
    });
    scrapes.extend(scrape_until(port, &mut child, |m| {
        let claimed = m
            .iter()
            .find(|s| s.name == "taskq_node_claimed_total")
            .map(|s| s.value);
        let held = m
            .iter()
            .find(|s| s.name == "taskq_node_held")
            .map(|s| s.value);
        held == Some(0.0) && claimed == Some(completed(m))
    }));
    assert_monotonic(&scrapes);
    let last = scrapes.last().unwrap().clone();
    let node = last[0].labels.get("node").cloned().expect("a node label");
    assert!(
        last.iter().all(|s| s.labels.get("node") == Some(&node)),
        "every series has node=\"{node}\""
    );
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(143), "{}", stderr.join().unwrap());
    let r: Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("w.json")).unwrap()).unwrap();
    assert_eq!(r["node_id"].to_string(), node);
    let labels = [("node", node.as_str())];
    assert_matches_report(&last, &r["engine"], &labels);
    assert_eq!(
        value(&last, "taskq_node_claimed_total", &labels),
        r["claimed"].as_u64().unwrap() as f64
    );
    assert_eq!(
        value(
            &last,
            "taskq_tasks_completed_total",
            &[("node", &node), ("outcome", "succeeded")]
        ),
        db.count("SELECT count(*) FROM taskq_tasks WHERE state = 'succeeded'") as f64
    );
}
