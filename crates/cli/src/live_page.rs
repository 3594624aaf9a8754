//! `taskq run --dashboard HOST:PORT`: one run, live, in a web page.
//!
//! The page shows what the engine is doing while it runs: progress against
//! the tasks in the file, throughput, queue depth against the capacity
//! bound, each worker's tasks, steals and busy ratio (over the run and the
//! last seconds), and the latency and service-time percentiles with the
//! latency histogram. It is served from the engine's live view
//! ([`taskq::engine::Live`]): nothing is recorded for it, and a request
//! costs the workers nothing but the cache lines the read touches.
//!
//! Routes: `/` (the page; a few lines of script fetch `/live` every second
//! and swap it in), `/live` (the page's live part, HTML), `/live.json` (the
//! same numbers as JSON). Every route is a GET: the page changes nothing.
//! The page lives as long as the run; it then says the run has ended and
//! keeps the last view on screen.
//!
//! Safe by default, as `taskq dashboard` (see [`crate::web`]): loopback
//! unless told otherwise, a token (`--dashboard-token` or
//! `TASKQ_DASHBOARD_TOKEN`) required anywhere else and then carried by every
//! request.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;
use taskq::engine::Live;
use taskq::metrics::{Counts, Percentiles, Samples};
use taskq::{Error, ProgressHandle};
use tiny_http::{Method, Request};

use crate::web::{self, esc, html, plain, Access, Listen, STYLE};

/// The setting's name in errors.
pub const DASHBOARD: &str = "--dashboard";
/// The token's setting, in errors.
pub const DASHBOARD_TOKEN: &str = "--dashboard-token";

/// How far back the recent rates look.
const RECENT: Duration = Duration::from_secs(5);
/// How often the recent rates are sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(500);

/// Latency histogram buckets' upper bounds, nanoseconds (1, 2.5, 5 per
/// decade from 10 µs to 100 s; everything above the last is its own bar).
const BUCKETS_NS: [u64; 22] = [
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
    25_000_000_000,
    50_000_000_000,
    100_000_000_000,
];

/// What the page says about the run besides the live view.
#[derive(Clone, Debug, Default)]
pub struct RunAbout {
    /// The task file, as named in errors.
    pub source: String,
    /// Valid tasks in it, when known before the run (not on stdin).
    pub expected: Option<u64>,
    /// The processor's name.
    pub processor: String,
}

