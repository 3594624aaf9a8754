//! Compares a run with a stored one, and records runs in `PERF.md`.
//!
//! # The regression rule
//!
//! For each scenario in both files with the same settings, and each engine in
//! both, two numbers are compared: median throughput (higher is better) and
//! median mean latency (lower is better). Only taskq's numbers can fail a
//! comparison; baseline and classic are the *control group*. A taskq number
//! has regressed when all three hold:
//!
//! 1. its median is worse than the stored median by more than the threshold
//!    (10% by default);
//! 2. its median lies outside the stored min–max range: on a noisy machine the
//!    spread of the stored repeats is the noise, and a change inside it is not
//!    evidence;
//! 3. it is still worse by more than the threshold once divided by the
//!    scenario's *machine drift*: the median, over the reference engines that
//!    ran in both files, of their current ÷ stored ratio for the same number.
//!    They ran interleaved with taskq in the same repeats, so when the machine
//!    was busier (another build, a noisy neighbour) they slowed down too, and
//!    taskq's slowdown is not taken for a regression. A scenario without
//!    reference engines skips this step.
//!
//! Step 3 can only clear a number, never flag one; its cost is that a change
//! slowing the code taskq shares with the references (the processors, `Task`)
//! is not caught by this check (the criterion benches and the throughput
//! target are there for that).

use std::fmt::Write as _;
use std::path::Path;

use super::report::rate;
use super::{BenchError, BenchFile, EngineKind, Scenario, Stat};

/// One compared number.
#[derive(Clone, Debug, PartialEq)]
pub struct Finding {
    /// Scenario name.
    pub scenario: String,
    /// Engine.
    pub engine: EngineKind,
    /// `throughput/s` or `latency mean ms`.
    pub metric: &'static str,
    /// The stored statistics.
    pub stored: Stat,
    /// This run's statistics.
    pub current: Stat,
    /// Relative change of the median, signed so that negative is worse.
    pub change: f64,
    /// The change once divided by the scenario's machine drift (same sign
    /// convention); `None` for reference engines and scenarios without them.
    pub adjusted: Option<f64>,
    /// True when the rule above flags it (taskq rows only).
    pub regression: bool,
}

/// The outcome of [`compare`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Comparison {
    /// Every compared number.
    pub findings: Vec<Finding>,
    /// Scenarios not compared, with why.
    pub skipped: Vec<String>,
    /// The threshold used (a fraction: 0.10 is 10%).
    pub threshold: f64,
}

impl Comparison {
    /// The findings that regressed.
    pub fn regressions(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| f.regression)
    }

    /// True when something regressed.
    pub fn has_regressions(&self) -> bool {
        self.regressions().next().is_some()
    }

    /// A table for the terminal.
    pub fn render(&self) -> String {
        let mut s = format!(
            "comparison (taskq regresses when its median is worse by >{:.0}%, outside the stored \
             min-max, and still worse by >{:.0}% after the reference engines' drift)\n",
            self.threshold * 100.0,
            self.threshold * 100.0
        );
        let _ = writeln!(
            s,
            "{:<24} {:<9} {:<16} {:>12} {:>25} {:>12} {:>8} {:>9}",
            "scenario",
            "engine",
            "metric",
            "stored",
            "stored min-max",
            "current",
            "change",
            "vs drift"
        );
        for f in &self.findings {
            let _ = writeln!(
                s,
                "{:<24} {:<9} {:<16} {:>12} {:>25} {:>12} {:>+7.1}% {:>9}{}",
                f.scenario,
                f.engine.name(),
                f.metric,
                num(f.stored.median),
                format!("{}-{}", num(f.stored.min), num(f.stored.max)),
                num(f.current.median),
                f.change * 100.0,
                f.adjusted
                    .map_or_else(|| "-".to_string(), |a| format!("{:+.1}%", a * 100.0)),
                if f.regression { "  REGRESSION" } else { "" }
            );
        }
        for k in &self.skipped {
            let _ = writeln!(s, "skipped: {k}");
        }
        let n = self.regressions().count();
        let _ = write!(
            s,
            "{}",
            if n == 0 {
                "no regressions".to_string()
            } else {
                format!("{n} regression(s)")
            }
        );
        s
    }
}

