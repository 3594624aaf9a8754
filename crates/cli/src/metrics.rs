//! `--metrics-addr`: the live values of a run or a worker node, served in the
//! Prometheus text format (OpenMetrics) at `/metrics`.
//!
//! Nothing is recorded for it: at each scrape the collector reads the
//! engine's live view ([`taskq::engine::Live`]: the workers' single-writer
//! tallies and histograms) and, on a node, what the node holds
//! ([`NodeView`]), and encodes them. The hot path pays nothing per scrape
//! beyond the cache lines the read touches.
//!
//! Names follow Prometheus conventions: a `taskq_` prefix, `_total` on
//! counters, base units (`_seconds`), and a `node` label (the node's first
//! id) on every series of a worker node.

use std::borrow::Cow;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::thread::JoinHandle;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};
use taskq::engine::Live;
use taskq::metrics::Samples;
use taskq::{Error, ProgressHandle};
use taskq_pg::worker::NodeView;

/// The setting's name in errors.
pub const METRICS_ADDR: &str = "--metrics-addr";

/// Histogram bucket bounds, seconds: 1, 2.5 and 5 per decade from 1 µs to
/// 100 s (tasks here take from a microsecond to minutes).
const BOUNDS_S: [f64; 25] = [
    1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2,
    5e-2, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0,
];

/// The Content-Type of the exposition (OpenMetrics text, which Prometheus
/// asks for and parses).
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What a scrape reads: a file run's engine, or a worker node.
#[derive(Clone)]
pub enum Source {
    /// A `taskq run`: the engine's live view.
    Run(ProgressHandle),
    /// A `taskq worker` node: its engine and its claims.
    Node(NodeView),
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Source::Run(_) => "Source::Run",
            Source::Node(_) => "Source::Node",
        })
    }
}

/// A bound `/metrics` endpoint. Bound before any work starts (a bad or
/// taken address fails the run then); [`serve`](Self::serve) starts
/// answering. Dropping it stops the server thread.
pub struct MetricsEndpoint {
    server: Arc<tiny_http::Server>,
    addr: SocketAddr,
    thread: Option<JoinHandle<()>>,
}

