//! The thumbnail job on the built binary, over real files in temporary
//! directories: variants fit their box, a second run writes nothing, bad
//! sources are dead-lettered with their reason, keys never escape the store,
//! and a killed run leaves no partial variant.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command as StdCommand, Stdio};
use std::time::{Duration, SystemTime};

use assert_cmd::Command;
use serde_json::Value;
use taskq_thumbnail::object_store::{LocalStore, ObjectStore, TEMP_PREFIX};

fn taskq(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_taskq"));
    cmd.current_dir(dir);
    cmd
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn run(dir: &Path, args: &[&str]) -> Run {
    let out = taskq(dir).args(args).output().unwrap();
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Writes `lines` as `tasks.ndjson` beside store `s` and runs the thumbnail
/// job over them, reporting to `r.json`.
fn run_tasks(dir: &Path, lines: &[&str]) -> Run {
    std::fs::write(dir.join("tasks.ndjson"), lines.join("\n")).unwrap();
    run(
        dir,
        &[
            "run",
            "--processor",
            "thumbnail",
            "--store",
            "s",
            "--tasks",
            "tasks.ndjson",
            "--no-progress",
            "--report",
            "r.json",
        ],
    )
}

fn report(dir: &Path, name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join(name)).unwrap()).unwrap()
}

fn u(v: &Value, pointer: &str) -> u64 {
    v.pointer(pointer)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("{pointer} in {v:#}"))
}

/// Seeds `store` (under `dir`) with `count` small images and tasks for `sizes`.
fn seed(dir: &Path, store: &str, count: u32, wh: (u32, u32), sizes: &str) {
    let (w, h) = (wh.0.to_string(), wh.1.to_string());
    let count = count.to_string();
    let r = run(
        dir,
        &[
            "seed-images",
            "--store",
            store,
            "--count",
            &count,
            "--width",
            &w,
            "--height",
            &h,
            "--sizes",
            sizes,
        ],
    );
    assert_eq!(r.code, Some(0), "{}", r.stderr);
}

/// Every plain file below `dir` (links not followed): path → (bytes, mtime).
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (Vec<u8>, SystemTime)> {
    let mut files = BTreeMap::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let e = e.unwrap();
            let kind = e.file_type().unwrap();
            if kind.is_dir() {
                dirs.push(e.path());
            } else if kind.is_file() {
                let m = e.metadata().unwrap();
                files.insert(
                    e.path(),
                    (std::fs::read(e.path()).unwrap(), m.modified().unwrap()),
                );
            }
        }
    }
    files
}