/// A bound live page. Bound before any work starts (a bad or taken
/// address, or a missing token, fails the run then); [`serve`](Self::serve)
/// starts answering. Dropping it stops the server thread.
pub struct LivePage {
    server: Arc<tiny_http::Server>,
    addr: SocketAddr,
    token: Option<String>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl LivePage {
    /// Checks `addr` against `token` and listens.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming `--dashboard` for an address that does not
    /// parse or cannot be bound, or `--dashboard-token` for an empty token
    /// or a missing one off loopback.
    pub fn bind(addr: &str, token: Option<&str>) -> Result<LivePage, Error> {
        let listen = Listen {
            addr_flag: DASHBOARD,
            token_flag: DASHBOARD_TOKEN,
            token_env: "TASKQ_DASHBOARD_TOKEN",
            example: "127.0.0.1:8080",
        };
        let (server, addr) = listen.bind(listen.check(addr, token)?)?;
        Ok(LivePage {
            server: Arc::new(server),
            addr,
            token: token.map(str::to_string),
            stop: Arc::new(AtomicBool::new(false)),
            thread: None,
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Says on stderr where the page is.
    pub fn announce(&self) {
        eprintln!("taskq: dashboard at http://{}/", self.addr);
    }

    /// Answers requests about `engine` on a thread of its own until
    /// dropped.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the thread cannot be started.
    pub fn serve(&mut self, engine: ProgressHandle, about: RunAbout) -> Result<(), Error> {
        let server = self.server.clone();
        let token = self.token.clone();
        let stop = self.stop.clone();
        let thread = std::thread::Builder::new()
            .name("taskq-dashboard".into())
            .spawn(move || {
                let mut page = Page {
                    engine,
                    about,
                    token,
                    recent: VecDeque::new(),
                };
                let mut next = Instant::now();
                while !stop.load(Ordering::SeqCst) {
                    if Instant::now() >= next {
                        page.sample();
                        next = Instant::now() + SAMPLE_EVERY;
                    }
                    match server.recv_timeout(SAMPLE_EVERY) {
                        Ok(Some(request)) => page.respond(request),
                        Ok(None) => {}
                        Err(_) => break,
                    }
                }
            })
            .map_err(|e| Error::io("cannot start the dashboard thread", e))?;
        self.thread = Some(thread);
        Ok(())
    }
}

impl Drop for LivePage {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One sample for the recent rates: when, tasks completed, each worker's
/// busy seconds.
struct Mark {
    at: Instant,
    completed: u64,
    busy_s: Vec<f64>,
}

struct Page {
    engine: ProgressHandle,
    about: RunAbout,
    token: Option<String>,
    /// Samples of the last [`RECENT`] and one before.
    recent: VecDeque<Mark>,
}

/// The numbers the page shows, as `/live.json` sends them.
#[derive(Serialize)]
struct View {
    source: String,
    processor: String,
    /// Valid tasks in the file, when known.
    expected: Option<u64>,
    completed: u64,
    counts: Counts,
    depth: usize,
    max_depth: usize,
    capacity: usize,
    closed: bool,
    uptime_s: f64,
    /// Completions per second over the whole run.
    tasks_per_s: f64,
    /// Completions per second over the last few seconds (none before two
    /// samples).
    recent_tasks_per_s: Option<f64>,
    /// The span `recent_…` covers, seconds.
    recent_s: Option<f64>,
    workers: Vec<WorkerView>,
    completed_by_writer: u64,
    /// Submit → completion, milliseconds.
    latency_ms: Percentiles,
    /// One processing attempt, milliseconds.
    service_ms: Percentiles,
    /// Latency samples at or under each bound (cumulative), and in all.
    histogram: Vec<Bucket>,
}

#[derive(Serialize)]
struct WorkerView {
    index: usize,
    tasks: u64,
    attempts: u64,
    steals: u64,
    /// Busy seconds over the run's seconds.
    busy_ratio: f64,
    /// Over the last few seconds (none before two samples).
    recent_busy_ratio: Option<f64>,
    busy_now: bool,
}

#[derive(Serialize)]
struct Bucket {
    /// Upper bound, seconds (none: above the last bound).
    le_s: Option<f64>,
    /// Samples in this bucket (not cumulative).
    count: u64,
}

impl Page {
    fn sample(&mut self) {
        let live = self.engine.live();
        let now = Instant::now();
        self.recent.push_back(Mark {
            at: now,
            completed: live.completed(),
            busy_s: live.workers.iter().map(|w| w.busy_s).collect(),
        });
        // Keep one sample at least RECENT old, and none older than needed.
        while self.recent.len() > 2 && now.duration_since(self.recent[1].at) >= RECENT {
            self.recent.pop_front();
        }
    }

    fn view(&self) -> View {
        let live: Live = self.engine.live();
        let completed = live.completed();
        let uptime = live.uptime_s.max(1e-9);
        let now = Instant::now();
        let base = self
            .recent
            .front()
            .filter(|m| now.duration_since(m.at) > SAMPLE_EVERY / 2);
        let recent_s = base.map(|m| now.duration_since(m.at).as_secs_f64());
        let workers = live
            .workers
            .iter()
            .map(|w| WorkerView {
                index: w.index,
                tasks: w.tasks,
                attempts: w.attempts,
                steals: w.steals,
                busy_ratio: (w.busy_s / uptime).min(1.0),
                recent_busy_ratio: base.zip(recent_s).and_then(|(m, dt)| {
                    m.busy_s
                        .get(w.index)
                        .map(|b| ((w.busy_s - b).max(0.0) / dt).min(1.0))
                }),
                busy_now: w.busy,
            })
            .collect();
        View {
            source: self.about.source.clone(),
            processor: self.about.processor.clone(),
            expected: self.about.expected,
            completed,
            counts: live.counts.clone(),
            depth: live.depth,
            max_depth: live.max_depth,
            capacity: live.capacity,
            closed: live.closed,
            uptime_s: live.uptime_s,
            tasks_per_s: completed as f64 / uptime,
            recent_tasks_per_s: base
                .zip(recent_s)
                .map(|(m, dt)| completed.saturating_sub(m.completed) as f64 / dt),
            recent_s,
            workers,
            completed_by_writer: live.completed_by_writer,
            latency_ms: live.latency.percentiles(),
            service_ms: live.service.percentiles(),
            histogram: histogram(&live.latency),
        }
    }

    fn respond(&self, request: Request) {
        let url = request.url().to_string();
        let path = url.split('?').next().unwrap_or_default().to_string();
        if let Access::Answer(page) = web::authenticate(&request, self.token.as_deref(), &path) {
            let _ = request.respond(page);
            return;
        }
        let response = match (request.method(), path.as_str()) {
            (Method::Get, "/") => html(200, self.page()),
            (Method::Get, "/live") => html(200, fragment(&self.view())),
            (Method::Get, "/live.json") => match serde_json::to_string(&self.view()) {
                Ok(body) => web::json(body),
                Err(e) => plain(500, &format!("cannot encode the view: {e}")),
            },
            (Method::Get, _) => plain(404, "not found: the run's page is at /"),
            _ => plain(405, "method not allowed: this page only shows the run")
                .with_header(web::hdr("Allow", "GET")),
        };
        // A browser that went away is its own business.
        let _ = request.respond(response);
    }

    fn page(&self) -> String {
        format!(
            "<!doctype html><html lang=en><head><meta charset=utf-8>\
             <title>taskq run · {}</title><style>{STYLE}</style></head><body>\
             <h1>taskq run · {}</h1><p id=state class=ok>live: updated every second</p>\
             <div id=live>{}</div>\
             <script>(function(){{var s=document.getElementById('state');\
             function tick(){{fetch('/live',{{cache:'no-store'}}).then(function(r){{\
             if(!r.ok)throw new Error(r.status);return r.text()}}).then(function(t){{\
             document.getElementById('live').innerHTML=t;setTimeout(tick,1000)}}).catch(function(){{\
             s.className='err';s.textContent='the run has ended (or the page cannot reach it): \
             this is its last view'}})}}setTimeout(tick,1000)}})()</script></body></html>",
            esc(&self.about.source),
            esc(&self.about.source),
            fragment(&self.view())
        )
    }
}

/// Latency samples per bucket of [`BUCKETS_NS`], the last one open.
fn histogram(latency: &Samples) -> Vec<Bucket> {
    let cumulative = latency.cumulative(&BUCKETS_NS);
    let mut out = Vec::with_capacity(BUCKETS_NS.len() + 1);
    let mut below = 0;
    for (bound, &c) in BUCKETS_NS.iter().zip(&cumulative) {
        out.push(Bucket {
            le_s: Some(*bound as f64 / 1e9),
            count: c.saturating_sub(below),
        });
        below = c;
    }
    out.push(Bucket {
        le_s: None,
        count: latency.len().saturating_sub(below),
    });
    out
}

fn duration(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{:.2} s", ms / 1000.0)
    } else if ms >= 1.0 {
        format!("{ms:.2} ms")
    } else {
        format!("{:.1} µs", ms * 1000.0)
    }
}

fn bound(le_s: Option<f64>) -> String {
    match le_s {
        None => "more".into(),
        Some(s) if s >= 1.0 => format!("≤{s} s"),
        Some(s) if s >= 1e-3 => format!("≤{} ms", s * 1e3),
        Some(s) => format!("≤{} µs", (s * 1e6).round()),
    }
}

fn bar(share: f64) -> String {
    format!(
        "<span class=bar><span style=\"width:{:.1}%\"></span></span>",
        (share * 100.0).clamp(0.0, 100.0)
    )
}

fn ratio(r: Option<f64>) -> String {
    r.map_or("—".into(), |r| format!("{:.0}%", r * 100.0))
}

/// The page's live part, HTML (every string in it is escaped: the source
/// and processor names come from the command line).
fn fragment(v: &View) -> String {
    let mut b = String::new();
    let _ = write!(
        b,
        "<p>{} · processor {} · {:.1} s{}</p>",
        esc(&v.source),
        esc(&v.processor),
        v.uptime_s,
        if v.closed {
            " · admission closed, draining"
        } else {
            ""
        }
    );
    // Progress.
    b.push_str("<h2>Progress</h2><p>");
    match v.expected {
        Some(n) if n > 0 => {
            let _ = write!(
                b,
                "{} <span id=completed>{}</span> of <span id=expected>{n}</span> tasks \
                 completed ({:.1}%)",
                bar(v.completed as f64 / n as f64),
                v.completed,
                100.0 * v.completed as f64 / n as f64
            );
        }
        _ => {
            let _ = write!(
                b,
                "<span id=completed>{}</span> tasks completed (the input is a stream: no total)",
                v.completed
            );
        }
    }
    let _ = write!(
        b,
        "</p><p><span id=rate>{:.1}</span> tasks/s over the run{}</p>",
        v.tasks_per_s,
        match (v.recent_tasks_per_s, v.recent_s) {
            (Some(r), Some(s)) =>
                format!(", <span id=recent-rate>{r:.1}</span> over the last {s:.0} s"),
            _ => String::new(),
        }
    );
    let c = &v.counts;
    let _ = write!(
        b,
        "<table id=counts><tr><th>submitted</th><th>admitted</th><th>rejected</th><th>started</th>\
         <th>succeeded</th><th>duplicates</th><th>retried</th><th>failed</th><th>dead-lettered</th></tr>\
         <tr><td class=n data-count=submitted>{}</td><td class=n data-count=admitted>{}</td>\
         <td class=n data-count=rejected>{}</td><td class=n data-count=started>{}</td>\
         <td class=n data-count=succeeded>{}</td><td class=n data-count=duplicates>{}</td>\
         <td class=n data-count=retried>{}</td><td class=n data-count=failed>{}</td>\
         <td class=n data-count=dead_lettered>{}</td></tr></table>",
        c.submitted,
        c.admitted,
        c.rejected,
        c.started,
        c.succeeded,
        c.duplicates,
        c.retried,
        c.failed,
        c.dead_lettered
    );
    // Depth against the bound.
    let _ = write!(
        b,
        "<h2>Queue depth</h2><p>{} <span id=depth>{}</span> of <span id=capacity>{}</span> \
         held (highest <span id=max-depth>{}</span>)</p>",
        bar(v.depth as f64 / v.capacity.max(1) as f64),
        v.depth,
        v.capacity,
        v.max_depth
    );
    // Workers.
    let recent = v
        .recent_s
        .map_or(String::new(), |s| format!(" (last {s:.0} s)"));
    let _ = write!(
        b,
        "<h2>Workers</h2><table id=workers><tr><th>worker</th><th>tasks</th><th>attempts</th>\
         <th>steals</th><th>busy (run)</th><th>busy{recent}</th><th>now</th></tr>"
    );
    for w in &v.workers {
        let _ = write!(
            b,
            "<tr data-worker={}><td class=n>{}</td><td class=n data-w=tasks>{}</td>\
             <td class=n>{}</td><td class=n data-w=steals>{}</td><td>{} {}</td><td class=n>{}</td><td>{}</td></tr>",
            w.index,
            w.index,
            w.tasks,
            w.attempts,
            w.steals,
            bar(w.busy_ratio),
            ratio(Some(w.busy_ratio)),
            ratio(w.recent_busy_ratio),
            if w.busy_now { "running" } else { "idle" }
        );
    }
    if v.completed_by_writer > 0 {
        let _ = write!(
            b,
            "<tr><td>writer</td><td class=n>{}</td><td colspan=5>completed at group commit</td></tr>",
            v.completed_by_writer
        );
    }
    b.push_str("</table>");
    // Latency.
    b.push_str(
        "<h2>Latency</h2><table id=latency><tr><th></th><th>samples</th><th>mean</th>\
         <th>p50</th><th>p95</th><th>p99</th><th>p99.9</th><th>max</th></tr>",
    );
    for (name, p) in [
        ("submit → done", &v.latency_ms),
        ("one attempt", &v.service_ms),
    ] {
        let _ = write!(
            b,
            "<tr><th>{name}</th><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td>\
             <td class=n>{}</td><td class=n>{}</td><td class=n>{}</td></tr>",
            p.count,
            duration(p.mean),
            duration(p.p50),
            duration(p.p95),
            duration(p.p99),
            duration(p.p999),
            duration(p.max)
        );
    }
    b.push_str("</table>");
    b.push_str(&histogram_svg(&v.histogram));
    b
}

/// Bars of the latency histogram, from the first non-empty bucket to the
/// last.
fn histogram_svg(buckets: &[Bucket]) -> String {
    let first = buckets.iter().position(|b| b.count > 0);
    let last = buckets.iter().rposition(|b| b.count > 0);
    let (Some(first), Some(last)) = (first, last) else {
        return "<p id=histogram>no task completed yet</p>".into();
    };
    let shown = &buckets[first..=last];
    let top = shown.iter().map(|b| b.count).max().unwrap_or(1).max(1) as f64;
    let (w, h, pad) = (720.0, 160.0, 20.0);
    let step = (w - 2.0 * pad) / shown.len() as f64;
    let mut svg = format!(
        "<svg id=histogram width={w} height={h} viewBox=\"0 0 {w} {h}\" role=img \
         aria-label=\"latency histogram\">"
    );
    for (i, b) in shown.iter().enumerate() {
        let bh = b.count as f64 / top * (h - 50.0);
        let x = pad + i as f64 * step;
        let _ = write!(
            svg,
            "<rect x={:.1} y={:.1} width={:.1} height={:.1} fill=\"#36c\"><title>{}: {}</title></rect>\
             <text x={:.1} y={} font-size=10 text-anchor=middle>{}</text>",
            x + 2.0,
            h - 30.0 - bh,
            (step - 4.0).max(1.0),
            bh,
            esc(&bound(b.le_s)),
            b.count,
            x + step / 2.0,
            h - 16.0,
            esc(&bound(b.le_s))
        );
        if b.count > 0 {
            let _ = write!(
                svg,
                "<text x={:.1} y={:.1} font-size=10 text-anchor=middle>{}</text>",
                x + step / 2.0,
                h - 33.0 - bh,
                b.count
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_and_durations_read_in_their_unit() {
        assert_eq!(bound(Some(1e-5)), "≤10 µs");
        assert_eq!(bound(Some(2.5e-3)), "≤2.5 ms");
        assert_eq!(bound(Some(25.0)), "≤25 s");
        assert_eq!(bound(None), "more");
        assert_eq!(duration(0.0123), "12.3 µs");
        assert_eq!(duration(12.345), "12.35 ms");
        assert_eq!(duration(2500.0), "2.50 s");
    }

    #[test]
    fn the_histogram_counts_each_sample_once() {
        let mut s = Samples::new();
        for v in [5_000, 20_000, 20_000, 3_000_000, 200_000_000_000] {
            s.record(v);
        }
        let h = histogram(&s);
        assert_eq!(h.len(), BUCKETS_NS.len() + 1);
        assert_eq!(h.iter().map(|b| b.count).sum::<u64>(), 5);
        assert_eq!(h[0].count, 1); // ≤ 10 µs
        assert_eq!(h[1].count, 2); // ≤ 25 µs
        assert_eq!(h.last().unwrap().count, 1); // above 100 s
        let svg = histogram_svg(&h);
        assert!(svg.starts_with("<svg id=histogram"), "{svg}");
        assert!(histogram_svg(&histogram(&Samples::new())).contains("no task completed yet"));
    }
}
