//! The summary text: the few lines a terminal shows for a [`Report`] and
//! its store section.
//!
//! Invariant: the text is derived from the report alone; everything it says
//! is also in the JSON report.

use super::report::{Report, StoreReport};

impl StoreReport {
    /// One line for a terminal: what the run found in the database. For
    /// example `48 already done in taskq.db (thumbnail/v1 records); 48 records
    /// of simulated there do not count for thumbnail/v1`.
    pub fn summary(&self) -> String {
        let file = std::path::Path::new(&self.path)
            .file_name()
            .map_or_else(|| self.path.clone(), |f| f.to_string_lossy().into_owned());
        let mut s = format!(
            "{done} already done in {file} ({processor} records)",
            processor = self.processor,
            done = self.lookup_hits
        );
        if self.replayed > 0 {
            s.push_str(&format!(
                "; {} records an earlier run could not commit were committed first",
                self.replayed
            ));
        }
        if !self.other_processors.is_empty() {
            let others: Vec<String> = self
                .other_processors
                .iter()
                .map(|o| {
                    let name = if o.processor.is_empty() {
                        "an unknown processor (written before processors were recorded)"
                    } else {
                        &o.processor
                    };
                    format!("{} records of {name}", o.succeeded)
                })
                .collect();
            s.push_str(&format!(
                "; {} there do not count for {}",
                others.join(", "),
                self.processor
            ));
        }
        s
    }
}

impl Report {
    /// A few lines for a terminal.
    pub fn summary(&self) -> String {
        let c = &self.counts;
        let mut s = format!(
            "{status:?}: {succ} succeeded, {dup} duplicates, {dl} dead-lettered, {failed} failed \
             of {adm} admitted ({rej} rejected, {inv} invalid) in {el:.3}s\n\
             throughput {tp:.0} tasks/s; latency ms p50 {p50:.3} p95 {p95:.3} p99 {p99:.3} max {max:.3}\n\
             queue depth max {dmax}/{cap}, mean {dmean:.1}; retries {retried}",
            status = self.status,
            succ = c.succeeded,
            dup = c.duplicates,
            dl = c.dead_lettered,
            failed = c.failed,
            adm = c.admitted,
            rej = c.rejected,
            inv = c.invalid,
            el = self.elapsed_s,
            tp = self.throughput_per_s,
            p50 = self.latency_ms.p50,
            p95 = self.latency_ms.p95,
            p99 = self.latency_ms.p99,
            max = self.latency_ms.max,
            dmax = self.queue_depth.max,
            cap = self.queue_depth.capacity,
            dmean = self.queue_depth.mean,
            retried = c.retried,
        );
        if let Some(store) = &self.store {
            s.push('\n');
            s.push_str(&store.summary());
        }
        if let Some(p) = &self.processor {
            s.push('\n');
            s.push_str(&p.summary());
        }
        if !self.errors.is_empty() {
            s.push_str(&format!(
                "\n{} error(s): see stderr and the report",
                self.errors.len()
            ));
        }
        s
    }
}
