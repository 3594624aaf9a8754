//! `taskq dashboard --pg URL`: the pages over a real queue (real nodes made
//! its dead letters and successes), through HTTP: counts, escaping of what
//! the database holds, retry and purge of a selection, and the safety
//! rules (token off loopback, form secret, same origin, read-only).

use std::io::{BufRead, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::pg::{taskq, text, TestDb};

const BIN: &str = env!("CARGO_BIN_EXE_taskq");
pub(crate) const HOSTILE: &str = "<script>alert(1)</script>";

/// A response: status, headers (lower-cased names), body.
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: String,
}

impl Reply {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

pub(crate) fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Reply {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req += &format!("{k}: {v}\r\n");
    }
    if method == "POST" {
        req += &format!(
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
            body.len()
        );
    }
    req += "\r\n";
    req += body;
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_lowercase(), v.trim().to_string()))
        .collect();
    Reply {
        status,
        headers,
        body: body.to_string(),
    }
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A queue holding 10 dead tasks (one with a hostile key), 5 succeeded and
/// 20 available, made by two real `taskq worker` runs.
pub(crate) fn seeded() -> (TestDb, tempfile::TempDir) {
    let db = TestDb::new();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let write = |name: &str, range: std::ops::Range<usize>, hostile: bool| {
        let mut lines: Vec<String> = range
            .map(|i| {
                format!(r#"{{"id": "{i}", "image_key": "img/{i:06}.jpg", "size": "200x200"}}"#)
            })
            .collect();
        if hostile {
            lines[0] = format!(
                r#"{{"id": "h", "image_key": "img/h.jpg", "size": "200x200", "idempotency_key": "{HOSTILE}"}}"#
            );
        }
        std::fs::write(d.join(name), lines.join("\n") + "\n").unwrap();
    };
    let enqueue = |name: &str| {
        let o = taskq(
            d,
            &[
                "enqueue",
                "--pg",
                &db.url,
                "--tasks",
                name,
                "--max-retries",
                "0",
            ],
        );
        assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    };
    let drain = |rate: &str| {
        let o = taskq(
            d,
            &[
                "worker",
                "--pg",
                &db.url,
                "--exit-when-empty",
                "--latency-ms",
                "0",
                "--permanent-rate",
                rate,
                "--heartbeat",
                "0.2",
            ],
        );
        assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    };
    write("dead.ndjson", 0..10, true);
    enqueue("dead.ndjson");
    drain("1");
    write("ok.ndjson", 10..15, false);
    enqueue("ok.ndjson");
    drain("0");
    write("waiting.ndjson", 15..35, false);
    enqueue("waiting.ndjson");
    assert_eq!(
        db.count("SELECT count(*) FROM taskq_tasks WHERE state = 'dead'"),
        10
    );
    (db, dir)
}

/// Starts a dashboard; returns it and its port (read from its stderr).
pub(crate) fn start(dir: &Path, url: &str, extra: &[&str], env: &[(&str, &str)]) -> (Child, u16) {
    let mut child = Command::new(BIN)
        .current_dir(dir)
        .env_remove("TASKQ_DASHBOARD_TOKEN")
        .envs(env.iter().copied())
        .args(["dashboard", "--pg", url])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .strip_prefix("taskq: dashboard at http://")
        .unwrap_or_else(|| panic!("no address announced: {line:?}"));
    let port = addr
        .split('/')
        .next()
        .unwrap()
        .rsplit_once(':')
        .unwrap()
        .1
        .parse()
        .unwrap();
    (child, port)
}

pub(crate) fn stop(mut child: Child) {
    let pid = child.id().to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let status = child.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(0),
        "the dashboard stops cleanly on SIGTERM"
    );
}

