//! Compares a run with a stored one, and records runs in `PERF.md`.
//!
//! # The regression rule
//!
//! For each scenario in both files with the same settings, and each engine in
//! both, two numbers are compared: median throughput (higher is better) and
//! median mean latency (lower is better). A number has *regressed* when its
//! median is worse than the stored median by more than the threshold (10% by
//! default) **and** lies outside the stored min–max range: on a noisy machine
//! the spread of the stored repeats is the noise, and a change inside it is not
//! evidence. Only taskq's rows can fail a comparison; baseline and classic are
//! references, and a shift in them says the machine changed.

use std::fmt::Write as _;
use std::path::Path;

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
            "comparison (regression: median worse by >{:.0}% and outside the stored min-max; taskq rows only)\n",
            self.threshold * 100.0
        );
        let _ = writeln!(
            s,
            "{:<24} {:<9} {:<17} {:>12} {:>25} {:>12} {:>8}",
            "scenario", "engine", "metric", "stored", "stored min-max", "current", "change"
        );
        for f in &self.findings {
            let _ = writeln!(
                s,
                "{:<24} {:<9} {:<17} {:>12} {:>25} {:>12} {:>+7.1}%{}",
                f.scenario,
                f.engine.name(),
                f.metric,
                num(f.stored.median),
                format!("{}-{}", num(f.stored.min), num(f.stored.max)),
                num(f.current.median),
                f.change * 100.0,
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
}

/// Compares `current` with `stored` under the module's rule.
pub fn compare(stored: &BenchFile, current: &BenchFile, threshold: f64) -> Comparison {
    let mut out = Comparison {
        threshold,
        ..Comparison::default()
    };
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
        for e in &cur.engines {
            let Some(o) = old.engine(e.engine) else {
                continue;
            };
            let gated = e.engine == EngineKind::Taskq;
            out.findings.push(finding(
                name,
                e.engine,
                "throughput/s",
                o.throughput_per_s,
                e.throughput_per_s,
                true,
                gated,
                threshold,
            ));
            out.findings.push(finding(
                name,
                e.engine,
                "latency mean ms",
                o.latency_ms.mean,
                e.latency_ms.mean,
                false,
                gated,
                threshold,
            ));
        }
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn finding(
    scenario: &str,
    engine: EngineKind,
    metric: &'static str,
    stored: Stat,
    current: Stat,
    higher_is_better: bool,
    gated: bool,
    threshold: f64,
) -> Finding {
    let rel = if stored.median != 0.0 {
        (current.median - stored.median) / stored.median
    } else {
        0.0
    };
    let change = if higher_is_better { rel } else { -rel };
    let outside = if higher_is_better {
        current.median < stored.min
    } else {
        current.median > stored.max
    };
    Finding {
        scenario: scenario.to_string(),
        engine,
        metric,
        stored,
        current,
        change,
        regression: gated && change < -threshold && outside,
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
    let new = insert_history(&old, &history_entry(file, json_path));
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
                num(t.median),
                num(t.min),
                num(t.max),
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
            "# Performance\n".to_string()
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

#[cfg(all(test, not(feature = "loom")))]
mod tests {
    use super::*;

    #[test]
    fn history_is_created_then_appended_in_place() {
        let a = insert_history("", "ENTRY A\n");
        assert_eq!(a, "# Performance\n\n## History\n\nENTRY A\n");
        let with_more = format!("{a}\n## Regressions\n\nkeep me\n");
        let b = insert_history(&with_more, "ENTRY B\n");
        assert_eq!(
            b,
            "# Performance\n\n## History\n\nENTRY A\n\nENTRY B\n\n## Regressions\n\nkeep me\n"
        );
        let c = insert_history("# Perf\n\nnumbers\n", "E\n");
        assert_eq!(c, "# Perf\n\nnumbers\n\n## History\n\nE\n");
    }
}
