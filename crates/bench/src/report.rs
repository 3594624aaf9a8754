//! Result files and the terminal table: JSON, CSV and where they go.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::{BenchError, BenchFile, EngineSummary, ScenarioResult, Stat};

/// A rate with an SI suffix: `812`, `12.3k`, `25.1M`.
pub fn rate(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if v >= 1e4 {
        format!("{:.1}k", v / 1e3)
    } else {
        format!("{v:.1}")
    }
}

fn ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.4}")
    }
}

/// The terminal table of one scenario.
pub fn render_scenario(r: &ScenarioResult) -> String {
    let mut s = format!("{}\n", r.scenario.describe());
    let _ = writeln!(
        s,
        "  {:<9} {:>26}  {:>8} {:>8} {:>8} {:>8}  {:>6}  {:>14}  {:>26}  {:>9}",
        "engine",
        "tasks/s median [min-max]",
        "mean ms",
        "p50",
        "p95",
        "p99",
        "err%",
        "depth max/mean",
        "makespan s",
        "vs base"
    );
    for e in &r.engines {
        let _ = writeln!(s, "{}", engine_row(e));
    }
    for e in &r.engines {
        if let Some((peer, ratio)) = e.vs_best_peer {
            let _ = writeln!(
                s,
                "  {} ÷ best peer ({}): {ratio:.2}x (medians)",
                e.engine.name(),
                peer.name()
            );
        }
    }
    if let Some(w) = r.work_s {
        let _ = write!(
            s,
            "  single-thread work time {:.3} s [{:.3}-{:.3}]",
            w.median, w.min, w.max
        );
        for e in &r.engines {
            if let Some(p) = e.parallel_efficiency {
                let _ = write!(s, "; {} efficiency {:.2}", e.engine.name(), p.median);
            }
        }
        s.push('\n');
        if let Some(split) = r.split_work_s {
            let cores = r.scenario.workers.min(super::available_cores());
            let _ = write!(
                s,
                "  static split over {cores} threads, no queue: {:.3} s [{:.3}-{:.3}], efficiency {:.2}",
                split.median,
                split.min,
                split.max,
                w.min / (cores as f64 * split.median)
            );
            for e in &r.engines {
                if e.parallel_efficiency.is_some() {
                    let _ = write!(
                        s,
                        "; {} makespan {:.3}x the split's",
                        e.engine.name(),
                        e.makespan_s.median / split.median
                    );
                }
            }
            s.push('\n');
        }
    }
    if let Some(f) = r.fsync_ms {
        let _ = writeln!(
            s,
            "  fsync of 4 KiB in the databases' directory: {:.2} ms median [{:.2}-{:.2}] over repeats",
            f.median, f.min, f.max
        );
    }
    for e in &r.engines {
        if let Some(d) = e.duplicates {
            let rows: Vec<String> = e
                .samples
                .iter()
                .filter_map(|s| s.db_rows.map(|n| n.to_string()))
                .collect();
            let _ = writeln!(
                s,
                "  {} detected {:.0} duplicates (median) of {} keys; rows checked per run: {} (one per unique key); tasks/s = keys/s, makespan up to the last commit",
                e.engine.name(),
                d.median,
                r.scenario.tasks,
                if rows.is_empty() { "-".to_string() } else { rows.join(", ") },
            );
        }
        let writers: Vec<&super::WriterStats> =
            e.samples.iter().filter_map(|s| s.writer.as_ref()).collect();
        if !writers.is_empty() {
            let med =
                |f: fn(&super::WriterStats) -> f64| Stat::of(writers.iter().map(|w| f(w))).median;
            let share = Stat::of(
                e.samples
                    .iter()
                    .filter_map(|s| s.writer.as_ref().map(|w| w.commit_s() / s.makespan_s)),
            )
            .median;
            let _ = writeln!(
                s,
                "  {} writer (medians): {:.0} commits of {:.0} records, {:.2} ms each (p99 {:.2}), {:.0}% of the makespan inside commits; {:.0} evictions, {:.0} history lookups",
                e.engine.name(),
                med(|w| w.batches as f64),
                med(|w| w.records as f64 / w.batches.max(1) as f64),
                med(|w| w.commit_ms_mean),
                med(|w| w.commit_ms_p99),
                share * 100.0,
                med(|w| w.evictions as f64),
                med(|w| w.lookups as f64),
            );
        }
    }
    if r.scenario.faults.is_some() {
        let ideal = Stat::of(
            r.engines
                .first()
                .into_iter()
                .flat_map(|e| e.samples.iter().filter_map(|s| s.ideal_makespan_s)),
        );
        let _ = writeln!(
            s,
            "  an ideal pool (no scheduling cost) on the same failures: makespan {:.3} s median [{:.3}-{:.3}]",
            ideal.median, ideal.min, ideal.max
        );
        for e in &r.engines {
            let retried = Stat::of(e.samples.iter().map(|s| s.retried as f64));
            let _ = write!(
                s,
                "  {} retried {:.0} attempts (median per run) [{:.0}-{:.0}]{}",
                e.engine.name(),
                retried.median,
                retried.min,
                retried.max,
                match e.engine {
                    super::EngineKind::Taskq => ", each waiting in the delay queue",
                    super::EngineKind::Classic
                    | super::EngineKind::Mpsc
                    | super::EngineKind::Channel
                    | super::EngineKind::Rayon => ", each after a sleep in its worker",
                    super::EngineKind::Baseline => ": it does not retry",
                }
            );
            if let Some(v) = e.vs_ideal_on_failures {
                let _ = write!(
                    s,
                    "; makespan {:.2}x the ideal pool's [{:.2}-{:.2}]",
                    v.median, v.min, v.max
                );
            }
            s.push('\n');
        }
    }
    for e in &r.engines {
        if let Some(q) = e.enqueue_s {
            let _ = writeln!(
                s,
                "  {} queued the batch in {:.4} s (median), before the clock started",
                e.engine.name(),
                q.median
            );
        }
    }
    s
}