/// The form secret and the row ids a dead-letter page offers.
fn form_of(page: &str) -> (String, Vec<i64>) {
    let secret = page
        .split("name=secret value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("a form secret")
        .to_string();
    let ids = page
        .split("name=id value=")
        .skip(1)
        .map(|r| r.split('>').next().unwrap().parse().unwrap())
        .collect();
    (secret, ids)
}

#[test]
fn the_pages_show_the_queue_and_a_dead_letter_is_retried_from_them() {
    let (db, dir) = seeded();
    let (child, port) = start(dir.path(), &db.url, &["--addr", "127.0.0.1:0"], &[]);
    let origin = format!("http://127.0.0.1:{port}");

    let home = http(port, "GET", "/", &[], "");
    assert_eq!(home.status, 200, "{}", home.body);
    assert!(home
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));
    assert!(home.header("content-security-policy").is_some());
    for (state, n) in [("available", 20), ("succeeded", 5), ("running", 0)] {
        assert!(
            home.body.contains(&format!("data-state={state}>{n}<")),
            "{state} {n}: {}",
            home.body
        );
    }
    assert!(
        home.body.contains("data-state=dead><a href=\"/dead\">10<"),
        "{}",
        home.body
    );
    // The two nodes that ran, stopped in the last hour, with the tasks each
    // finished: the first dead-lettered 10, the second succeeded 5.
    assert_eq!(
        home.body.matches("<td>left</td>").count(),
        2,
        "{}",
        home.body
    );
    let finished: Vec<&str> = home
        .body
        .split("data-node=finished>")
        .skip(1)
        .map(|rest| rest.split('<').next().unwrap())
        .collect();
    assert_eq!(finished, ["10", "5"], "{}", home.body);

    let dead = http(port, "GET", "/dead", &[], "");
    assert_eq!(dead.status, 200);
    assert!(
        dead.body.contains("10 dead letter(s) match"),
        "{}",
        dead.body
    );
    assert!(dead.body.contains(&crate_escape(HOSTILE)), "{}", dead.body);
    assert!(
        !dead.body.contains(HOSTILE),
        "the hostile key is rendered as markup"
    );
    let (secret, ids) = form_of(&dead.body);
    assert_eq!(ids.len(), 10);
    // Filters: by class, and by a part of the key.
    let filtered = http(port, "GET", "/dead?class=permanent&key=000003", &[], "");
    assert!(
        filtered.body.contains("1 dead letter(s) match"),
        "{}",
        filtered.body
    );
    let none = http(port, "GET", "/dead?class=transient", &[], "");
    assert!(
        none.body.contains("0 dead letter(s) match"),
        "{}",
        none.body
    );

    // Refused: no secret, a foreign origin, no origin at all.
    let form = format!("secret={secret}&id={}", ids[0]);
    for (headers, body) in [
        (vec![("Origin", origin.as_str())], format!("id={}", ids[0])),
        (vec![("Origin", "http://evil.example")], form.clone()),
        (vec![], form.clone()),
    ] {
        let r = http(port, "POST", "/dead/retry", &headers, &body);
        assert_eq!(r.status, 403, "{headers:?} {body}: {}", r.body);
    }
    assert_eq!(
        db.count("SELECT count(*) FROM taskq_tasks WHERE state = 'dead'"),
        10
    );

    // Retry one, purge another.
    let r = http(port, "POST", "/dead/retry", &[("Origin", &origin)], &form);
    assert_eq!(r.status, 303, "{}", r.body);
    assert!(r.header("location").unwrap().starts_with("/dead?done="));
    let state: String = db
        .client()
        .query_one("SELECT state FROM taskq_tasks WHERE id = $1", &[&ids[0]])
        .unwrap()
        .get(0);
    assert_eq!(state, "available");
    let r = http(
        port,
        "POST",
        "/dead/purge",
        &[("Referer", &format!("{origin}/dead"))],
        &format!("secret={secret}&id={}&id={}", ids[1], ids[0]),
    );
    assert_eq!(r.status, 303, "{}", r.body);
    assert!(
        r.header("location").unwrap().contains("purged+1+of+2"),
        "{:?}",
        r.headers
    );
    assert_eq!(
        db.count("SELECT count(*) FROM taskq_tasks WHERE state = 'dead'"),
        8
    );
    assert_eq!(
        db.count(&format!(
            "SELECT count(*) FROM taskq_tasks WHERE id = {}",
            ids[1]
        )),
        0
    );
    let after = http(port, "GET", "/dead?done=re-queued+1+of+1", &[], "");
    assert!(after.body.contains("8 dead letter(s) match"));
    assert!(after
        .body
        .contains("<p class=ok id=done>re-queued 1 of 1</p>"));

    // A task by key: the hostile one, the oldest dead letter, was the one
    // retried above.
    let task = http(
        port,
        "GET",
        &format!("/task?key={}", encode(HOSTILE)),
        &[],
        "",
    );
    assert_eq!(task.status, 200, "{}", task.body);
    assert!(task.body.contains(&crate_escape(HOSTILE)));
    assert!(!task.body.contains(HOSTILE));
    assert!(
        task.body.contains("<td class=state>available</td>"),
        "{}",
        task.body
    );
    assert!(task.body.contains("<td>1 of 2</td>"), "{}", task.body);
    assert!(task.body.contains("permanent bad_source"), "{}", task.body);
    let missing = http(port, "GET", "/task?key=nope", &[], "");
    assert_eq!(missing.status, 404);
    assert_eq!(http(port, "GET", "/nowhere", &[], "").status, 404);
    assert_eq!(http(port, "DELETE", "/", &[], "").status, 405);
    stop(child);
}

