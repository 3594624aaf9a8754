//! SVG plots of a result file: throughput by engine, latency percentiles by
//! engine, and throughput by worker count for a `--workers-sweep`.
//!
//! Every axis of measured values is logarithmic: the engines differ by orders
//! of magnitude, and a linear axis would flatten the slow ones to nothing.

use std::path::{Path, PathBuf};

use plotters::prelude::*;

use super::report::{rate, sibling};
use super::{BenchError, BenchFile, EngineKind, ScenarioResult};

const PANEL_HEIGHT: u32 = 280;
const WIDTH: u32 = 960;

fn color(engine: EngineKind) -> RGBColor {
    match engine {
        EngineKind::Taskq => RGBColor(31, 119, 180),
        EngineKind::Baseline => RGBColor(214, 39, 40),
        EngineKind::Classic => RGBColor(44, 160, 44),
        EngineKind::Mpsc => RGBColor(148, 103, 189),
        EngineKind::Channel => RGBColor(255, 127, 14),
        EngineKind::Rayon => RGBColor(140, 86, 75),
    }
}

/// The name of category `v` (labels sit at segment centres).
fn category(v: &SegmentValue<i32>, names: &[&str]) -> String {
    match v {
        SegmentValue::CenterOf(i) => usize::try_from(*i)
            .ok()
            .and_then(|i| names.get(i))
            .copied()
            .unwrap_or("")
            .to_string(),
        _ => String::new(),
    }
}

/// A compact axis label: `0.05`, `3`, `250`, `12k`, `3.5M`.
fn axis(v: f64) -> String {
    let trim = |s: String| {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    };
    if v >= 1e6 {
        trim(format!("{:.1}", v / 1e6)) + "M"
    } else if v >= 1e3 {
        trim(format!("{:.1}", v / 1e3)) + "k"
    } else if v >= 1.0 {
        trim(format!("{v:.1}"))
    } else {
        trim(format!("{v:.4}"))
    }
}

/// A log axis's tick label: only at 1, 2 and 5 times a power of ten, so
/// that the labels of a narrow range do not run into each other.
fn log_tick(v: f64) -> String {
    if !(v > 0.0 && v.is_finite()) {
        return String::new();
    }
    let m = v / 10f64.powf(v.log10().floor());
    if [1.0, 2.0, 5.0, 10.0]
        .iter()
        .any(|k| (m - k).abs() < 1e-6 * k)
    {
        axis(v)
    } else {
        String::new()
    }
}

/// A log-axis range covering `values` with some room (values ≤ 0 are ignored).
fn log_range(values: impl IntoIterator<Item = f64>) -> std::ops::Range<f64> {
    let (lo, hi) = values
        .into_iter()
        .filter(|v| *v > 0.0 && v.is_finite())
        .fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if lo > hi {
        return 0.1..10.0;
    }
    lo / 2.0..hi * 4.0
}

/// Writes the plots for `file` beside `json` (`<stem>-throughput.svg`,
/// `<stem>-latency.svg`, and `<stem>-workers.svg` when `sweep`); returns their paths.
///
/// # Errors
///
/// [`BenchError::Plot`] when a plot cannot be drawn or written.
pub fn write_all(file: &BenchFile, json: &Path, sweep: bool) -> Result<Vec<PathBuf>, BenchError> {
    let mut out = Vec::new();
    if file.scenarios.is_empty() {
        return Ok(out);
    }
    let p = sibling(json, "throughput", "svg");
    throughput(&file.scenarios, &p)?;
    out.push(p);
    let p = sibling(json, "latency", "svg");
    latency(&file.scenarios, &p)?;
    out.push(p);
    if sweep {
        let p = sibling(json, "workers", "svg");
        workers_sweep(&file.scenarios, &p)?;
        out.push(p);
    }
    Ok(out)
}

fn plot_error(path: &Path) -> impl Fn(String) -> BenchError + '_ {
    move |message| BenchError::Plot {
        path: path.display().to_string(),
        message,
    }
}

