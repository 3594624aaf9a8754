//! `taskq dashboard --pg URL`: a web page over the shared queue, served
//! from the database (plain server-rendered HTML, a few lines of script).
//!
//! Pages:
//! - `/`: counts by state per processor, the oldest waiting task, a chart of
//!   the rates and counts of the last 15 minutes (sampled every 5 s by a
//!   thread of the dashboard), and the nodes with their last heartbeat, the
//!   tasks they hold and what they publish with each heartbeat (workers,
//!   tasks finished, throughput and busy ratio over the last interval);
//! - `/dead`: the dead letters, filtered by error class and key, with
//!   retry and purge of a selection (POST);
//! - `/task?key=K`: a task by its idempotency key: state, attempts, errors,
//!   node, output key.
//!
//! Safe by default:
//! 1. it listens on 127.0.0.1 unless told otherwise, and refuses to listen
//!    on any other address without an auth token (`--auth-token` or
//!    `TASKQ_DASHBOARD_TOKEN`);
//! 2. with a token, every request must carry it (`Authorization: Bearer`,
//!    or the cookie set by opening `/?token=…` once);
//! 3. a POST must also carry the page's form secret (a random value per
//!    dashboard process, in every form it renders) and come from the same
//!    origin (`Origin`, or else `Referer`, naming the `Host` it was sent to);
//! 4. everything read from the database is HTML-escaped;
//! 5. `--read-only` renders no forms and refuses every POST.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use taskq::Error;
use taskq_pg::dlq::{self, DeadTask, Selection};
use taskq_pg::status::TaskRow;
use taskq_pg::{Queue, Status};
use tiny_http::{Method, Request};

use crate::pg::PgCommandError;
use crate::web::{
    self, esc, header, html, plain, query_value, redirect, same_secret, Access, Listen, Page, STYLE,
};

/// How often the chart's samples are taken.
const SAMPLE_EVERY: Duration = Duration::from_secs(5);
/// How many samples the chart keeps (15 minutes).
const SAMPLES_KEPT: usize = 180;
/// Dead letters listed on one page, at most.
const DEAD_LISTED: i64 = 500;

/// How the dashboard runs.
#[derive(Clone, Debug)]
pub struct DashboardOptions {
    /// The queue's database.
    pub url: String,
    /// `HOST:PORT` to listen on.
    pub addr: String,
    /// The token every request must carry (required off loopback).
    pub token: Option<String>,
    /// Render no forms, refuse every POST.
    pub read_only: bool,
}

