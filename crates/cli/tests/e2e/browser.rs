//! The dashboard in a real browser: Debian's headless Chromium, driven
//! through chromedriver (WebDriver) by fantoccini. The page shows a seeded
//! queue's counts; a hostile key is shown as text (no script of it runs:
//! no alert opens); a dead letter ticked and retried from the page is
//! available again. Screenshots of the pages go to `$TASKQ_SCREENSHOTS`
//! when set (the README's come from `TASKQ_SCREENSHOTS=results`), else to
//! a temporary folder; either way each is checked to be a PNG of the
//! window's width.
//!
//! `taskq run --dashboard` is followed the same way: its page keeps up with
//! a run fed while it is open, and says when the run has ended.
//!
//! Needs `chromium` and `chromedriver` (Debian's `chromium` and
//! `chromium-driver`, which `.ci/run` installs).

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{ClientBuilder, Locator};
use serde_json::json;

use crate::dashboard::{seeded, start, stop, HOSTILE};

const WIDTH: u32 = 1280;
const HEIGHT: u32 = 900;

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn chromedriver() -> (Driver, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver runs (apt-get install chromium chromium-driver)");
    let driver = Driver(child);
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "chromedriver did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    (driver, port)
}

fn shots_dir() -> (PathBuf, Option<tempfile::TempDir>) {
    match std::env::var_os("TASKQ_SCREENSHOTS") {
        Some(d) => {
            let d = PathBuf::from(crate::ROOT).join(d);
            std::fs::create_dir_all(&d).unwrap();
            (d, None)
        }
        None => {
            let t = tempfile::tempdir().unwrap();
            (t.path().to_path_buf(), Some(t))
        }
    }
}

fn save(dir: &std::path::Path, name: &str, png: &[u8]) {
    let img = image::load_from_memory_with_format(png, image::ImageFormat::Png)
        .expect("a screenshot is a PNG");
    // The viewport: the window's width, its height less the window frame.
    assert_eq!(img.width(), WIDTH, "{name}");
    assert!(
        (HEIGHT / 2..=HEIGHT).contains(&img.height()),
        "{name}: {}",
        img.height()
    );
    std::fs::write(dir.join(name), png).unwrap();
}

/// A headless Chromium session of the window's size.
async fn session(driver_port: u16) -> fantoccini::Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", format!("--window-size={WIDTH},{HEIGHT}"),
                     "--hide-scrollbars", "--force-device-scale-factor=1",
                     "--disable-background-networking", "--disable-component-update",
                     "--disable-sync", "--no-first-run"],
        }),
    );
    ClientBuilder::rustls()
        .unwrap()
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{driver_port}"))
        .await
        .expect("a Chromium session through chromedriver")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn the_dashboard_in_chromium_shows_counts_escapes_keys_and_retries_a_dead_letter() {
    let (db, dir) = seeded();
    let (dashboard, port) = start(dir.path(), &db.url, &["--addr", "127.0.0.1:0"], &[]);
    let (_driver, driver_port) = chromedriver();
    let (shots, _keep) = shots_dir();
    let base = format!("http://127.0.0.1:{port}");
    runtime().block_on(async {
        let c = session(driver_port).await;

        // The queue page: the seeded counts.
        c.goto(&format!("{base}/")).await.unwrap();
        for (state, n) in [("available", "20"), ("succeeded", "5"), ("dead", "10")] {
            let cell = c
                .find(Locator::Css(&format!("#counts td[data-state={state}]")))
                .await
                .unwrap();
            assert_eq!(cell.text().await.unwrap(), n, "{state}");
        }
        // The chart starts at the sampler's second sample, 5 s after the
        // first; the page reloads itself every 5 s.
        c.wait()
            .at_most(Duration::from_secs(30))
            .for_element(Locator::Css("svg#chart"))
            .await
            .expect("the chart is drawn after two samples");
        save(&shots, "dashboard-queue.png", &c.screenshot().await.unwrap());

        // Dead letters: the hostile key is text, and no script of it ran.
        c.goto(&format!("{base}/dead")).await.unwrap();
        let keys: Vec<String> = {
            let mut out = Vec::new();
            for e in c.find_all(Locator::Css("#dead td.key")).await.unwrap() {
                out.push(e.text().await.unwrap());
            }
            out
        };
        assert_eq!(keys.len(), 10);
        assert!(keys.iter().any(|k| k == HOSTILE), "{keys:?}");
        assert!(c.get_alert_text().await.is_err(), "an alert opened: a key ran as script");
        let injected = c
            .execute("return document.querySelectorAll('#dead script').length", vec![])
            .await
            .unwrap();
        assert_eq!(injected, json!(0));
        save(&shots, "dashboard-dead.png", &c.screenshot().await.unwrap());

        // Tick the dead letter of img/000003.jpg and retry it from the page.
        let row = c
            .find(Locator::XPath(
                "//table[@id='dead']//tr[td[@class='key'][a[text()='img/000003.jpg:200x200']]]//input[@name='id']",
            ))
            .await
            .unwrap();
        let id: i64 = row.attr("value").await.unwrap().unwrap().parse().unwrap();
        row.click().await.unwrap();
        c.find(Locator::Css("#retry")).await.unwrap().click().await.unwrap();
        let done = c.wait().for_element(Locator::Css("#done")).await.unwrap();
        assert_eq!(done.text().await.unwrap(), "re-queued 1 of 1");
        // The blocking PostgreSQL client starts a runtime of its own: off
        // this one's thread.
        let state: String = std::thread::scope(|s| {
            s.spawn(|| {
                db.client()
                    .query_one("SELECT state FROM taskq_tasks WHERE id = $1", &[&id])
                    .unwrap()
                    .get(0)
            })
            .join()
            .unwrap()
        });
        assert_eq!(state, "available");
        let total = c.find(Locator::Css("#total")).await.unwrap().text().await.unwrap();
        assert!(total.starts_with("9 dead letter(s)"), "{total}");
        save(&shots, "dashboard-retried.png", &c.screenshot().await.unwrap());

        // The task page of the retried key.
        c.goto(&format!("{base}/task?key=img%2F000003.jpg%3A200x200"))
            .await
            .unwrap();
        let st = c.find(Locator::Css("td.state")).await.unwrap().text().await.unwrap();
        assert_eq!(st, "available");
        save(&shots, "dashboard-task.png", &c.screenshot().await.unwrap());
        c.close().await.unwrap();
    });
    stop(dashboard);
}