/// One panel per scenario: a bar per engine at its median throughput, with a
/// whisker from the slowest to the fastest run.
pub fn throughput(scenarios: &[ScenarioResult], path: &Path) -> Result<(), BenchError> {
    let err = plot_error(path);
    let e = |x: &dyn std::fmt::Display| err(x.to_string());
    let root =
        SVGBackend::new(path, (WIDTH, PANEL_HEIGHT * scenarios.len() as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(|x| e(&x))?;
    for (panel, r) in root
        .split_evenly((scenarios.len(), 1))
        .iter()
        .zip(scenarios)
    {
        let n = r.engines.len();
        let y = log_range(
            r.engines
                .iter()
                .flat_map(|s| [s.throughput_per_s.min, s.throughput_per_s.max]),
        );
        let names: Vec<&str> = r.engines.iter().map(|s| s.engine.name()).collect();
        let mut chart = ChartBuilder::on(panel)
            .caption(
                format!(
                    "{}: throughput (tasks/s, median, min-max whisker)",
                    r.scenario.name
                ),
                ("sans-serif", 16),
            )
            .margin(12)
            .x_label_area_size(28)
            .y_label_area_size(70)
            // One segment per engine; a lone engine gets an empty segment
            // each side (a zero-width range would draw no bar).
            .build_cartesian_2d(
                if n > 1 { 0..n as i32 - 1 } else { -1..1 }.into_segmented(),
                y.clone().log_scale(),
            )
            .map_err(|x| e(&x))?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_label_formatter(&|v| category(v, &names))
            .light_line_style(TRANSPARENT)
            .y_labels(10)
            .y_label_formatter(&|v| log_tick(*v))
            .y_desc("tasks/s")
            .draw()
            .map_err(|x| e(&x))?;
        for (i, s) in (0i32..).zip(&r.engines) {
            let c = color(s.engine);
            let t = s.throughput_per_s;
            let mut bar = Rectangle::new(
                [
                    (SegmentValue::Exact(i), y.start),
                    (SegmentValue::Exact(i + 1), t.median),
                ],
                c.mix(0.8).filled(),
            );
            bar.set_margin(0, 0, 40, 40);
            chart.draw_series([bar]).map_err(|x| e(&x))?;
            let mid = SegmentValue::CenterOf(i);
            chart
                .draw_series([PathElement::new(
                    vec![(mid.clone(), t.min), (mid.clone(), t.max)],
                    BLACK.stroke_width(2),
                )])
                .map_err(|x| e(&x))?;
            let label = match s.vs_baseline {
                Some(v) if s.engine != EngineKind::Baseline => {
                    format!("{} ({v:.1}x)", rate(t.median))
                }
                _ => rate(t.median),
            };
            chart
                .draw_series([Text::new(
                    label,
                    (SegmentValue::Exact(i), t.max * 1.35),
                    ("sans-serif", 13),
                )])
                .map_err(|x| e(&x))?;
        }
    }
    root.present().map_err(|x| e(&x))
}

/// One panel per scenario: mean, p50, p95 and p99 latency, a line per engine.
pub fn latency(scenarios: &[ScenarioResult], path: &Path) -> Result<(), BenchError> {
    let err = plot_error(path);
    let e = |x: &dyn std::fmt::Display| err(x.to_string());
    let root =
        SVGBackend::new(path, (WIDTH, PANEL_HEIGHT * scenarios.len() as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(|x| e(&x))?;
    const LABELS: [&str; 4] = ["mean", "p50", "p95", "p99"];
    for (panel, r) in root
        .split_evenly((scenarios.len(), 1))
        .iter()
        .zip(scenarios)
    {
        let points = |s: &super::EngineSummary| {
            let l = &s.latency_ms;
            [l.mean.median, l.p50.median, l.p95.median, l.p99.median]
                .into_iter()
                .map(|v| v.max(1e-6))
                .zip(0i32..)
                .map(|(v, i)| (SegmentValue::CenterOf(i), v))
                .collect::<Vec<_>>()
        };
        let y = log_range(
            r.engines
                .iter()
                .flat_map(|s| points(s).into_iter().map(|p| p.1)),
        );
        let mut chart = ChartBuilder::on(panel)
            .caption(
                format!(
                    "{}: latency submit -> completion (ms, median of runs)",
                    r.scenario.name
                ),
                ("sans-serif", 16),
            )
            .margin(12)
            .x_label_area_size(28)
            .y_label_area_size(70)
            .build_cartesian_2d((0..3i32).into_segmented(), y.log_scale())
            .map_err(|x| e(&x))?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_label_formatter(&|v| category(v, &LABELS))
            .light_line_style(TRANSPARENT)
            .y_labels(10)
            .y_label_formatter(&|v| log_tick(*v))
            .y_desc("ms")
            .draw()
            .map_err(|x| e(&x))?;
        for s in &r.engines {
            let c = color(s.engine);
            let pts = points(s);
            chart
                .draw_series(LineSeries::new(pts.clone(), c.stroke_width(2)))
                .map_err(|x| e(&x))?
                .label(s.engine.name())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2))
                });
            chart
                .draw_series(pts.into_iter().map(|p| Circle::new(p, 4, c.filled())))
                .map_err(|x| e(&x))?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|x| e(&x))?;
    }
    root.present().map_err(|x| e(&x))
}