/// Why the dashboard could not start.
#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    /// A setting (the address, the token).
    #[error(transparent)]
    Config(#[from] Error),
    /// The queue's database.
    #[error(transparent)]
    Queue(#[from] PgCommandError),
}

/// A bound dashboard: connected to its queue and listening.
pub struct Dashboard {
    server: tiny_http::Server,
    addr: SocketAddr,
    state: Arc<State>,
}

struct State {
    queue: Mutex<Queue>,
    url: String,
    token: Option<String>,
    read_only: bool,
    /// The form secret, in every form this process renders.
    secret: String,
    samples: Mutex<VecDeque<Sample>>,
}

/// Totals over every processor at one instant, for the chart.
#[derive(Clone, Copy, Debug)]
struct Sample {
    at: Instant,
    available: i64,
    running: i64,
    succeeded: i64,
    dead: i64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Dashboard {
    /// Checks the settings, connects to the queue and listens.
    ///
    /// # Errors
    ///
    /// [`DashboardError::Config`] for an address that does not parse, cannot
    /// be bound, or is not a loopback address while no token is set (or an
    /// empty token); [`DashboardError::Queue`] when the server cannot be
    /// reached or holds no queue.
    pub fn bind(options: &DashboardOptions) -> Result<Dashboard, DashboardError> {
        let listen = Listen {
            addr_flag: "--addr",
            token_flag: "--auth-token",
            token_env: "TASKQ_DASHBOARD_TOKEN",
            example: "127.0.0.1:8080",
        };
        // The address and token are checked before the database is asked.
        let addr = listen.check(&options.addr, options.token.as_deref())?;
        let queue = crate::pg::existing(&options.url)?;
        let (server, addr) = listen.bind(addr)?;
        // The form secret: 16 bytes from the kernel's random source.
        let mut secret = [0u8; 16];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut secret))
            .map_err(|e| Error::io("cannot read /dev/urandom for the form secret", e))?;
        let state = Arc::new(State {
            queue: Mutex::new(queue),
            url: options.url.clone(),
            token: options.token.clone(),
            read_only: options.read_only,
            secret: secret.iter().map(|b| format!("{b:02x}")).collect(),
            samples: Mutex::new(VecDeque::new()),
        });
        Ok(Dashboard {
            server,
            addr,
            state,
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Answers requests until `stop` is set (checked every 200 ms), with
    /// the chart's sampler on a thread of its own.
    pub fn serve(self, stop: &AtomicBool) {
        let sampler = {
            let state = self.state.clone();
            let done = Arc::new(AtomicBool::new(false));
            let d = done.clone();
            let handle = std::thread::Builder::new()
                .name("taskq-dashboard-sampler".into())
                .spawn(move || sample(&state, &d))
                .ok();
            (done, handle)
        };
        while !stop.load(Ordering::SeqCst) {
            match self.server.recv_timeout(Duration::from_millis(200)) {
                Ok(Some(request)) => respond(&self.state, request),
                Ok(None) => {}
                Err(_) => break,
            }
        }
        sampler.0.store(true, Ordering::SeqCst);
        if let Some(h) = sampler.1 {
            let _ = h.join();
        }
    }
}

/// The sampler: one status read every [`SAMPLE_EVERY`], on a connection
/// of its own.
fn sample(state: &State, done: &AtomicBool) {
    let mut queue = None;
    let mut next = Instant::now();
    while !done.load(Ordering::SeqCst) {
        if Instant::now() >= next {
            next += SAMPLE_EVERY;
            if queue.is_none() {
                queue = Queue::connect(&state.url).ok();
            }
            match queue.as_mut().map(taskq_pg::status) {
                Some(Ok(status)) => {
                    let mut samples = lock(&state.samples);
                    samples.push_back(totals(&status, Instant::now()));
                    while samples.len() > SAMPLES_KEPT {
                        samples.pop_front();
                    }
                }
                // Reconnect at the next sample.
                Some(Err(_)) => queue = None,
                None => {}
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn totals(status: &Status, at: Instant) -> Sample {
    let mut s = Sample {
        at,
        available: 0,
        running: 0,
        succeeded: 0,
        dead: 0,
    };
    for p in &status.processors {
        s.available += p.available;
        s.running += p.running;
        s.succeeded += p.succeeded;
        s.dead += p.dead;
    }
    s
}

fn respond(state: &State, mut request: Request) {
    let url = request.url().to_string();
    let (path, query) = url.split_once('?').unwrap_or((&url, ""));
    let params: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let param = |k: &str| {
        params
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty())
    };
    if let Access::Answer(page) = web::authenticate(&request, state.token.as_deref(), path) {
        let _ = request.respond(page);
        return;
    }
    let response = match (request.method().clone(), path) {
        (Method::Get, "/") => overview(state),
        (Method::Get, "/dead") => dead_page(
            state,
            param("class").as_deref(),
            param("key").as_deref(),
            param("done").as_deref(),
        ),
        (Method::Get, "/task") => task_page(state, param("key").as_deref()),
        (Method::Post, "/dead/retry" | "/dead/purge") => {
            let retry = path == "/dead/retry";
            post(state, &mut request, retry)
        }
        (Method::Get, _) => plain(404, "not found"),
        _ => plain(405, "method not allowed"),
    };
    let _ = request.respond(response);
}

/// A retry or purge of selected dead letters.
fn post(state: &State, request: &mut Request, retry: bool) -> Page {
    if state.read_only {
        return plain(403, "forbidden: this dashboard is read-only (--read-only)");
    }
    let host = header(request, "Host").unwrap_or_default();
    let expected = format!("http://{host}");
    let same_origin = match (header(request, "Origin"), header(request, "Referer")) {
        (Some(origin), _) => origin == expected,
        (None, Some(referer)) => {
            referer == expected || referer.starts_with(&format!("{expected}/"))
        }
        (None, None) => false,
    };
    if host.is_empty() || !same_origin {
        return plain(
            403,
            "forbidden: a POST must come from this dashboard's own pages (same origin)",
        );
    }
    let mut body = Vec::new();
    let reader: &mut dyn std::io::Read = request.as_reader();
    if std::io::Read::read_to_end(&mut std::io::Read::take(reader, 1 << 20), &mut body).is_err() {
        return plain(400, "bad request: unreadable form");
    }
    let form: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    let secret = form
        .iter()
        .find(|(k, _)| k == "secret")
        .map(|(_, v)| v.as_str());
    if !secret.is_some_and(|s| same_secret(s, &state.secret)) {
        return plain(
            403,
            "forbidden: the form's secret is missing or stale (reload the page)",
        );
    }
    let mut ids = Vec::new();
    for (k, v) in &form {
        if k == "id" {
            match v.parse::<i64>() {
                Ok(id) => ids.push(id),
                Err(_) => return plain(400, &format!("bad request: id {v:?} is not a row id")),
            }
        }
    }
    if ids.is_empty() {
        return redirect("/dead?done=nothing+selected");
    }
    let mut queue = lock(&state.queue);
    let result = if retry {
        dlq::retry(&mut queue, Selection::Ids(&ids), None)
    } else {
        dlq::purge(&mut queue, Selection::Ids(&ids), None)
    };
    drop(queue);
    match result {
        Ok(n) => {
            let what = if retry { "re-queued" } else { "purged" };
            redirect(&format!(
                "/dead?done={}",
                query_value(&format!("{what} {n} of {}", ids.len()))
            ))
        }
        Err(e) => html(
            500,
            page(
                "error",
                &format!("<p class=err>{}</p>", esc(&e.to_string())),
            ),
        ),
    }
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>taskq · {}</title>\
         <style>{STYLE}</style></head><body>\
         <nav><a href=\"/\">queue</a><a href=\"/dead\">dead letters</a>\
         <form action=\"/task\" method=get style=\"display:inline\">\
         <input name=key placeholder=\"task by key\" aria-label=\"task by key\"> <button>find</button></form></nav>\
         <h1>{}</h1>{body}</body></html>",
        esc(title),
        esc(title)
    )
}

/// Runs `f` on the dashboard's connection; after a lost connection,
/// reconnects once and runs it again.
fn with_queue<T>(
    state: &State,
    mut f: impl FnMut(&mut Queue) -> Result<T, taskq_pg::PgError>,
) -> Result<T, String> {
    let mut queue = lock(&state.queue);
    match f(&mut queue) {
        Err(e) if e.is_connection_lost() => {
            queue.reconnect().map_err(|e| e.to_string())?;
            f(&mut queue).map_err(|e| e.to_string())
        }
        r => r.map_err(|e| e.to_string()),
    }
}

fn overview(state: &State) -> Page {
    let status = match with_queue(state, taskq_pg::status) {
        Ok(s) => s,
        Err(e) => return html(503, page("queue", &format!("<p class=err>{}</p>", esc(&e)))),
    };
    let mut b = String::new();
    let _ = write!(
        b,
        "<p>{} · schema v{}</p>",
        esc(&status.target),
        status.schema_version
    );
    b.push_str(
        "<h2>Tasks by state</h2><table id=counts><tr><th>processor</th><th>available</th>\
         <th>of which scheduled</th><th>running</th><th>succeeded</th><th>dead</th>\
         <th>retries</th><th>oldest waiting</th></tr>",
    );
    for p in &status.processors {
        let _ = write!(
            b,
            "<tr><td>{}</td><td class=n data-state=available>{}</td><td class=n>{}</td>\
             <td class=n data-state=running>{}</td><td class=n data-state=succeeded>{}</td>\
             <td class=n data-state=dead><a href=\"/dead\">{}</a></td><td class=n>{}</td><td class=n>{}</td></tr>",
            esc(&p.processor),
            p.available,
            p.scheduled,
            p.running,
            p.succeeded,
            p.dead,
            p.retries,
            p.oldest_available_s.map_or("—".into(), |s| format!("{s:.1} s")),
        );
    }
    if status.processors.is_empty() {
        b.push_str("<tr><td colspan=8>no tasks</td></tr>");
    }
    b.push_str("</table>");
    b.push_str("<h2>The last 15 minutes</h2>");
    b.push_str(&chart(&lock(&state.samples)));
    b.push_str(
        "<h2>Nodes</h2><table id=nodes><tr><th>node</th><th>host</th><th>pid</th><th>processor</th>\
         <th>state</th><th>last heartbeat</th><th>tasks held</th><th>workers</th>\
         <th>finished</th><th>tasks/s</th><th>busy</th></tr>",
    );
    for n in &status.nodes {
        let _ = write!(
            b,
            "<tr><td class=n>{}</td><td>{}</td><td class=n>{}</td><td>{}</td><td>{}</td>\
             <td class=n>{:.1} s ago</td><td class=n>{}</td><td class=n>{}</td>\
             <td class=n data-node=finished>{}</td><td class=n>{}</td><td class=n>{}</td></tr>",
            n.node_id,
            esc(&n.hostname),
            n.pid,
            esc(&n.processor),
            esc(&n.state),
            n.heartbeat_age_s,
            n.running,
            n.workers.map_or("—".into(), |w| w.to_string()),
            n.finished,
            n.tasks_per_s.map_or("—".into(), |r| format!("{r:.1}")),
            n.busy_ratio
                .map_or("—".into(), |b| format!("{:.0}%", b * 100.0)),
        );
    }
    if status.nodes.is_empty() {
        b.push_str("<tr><td colspan=11>no node alive or stopped in the last hour</td></tr>");
    }
    b.push_str("</table>");
    // Refresh every 5 s unless the user is typing in the search box.
    b.push_str(
        "<script>setInterval(function(){if(document.activeElement.tagName!=='INPUT')location.reload()},5000)</script>",
    );
    html(200, page("queue", &b))
}

/// An SVG chart of the samples: completions per second (succeeded, dead)
/// on the left axis, tasks waiting and running as counts on the right.
fn chart(samples: &VecDeque<Sample>) -> String {
    if samples.len() < 2 {
        return "<p id=chart>collecting: the chart starts after two samples (5 s apart)</p>".into();
    }
    let (w, h) = (720.0, 180.0);
    let first = samples[0].at;
    let span = samples
        .back()
        .unwrap()
        .at
        .duration_since(first)
        .as_secs_f64()
        .max(1.0);
    let mut rates: Vec<(f64, f64, f64)> = Vec::new();
    for pair in samples.iter().collect::<Vec<_>>().windows(2) {
        let dt = pair[1]
            .at
            .duration_since(pair[0].at)
            .as_secs_f64()
            .max(1e-3);
        rates.push((
            pair[1].at.duration_since(first).as_secs_f64(),
            (pair[1].succeeded - pair[0].succeeded).max(0) as f64 / dt,
            (pair[1].dead - pair[0].dead).max(0) as f64 / dt,
        ));
    }
    let top_rate = rates.iter().map(|r| r.1.max(r.2)).fold(1.0, f64::max);
    let top_count = samples
        .iter()
        .map(|s| s.available.max(s.running) as f64)
        .fold(1.0, f64::max);
    let x = |t: f64| 40.0 + t / span * (w - 80.0);
    let y = |v: f64, top: f64| h - 20.0 - v / top * (h - 40.0);
    let line = |points: Vec<(f64, f64)>, color: &str, name: &str| {
        let pts: Vec<String> = points
            .iter()
            .map(|(a, b)| format!("{a:.1},{b:.1}"))
            .collect();
        format!("<polyline data-series=\"{name}\" fill=none stroke=\"{color}\" stroke-width=2 points=\"{}\"/>", pts.join(" "))
    };
    let mut svg = format!(
        "<svg id=chart width={w} height={h} viewBox=\"0 0 {w} {h}\" role=img aria-label=\"rates and counts\">\
         <rect x=40 y=20 width={} height={} fill=none stroke=\"#ccc\"/>",
        w - 80.0,
        h - 40.0
    );
    svg += &line(
        rates.iter().map(|r| (x(r.0), y(r.1, top_rate))).collect(),
        "#2a7",
        "succeeded/s",
    );
    svg += &line(
        rates.iter().map(|r| (x(r.0), y(r.2, top_rate))).collect(),
        "#c33",
        "dead/s",
    );
    let counts = |f: fn(&Sample) -> i64| -> Vec<(f64, f64)> {
        samples
            .iter()
            .map(|s| {
                (
                    x(s.at.duration_since(first).as_secs_f64()),
                    y(f(s) as f64, top_count),
                )
            })
            .collect()
    };
    svg += &line(counts(|s| s.available), "#36c", "available");
    svg += &line(counts(|s| s.running), "#c80", "running");
    let _ = write!(
        svg,
        "<text x=2 y=16 font-size=11>{top_rate:.1}/s</text><text x={} y=16 font-size=11>{top_count:.0} tasks</text>\
         <text x=40 y={} font-size=11>−{:.0} s</text><text x={} y={} font-size=11>now</text>\
         <text x=120 y=14 font-size=11 fill=\"#2a7\">succeeded/s</text><text x=210 y=14 font-size=11 fill=\"#c33\">dead/s</text>\
         <text x=270 y=14 font-size=11 fill=\"#36c\">available</text><text x=340 y=14 font-size=11 fill=\"#c80\">running</text></svg>",
        w - 70.0,
        h - 4.0,
        span,
        w - 64.0,
        h - 4.0
    );
    svg
}

fn dead_page(state: &State, class: Option<&str>, key: Option<&str>, done: Option<&str>) -> Page {
    let (dead, total): (Vec<DeadTask>, i64) =
        match with_queue(state, |q| dlq::list_matching(q, class, key, DEAD_LISTED)) {
            Ok(v) => v,
            Err(e) => {
                return html(
                    503,
                    page("dead letters", &format!("<p class=err>{}</p>", esc(&e))),
                )
            }
        };
    let mut b = String::new();
    if let Some(done) = done {
        let _ = write!(b, "<p class=ok id=done>{}</p>", esc(done));
    }
    let _ = write!(
        b,
        "<form method=get action=\"/dead\">class <select name=class>\
         <option value=\"\">any</option>{}</select> key contains \
         <input name=key value=\"{}\"> <button>filter</button></form>",
        ["permanent", "transient"]
            .iter()
            .map(|c| format!(
                "<option{}>{c}</option>",
                if class == Some(c) { " selected" } else { "" }
            ))
            .collect::<String>(),
        esc(key.unwrap_or(""))
    );
    let _ = write!(
        b,
        "<p id=total>{total} dead letter(s) match{}</p>",
        if total > DEAD_LISTED {
            format!("; the oldest {DEAD_LISTED} are listed")
        } else {
            String::new()
        }
    );
    let forms = !state.read_only;
    if forms {
        let _ = write!(
            b,
            "<form method=post id=selection><input type=hidden name=secret value=\"{}\">",
            esc(&state.secret)
        );
    }
    b.push_str("<table id=dead><tr>");
    if forms {
        b.push_str("<th><input type=checkbox id=all aria-label=\"select all\"></th>");
    }
    b.push_str(
        "<th>key</th><th>processor</th><th>attempts</th><th>class</th><th>kind</th>\
         <th>error</th><th>died</th></tr>",
    );
    for d in &dead {
        b.push_str("<tr>");
        if forms {
            let _ = write!(b, "<td><input type=checkbox name=id value={}></td>", d.id);
        }
        let _ = write!(
            b,
            "<td class=key><a href=\"/task?key={}\">{}</a></td><td>{}</td><td class=n>{}/{}</td>\
             <td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            query_value(&d.idempotency_key),
            esc(&d.idempotency_key),
            esc(&d.processor),
            d.attempts,
            d.max_attempts,
            esc(d.error_class.as_deref().unwrap_or("")),
            esc(d.error_kind.as_deref().unwrap_or("")),
            esc(d.error.as_deref().unwrap_or("")),
            esc(&d.finalized_at)
        );
    }
    b.push_str("</table>");
    if forms {
        b.push_str(
            "<button formaction=\"/dead/retry\" id=retry>retry selected</button> \
             <button formaction=\"/dead/purge\" id=purge>purge selected</button></form>\
             <script>document.getElementById('all').onchange=function(e){\
             document.querySelectorAll('input[name=id]').forEach(function(c){c.checked=e.target.checked})}</script>",
        );
    } else {
        b.push_str("<p>read-only: retry and purge are off</p>");
    }
    html(200, page("dead letters", &b))
}

fn task_page(state: &State, key: Option<&str>) -> Page {
    let Some(key) = key else {
        return html(200, page("task", "<p>give a key: /task?key=…</p>"));
    };
    let rows: Vec<TaskRow> = match with_queue(state, |q| taskq_pg::status::task_by_key(q, key)) {
        Ok(r) => r,
        Err(e) => return html(503, page("task", &format!("<p class=err>{}</p>", esc(&e)))),
    };
    let mut b = format!("<p>key <code id=key>{}</code></p>", esc(key));
    if rows.is_empty() {
        b.push_str("<p id=none>no task has this key</p>");
        return html(404, page("task", &b));
    }
    for t in &rows {
        let output = (t.processor.starts_with("thumbnail") && t.state == "succeeded")
            .then(|| format!("variants/{}/{}", t.size, t.image_key));
        let _ = write!(
            b,
            "<table class=task>\
             <tr><th>processor</th><td>{}</td></tr><tr><th>state</th><td class=state>{}</td></tr>\
             <tr><th>task id</th><td>{}</td></tr><tr><th>image, size</th><td>{} {}</td></tr>\
             <tr><th>attempts</th><td>{} of {}</td></tr><tr><th>node</th><td>{}</td></tr>\
             <tr><th>enqueued</th><td>{}</td></tr><tr><th>runs at</th><td>{}</td></tr>\
             <tr><th>finished</th><td>{}</td></tr><tr><th>last error</th><td>{}</td></tr>\
             <tr><th>output key</th><td>{}</td></tr></table>",
            esc(&t.processor),
            esc(&t.state),
            esc(&t.task_id),
            esc(&t.image_key),
            esc(&t.size),
            t.attempt,
            t.max_attempts,
            t.lease_node.map_or("—".into(), |n| n.to_string()),
            esc(&t.created_at),
            esc(&t.run_at),
            esc(t.finalized_at.as_deref().unwrap_or("—")),
            match (&t.last_error_class, &t.last_error_kind, &t.last_error) {
                (None, None, None) => "—".into(),
                (c, k, m) => esc(&format!(
                    "{} {}: {}",
                    c.as_deref().unwrap_or(""),
                    k.as_deref().unwrap_or(""),
                    m.as_deref().unwrap_or("")
                )),
            },
            esc(output.as_deref().unwrap_or("—")),
        );
    }
    html(200, page("task", &b))
}
