//! Worker nodes under faults, against the real PostgreSQL server: the
//! server terminating a node's connections, a TCP proxy cutting all of a
//! node's connections for longer than the rescue timeout, and a node
//! SIGKILLed and restarted again and again. The proxy is a fault injector:
//! every byte it passes goes to the real server.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::pg::{admin_url, effects, enqueued, text, wait_until, worker};

/// A TCP proxy to the server that can cut every connection through it and
/// refuse new ones for a while.
struct Proxy {
    port: u16,
    cut_until: Arc<Mutex<Option<Instant>>>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut_until: Arc<Mutex<Option<Instant>>> = Arc::default();
        let open: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (cut, conns) = (cut_until.clone(), open.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if cut.lock().unwrap().is_some_and(|t| Instant::now() < t) {
                    drop(client); // refused while cut
                    continue;
                }
                let Ok(server) = TcpStream::connect(upstream) else {
                    continue;
                };
                {
                    let mut conns = conns.lock().unwrap();
                    conns.push(client.try_clone().unwrap());
                    conns.push(server.try_clone().unwrap());
                }
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 16 * 1024];
                        while let Ok(n) = from.read(&mut buf) {
                            if n == 0 || to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                        let _ = to.shutdown(Shutdown::Both);
                        let _ = from.shutdown(Shutdown::Both);
                    });
                }
            }
        });
        Proxy {
            port,
            cut_until,
            open,
        }
    }

    /// Closes every connection through the proxy and refuses new ones for
    /// `d`.
    fn cut(&self, d: Duration) {
        *self.cut_until.lock().unwrap() = Some(Instant::now() + d);
        for s in self.open.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    /// `url` with its host and port replaced by the proxy's.
    fn url(&self, url: &str) -> String {
        let (_, db) = url.rsplit_once('/').unwrap();
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }
}

/// The server's address, from the admin URL.
fn server_addr() -> SocketAddr {
    let config: postgres::Config = admin_url().parse().unwrap();
    let host = match config.get_hosts().first() {
        Some(postgres::config::Host::Tcp(h)) => h.clone(),
        _ => "127.0.0.1".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    (host.as_str(), port)
        .to_socket_addrs()
        .unwrap()
        .next()
        .unwrap()
}

fn report(path: PathBuf) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The server terminates every connection of a running node, twice: each
/// of its threads reconnects and goes on, the node is never declared dead,
/// and every key is processed once and succeeds once.
#[test]
fn a_node_whose_connections_the_server_terminates_reconnects() {
    let (db, dir) = enqueued(800, 800, &[]);
    let d = dir.path();
    let log = d.join("a.log");
    let a = worker(
        d,
        &db.url,
        &["--workers", "2", "--latency-ms", "3", "--capacity", "30"],
    )
    .args(["--exit-when-empty", "--report", "a.json"])
    .args(["--effects-log", log.to_str().unwrap()])
    .spawn()
    .unwrap();
    let terminate = || {
        let name = db.url.rsplit_once('/').unwrap().1.to_string();
        db.client()
            .query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                 WHERE datname = $1 AND application_name = 'taskq' AND pid <> pg_backend_pid()",
                &[&name],
            )
            .unwrap()
            .len()
    };
    for at in [100, 400] {
        wait_until("the node to finish some tasks", || {
            db.count("SELECT count(*) FROM taskq_tasks WHERE state = 'succeeded'") >= at
        });
        assert_eq!(terminate(), 5, "the node's five connections");
    }
    let o = a.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let r = report(d.join("a.json"));
    assert!(r["reconnects"].as_u64().unwrap() >= 8, "{r}");
    assert_eq!(r["declared_dead"], 0);
    assert!(
        text(&o.stderr).contains("connection lost; reconnecting"),
        "{}",
        text(&o.stderr)
    );
    assert_eq!(
        db.count("SELECT count(*) FROM taskq_tasks WHERE state = 'succeeded'"),
        800
    );
    let seen = effects(&[log]);
    assert_eq!(seen.len(), 800);
    assert!(seen.values().all(|&n| n == 1), "a key was processed twice");
}

