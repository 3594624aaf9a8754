//! The thumbnail job on a real S3 API server (`TASKQ_TEST_S3`, an endpoint
//! URL; `.ci/run` starts moto's server; unset, the tests start
//! `moto_server` themselves). Each test makes a bucket of its own and talks
//! to it over HTTP through [`FaultProxy`], which records the requests and
//! injects latency, 503s and cut connections.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Duration;

use image::ImageEncoder;
use serde_json::Value;
use taskq_bench::faultproxy::FaultProxy;
use taskq_thumbnail::object_store::{ObjectStore, S3Location, S3Store};

use crate::pg::{text, TestDb};

const BIN: &str = env!("CARGO_BIN_EXE_taskq");

/// The S3 server's address: `TASKQ_TEST_S3`, or a `moto_server` started
/// for this process (stopped when it exits).
fn server() -> SocketAddr {
    static SERVER: OnceLock<SocketAddr> = OnceLock::new();
    *SERVER.get_or_init(|| {
        if let Ok(url) = std::env::var("TASKQ_TEST_S3") {
            let hostport = url.trim_start_matches("http://").trim_end_matches('/');
            return hostport
                .parse()
                .unwrap_or_else(|e| panic!("TASKQ_TEST_S3={url}: not http://HOST:PORT ({e})"));
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // The shell stops the server once this process is gone.
        let script = format!(
            "moto_server -H 127.0.0.1 -p {port} >/dev/null 2>&1 & m=$!; \
             while kill -0 {} 2>/dev/null; do sleep 1; done; kill $m",
            std::process::id()
        );
        let watcher = Command::new("sh")
            .args(["-c", &script])
            .spawn()
            .expect("sh starts");
        // It outlives every test; a thread reaps it if it ends first.
        std::thread::spawn(move || {
            let mut watcher = watcher;
            let _ = watcher.wait();
        });
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        for _ in 0..300 {
            if TcpStream::connect(addr).is_ok() {
                return addr;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "no S3 server: set TASKQ_TEST_S3=http://HOST:PORT, or install moto's server \
             (pip install 'moto[server]') so the tests can start moto_server"
        );
    })
}

/// One plain HTTP request to `addr` (moto checks that a request names
/// credentials, not its signature): status, headers (lowercase names) and
/// body.
fn http(addr: SocketAddr, method: &str, path: &str) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/s3/aws4_request, \
         SignedHeaders=host, Signature=00\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut body = raw[split + 4..].to_vec();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    if headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"))
    {
        let mut out = Vec::new();
        let mut rest = &body[..];
        loop {
            let eol = rest.windows(2).position(|w| w == b"\r\n").unwrap();
            let n = usize::from_str_radix(std::str::from_utf8(&rest[..eol]).unwrap().trim(), 16)
                .unwrap();
            if n == 0 {
                break;
            }
            out.extend_from_slice(&rest[eol + 2..eol + 2 + n]);
            rest = &rest[eol + 4 + n..];
        }
        body = out;
    }
    (status, headers, body)
}

/// A bucket of the test's own, behind a proxy of its own.
struct Bucket {
    name: String,
    proxy: FaultProxy,
}

impl Bucket {
    fn new() -> Self {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let name = format!("taskq-test-{}-{nanos}-{n}", std::process::id());
        let (status, _, body) = http(server(), "PUT", &format!("/{name}"));
        assert_eq!(status, 200, "create bucket: {}", text(&body));
        Bucket {
            proxy: FaultProxy::start(server()).unwrap(),
            name,
        }
    }

    fn url(&self, prefix: &str) -> String {
        format!("s3://{}/{prefix}", self.name)
    }

    /// The object's status, content type and bytes (straight from the
    /// server, not through the proxy).
    fn get(&self, key: &str) -> (u16, String, Vec<u8>) {
        let (status, headers, body) = http(server(), "GET", &format!("/{}/{key}", self.name));
        let kind = headers
            .iter()
            .find(|(k, _)| k == "content-type")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        (status, kind, body)
    }

    /// Multipart uploads started and neither completed nor aborted.
    fn uploads_in_progress(&self) -> usize {
        let (status, _, body) = http(server(), "GET", &format!("/{}?uploads", self.name));
        assert_eq!(status, 200);
        text(&body).matches("<Upload>").count()
    }

    fn env(&self) -> [(&'static str, String); 5] {
        [
            ("AWS_ENDPOINT_URL", self.proxy.url()),
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_REGION", "us-east-1".into()),
        ]
    }

    fn taskq(&self, dir: &Path, args: &[&str]) -> Output {
        let mut cmd = Command::new(BIN);
        cmd.current_dir(dir).env_remove("TASKQ_DATABASE_URL");
        for (k, v) in self.env() {
            cmd.env(k, v);
        }
        cmd.args(args).output().unwrap()
    }

    /// The library's store on this bucket (through the proxy).
    fn store(&self, prefix: &str) -> S3Store {
        let location: S3Location = self.url(prefix).parse().unwrap();
        let env = self.env();
        let settings: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        S3Store::open_with(&location, &settings).unwrap()
    }

    /// GETs of keys under `PREFIX/img/` seen by the proxy.
    fn source_gets(&self) -> usize {
        self.proxy
            .requests()
            .iter()
            .filter(|(m, p)| m == "GET" && p.contains("/img/"))
            .count()
    }
}

fn ok(o: &Output) {
    assert_eq!(
        o.status.code(),
        Some(0),
        "stdout: {}\nstderr: {}",
        text(&o.stdout),
        text(&o.stderr)
    );
}

fn report(dir: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(dir.join("r.json")).unwrap()).unwrap()
}

fn count(r: &Value, name: &str) -> u64 {
    r["counts"][name].as_u64().unwrap()
}

/// Checks the variant of a 1024x768 source in `size`: the content type
/// matches the bytes and the source's format, and it fits the box.
fn check_variant(bucket: &Bucket, prefix: &str, image_key: &str, size: &str) {
    let key = format!("{prefix}/variants/{size}/{image_key}");
    let (status, kind, bytes) = bucket.get(&key);
    assert_eq!(status, 200, "{key}");
    let (want_kind, want_format) = if image_key.ends_with(".png") {
        ("image/png", image::ImageFormat::Png)
    } else {
        ("image/jpeg", image::ImageFormat::Jpeg)
    };
    assert_eq!(kind, want_kind, "{key}");
    assert_eq!(image::guess_format(&bytes).unwrap(), want_format, "{key}");
    let img = image::load_from_memory(&bytes).unwrap();
    let (bw, bh) = size.split_once('x').unwrap();
    let fit = taskq_thumbnail::thumbnail::fit_inside(1024, 768, size.parse().unwrap());
    assert_eq!((img.width(), img.height()), fit, "{key} in {bw}x{bh}");
}

#[test]
fn a_seeded_bucket_runs_once_and_a_rerun_reads_no_source() {
    let bucket = Bucket::new();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let store = bucket.url("photos");
    ok(&bucket.taskq(d, &["seed-images", "--store", &store, "--count", "6"]));
    let run = [
        "run",
        "--processor",
        "thumbnail",
        "--store",
        &store,
        "--db",
        "t.db",
        "--report",
        "r.json",
    ];
    ok(&bucket.taskq(d, &run));
    let r = report(d);
    assert_eq!(count(&r, "succeeded"), 12);
    assert_eq!(count(&r, "dead_lettered") + count(&r, "failed"), 0);
    // Every stage of the S3 job is in the report.
    let stages: Vec<&str> = r["processor"]["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(stages, ["read", "decode", "resize", "encode", "write"]);
    for i in 1..=6 {
        let image_key = if i % 4 == 0 {
            format!("img/{i:06}.png")
        } else {
            format!("img/{i:06}.jpg")
        };
        for size in ["200x200", "400x400"] {
            check_variant(&bucket, "photos", &image_key, size);
        }
    }
    // Each source was read (once per variant).
    assert!(bucket.source_gets() >= 6, "{:?}", bucket.proxy.requests());

    bucket.proxy.clear_requests();
    ok(&bucket.taskq(d, &run));
    let r = report(d);
    assert_eq!(count(&r, "duplicates"), 12);
    assert_eq!(count(&r, "succeeded"), 0);
    assert_eq!(
        bucket.source_gets(),
        0,
        "a rerun read sources: {:?}",
        bucket.proxy.requests()
    );
    assert!(
        !bucket.proxy.requests().iter().any(|(m, _)| m == "PUT"),
        "a rerun wrote: {:?}",
        bucket.proxy.requests()
    );
}

#[test]
fn a_missing_source_is_dead_lettered_and_a_bad_bucket_or_endpoint_fails_at_start() {
    let bucket = Bucket::new();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let store = bucket.url("p");
    ok(&bucket.taskq(d, &["seed-images", "--store", &store, "--count", "1"]));
    std::fs::write(
        d.join("t.ndjson"),
        "{\"image_key\": \"img/000001.jpg\", \"size\": \"64x64\"}\n\
         {\"image_key\": \"img/missing.jpg\", \"size\": \"64x64\"}\n",
    )
    .unwrap();
    let o = bucket.taskq(
        d,
        &[
            "run",
            "--processor",
            "thumbnail",
            "--store",
            &store,
            "--db",
            "t.db",
            "--tasks",
            "t.ndjson",
            "--report",
            "r.json",
        ],
    );
    assert_eq!(o.status.code(), Some(3), "{}", text(&o.stderr));
    let r = report(d);
    assert_eq!(count(&r, "succeeded"), 1);
    assert_eq!(count(&r, "dead_lettered"), 1);
    let listed = bucket.taskq(d, &["dlq", "list", "--db", "t.db"]);
    let listed = text(&listed.stdout);
    assert!(listed.contains("not_found"), "{listed}");
    assert!(
        listed.contains(&format!("s3://{}/p/img/missing.jpg", bucket.name)),
        "{listed}"
    );

    // A bucket that does not exist: the run stops before any work, naming it.
    let o = bucket.taskq(
        d,
        &[
            "run",
            "--processor",
            "thumbnail",
            "--store",
            "s3://no-such-bucket-here/p",
            "--db",
            "other.db",
            "--tasks",
            "t.ndjson",
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    assert!(
        err.contains("the bucket \"no-such-bucket-here\" does not exist"),
        "{err}"
    );
    assert!(
        !d.join("other.db").exists(),
        "work started: other.db exists"
    );

    // An endpoint that does not answer: the same.
    let o = Command::new(BIN)
        .current_dir(d)
        .envs(bucket.env())
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .args([
            "run",
            "--processor",
            "thumbnail",
            "--store",
            &store,
            "--db",
            "other.db",
            "--tasks",
            "t.ndjson",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("the S3 endpoint did not answer"),
        "{}",
        text(&o.stderr)
    );
    assert!(!d.join("other.db").exists());

    // An S3 store keeps no records: the run asks for --db.
    let o = bucket.taskq(d, &["run", "--processor", "thumbnail", "--store", &store]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("--db FILE"), "{}", text(&o.stderr));
}

#[test]
fn a_burst_of_503s_is_retried_and_a_cut_upload_leaves_nothing_visible() {
    let bucket = Bucket::new();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let store = bucket.url("p");
    ok(&bucket.taskq(d, &["seed-images", "--store", &store, "--count", "4"]));
    let run = |db: &str, extra: &[&str]| {
        let mut args = vec![
            "run",
            "--processor",
            "thumbnail",
            "--store",
            &store,
            "--db",
            db,
            "--report",
            "r.json",
            "--backoff-base-ms",
            "10",
        ];
        args.extend_from_slice(extra);
        bucket.taskq(d, &args)
    };

    // Throttled: four source reads answered 503 Slow Down, then retried.
    bucket.proxy.fail_next(4, Some("/img/"));
    ok(&run("a.db", &[]));
    let r = report(d);
    assert_eq!(bucket.proxy.failed(), 4);
    assert_eq!(count(&r, "succeeded"), 8);
    assert_eq!(count(&r, "retried"), 4, "{r}");
    assert_eq!(count(&r, "dead_lettered"), 0);

    // A connection cut halfway through a variant's upload, with no retries
    // left: the task fails and no object, whole or partial, is visible.
    std::fs::write(
        d.join("one.ndjson"),
        "{\"image_key\": \"img/000001.jpg\", \"size\": \"333x333\"}\n",
    )
    .unwrap();
    bucket.proxy.cut_next_body_over(1000);
    let o = run("b.db", &["--max-retries", "0", "--tasks", "one.ndjson"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o.stderr));
    assert_eq!(bucket.proxy.cut(), 1);
    let r = report(d);
    assert_eq!(count(&r, "dead_lettered"), 1, "{r}");
    let (status, _, _) = bucket.get("p/variants/333x333/img/000001.jpg");
    assert_eq!(status, 404, "a cut upload left an object");
    // Retried, the same task succeeds and the object is whole.
    let o = bucket.taskq(
        d,
        &["dlq", "retry", "--db", "b.db", "--all", "--store", &store],
    );
    ok(&o);
    check_variant(&bucket, "p", "img/000001.jpg", "333x333");
}

#[test]
fn a_50_mb_source_streams_in_and_a_cut_multipart_upload_is_aborted() {
    let bucket = Bucket::new();
    let store = bucket.store("big");
    // Noise does not compress: about 50 MB of PNG.
    let (w, h) = (4200u32, 4000u32);
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let pixels: Vec<u8> = (0..w as usize * h as usize * 3)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let mut png = Vec::new();
    image::codecs::png::PngEncoder::new_with_quality(
        &mut png,
        image::codecs::png::CompressionType::Fast,
        image::codecs::png::FilterType::NoFilter,
    )
    .write_image(&pixels, w, h, image::ExtendedColorType::Rgb8)
    .unwrap();
    drop(pixels);
    assert!(png.len() > 50_000_000, "{} bytes", png.len());

    // The first part's upload is cut: the commit fails, the upload is
    // aborted, nothing is visible.
    bucket.proxy.cut_next_body_over(4 * 1024 * 1024);
    let mut writer = store.create("img/big.png").unwrap();
    let written = writer.write_all(&png).and_then(|()| writer.flush());
    let committed = match written {
        Ok(()) => writer.commit().map(|_| ()).map_err(|e| e.to_string()),
        Err(e) => {
            drop(writer);
            Err(e.to_string())
        }
    };
    assert!(committed.is_err(), "a cut upload committed");
    assert_eq!(bucket.proxy.cut(), 1);
    assert_eq!(bucket.get("big/img/big.png").0, 404);
    assert_eq!(bucket.uploads_in_progress(), 0, "an upload was left behind");

    // Whole, in parts.
    store.put("img/big.png", &mut &png[..]).unwrap();
    let (status, kind, stored) = bucket.get("big/img/big.png");
    assert_eq!((status, kind.as_str()), (200, "image/png"));
    assert!(stored == png, "the stored object differs");
    drop(stored);
    let parts = bucket
        .proxy
        .requests()
        .iter()
        .filter(|(m, p)| m == "PUT" && p.contains("partNumber="))
        .count();
    assert!(parts >= 6, "{parts} parts for {} bytes", png.len());
    drop(png);

    // Read back through the store as a stream: a run makes its variant.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("t.ndjson"),
        "{\"image_key\": \"img/big.png\", \"size\": \"200x200\"}\n",
    )
    .unwrap();
    let url = bucket.url("big");
    ok(&bucket.taskq(
        d,
        &[
            "run",
            "--processor",
            "thumbnail",
            "--store",
            &url,
            "--db",
            "t.db",
            "--tasks",
            "t.ndjson",
            "--report",
            "r.json",
        ],
    ));
    let (status, kind, bytes) = bucket.get("big/variants/200x200/img/big.png");
    assert_eq!((status, kind.as_str()), (200, "image/png"));
    let img = image::load_from_memory(&bytes).unwrap();
    assert_eq!(
        (img.width(), img.height()),
        taskq_thumbnail::thumbnail::fit_inside(w, h, "200x200".parse().unwrap())
    );
}

#[test]
fn two_nodes_on_one_queue_and_one_bucket_make_each_variant_once() {
    let bucket = Bucket::new();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let store = bucket.url("shared");
    ok(&bucket.taskq(d, &["seed-images", "--store", &store, "--count", "12"]));
    let db = TestDb::new();
    // The seeded task file, as the nodes' queue.
    let (status, _, tasks) = bucket.get("shared/tasks.json");
    assert_eq!(status, 200);
    std::fs::write(d.join("tasks.json"), tasks).unwrap();
    ok(&bucket.taskq(
        d,
        &[
            "enqueue",
            "--pg",
            &db.url,
            "--tasks",
            "tasks.json",
            "--processor",
            "thumbnail",
        ],
    ));
    bucket.proxy.clear_requests();
    let nodes: Vec<_> = (0..2)
        .map(|_| {
            let mut cmd = Command::new(BIN);
            cmd.current_dir(d).envs(bucket.env()).args([
                "worker",
                "--pg",
                &db.url,
                "--processor",
                "thumbnail",
                "--store",
                &store,
                "--workers",
                "2",
                "--capacity",
                "4",
                "--exit-when-empty",
            ]);
            cmd.spawn().unwrap()
        })
        .collect();
    for mut node in nodes {
        assert!(node.wait().unwrap().success());
    }
    assert_eq!(
        db.count("SELECT count(*) FROM taskq_tasks WHERE state = 'succeeded'"),
        24
    );
    let mut puts: std::collections::BTreeMap<String, usize> = Default::default();
    for (m, p) in bucket.proxy.requests() {
        if m == "PUT" {
            *puts.entry(p).or_default() += 1;
        }
    }
    assert_eq!(puts.len(), 24, "{puts:?}");
    assert!(
        puts.values().all(|&n| n == 1),
        "a variant written twice: {puts:?}"
    );
}