fn num(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.3}")
    }
}

fn same_settings(a: &Scenario, b: &Scenario) -> bool {
    a.workload == b.workload
        && a.tasks == b.tasks
        && a.workers == b.workers
        && a.producers == b.producers
        && a.capacity == b.capacity
        && a.latency_ms == b.latency_ms
        && a.duplicates == b.duplicates
        && a.queue_first == b.queue_first
        && a.taskq_submit == b.taskq_submit
        && a.durability == b.durability
}

/// Compares `current` with `stored` under the module's rule.
pub fn compare(stored: &BenchFile, current: &BenchFile, threshold: f64) -> Comparison {
    let mut out = Comparison {
        threshold,
        ..Comparison::default()
    };
    // Like with like only: numbers from another CPU, or another core count,
    // say nothing about this change.
    let (was, now) = (&stored.machine, &current.machine);
    let other_cpu = !was.cpu.is_empty() && !now.cpu.is_empty() && was.cpu != now.cpu;
    if other_cpu || was.cores != now.cores {
        out.skipped.push(format!(
            "every scenario: the stored file was measured on another machine \
             (stored: {} with {} cores; now: {} with {} cores): compare with a file from this CPU",
            if was.cpu.is_empty() {
                "an unrecorded CPU"
            } else {
                &was.cpu
            },
            was.cores,
            if now.cpu.is_empty() {
                "an unrecorded CPU"
            } else {
                &now.cpu
            },
            now.cores
        ));
        return out;
    }
    for cur in &current.scenarios {
        let name = &cur.scenario.name;
        let Some(old) = stored.scenario(name) else {
            out.skipped.push(format!("{name}: not in the stored file"));
            continue;
        };
        if !same_settings(&old.scenario, &cur.scenario) {
            out.skipped.push(format!(
                "{name}: settings differ (stored: {}; now: {})",
                old.scenario.describe(),
                cur.scenario.describe()
            ));
            continue;
        }
        let pairs: Vec<_> = cur
            .engines
            .iter()
            .filter_map(|e| old.engine(e.engine).map(|o| (o, e)))
            .collect();
        for metric in [Metric::Throughput, Metric::LatencyMean] {
            // Current ÷ stored medians of the reference engines, and their median.
            let mut ratios: Vec<f64> = pairs
                .iter()
                .filter(|(_, e)| e.engine != EngineKind::Taskq)
                .map(|(o, e)| metric.of(e).median / metric.of(o).median)
                .filter(|r| r.is_finite() && *r > 0.0)
                .collect();
            let drift = (!ratios.is_empty()).then(|| Stat::of(ratios.drain(..)).median);
            for (o, e) in &pairs {
                out.findings.push(finding(
                    name,
                    e.engine,
                    metric,
                    metric.of(o),
                    metric.of(e),
                    drift,
                    threshold,
                ));
            }
        }
    }
    out
}

/// A compared number.
#[derive(Clone, Copy)]
enum Metric {
    Throughput,
    LatencyMean,
}

impl Metric {
    fn of(self, e: &super::EngineSummary) -> Stat {
        match self {
            Metric::Throughput => e.throughput_per_s,
            Metric::LatencyMean => e.latency_ms.mean,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Metric::Throughput => "throughput/s",
            Metric::LatencyMean => "latency mean ms",
        }
    }

    /// Relative change from `stored` to `current` (as a ratio `current ÷
    /// stored`), signed so that negative is worse.
    fn change(self, ratio: f64) -> f64 {
        match self {
            Metric::Throughput => ratio - 1.0,
            Metric::LatencyMean => 1.0 - ratio,
        }
    }
}

fn finding(
    scenario: &str,
    engine: EngineKind,
    metric: Metric,
    stored: Stat,
    current: Stat,
    drift: Option<f64>,
    threshold: f64,
) -> Finding {
    let ratio = if stored.median != 0.0 {
        current.median / stored.median
    } else {
        1.0
    };
    let change = metric.change(ratio);
    let outside = match metric {
        Metric::Throughput => current.median < stored.min,
        Metric::LatencyMean => current.median > stored.max,
    };
    let gated = engine == EngineKind::Taskq;
    let adjusted = drift.filter(|_| gated).map(|d| metric.change(ratio / d));
    Finding {
        scenario: scenario.to_string(),
        engine,
        metric: metric.name(),
        stored,
        current,
        change,
        adjusted,
        regression: gated
            && change < -threshold
            && outside
            && adjusted.is_none_or(|a| a < -threshold),
    }
}