fn engine_row(e: &EngineSummary) -> String {
    let t = e.throughput_per_s;
    let l = &e.latency_ms;
    let makespan = match (e.ideal_makespan_s, e.makespan_vs_ideal) {
        (Some(i), Some(x)) => format!("{:.3} (ideal {:.3}, {:.2}x)", e.makespan_s.median, i, x),
        _ => format!("{:.4}", e.makespan_s.median),
    };
    format!(
        "  {:<9} {:>26}  {:>8} {:>8} {:>8} {:>8}  {:>6.2}  {:>14}  {:>26}  {:>9}",
        e.engine.name(),
        format!("{} [{}-{}]", rate(t.median), rate(t.min), rate(t.max)),
        ms(l.mean.median),
        ms(l.p50.median),
        ms(l.p95.median),
        ms(l.p99.median),
        e.error_rate * 100.0,
        format!("{}/{:.1}", e.depth_max, e.depth_mean),
        makespan,
        e.vs_baseline
            .map_or_else(|| "-".to_string(), |r| format!("{r:.2}x")),
    )
}

/// The terminal tables of a whole file, and for each scenario with injected
/// failures whose fault-free twin is in the file too, each engine's
/// throughput with failures ÷ without ([`fault_ratios`]).
pub fn render(file: &BenchFile) -> String {
    let mut s = String::new();
    for r in &file.scenarios {
        s.push_str(&render_scenario(r));
        s.push('\n');
    }
    for FaultRatios {
        faulty,
        clean,
        ratios,
        ideal,
    } in fault_ratios(file)
    {
        let _ = writeln!(
            s,
            "{faulty} vs {clean} (median throughput with failures ÷ without):"
        );
        for (engine, ratio) in ratios {
            let _ = writeln!(s, "  {:<9} {ratio:.3}", engine.name());
        }
        if let Some(i) = ideal {
            let _ = writeln!(s, "  {:<9} {i:.3}", "ideal pool");
        }
        s.push('\n');
    }
    s
}

/// A scenario with injected failures against its fault-free twin.
#[derive(Clone, Debug, PartialEq)]
pub struct FaultRatios {
    /// The scenario with failures.
    pub faulty: String,
    /// Its twin without.
    pub clean: String,
    /// Per engine that ran in both: median throughput with failures ÷ median
    /// throughput without.
    pub ratios: Vec<(super::EngineKind, f64)>,
    /// The same for an ideal pool (`sleep` only): the fault-free ideal
    /// makespan ÷ the median of the runs' ideal makespans on their failures.
    pub ideal: Option<f64>,
}

/// For each scenario with [`faults`](super::Scenario::faults) whose twin
/// without faults (same workload, tasks, workers, producers, capacity,
/// latency and queueing) is in `file`: the engines' throughput ratios.
pub fn fault_ratios(file: &BenchFile) -> Vec<FaultRatios> {
    let shape = |sc: &super::Scenario| {
        (
            sc.workload,
            sc.tasks,
            sc.workers,
            sc.producers,
            sc.capacity,
            sc.latency_ms.to_bits(),
            sc.queue_first,
        )
    };
    let mut out = Vec::new();
    for faulty in file
        .scenarios
        .iter()
        .filter(|r| r.scenario.faults.is_some())
    {
        let Some(clean) = file
            .scenarios
            .iter()
            .find(|r| r.scenario.faults.is_none() && shape(&r.scenario) == shape(&faulty.scenario))
        else {
            continue;
        };
        let ratios = faulty
            .engines
            .iter()
            .filter_map(|e| {
                let c = clean.engine(e.engine)?.throughput_per_s.median;
                (c > 0.0).then(|| (e.engine, e.throughput_per_s.median / c))
            })
            .collect();
        let ideal_on_failures = Stat::of(
            faulty
                .engines
                .first()
                .into_iter()
                .flat_map(|e| e.samples.iter().filter_map(|s| s.ideal_makespan_s)),
        )
        .median;
        let ideal = clean
            .scenario
            .ideal_makespan_s()
            .filter(|_| ideal_on_failures > 0.0)
            .map(|i| i / ideal_on_failures);
        out.push(FaultRatios {
            faulty: faulty.scenario.name.clone(),
            clean: clean.scenario.name.clone(),
            ratios,
            ideal,
        });
    }
    out
}