fn tasks_of(store: &Path) -> Vec<(String, String)> {
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(store.join("tasks.json")).unwrap()).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["image_key"].as_str().unwrap().to_string(),
                t["size"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Decodes a variant fully and checks it fits inside `size` with one side on
/// the bound and the source's aspect ratio kept (within rounding).
fn check_variant(path: &Path, size: &str, source: (u32, u32)) {
    let bytes = std::fs::read(path).unwrap();
    let format = image::guess_format(&bytes).unwrap();
    let want = if path.extension().unwrap() == "png" {
        image::ImageFormat::Png
    } else {
        image::ImageFormat::Jpeg
    };
    assert_eq!(format, want, "{}", path.display());
    let img = image::load_from_memory(&bytes)
        .unwrap_or_else(|e| panic!("{} does not decode: {e}", path.display()));
    let (w, h) = (img.width(), img.height());
    let (bw, bh) = size.split_once('x').unwrap();
    let (bw, bh): (u32, u32) = (bw.parse().unwrap(), bh.parse().unwrap());
    assert!(w <= bw && h <= bh, "{}: {w}x{h} in {size}", path.display());
    assert!(w == bw || h == bh, "{}: {w}x{h} in {size}", path.display());
    let (sw, sh) = (f64::from(source.0), f64::from(source.1));
    let off_h = (f64::from(h) - sh * f64::from(w) / sw).abs();
    let off_w = (f64::from(w) - sw * f64::from(h) / sh).abs();
    assert!(
        off_h <= 0.5 + 1e-9 || off_w <= 0.5 + 1e-9,
        "{}: {w}x{h} from {}x{} loses the aspect ratio",
        path.display(),
        source.0,
        source.1
    );
}

const SIZES: &str = "200x200,64x64,50x100,300x500";

#[test]
fn every_variant_decodes_and_fits_its_box() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    seed(d, "s", 8, (256, 192), SIZES);
    let r = run(
        d,
        &[
            "run",
            "--processor",
            "thumbnail",
            "--store",
            "s",
            "--workers",
            "2",
            "--no-progress",
            "--report",
            "r.json",
        ],
    );
    assert_eq!(r.code, Some(0), "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("thumbnail: 32 written"), "{}", r.stdout);
    assert!(
        r.stdout.contains("stage ms total/mean/max: read"),
        "{}",
        r.stdout
    );
    let rep = report(d, "r.json");
    assert_eq!(u(&rep, "/counts/succeeded"), 32);
    assert_eq!(u(&rep, "/processor/items"), 32);
    assert!(u(&rep, "/processor/bytes_read") > 8 * 1000);
    assert!(u(&rep, "/processor/bytes_written") > 32 * 100);
    assert!(rep["processor"]["items_per_s"].as_f64().unwrap() > 0.0);
    let stages = rep["processor"]["stages"].as_array().unwrap();
    let names: Vec<&str> = stages.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["read", "decode", "resize", "encode", "write"]);
    for s in stages {
        assert_eq!(s["count"], 32, "{s}");
        assert!(s["total_ms"].as_f64().unwrap() > 0.0, "{s}");
    }

    let store = d.join("s");
    let tasks = tasks_of(&store);
    assert_eq!(tasks.len(), 32);
    let db = rusqlite::Connection::open(store.join("taskq.db")).unwrap();
    for (key, size) in &tasks {
        let variant = format!("variants/{size}/{key}");
        check_variant(&store.join(&variant), size, (256, 192));
        let recorded: String = db
            .query_row(
                "SELECT output_key FROM tasks WHERE image_key = ?1 AND size = ?2",
                [key, size],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(recorded, variant, "the output key is recorded");
    }
    assert!(snapshot(&store).keys().all(|p| !p
        .file_name()
        .unwrap()
        .to_string_lossy()
        .starts_with(TEMP_PREFIX)));
}

#[test]
fn second_run_writes_nothing_new_and_outputs_are_deterministic() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    seed(d, "a", 4, (128, 96), "60x60,40x80");
    seed(d, "b", 4, (128, 96), "60x60,40x80");
    let args = |store: &'static str, report: &'static str| {
        [
            "run",
            "--processor",
            "thumbnail",
            "--store",
            store,
            "--no-progress",
            "--report",
            report,
        ]
    };
    let r = run(d, &args("a", "r1.json"));
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let first = snapshot(&d.join("a/variants"));
    assert_eq!(first.len(), 8);
    std::thread::sleep(Duration::from_millis(20));

    let r = run(d, &args("a", "r2.json"));
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let rep = report(d, "r2.json");
    assert_eq!(u(&rep, "/counts/duplicates"), 8);
    assert_eq!(u(&rep, "/counts/succeeded"), 0);
    assert_eq!(u(&rep, "/counts/started"), 0);
    assert_eq!(u(&rep, "/processor/items"), 0);
    assert_eq!(u(&rep, "/processor/bytes_written"), 0);
    assert_eq!(
        snapshot(&d.join("a/variants")),
        first,
        "no file was added, removed, rewritten or touched"
    );

    // Another store seeded the same way gets byte-identical variants.
    let r = run(d, &args("b", "r3.json"));
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let other: Vec<Vec<u8>> = snapshot(&d.join("b/variants"))
        .into_values()
        .map(|v| v.0)
        .collect();
    let mine: Vec<Vec<u8>> = first.into_values().map(|v| v.0).collect();
    assert_eq!(mine, other);
}