/// Appends a dated entry for `file` (written to `json_path`) under the
/// `## History` heading of the Markdown file at `perf_md`, creating the file
/// or the heading when missing. Nothing already there is changed: the entry
/// goes at the end of the History section.
///
/// # Errors
///
/// [`BenchError::Io`] when the file cannot be read or written.
pub fn record(perf_md: &Path, file: &BenchFile, json_path: &Path) -> Result<(), BenchError> {
    let old = match std::fs::read_to_string(perf_md) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => {
            return Err(BenchError::io(
                format!("cannot read {}", perf_md.display()),
                e,
            ))
        }
    };
    // Name the results file relative to PERF.md's folder when it is inside it.
    let base = perf_md
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(|p| p.canonicalize().unwrap_or_else(|_| p.to_path_buf()));
    let json_abs = json_path
        .canonicalize()
        .unwrap_or_else(|_| json_path.to_path_buf());
    let shown = base
        .as_deref()
        .and_then(|b| json_abs.strip_prefix(b).ok())
        .unwrap_or(json_path);
    let new = insert_history(&old, &history_entry(file, shown));
    std::fs::write(perf_md, new)
        .map_err(|e| BenchError::io(format!("cannot write {}", perf_md.display()), e))
}

/// The Markdown entry for one result file.
pub fn history_entry(file: &BenchFile, json_path: &Path) -> String {
    let mut s = format!(
        "### {} · commit {} · {}\n\n`{}` → `{}` ({} cores, {} {})\n\n",
        file.date,
        file.commit.as_deref().unwrap_or("unknown"),
        file.suite
            .as_deref()
            .map_or_else(|| "bench".to_string(), |n| format!("suite {n}")),
        file.command,
        json_path.display(),
        file.machine.cores,
        file.machine.os,
        file.machine.arch,
    );
    s.push_str("| scenario | engine | tasks/s median (min–max) | latency ms mean / p50 / p99 | vs baseline |\n");
    s.push_str("|---|---|---|---|---|\n");
    for sc in &file.scenarios {
        for e in &sc.engines {
            let t = e.throughput_per_s;
            let l = &e.latency_ms;
            let _ = writeln!(
                s,
                "| {} | {} | {} ({}–{}) | {} / {} / {} | {} |",
                sc.scenario.name,
                e.engine.name(),
                rate(t.median),
                rate(t.min),
                rate(t.max),
                num(l.mean.median),
                num(l.p50.median),
                num(l.p99.median),
                e.vs_baseline
                    .map_or_else(|| "–".to_string(), |r| format!("{r:.1}×")),
            );
        }
    }
    s
}

