//! [`ProcessorReport`]: a processor's own account of its work, which the
//! run's [`Report`](crate::Report) carries.
//!
//! Invariant: this module imports nothing from `metrics`; `metrics` imports
//! (and re-exports) these types, so the dependency points one way.

use serde::Serialize;

/// A processor's account of its own work: items produced, bytes moved, and
/// time per stage of its pipeline.
#[derive(Clone, Debug, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct ProcessorReport {
    /// The processor (`thumbnail`).
    pub name: String,
    /// Items produced (for `thumbnail`: variants written).
    pub items: u64,
    /// Items per second of the run's `elapsed_s`.
    pub items_per_s: f64,
    /// Bytes read from storage.
    pub bytes_read: u64,
    /// Bytes written to storage.
    pub bytes_written: u64,
    /// Time per stage, in pipeline order.
    pub stages: Vec<StageReport>,
}

impl ProcessorReport {
    /// Sets `items_per_s` from the run's elapsed time.
    pub fn finish(&mut self, elapsed_s: f64) {
        self.items_per_s = if elapsed_s > 0.0 {
            self.items as f64 / elapsed_s
        } else {
            0.0
        };
    }

    /// One or two lines for a terminal.
    pub fn summary(&self) -> String {
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        let mut s = format!(
            "{name}: {items} written, {rate:.1}/s; read {read:.2} MiB, wrote {written:.2} MiB",
            name = self.name,
            items = self.items,
            rate = self.items_per_s,
            read = mib(self.bytes_read),
            written = mib(self.bytes_written),
        );
        if !self.stages.is_empty() {
            s.push_str(
                "
stage ms total/mean/max:",
            );
            for st in &self.stages {
                s.push_str(&format!(
                    " {} {:.1}/{:.3}/{:.3}",
                    st.name, st.total_ms, st.mean_ms, st.max_ms
                ));
            }
        }
        s
    }
}

/// Time spent in one stage of a processor's pipeline, over all attempts.
#[derive(Clone, Debug, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct StageReport {
    /// The stage (`read`, `decode`, `resize`, `encode`, `write`).
    pub name: String,
    /// Times the stage ran.
    pub count: u64,
    /// Total time, milliseconds (summed over workers, so it can exceed the
    /// elapsed time).
    pub total_ms: f64,
    /// Mean time per run of the stage, milliseconds.
    pub mean_ms: f64,
    /// Longest single run, milliseconds.
    pub max_ms: f64,
}