/// The CSV header of [`to_csv`].
pub const CSV_HEADER: &str =
    "scenario,workload,engine,tasks,workers,producers,capacity,latency_ms,queue_first,runs,\
throughput_median,throughput_min,throughput_max,makespan_median_s,makespan_min_s,makespan_max_s,\
ideal_makespan_s,makespan_vs_ideal,latency_mean_ms,latency_p50_ms,latency_p95_ms,latency_p99_ms,\
error_rate,depth_max,depth_mean,vs_baseline,parallel_efficiency,enqueue_s,duplicates,durability,duplicates_detected,\
transient_rate,retried";

/// One CSV row per (scenario, engine), medians unless named otherwise.
pub fn to_csv(file: &BenchFile) -> String {
    let opt = |v: Option<f64>| v.map_or_else(String::new, |v| format!("{v}"));
    let med = |v: Option<Stat>| opt(v.map(|s| s.median));
    let mut s = String::from(CSV_HEADER);
    s.push('\n');
    for r in &file.scenarios {
        let sc = &r.scenario;
        for e in &r.engines {
            let _ = writeln!(
                s,
                "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
                csv_field(&sc.name),
                sc.workload.name(),
                e.engine.name(),
                sc.tasks,
                sc.workers,
                sc.producers,
                sc.effective_capacity(),
                sc.latency_ms,
                sc.queue_first,
                e.runs,
                e.throughput_per_s.median,
                e.throughput_per_s.min,
                e.throughput_per_s.max,
                e.makespan_s.median,
                e.makespan_s.min,
                e.makespan_s.max,
                opt(e.ideal_makespan_s),
                opt(e.makespan_vs_ideal),
                e.latency_ms.mean.median,
                e.latency_ms.p50.median,
                e.latency_ms.p95.median,
                e.latency_ms.p99.median,
                e.error_rate,
                e.depth_max,
                e.depth_mean,
                opt(e.vs_baseline),
                med(e.parallel_efficiency),
                med(e.enqueue_s),
                sc.duplicates,
                if sc.workload == super::Workload::Dedup {
                    sc.durability.name()
                } else {
                    ""
                },
                med(e.duplicates),
                opt(sc.faults.map(|f| f.transient_rate)),
                if sc.faults.is_some() {
                    format!("{}", Stat::of(e.samples.iter().map(|s| s.retried as f64)).median)
                } else {
                    String::new()
                },
            );
        }
    }
    s
}

/// `v` as one CSV field: quoted when it holds a comma, quote or line break.
fn csv_field(v: &str) -> String {
    if v.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v.to_string()
    }
}

/// Where a run's files go: `explicit` (the `--report` path) or
/// `dir/<stem>-<date>.json`.
pub fn json_path(explicit: Option<&Path>, dir: &Path, stem: &str, date: &str) -> PathBuf {
    explicit.map_or_else(
        || dir.join(format!("{stem}-{date}.json")),
        Path::to_path_buf,
    )
}

/// `path` with its extension replaced by `ext`, or `-suffix.ext` added to its stem.
pub fn sibling(path: &Path, suffix: &str, ext: &str) -> PathBuf {
    let stem = path
        .file_stem()
        .map_or_else(|| "bench".into(), |s| s.to_string_lossy().into_owned());
    let name = if suffix.is_empty() {
        format!("{stem}.{ext}")
    } else {
        format!("{stem}-{suffix}.{ext}")
    };
    path.with_file_name(name)
}

/// Writes the JSON to `path` and the CSV beside it; returns the CSV's path.
///
/// # Errors
///
/// [`BenchError::Io`] when a directory or file cannot be written.
pub fn write(file: &BenchFile, path: &Path) -> Result<PathBuf, BenchError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| BenchError::io(format!("cannot create {}", dir.display()), e))?;
    }
    let json = serde_json::to_string_pretty(file).expect("a bench file always serialises") + "\n";
    std::fs::write(path, json)
        .map_err(|e| BenchError::io(format!("cannot write {}", path.display()), e))?;
    let csv = sibling(path, "", "csv");
    std::fs::write(&csv, to_csv(file))
        .map_err(|e| BenchError::io(format!("cannot write {}", csv.display()), e))?;
    Ok(csv)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let p = json_path(None, Path::new("results"), "bench-sleep", "2026-01-02");
        assert_eq!(p, Path::new("results/bench-sleep-2026-01-02.json"));
        assert_eq!(
            sibling(&p, "", "csv"),
            Path::new("results/bench-sleep-2026-01-02.csv")
        );
        assert_eq!(
            sibling(&p, "latency", "svg"),
            Path::new("results/bench-sleep-2026-01-02-latency.svg")
        );
    }

    #[test]
    fn csv_fields_are_quoted_when_needed() {
        assert_eq!(csv_field("seed"), "seed");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }

    #[test]
    fn rates() {
        assert_eq!(rate(812.34), "812.3");
        assert_eq!(rate(12_345.0), "12.3k");
        assert_eq!(rate(25_100_000.0), "25.10M");
    }
}