/// `doc` with `entry` added at the end of its `## History` section.
fn insert_history(doc: &str, entry: &str) -> String {
    let lines: Vec<&str> = doc.lines().collect();
    let Some(h) = lines.iter().position(|l| l.trim_end() == "## History") else {
        let mut out = if doc.trim().is_empty() {
            "# Performance\n\nHistory entries are appended by `taskq bench --suite standard --record`.\n".to_string()
        } else {
            doc.trim_end().to_string() + "\n"
        };
        out.push_str("\n## History\n\n");
        out.push_str(entry);
        return out;
    };
    let end = lines[h + 1..]
        .iter()
        .position(|l| l.starts_with("## ") || l.starts_with("# "))
        .map_or(lines.len(), |i| h + 1 + i);
    let mut before = lines[..end].join("\n");
    let before_trimmed = before.trim_end().len();
    before.truncate(before_trimmed);
    let mut out = before + "\n\n" + entry;
    if end < lines.len() {
        out.push('\n');
        out.push_str(&lines[end..].join("\n"));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EngineSummary, LatencySummary, Machine, ScenarioResult};

    /// A file with one seed scenario where each engine has `tp` tasks/s
    /// (min–max ±5%) and a 10 ms mean latency (±5%).
    fn file(tp: [f64; 3]) -> BenchFile {
        let spread = |v: f64| Stat {
            median: v,
            min: v * 0.95,
            max: v * 1.05,
        };
        let engines = EngineKind::ALL
            .iter()
            .zip(tp)
            .map(|(&engine, t)| EngineSummary {
                engine,
                runs: 5,
                throughput_per_s: spread(t),
                makespan_s: Stat::default(),
                latency_ms: LatencySummary {
                    mean: spread(10.0),
                    ..LatencySummary::default()
                },
                error_rate: 0.0,
                depth_max: 0,
                depth_mean: 0.0,
                ideal_makespan_s: None,
                makespan_vs_ideal: None,
                vs_baseline: None,
                vs_best_peer: None,
                parallel_efficiency: None,
                enqueue_s: None,
                duplicates: None,
                vs_ideal_on_failures: None,
                samples: Vec::new(),
            })
            .collect();
        BenchFile {
            suite: None,
            date: "2026-01-01".into(),
            commit: None,
            command: "taskq bench".into(),
            machine: Machine::default(),
            scenarios: vec![ScenarioResult {
                scenario: Scenario::seed(),
                engines,
                work_s: None,
                split_work_s: None,
                fsync_ms: None,
            }],
        }
    }

    #[test]
    fn another_cpu_or_core_count_is_not_compared() {
        let stored = file([100.0, 10.0, 50.0]);
        let mut current = stored.clone();
        assert!(!compare(&stored, &current, 0.1).findings.is_empty());
        current.machine.cpu = "Intel(R) Xeon(R) Platinum 8375C".into();
        let mut amd = stored.clone();
        amd.machine.cpu = "AMD EPYC".into();
        let c = compare(&amd, &current, 0.1);
        assert!(c.findings.is_empty() && !c.has_regressions());
        assert!(c.skipped[0].contains("another machine"), "{:?}", c.skipped);
        let mut more = stored.clone();
        more.machine.cores += 14;
        assert!(compare(&more, &stored, 0.1).findings.is_empty());
    }

    #[test]
    fn a_slower_taskq_regresses_a_slower_machine_does_not() {
        let stored = file([1000.0, 100.0, 500.0]);
        assert!(!compare(&stored, &stored, 0.1).has_regressions());
        // taskq alone 30% slower: a regression.
        let c = compare(&stored, &file([700.0, 100.0, 500.0]), 0.1);
        let r: Vec<_> = c.regressions().collect();
        assert_eq!(r.len(), 1, "{}", c.render());
        assert!((r[0].adjusted.unwrap() + 0.3).abs() < 1e-9);
        // Everything 30% slower: the machine, not taskq.
        let c = compare(&stored, &file([700.0, 70.0, 350.0]), 0.1);
        assert!(!c.has_regressions(), "{}", c.render());
        // Only 8% slower, or inside the stored spread: noise.
        assert!(!compare(&stored, &file([920.0, 100.0, 500.0]), 0.1).has_regressions());
        assert!(!compare(&stored, &file([960.0, 100.0, 500.0]), 0.01).has_regressions());
        // References never fail a comparison.
        assert!(!compare(&stored, &file([1000.0, 10.0, 50.0]), 0.1).has_regressions());
    }

    #[test]
    fn history_is_created_then_appended_in_place() {
        let a = insert_history("", "ENTRY A\n");
        assert_eq!(
            a,
            "# Performance\n\nHistory entries are appended by `taskq bench --suite standard --record`.\n\n## History\n\nENTRY A\n"
        );
        let with_more = format!("{a}\n## Regressions\n\nkeep me\n");
        let b = insert_history(&with_more, "ENTRY B\n");
        assert_eq!(b, format!("{a}\nENTRY B\n\n## Regressions\n\nkeep me\n"));
        let c = insert_history("# Perf\n\nnumbers\n", "E\n");
        assert_eq!(c, "# Perf\n\nnumbers\n\n## History\n\nE\n");
    }
}