/// A proxy cuts all of node A's connections for longer than the rescue
/// timeout. Node B declares A dead and takes its tasks over; A reconnects,
/// finds itself declared dead, registers again and goes on. A's writes for
/// the tasks it lost are fenced off: each key succeeds once in the
/// database, and only the tasks A held at the cut can have run twice.
#[test]
fn a_node_cut_off_past_the_rescue_timeout_is_fenced_and_rejoins() {
    // Enough work that A, whose connections come back at different times
    // after the cut (each backs off on its own, up to 5 s), still finds
    // some when its heartbeat is refused.
    let (db, dir) = enqueued(6000, 6000, &[]);
    let d = dir.path();
    let proxy = Proxy::start(server_addr());
    let (log_a, log_b) = (d.join("a.log"), d.join("b.log"));
    let timing = ["--rescue-after", "1.5"];
    let capacity = 30;
    let a = worker(
        d,
        &proxy.url(&db.url),
        &["--workers", "2", "--latency-ms", "4", "--capacity", "30"],
    )
    .args(timing)
    .args(["--exit-when-empty", "--report", "a.json"])
    .args(["--effects-log", log_a.to_str().unwrap()])
    .spawn()
    .unwrap();
    wait_until("node A to finish some tasks", || {
        db.count("SELECT count(*) FROM taskq_tasks WHERE state = 'succeeded'") >= 150
    });
    let b = worker(
        d,
        &db.url,
        &["--workers", "2", "--latency-ms", "4", "--capacity", "30"],
    )
    .args(timing)
    .args(["--exit-when-empty", "--report", "b.json"])
    .args(["--effects-log", log_b.to_str().unwrap()])
    .spawn()
    .unwrap();
    wait_until("node B to start", || {
        db.count("SELECT count(*) FROM taskq_nodes WHERE state = 'alive'") == 2
    });
    proxy.cut(Duration::from_secs(4));
    let oa = a.wait_with_output().unwrap();
    let ob = b.wait_with_output().unwrap();
    assert_eq!(oa.status.code(), Some(0), "{}", text(&oa.stderr));
    assert_eq!(ob.status.code(), Some(0), "{}", text(&ob.stderr));
    let (ra, rb) = (report(d.join("a.json")), report(d.join("b.json")));
    let first = ra["node_id"].as_i64().unwrap();
    assert_eq!(
        db.count(&format!(
            "SELECT count(*) FROM taskq_nodes WHERE node_id = {first} AND state = 'dead'"
        )),
        1,
        "B declared A's first id dead"
    );
    assert!(ra["declared_dead"].as_u64().unwrap() >= 1, "{ra}");
    // The keeper at least (the others only when they had work then).
    assert!(ra["reconnects"].as_u64().unwrap() >= 1, "{ra}");
    assert!(ra["node_ids"].as_array().unwrap().len() >= 2, "{ra}");
    // B declared A dead; A's old tasks went back through a rescue round of
    // B's, or of A's own once it came back under its new id.
    let requeued =
        ra["rescued"]["requeued"].as_u64().unwrap() + rb["rescued"]["requeued"].as_u64().unwrap();
    assert!(requeued >= 1 && requeued <= capacity, "{ra} {rb}");
    // A's late writes under its old id match no row: at most what it held
    // (a batch whose commit went through as the cut began counts here too,
    // written again after the reconnect).
    let fenced = ra["settled"]["fenced"].as_u64().unwrap();
    assert!(
        fenced <= capacity,
        "A fenced {fenced}, held at most {capacity}"
    );
    let succeeded =
        ra["settled"]["succeeded"].as_u64().unwrap() + rb["settled"]["succeeded"].as_u64().unwrap();
    assert_eq!(succeeded, 6000, "each task succeeded once: {ra} {rb}");
    assert_eq!(
        db.count("SELECT count(*) FROM taskq_tasks WHERE state = 'succeeded'"),
        6000
    );
    let seen = effects(&[log_a, log_b]);
    assert_eq!(seen.len(), 6000, "every key processed");
    let twice = seen.values().filter(|&&n| n > 1).count() as u64;
    assert!(
        twice <= requeued,
        "{twice} keys ran twice; A held only {requeued} when it was cut off"
    );
}

