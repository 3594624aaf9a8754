//! Merging the recorders into the [`Report`].

use super::{Shared, WorkerExit};
use crate::config::EngineConfig;
use crate::idempotency::writer::WriterReport;
use crate::metrics::{
    Counts, FailureCount, Percentiles, QueueDepth, Rates, Recorder, Rejections, Report, RetryStats,
    RunStatus, StoreReport, WorkerReport,
};
use crate::sync::atomic::Ordering::Relaxed;
use crate::sync::lock;

pub(super) fn build(
    shared: &Shared,
    config: &EngineConfig,
    exits: Vec<WorkerExit>,
    writer: Option<(Recorder, WriterReport)>,
    elapsed_s: f64,
) -> Report {
    let mut merged = Recorder::new();
    let mut workers = Vec::with_capacity(exits.len());
    for exit in &exits {
        let r = &exit.ctx.recorder;
        merged.merge(r);
        workers.push(WorkerReport {
            index: exit.ctx.index,
            core: exit.core,
            tasks: r.completed(),
            attempts: r.attempts.get(),
            steals: r.steals.get(),
            busy_ratio: if exit.wall_ns == 0 {
                0.0
            } else {
                (r.busy_ns.get() as f64 / exit.wall_ns as f64).min(1.0)
            },
        });
    }
    let mut store = None;
    if let (Some(idem), Some((rec, writer))) = (&shared.idem, writer) {
        merged.merge(&rec);
        store = Some(StoreReport {
            path: idem.path.clone(),
            durability: if idem.group_commit {
                "group-commit".into()
            } else {
                "batch".into()
            },
            processor: idem.processor.to_string(),
            history_keys: idem.history_keys,
            other_processors: idem.other_processors.clone(),
            replayed: idem.replayed,
            bloom_bytes: idem.bloom.bytes(),
            cache_capacity: idem.cache_capacity,
            cache_entries: idem.table.len(),
            lookups: merged.history_lookups.get(),
            lookup_hits: merged.history_hits.get(),
            completed_by_writer: rec.completed(),
            writer,
        });
    }
    let (mut submitted, mut admitted, mut full, mut closed) = (0, 0, 0, 0);
    for p in lock(&shared.producers).iter() {
        submitted += p.submitted.load(Relaxed);
        admitted += p.admitted.load(Relaxed);
        full += p.rejected_full.load(Relaxed);
        closed += p.rejected_closed.load(Relaxed);
    }
    let completed = merged.completed();
    let per_s = |n: u64| {
        if elapsed_s > 0.0 {
            n as f64 / elapsed_s
        } else {
            0.0
        }
    };
    let mut errors = Vec::new();
    if let Some(e) = lock(&shared.storage_error).clone() {
        errors.push(format!("storage: {e}"));
    }
    if let Some(s) = &store {
        if let Some(file) = &s.writer.recovery_file {
            errors.push(format!(
                "{} records could not be committed; they are saved in {file}",
                s.writer.unsaved
            ));
        }
    }
    Report {
        status: if errors.is_empty() {
            RunStatus::Completed
        } else {
            RunStatus::Failed
        },
        interrupted_by: None,
        counts: Counts {
            submitted,
            admitted,
            rejected: full + closed,
            invalid: 0,
            started: merged.started.get(),
            attempts: merged.attempts.get(),
            succeeded: merged.succeeded.get(),
            failed: merged.failed.get(),
            duplicates: merged.duplicates.get(),
            retried: merged.retried.get(),
            dead_lettered: merged.dead_lettered.get(),
        },
        rejections: Rejections { full, closed },
        failures: merged
            .failures
            .iter()
            .map(|((class, kind), count)| FailureCount {
                class: *class,
                kind: kind.to_string(),
                count: *count,
            })
            .collect(),
        retries: RetryStats {
            by_attempt: merged
                .retries_by_attempt
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
            wait_s: merged.retry_wait_ns as f64 / 1e9,
        },
        latency_ms: Percentiles::from_histogram(&merged.latency.to_histogram()),
        service_ms: Percentiles::from_histogram(&merged.service.to_histogram()),
        throughput_per_s: per_s(completed),
        elapsed_s,
        queue_depth: QueueDepth {
            capacity: config.capacity,
            max: shared.admission.max_depth(),
            mean: if elapsed_s > 0.0 {
                merged.residence_ns.get() as f64 / 1e9 / elapsed_s
            } else {
                0.0
            },
        },
        rates: Rates {
            enqueue_per_s: per_s(admitted),
            dequeue_per_s: per_s(completed),
        },
        workers,
        invalid_tasks: Vec::new(),
        errors,
        store,
        processor: None,
        config: serde_json::to_value(config).unwrap_or_default(),
    }
}