fn crate_escape(s: &str) -> String {
    taskq_cli::web::esc(s)
}

#[test]
fn off_loopback_a_token_is_required_and_every_request_carries_it() {
    let (db, dir) = seeded();
    let d = dir.path();
    let o = Command::new(BIN)
        .current_dir(d)
        .env_remove("TASKQ_DASHBOARD_TOKEN")
        .args(["dashboard", "--pg", &db.url, "--addr", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("--auth-token"),
        "{}",
        text(&o.stderr)
    );
    let o = taskq(d, &["dashboard", "--pg", &db.url, "--auth-token", " "]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));

    let (child, port) = start(
        d,
        &db.url,
        &["--addr", "0.0.0.0:0"],
        &[("TASKQ_DASHBOARD_TOKEN", "s3cret")],
    );
    assert_eq!(http(port, "GET", "/", &[], "").status, 401);
    assert_eq!(
        http(port, "GET", "/", &[("Authorization", "Bearer wrong")], "").status,
        401
    );
    let ok = http(
        port,
        "GET",
        "/dead",
        &[("Authorization", "Bearer s3cret")],
        "",
    );
    assert_eq!(ok.status, 200);
    let login = http(port, "GET", "/?token=s3cret", &[], "");
    assert_eq!(login.status, 303);
    let cookie = login.header("set-cookie").unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().unwrap().to_string();
    assert_eq!(http(port, "GET", "/", &[("Cookie", &pair)], "").status, 200);
    // A POST without the token is refused before anything else.
    let (secret, ids) = form_of(&ok.body);
    let origin = format!("http://127.0.0.1:{port}");
    let form = format!("secret={secret}&id={}", ids[0]);
    let r = http(port, "POST", "/dead/retry", &[("Origin", &origin)], &form);
    assert_eq!(r.status, 401);
    let r = http(
        port,
        "POST",
        "/dead/retry",
        &[("Origin", &origin), ("Cookie", &pair)],
        &form,
    );
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(
        db.count("SELECT count(*) FROM taskq_tasks WHERE state = 'dead'"),
        9
    );
    stop(child);
}

#[test]
fn read_only_renders_no_forms_and_refuses_posts() {
    let (db, dir) = seeded();
    let (child, port) = start(
        dir.path(),
        &db.url,
        &["--addr", "127.0.0.1:0", "--read-only"],
        &[],
    );
    let dead = http(port, "GET", "/dead", &[], "");
    assert_eq!(dead.status, 200);
    assert!(!dead.body.contains("method=post"), "{}", dead.body);
    assert!(!dead.body.contains("name=secret"));
    let origin = format!("http://127.0.0.1:{port}");
    let id: i64 = db
        .client()
        .query_one("SELECT min(id) FROM taskq_tasks WHERE state = 'dead'", &[])
        .unwrap()
        .get(0);
    let r = http(
        port,
        "POST",
        "/dead/purge",
        &[("Origin", &origin)],
        &format!("id={id}"),
    );
    assert_eq!(r.status, 403);
    assert_eq!(
        db.count("SELECT count(*) FROM taskq_tasks WHERE state = 'dead'"),
        10
    );
    stop(child);
}