/// Three nodes share 20,000 tasks (a fifth of them duplicate keys, so
/// 16,000 unique); one of them is SIGKILLed and restarted five times during
/// the run. Every unique key succeeds once in the database and is
/// processed at least once; the keys processed twice are at most what the
/// killed incarnations held.
#[test]
fn repeated_kills_of_a_node_lose_nothing() {
    let (db, dir) = enqueued(20_000, 16_000, &[]);
    let d = dir.path();
    assert_eq!(db.count("SELECT count(*) FROM taskq_tasks"), 16_000);
    let capacity = 40;
    let flags = |log: &PathBuf| -> Vec<String> {
        [
            "--workers",
            "2",
            "--latency-ms",
            "1",
            "--capacity",
            "40",
            "--rescue-after",
            "1",
            "--effects-log",
            log.to_str().unwrap(),
        ]
        .map(String::from)
        .to_vec()
    };
    let mut logs = Vec::new();
    let mut steady = Vec::new();
    for i in 0..2 {
        let log = d.join(format!("steady{i}.log"));
        let args = flags(&log);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        steady.push(
            worker(d, &db.url, &args)
                .args(["--exit-when-empty", "--report", &format!("s{i}.json")])
                .spawn()
                .unwrap(),
        );
        logs.push(log);
    }
    let mut held_at_kills = 0;
    for k in 0..5 {
        let log = d.join(format!("killed{k}.log"));
        let args = flags(&log);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut victim = worker(d, &db.url, &args).spawn().unwrap();
        logs.push(log);
        let before = db.count("SELECT count(*) FROM taskq_tasks WHERE state = 'succeeded'");
        wait_until("the victim to work", || {
            db.count("SELECT count(*) FROM taskq_tasks WHERE state = 'succeeded'") >= before + 800
        });
        let pid = victim.id();
        victim.kill().unwrap();
        victim.wait().unwrap();
        // What the killed incarnation held (its rescue takes a second).
        held_at_kills += db.count(&format!(
            "SELECT count(*) FROM taskq_tasks t JOIN taskq_nodes n ON n.node_id = t.lease_node
             WHERE t.state = 'running' AND n.pid = {pid}"
        ));
    }
    assert!(held_at_kills <= 5 * capacity, "held {held_at_kills}");
    for (i, node) in steady.into_iter().enumerate() {
        let o = node.wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(0), "node {i}: {}", text(&o.stderr));
    }
    assert_eq!(
        db.count("SELECT count(*) FROM taskq_tasks WHERE state = 'succeeded'"),
        16_000
    );
    assert_eq!(
        db.count("SELECT count(*) FROM taskq_nodes WHERE state = 'dead'"),
        5
    );
    let seen = effects(&logs);
    assert_eq!(seen.len(), 16_000, "every unique key processed");
    let twice = seen.values().filter(|&&n| n > 1).count() as i64;
    assert!(
        twice <= held_at_kills,
        "{twice} keys ran twice; the five killed incarnations held {held_at_kills}"
    );
}

/// A node whose server stays unreachable for longer than `--give-up-after`
/// stops with an error naming the server (exit 1); what it held goes back
/// to the queue through the rescue.
#[test]
fn a_node_gives_up_after_the_server_is_gone_too_long() {
    let (db, dir) = enqueued(300, 300, &[]);
    let d = dir.path();
    let proxy = Proxy::start(server_addr());
    let url = proxy.url(&db.url);
    let a = worker(
        d,
        &url,
        &["--workers", "2", "--latency-ms", "20", "--capacity", "20"],
    )
    .args(["--give-up-after", "1", "--rescue-after", "1"])
    .spawn()
    .unwrap();
    wait_until("node A to finish some tasks", || {
        db.count("SELECT count(*) FROM taskq_tasks WHERE state = 'succeeded'") >= 20
    });
    proxy.cut(Duration::from_secs(30));
    let o = a.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert!(err.contains(&format!("127.0.0.1:{}", proxy.port)), "{err}");
    assert!(err.contains("gave up reconnecting"), "{err}");
    assert_eq!(
        db.count("SELECT count(*) FROM taskq_nodes WHERE state = 'alive'"),
        1,
        "A could not say it left"
    );
}