#[test]
fn missing_and_corrupt_sources_are_dead_lettered_with_their_reason() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    seed(d, "s", 4, (64, 48), "32x32");
    let store = d.join("s");
    std::fs::write(store.join("img/corrupt.jpg"), b"\xff\xd8 this is no JPEG").unwrap();
    let png = std::fs::read(store.join("img/000004.png")).unwrap();
    std::fs::write(store.join("img/truncated.png"), &png[..png.len() / 2]).unwrap();
    let r = run_tasks(
        d,
        &[
            r#"{"image_key": "img/000001.jpg", "size": "32x32"}"#,
            r#"{"image_key": "img/missing.jpg", "size": "32x32"}"#,
            r#"{"image_key": "img/corrupt.jpg", "size": "32x32"}"#,
            r#"{"image_key": "img/truncated.png", "size": "32x32"}"#,
        ],
    );
    assert_eq!(r.code, Some(3), "{}\n{}", r.stdout, r.stderr);
    let rep = report(d, "r.json");
    assert_eq!(u(&rep, "/counts/succeeded"), 1);
    assert_eq!(u(&rep, "/counts/dead_lettered"), 3);
    assert_eq!(
        u(&rep, "/counts/retried"),
        0,
        "permanent failures are not retried"
    );

    let out = taskq(d)
        .args(["dlq", "list", "--db", "s/taskq.db", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let letters: Vec<Value> = serde_json::from_slice::<Value>(&out.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone();
    let mut by_key: BTreeMap<String, (String, String, String)> = BTreeMap::new();
    for l in &letters {
        by_key.insert(
            l["task"]["image_key"].as_str().unwrap().into(),
            (
                l["class"].as_str().unwrap().into(),
                l["kind"].as_str().unwrap().into(),
                l["message"].as_str().unwrap().into(),
            ),
        );
    }
    assert_eq!(by_key.len(), 3, "{letters:#?}");
    for (key, kind, says) in [
        ("img/missing.jpg", "not_found", "no such object"),
        ("img/corrupt.jpg", "undecodable", "img/corrupt.jpg"),
        ("img/truncated.png", "undecodable", "img/truncated.png"),
    ] {
        let (class, k, message) = &by_key[key];
        assert_eq!(
            (class.as_str(), k.as_str()),
            ("permanent", kind),
            "{key}: {message}"
        );
        assert!(message.contains(says), "{key}: {message}");
    }
    assert!(!store.join("variants/32x32/img/missing.jpg").exists());
    assert!(!store.join("variants/32x32/img/corrupt.jpg").exists());

    // Once the missing source is there, re-driving its dead letter makes it.
    std::fs::copy(store.join("img/000001.jpg"), store.join("img/missing.jpg")).unwrap();
    let r = run(
        d,
        &[
            "dlq",
            "retry",
            "--db",
            "s/taskq.db",
            "--all",
            "--processor",
            "thumbnail",
            "--store",
            "s",
            "--report",
            "retry.json",
        ],
    );
    assert_eq!(
        r.code,
        Some(3),
        "two still fail: {}\n{}",
        r.stdout,
        r.stderr
    );
    assert!(
        r.stdout.contains("cleared 1 dead letter(s)"),
        "{}",
        r.stdout
    );
    assert_eq!(u(&report(d, "retry.json"), "/processor/items"), 1);
    check_variant(
        &store.join("variants/32x32/img/missing.jpg"),
        "32x32",
        (64, 48),
    );
    let r = run(
        d,
        &[
            "dlq",
            "retry",
            "--db",
            "s/taskq.db",
            "--all",
            "--processor",
            "thumbnail",
        ],
    );
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(r.stderr.contains("--store"), "{}", r.stderr);
}

#[cfg(unix)]
#[test]
fn keys_never_reach_outside_the_root() {
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    seed(d, "s", 1, (64, 48), "32x32");
    let root = d.join("s");
    // The sentinel: a directory outside the root, with a decodable image in it.
    let outside = d.join("outside");
    std::fs::create_dir_all(outside.join("variant-target")).unwrap();
    std::fs::copy(root.join("img/000001.jpg"), outside.join("secret.jpg")).unwrap();
    std::fs::write(outside.join("victim.jpg"), b"must stay as it is").unwrap();
    // Links inside the root that lead out of it: a source file, a source
    // directory, a variant directory, and a variant file.
    symlink(outside.join("secret.jpg"), root.join("img/link.jpg")).unwrap();
    symlink(&outside, root.join("evil")).unwrap();
    std::fs::create_dir_all(root.join("variants/200x200/img")).unwrap();
    symlink(
        outside.join("variant-target"),
        root.join("variants/100x100"),
    )
    .unwrap();
    symlink(
        outside.join("victim.jpg"),
        root.join("variants/200x200/img/000001.jpg"),
    )
    .unwrap();
    let before = snapshot(&outside);
    std::thread::sleep(Duration::from_millis(20));

    let r = run_tasks(
        d,
        &[
            r#"{"image_key": "img/000001.jpg", "size": "50x50"}"#,
            r#"{"image_key": "img/link.jpg", "size": "50x50"}"#,
            r#"{"image_key": "evil/secret.jpg", "size": "50x50"}"#,
            r#"{"image_key": "img/000001.jpg", "size": "100x100"}"#,
            r#"{"image_key": "img/000001.jpg", "size": "200x200"}"#,
            r#"{"image_key": "../outside/secret.jpg", "size": "50x50"}"#,
            r#"{"image_key": "/etc/passwd", "size": "50x50"}"#,
            r#"{"image_key": "img/../../outside/secret.jpg", "size": "50x50"}"#,
        ],
    );
    assert_eq!(r.code, Some(3), "{}\n{}", r.stdout, r.stderr);
    let rep = report(d, "r.json");
    assert_eq!(
        u(&rep, "/counts/succeeded"),
        1,
        "only the honest task: {rep:#}"
    );
    assert_eq!(u(&rep, "/counts/dead_lettered"), 4);
    assert_eq!(
        u(&rep, "/counts/invalid"),
        3,
        "traversal keys are refused at input"
    );
    let invalid = rep["invalid_tasks"].as_array().unwrap();
    assert!(invalid
        .iter()
        .all(|t| t["error"].as_str().unwrap().contains("image_key")));
    let failures = rep["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 1, "{failures:#?}");
    assert_eq!(failures[0]["kind"], "outside_root");
    assert_eq!(failures[0]["count"], 4);
    check_variant(
        &root.join("variants/50x50/img/000001.jpg"),
        "50x50",
        (64, 48),
    );

    // The store itself refuses the same keys, whatever the task parser does.
    let store = LocalStore::open(&root).unwrap();
    for key in [
        "../outside/secret.jpg",
        "/etc/passwd",
        "img/../../x",
        "a\0b",
    ] {
        assert_eq!(
            store.open(key).err().unwrap().kind(),
            "invalid_key",
            "{key}"
        );
        assert_eq!(
            store.create(key).err().unwrap().kind(),
            "invalid_key",
            "{key}"
        );
    }
    for key in ["img/link.jpg", "evil/secret.jpg"] {
        assert_eq!(
            store.open(key).err().unwrap().kind(),
            "outside_root",
            "{key}"
        );
    }
    for key in [
        "evil/new.jpg",
        "variants/100x100/img/x.jpg",
        "variants/200x200/img/000001.jpg",
    ] {
        assert_eq!(
            store.create(key).err().unwrap().kind(),
            "outside_root",
            "{key}"
        );
    }

    assert_eq!(
        snapshot(&outside),
        before,
        "nothing outside the root changed"
    );
    assert_eq!(
        std::fs::read_dir(outside.join("variant-target"))
            .unwrap()
            .count(),
        0
    );
}

/// Start a run, SIGKILL it mid-way, look at what it left; repeat; then finish.
#[test]
fn killed_runs_leave_no_partial_variant() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Larger images, so that a run lasts long enough to be killed inside it.
    seed(d, "s", 24, (800, 600), "200x200,400x400");
    let store = d.join("s");
    let tasks = tasks_of(&store);
    let start = |n: usize| {
        StdCommand::new(env!("CARGO_BIN_EXE_taskq"))
            .current_dir(d)
            .args(["run", "--processor", "thumbnail", "--store", "s"])
            .args(["--workers", "2", "--no-progress"])
            .args(["--report", &format!("r{n}.json")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut killed = 0;
    for (trial, after_ms) in [60u64, 150, 250].into_iter().enumerate() {
        let mut child = start(trial);
        std::thread::sleep(Duration::from_millis(after_ms));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            killed += 1;
        }
        child.wait().unwrap();
        for (path, (bytes, _)) in snapshot(&store.join("variants")) {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name.starts_with(TEMP_PREFIX) {
                continue; // a write in progress: no key names it
            }
            image::load_from_memory(&bytes)
                .unwrap_or_else(|e| panic!("trial {trial}: {} is partial: {e}", path.display()));
        }
    }
    assert!(
        killed > 0,
        "no run was killed mid-way: the test tests nothing"
    );

    // A leftover of an interrupted write is swept when the next run starts.
    let planted = store.join(format!("variants/200x200/img/{TEMP_PREFIX}99999-0"));
    std::fs::write(&planted, b"torn").unwrap();
    let r = run(
        d,
        &[
            "run",
            "--processor",
            "thumbnail",
            "--store",
            "s",
            "--no-progress",
        ],
    );
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(!planted.exists());
    let files = snapshot(&store.join("variants"));
    assert!(files.keys().all(|p| !p
        .file_name()
        .unwrap()
        .to_string_lossy()
        .starts_with(TEMP_PREFIX)));
    assert_eq!(files.len(), tasks.len());
    for (key, size) in &tasks {
        check_variant(
            &store.join(format!("variants/{size}/{key}")),
            size,
            (800, 600),
        );
    }
}

/// One run per store: while a run holds the store, every other command that
/// would write into it (a run, `seed-images`, `dlq retry` with the thumbnail
/// processor) fails at once naming the holder's pid, and the holder's writes
/// in progress are left alone.
#[test]
fn a_second_run_on_a_store_in_use_fails_at_once_and_sweeps_nothing() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    seed(d, "s", 2, (64, 48), "16x16");
    let store = d.join("s");
    // The holder reads its tasks from standard input: it holds the store,
    // waiting, until that closes.
    let mut holder = StdCommand::new(env!("CARGO_BIN_EXE_taskq"))
        .current_dir(d)
        .args(["run", "--processor", "thumbnail", "--store", "s"])
        .args(["--tasks", "-", "--no-progress"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = holder.id();
    let lock = store.join(taskq_thumbnail::object_store::LOCK_FILE);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while std::fs::read_to_string(&lock).ok().as_deref() != Some(&format!("{pid}\n")) {
        assert!(
            std::time::Instant::now() < deadline,
            "the first run never took the store"
        );
        assert!(holder.try_wait().unwrap().is_none(), "the first run ended");
        std::thread::sleep(Duration::from_millis(10));
    }
    // A write of the holder's in progress.
    let in_flight = store.join(format!("variants/16x16/img/{TEMP_PREFIX}{pid}-0"));
    std::fs::create_dir_all(in_flight.parent().unwrap()).unwrap();
    std::fs::write(&in_flight, b"half a thumbnail").unwrap();

    let expected = format!(
        "error: store {} is in use by pid {pid} (another taskq run); wait for it to finish",
        store.canonicalize().unwrap().display()
    );
    let db = store.join("taskq.db");
    let db = db.to_str().unwrap();
    for args in [
        vec!["run", "--processor", "thumbnail", "--store", "s"],
        vec!["seed-images", "--store", "s", "--count", "1"],
        vec![
            "dlq",
            "retry",
            "--db",
            db,
            "--all",
            "--processor",
            "thumbnail",
            "--store",
            "s",
        ],
    ] {
        let started = std::time::Instant::now();
        let r = run(d, &args);
        assert_eq!(r.code, Some(1), "{args:?}: {}", r.stderr);
        assert_eq!(r.stderr.trim_end(), expected, "{args:?}");
        assert!(r.stdout.is_empty(), "{args:?}: {}", r.stdout);
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{args:?} waited for the lock"
        );
        assert_eq!(std::fs::read(&in_flight).unwrap(), b"half a thumbnail");
    }

    // The holder finishes its work; the store is free again afterwards.
    let tasks = std::fs::read_to_string(store.join("tasks.json")).unwrap();
    let mut stdin = holder.stdin.take().unwrap();
    stdin.write_all(tasks.as_bytes()).unwrap();
    drop(stdin);
    let out = holder.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("2 succeeded"));
    let r = run(
        d,
        &[
            "run",
            "--processor",
            "thumbnail",
            "--store",
            "s",
            "--no-progress",
        ],
    );
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(r.stdout.contains("2 duplicates"), "{}", r.stdout);
    assert!(!in_flight.exists(), "a dead run's leftover is swept");
}

#[test]
fn main_command_seeds_a_fresh_store_then_finds_everything_done() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let args = [
        "run",
        "--processor",
        "thumbnail",
        "--store",
        "demo",
        "--seed-images",
        "2",
        "--no-progress",
    ];
    let r = run(d, &args);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(r.stdout.contains("4 succeeded"), "{}", r.stdout);
    assert_eq!(tasks_of(&d.join("demo")).len(), 4);
    assert!(
        d.join("demo/taskq.db").exists(),
        "the store keeps its own records"
    );
    assert!(!d.join("taskq.db").exists());
    let r = run(d, &args);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(r.stdout.contains("4 duplicates"), "{}", r.stdout);
}

#[test]
fn bad_settings_say_what_to_change() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("t.json"),
        r#"[{"image_key": "a.jpg", "size": "9x9"}]"#,
    )
    .unwrap();
    for (args, code, says) in [
        (
            vec!["run", "--processor", "thumbnail", "--tasks", "t.json"],
            1,
            "--store",
        ),
        (
            vec!["run", "--processor", "thumbnail", "--store", "nope"],
            1,
            "cannot open object store root nope",
        ),
        (vec!["run", "--store", "nope"], 1, "--processor thumbnail"),
        (
            vec![
                "run",
                "--store",
                "s",
                "--tasks",
                "t.json",
                "--seed-images",
                "3",
            ],
            2,
            "--seed-images",
        ),
        (
            vec![
                "run",
                "--processor",
                "thumbnail",
                "--store",
                "s",
                "--seed-images",
                "0",
            ],
            1,
            "--seed-images",
        ),
        (
            vec!["seed-images", "--store", "s", "--count", "0"],
            1,
            "--count",
        ),
        (
            vec![
                "seed-images",
                "--store",
                "s",
                "--count",
                "1",
                "--sizes",
                "5x",
            ],
            2,
            "5x",
        ),
    ] {
        let r = run(d, &args);
        assert_eq!(r.code, Some(code), "{args:?}: {}", r.stderr);
        assert!(r.stderr.contains(says), "{args:?}: {}", r.stderr);
        assert!(!r.stderr.contains("panicked"), "{args:?}: {}", r.stderr);
    }
    let r = run(
        d,
        &[
            "seed-images",
            "--store",
            "s",
            "--count",
            "1",
            "--width",
            "40",
            "--height",
            "30",
        ],
    );
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(r.stdout.contains("wrote 1 images"), "{}", r.stdout);
}