impl MetricsEndpoint {
    /// Binds `addr` (`HOST:PORT`; port 0 picks a free one).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming `--metrics-addr` when the address does not
    /// parse or resolve, or cannot be bound (in use, not local, not
    /// permitted).
    pub fn bind(addr: &str) -> Result<MetricsEndpoint, Error> {
        let resolved = addr
            .to_socket_addrs()
            .map_err(|e| {
                Error::config(
                    METRICS_ADDR,
                    format!("expected HOST:PORT (for example 127.0.0.1:9464), got {addr:?}: {e}"),
                )
            })?
            .next()
            .ok_or_else(|| Error::config(METRICS_ADDR, format!("{addr:?} resolves to nothing")))?;
        let server = tiny_http::Server::http(resolved).map_err(|e| {
            Error::config(METRICS_ADDR, format!("cannot listen on {resolved}: {e}"))
        })?;
        let addr = server
            .server_addr()
            .to_ip()
            .expect("an HTTP server bound to an IP address");
        Ok(MetricsEndpoint {
            server: Arc::new(server),
            addr,
            thread: None,
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Says on stderr where the metrics are (the port, when 0 was asked
    /// for, is only known here).
    pub fn announce(&self) {
        eprintln!("taskq: metrics at http://{}/metrics", self.addr);
    }

    /// Answers scrapes from `source` on a thread of its own until dropped.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the thread cannot be started.
    pub fn serve(&mut self, source: Source) -> Result<(), Error> {
        let server = self.server.clone();
        let registry = registry(source);
        let thread = std::thread::Builder::new()
            .name("taskq-metrics".into())
            .spawn(move || {
                for request in server.incoming_requests() {
                    respond(request, &registry);
                }
            })
            .map_err(|e| Error::io("cannot start the metrics thread", e))?;
        self.thread = Some(thread);
        Ok(())
    }
}

impl Drop for MetricsEndpoint {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn respond(request: tiny_http::Request, registry: &Registry) {
    use tiny_http::{Header, Method, Response};
    let header = |k: &str, v: &str| Header::from_bytes(k, v).expect("a valid static header");
    let path = request.url().split('?').next().unwrap_or_default();
    let response = match (request.method(), path) {
        (Method::Get | Method::Head, "/metrics") => {
            let mut text = String::new();
            match prometheus_client::encoding::text::encode(&mut text, registry) {
                Ok(()) => {
                    Response::from_string(text).with_header(header("Content-Type", CONTENT_TYPE))
                }
                Err(_) => {
                    Response::from_string("cannot encode the metrics\n").with_status_code(500)
                }
            }
        }
        (Method::Get | Method::Head, _) => {
            Response::from_string("not found: the metrics are at /metrics\n").with_status_code(404)
        }
        _ => Response::from_string("method not allowed\n")
            .with_status_code(405)
            .with_header(header("Allow", "GET, HEAD")),
    };
    // A scraper that hung up is its own business.
    let _ = request.respond(response);
}

fn registry(source: Source) -> Registry {
    let labels: Vec<(Cow<'static, str>, Cow<'static, str>)> = match &source {
        Source::Run(_) => Vec::new(),
        Source::Node(view) => vec![("node".into(), view.first_node_id().to_string().into())],
    };
    let mut registry = Registry::with_prefix_and_labels("taskq", labels.into_iter());
    registry.register_collector(Box::new(Scrape(source)));
    registry
}

/// The collector: reads the source once per scrape.
#[derive(Debug)]
struct Scrape(Source);

impl Collector for Scrape {
    fn encode(&self, mut e: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let (live, node) = match &self.0 {
            Source::Run(handle) => (handle.live(), None),
            Source::Node(view) => (view.engine().live(), Some(view)),
        };
        encode_engine(&mut e, &live)?;
        if let Some(view) = node {
            encode_node(&mut e, view)?;
        }
        Ok(())
    }
}

fn counter(
    e: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    value: u64,
) -> Result<(), std::fmt::Error> {
    let c = ConstCounter::new(value);
    c.encode(e.encode_descriptor(name, help, unit, c.metric_type())?)
}

fn counter_f(
    e: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    value: f64,
) -> Result<(), std::fmt::Error> {
    let c = ConstCounter::new(value);
    c.encode(e.encode_descriptor(name, help, unit, c.metric_type())?)
}

fn gauge(
    e: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    value: i64,
) -> Result<(), std::fmt::Error> {
    let g = ConstGauge::new(value);
    g.encode(e.encode_descriptor(name, help, unit, g.metric_type())?)
}

fn histogram(
    e: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    samples: &Samples,
    sum_s: f64,
) -> Result<(), std::fmt::Error> {
    let bounds_ns: Vec<u64> = BOUNDS_S.iter().map(|s| (s * 1e9).round() as u64).collect();
    let cumulative = samples.cumulative(&bounds_ns);
    let count = samples.len();
    // The encoder wants each bucket's own count (it sums them), the last
    // one the +Inf bucket (f64::MAX).
    let mut buckets = Vec::with_capacity(BOUNDS_S.len() + 1);
    let mut below = 0;
    for (bound, &c) in BOUNDS_S.iter().zip(&cumulative) {
        buckets.push((*bound, c - below));
        below = c;
    }
    buckets.push((f64::MAX, count - below));
    let mut m = e.encode_descriptor(name, help, Some(&Unit::Seconds), MetricType::Histogram)?;
    m.encode_histogram::<prometheus_client::encoding::NoLabelSet>(sum_s, count, &buckets, None)
}

fn encode_engine(e: &mut DescriptorEncoder<'_>, live: &Live) -> Result<(), std::fmt::Error> {
    let c = &live.counts;
    counter(
        e,
        "tasks_submitted",
        "Submissions to the engine (admitted + rejected).",
        None,
        c.submitted,
    )?;
    counter(
        e,
        "tasks_admitted",
        "Tasks the engine took in.",
        None,
        c.admitted,
    )?;
    counter(
        e,
        "tasks_rejected",
        "Submissions refused (engine full in reject mode, or closed).",
        None,
        c.rejected,
    )?;
    counter(
        e,
        "tasks_started",
        "Tasks whose processing began (their key's claim won).",
        None,
        c.started,
    )?;
    counter(
        e,
        "attempts",
        "Processing attempts, retries included.",
        None,
        c.attempts,
    )?;
    {
        let mut m = e.encode_descriptor(
            "tasks_completed",
            "Tasks completed, by outcome: succeeded, duplicate, dead_lettered, failed.",
            None,
            MetricType::Counter,
        )?;
        for (outcome, n) in [
            ("succeeded", c.succeeded),
            ("duplicate", c.duplicates),
            ("dead_lettered", c.dead_lettered),
            ("failed", c.failed),
        ] {
            let labels = [("outcome", outcome)];
            ConstCounter::new(n).encode(m.encode_family(&labels)?)?;
        }
    }
    counter(
        e,
        "retries",
        "Retries scheduled (a task retried twice counts twice).",
        None,
        c.retried,
    )?;
    gauge(
        e,
        "queue_depth",
        "Tasks the engine holds now: queued, running or waiting to retry.",
        None,
        live.depth as i64,
    )?;
    gauge(
        e,
        "queue_depth_max",
        "Highest queue depth so far.",
        None,
        live.max_depth as i64,
    )?;
    gauge(
        e,
        "queue_capacity",
        "The most tasks the engine holds (its admission bound).",
        None,
        live.capacity as i64,
    )?;
    gauge(
        e,
        "workers",
        "Worker threads.",
        None,
        live.workers.len() as i64,
    )?;
    gauge(
        e,
        "workers_busy",
        "Workers inside a processor call now.",
        None,
        live.workers.iter().filter(|w| w.busy).count() as i64,
    )?;
    counter(
        e,
        "steals",
        "Batches of tasks workers stole from their siblings.",
        None,
        live.workers.iter().map(|w| w.steals).sum(),
    )?;
    {
        let mut m = e.encode_descriptor(
            "worker_busy",
            "Time each worker spent executing tasks.",
            Some(&Unit::Seconds),
            MetricType::Counter,
        )?;
        for w in &live.workers {
            let index = w.index.to_string();
            let labels = [("worker", index.as_str())];
            ConstCounter::new(w.busy_s).encode(m.encode_family(&labels)?)?;
        }
    }
    {
        let mut m = e.encode_descriptor(
            "worker_tasks",
            "Tasks each worker completed.",
            None,
            MetricType::Counter,
        )?;
        for w in &live.workers {
            let index = w.index.to_string();
            let labels = [("worker", index.as_str())];
            ConstCounter::new(w.tasks).encode(m.encode_family(&labels)?)?;
        }
    }
    {
        let mut m = e.encode_descriptor(
            "worker_steals",
            "Batches each worker stole from its siblings.",
            None,
            MetricType::Counter,
        )?;
        for w in &live.workers {
            let index = w.index.to_string();
            let labels = [("worker", index.as_str())];
            ConstCounter::new(w.steals).encode(m.encode_family(&labels)?)?;
        }
    }
    histogram(
        e,
        "task_latency",
        "Submit to completion, per completed task.",
        &live.latency,
        live.latency_sum_s,
    )?;
    histogram(
        e,
        "task_service",
        "Start to end of each processing attempt.",
        &live.service,
        live.service_sum_s,
    )?;
    counter_f(
        e,
        "uptime",
        "Time since the engine started.",
        Some(&Unit::Seconds),
        live.uptime_s,
    )?;
    Ok(())
}

fn encode_node(e: &mut DescriptorEncoder<'_>, view: &NodeView) -> Result<(), std::fmt::Error> {
    counter(
        e,
        "node_claimed",
        "Tasks this node claimed from the queue.",
        None,
        view.claimed(),
    )?;
    gauge(
        e,
        "node_held",
        "Claims held now (claimed, not yet written back).",
        None,
        view.held() as i64,
    )?;
    gauge(
        e,
        "node_capacity",
        "The most claims the node holds.",
        None,
        view.capacity() as i64,
    )?;
    let since = view.since_heartbeat();
    let g = ConstGauge::new(since.as_secs_f64());
    g.encode(e.encode_descriptor(
        "node_heartbeat_age",
        "Time since the node last wrote its heartbeat.",
        Some(&Unit::Seconds),
        g.metric_type(),
    )?)?;
    counter(
        e,
        "node_declared_dead",
        "Times the node was declared dead and registered again.",
        None,
        view.declared_dead(),
    )?;
    counter(
        e,
        "node_reconnects",
        "Connections to the server lost and made again.",
        None,
        view.reconnects(),
    )?;
    gauge(
        e,
        "node_id",
        "The id the node claims under now.",
        None,
        view.node_id(),
    )?;
    Ok(())
}