/// Median throughput by worker count, a line per engine (one scenario per count).
pub fn workers_sweep(scenarios: &[ScenarioResult], path: &Path) -> Result<(), BenchError> {
    let err = plot_error(path);
    let e = |x: &dyn std::fmt::Display| err(x.to_string());
    let root = SVGBackend::new(path, (WIDTH, 2 * PANEL_HEIGHT)).into_drawing_area();
    root.fill(&WHITE).map_err(|x| e(&x))?;
    let workers: Vec<f64> = scenarios
        .iter()
        .map(|r| r.scenario.workers as f64)
        .collect();
    let wmax = workers.iter().copied().fold(1.0, f64::max);
    let y = log_range(
        scenarios
            .iter()
            .flat_map(|r| r.engines.iter().map(|s| s.throughput_per_s.median)),
    );
    let first = &scenarios[0].scenario;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "{} x{}: median throughput by workers",
                first.workload.name(),
                first.tasks
            ),
            ("sans-serif", 16),
        )
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(70)
        .build_cartesian_2d(
            (0.8f64..wmax * 1.25)
                .log_scale()
                .with_key_points(workers.clone()),
            y.log_scale(),
        )
        .map_err(|x| e(&x))?;
    chart
        .configure_mesh()
        .x_desc("workers")
        .y_desc("tasks/s")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .light_line_style(TRANSPARENT)
        .y_label_formatter(&|v| log_tick(*v))
        .draw()
        .map_err(|x| e(&x))?;
    for engine in EngineKind::EVERY {
        let pts: Vec<(f64, f64)> = scenarios
            .iter()
            .filter_map(|r| {
                r.engine(engine)
                    .map(|s| (r.scenario.workers as f64, s.throughput_per_s.median))
            })
            .collect();
        if pts.is_empty() {
            continue;
        }
        let c = color(engine);
        chart
            .draw_series(LineSeries::new(pts.clone(), c.stroke_width(2)))
            .map_err(|x| e(&x))?
            .label(engine.name())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2)));
        chart
            .draw_series(pts.into_iter().map(|p| Circle::new(p, 4, c.filled())))
            .map_err(|x| e(&x))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|x| e(&x))?;
    root.present().map_err(|x| e(&x))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_ticks_are_labelled_at_one_two_and_five_only() {
        assert_eq!(log_tick(1e6), "1M");
        assert_eq!(log_tick(2e5), "200k");
        assert_eq!(log_tick(5.0), "5");
        assert_eq!(log_tick(3e5), "");
        assert_eq!(log_tick(7e6), "");
        assert_eq!(log_tick(0.0), "");
    }
}

#[cfg(test)]
mod lone_engine {
    use super::*;

    /// dedup-200k ran taskq alone: its panel still draws taskq's bar.
    #[test]
    fn a_scenario_with_one_engine_draws_its_bar() {
        let stored = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../results/suite-2026-11-29.json"
        );
        let file = BenchFile::load(Path::new(stored)).unwrap();
        let lone: Vec<ScenarioResult> = file
            .scenarios
            .into_iter()
            .filter(|r| r.engines.len() == 1)
            .collect();
        assert!(!lone.is_empty());
        let dir = std::env::var_os("TASKQ_PLOT_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        let path = dir.join(format!("lone-engine-{}.svg", std::process::id()));
        throughput(&lone, &path).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        let RGBColor(r, g, b) = color(EngineKind::Taskq);
        let fill = format!("fill=\"#{r:02X}{g:02X}{b:02X}\"");
        assert_eq!(
            svg.matches(&fill).count(),
            lone.len(),
            "one taskq bar per panel: {path:?}"
        );
        if std::env::var_os("TASKQ_PLOT_DIR").is_none() {
            let _ = std::fs::remove_file(&path);
        }
    }
}