/// The run page's completed count, read in one script call (the page swaps
/// its live part every second: an element found first may be gone by the
/// time its text is asked for).
async fn completed(c: &fantoccini::Client) -> u64 {
    let v = c
        .execute(
            "return document.getElementById('completed').textContent",
            vec![],
        )
        .await
        .unwrap();
    v.as_str().unwrap().parse().unwrap()
}

/// `taskq run --dashboard`: the run's page in Chromium follows the run (its
/// script swaps in the live part every second) until every task is done,
/// then says the run has ended and keeps the last view.
#[test]
fn a_run_s_live_page_in_chromium_follows_the_run_and_outlives_it() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let (mut child, port, stderr) = crate::live_page::spawn_run(
        dir.path(),
        &[
            "--tasks",
            "-",
            "--workers",
            "2",
            "--capacity",
            "64",
            "--latency-ms",
            "2",
            "--transient-rate",
            "0.1",
            "--backoff-base-ms",
            "1",
            "--backoff-max-ms",
            "4",
            "--dashboard",
            "127.0.0.1:0",
        ],
        &[],
    );
    let (_driver, driver_port) = chromedriver();
    let (shots, _keep) = shots_dir();
    let mut stdin = child.stdin.take().unwrap();
    let total = 3000;
    runtime().block_on(async {
        let c = session(driver_port).await;
        c.goto(&format!("http://127.0.0.1:{port}/")).await.unwrap();
        let first: u64 = c
            .find(Locator::Css("#completed"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(first, 0, "nothing fed yet");
        // Fed while the page is open: the page follows without a reload.
        let lines = crate::live_page::lines(total);
        let feeder = std::thread::spawn(move || {
            stdin.write_all(lines.as_bytes()).unwrap();
            stdin
        });
        let mut seen = Vec::new();
        let start = Instant::now();
        loop {
            let shown = completed(&c).await;
            if seen.last() != Some(&shown) {
                seen.push(shown);
            }
            if seen.len() == 3 {
                save(&shots, "run-dashboard.png", &c.screenshot().await.unwrap());
            }
            if shown == total as u64 {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "the page stopped at {seen:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert!(seen.len() >= 3, "the page showed the run at {seen:?} only");
        assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
        let rows = c
            .find_all(Locator::Css("#workers tr[data-worker]"))
            .await
            .unwrap();
        assert_eq!(rows.len(), 2);
        // The run ends with its input; the page says so and keeps its view.
        drop(feeder.join().unwrap());
        let status = child.wait().unwrap();
        assert!(
            matches!(status.code(), Some(0 | 3)),
            "{}",
            stderr.join().unwrap()
        );
        let ended = c
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css("#state.err"))
            .await
            .expect("the page notices the run has ended");
        assert!(ended.text().await.unwrap().contains("the run has ended"));
        let kept = c
            .find(Locator::Css("#completed"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(kept, total.to_string());
        c.close().await.unwrap();
    });
}
