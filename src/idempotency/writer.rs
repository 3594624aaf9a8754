//! The write-behind batcher: one thread owns the write connection, takes
//! records from the [`Handoff`] in batches (by size or by time, whichever comes
//! first), commits each batch in one transaction, then evicts the oldest
//! committed keys beyond the hot cache's capacity (adding each to the Bloom
//! filter first).
//!
//! # Commit, then evict
//!
//! A key leaves the hot cache only after its record is committed (step 4 of
//! the claim protocol, [`claim`](super::claim)): the writer evicts only keys
//! of batches it has committed, oldest first, and adds each to the Bloom
//! filter before removing its entry. So a worker that misses the cache finds
//! the key through the filter and the store. `loom_tests/claim.rs` drives
//! [`run`] itself (with an in-memory `StoreWriter`) against the engine's claim
//! step; under the `loom` feature (only) the settings can carry
//! `Fault::EvictBeforeCommit`, which the model must reject.
//!
//! If a commit fails (disk full, database locked past the busy timeout,
//! read-only file), the writer stops committing: the caller is told (the engine
//! stops admission and reports the error), and this batch and every later one
//! are appended to the store's recovery file (`<db>.unsaved.ndjson`), which the
//! next engine on the same store commits before it starts
//! ([`recovery`](super::recovery)), so no record is lost.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use compact_str::CompactString;
use hdrhistogram::Histogram;
use serde::Serialize;

use super::bloom::Bloom;
use super::claim::ClaimTable;
use super::handoff::Handoff;
use super::store::{RecordStatus, StoreError, StoreWriter};

pub use super::store::Pending;
#[cfg(feature = "loom")]
use crate::sync::fault::{self, Fault};

/// What the writer did, for the report.
#[derive(Clone, Debug, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct WriterReport {
    /// Batches committed.
    pub batches: u64,
    /// Task records committed.
    pub records: u64,
    /// Dead letters committed.
    pub dead_letters: u64,
    /// Largest batch committed.
    pub max_batch: u64,
    /// Time per commit, milliseconds.
    pub commit_ms: CommitTimes,
    /// Keys evicted from the hot cache.
    pub evictions: u64,
    /// Records that could not be committed (in the recovery file).
    pub unsaved: u64,
    /// Where unsaved records were written, if any.
    pub recovery_file: Option<String>,
    /// The commit error that stopped the writer, if any.
    pub error: Option<String>,
}

/// Commit time distribution, milliseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct CommitTimes {
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

/// How the writer batches, how many committed keys the hot cache keeps, and
/// where records that cannot be committed go.
#[doc(hidden)]
pub struct WriterSettings {
    linger: Duration,
    cache_capacity: usize,
    /// Where batches that cannot be committed go, if anywhere.
    recovery_path: Option<PathBuf>,
    /// The processor whose records these are (for the recovery file).
    processor: CompactString,
    /// A deliberate bug for the loom models (`sync::fault::with_fault`); the
    /// field does not exist outside loom builds.
    #[cfg(feature = "loom")]
    fault: Option<Fault>,
}

impl WriterSettings {
    /// Batches wait at most `linger` after their first record; at most
    /// `cache_capacity` committed keys stay in the hot cache; unsaved records
    /// of `processor` go to `recovery_path`, if there is one.
    pub fn new(
        linger: Duration,
        cache_capacity: usize,
        recovery_path: Option<PathBuf>,
        processor: &str,
    ) -> Self {
        WriterSettings {
            linger,
            cache_capacity,
            recovery_path,
            processor: processor.into(),
            #[cfg(feature = "loom")]
            fault: fault::injected().filter(|f| *f == Fault::EvictBeforeCommit),
        }
    }

    /// Loom only, `Fault::EvictBeforeCommit`: evict a batch's keys before
    /// committing it.
    #[cfg(feature = "loom")]
    fn evicts_before_commit(&self) -> bool {
        self.fault == Some(Fault::EvictBeforeCommit)
    }

    /// Always false outside loom builds (the fault does not exist there).
    #[cfg(not(feature = "loom"))]
    #[inline(always)]
    fn evicts_before_commit(&self) -> bool {
        false
    }
}

/// Runs the writer until the hand-off is closed and drained. `on_batch` is
/// called after every batch with the batch and the commit's result.
#[doc(hidden)]
pub fn run(
    mut writer: Box<dyn StoreWriter>,
    handoff: &Handoff<Pending>,
    table: &ClaimTable,
    bloom: &Bloom,
    settings: WriterSettings,
    mut on_batch: impl FnMut(&mut Vec<Pending>, Result<(), &StoreError>),
) -> WriterReport {
    let mut report = WriterReport::default();
    let mut commit_ns = Histogram::<u64>::new_with_bounds(1, 3_600_000_000_000, 3)
        .expect("static histogram bounds are valid");
    let mut batch: Vec<Pending> = Vec::new();
    let mut committed_keys: VecDeque<CompactString> = VecDeque::new();
    let mut stopped: Option<StoreError> = None;
    while handoff.recv_batch(settings.linger, &mut batch) {
        if stopped.is_some() {
            save_unsaved(&settings, &mut report, &batch);
            let err = StoreError::WriterStopped(report.error.clone().unwrap_or_default());
            on_batch(&mut batch, Err(&err));
            batch.clear();
            continue;
        }
        let evict_first = settings.evicts_before_commit();
        if evict_first {
            // Loom only, `Fault::EvictBeforeCommit`: the keys leave the cache
            // while their records are not committed yet.
            remember_committed(&batch, &mut committed_keys);
            evict_excess(table, bloom, &settings, &mut committed_keys, &mut report);
        }
        let start = Instant::now();
        let result = writer.commit(&batch);
        commit_ns.saturating_record(start.elapsed().as_nanos() as u64);
        match &result {
            Ok(()) => {
                report.batches += 1;
                report.records += batch.len() as u64;
                report.dead_letters += batch.iter().filter(|p| p.dead.is_some()).count() as u64;
                report.max_batch = report.max_batch.max(batch.len() as u64);
                if !evict_first {
                    remember_committed(&batch, &mut committed_keys);
                    evict_excess(table, bloom, &settings, &mut committed_keys, &mut report);
                }
            }
            Err(e) => {
                report.error = Some(e.to_string());
                save_unsaved(&settings, &mut report, &batch);
            }
        }
        on_batch(&mut batch, result.as_ref().map(|_| ()));
        if let Err(e) = result {
            stopped = Some(e);
        }
        batch.clear();
    }
    if !commit_ns.is_empty() {
        let ms = |ns: u64| ns as f64 / 1e6;
        report.commit_ms = CommitTimes {
            mean: commit_ns.mean() / 1e6,
            p50: ms(commit_ns.value_at_quantile(0.5)),
            p99: ms(commit_ns.value_at_quantile(0.99)),
            max: ms(commit_ns.max()),
        };
    }
    report
}

/// Queues the keys of a committed batch's successes for eviction.
#[inline]
fn remember_committed(batch: &[Pending], committed_keys: &mut VecDeque<CompactString>) {
    committed_keys.extend(
        batch
            .iter()
            .filter(|p| p.record.status == RecordStatus::Succeeded)
            .map(|p| p.record.task.idempotency_key.clone()),
    );
}

/// Evicts the oldest committed keys beyond the cache's capacity; each goes
/// into the Bloom filter first, so a claim that misses the cache after the
/// eviction finds it there (and then in the store).
#[inline]
fn evict_excess(
    table: &ClaimTable,
    bloom: &Bloom,
    settings: &WriterSettings,
    committed_keys: &mut VecDeque<CompactString>,
    report: &mut WriterReport,
) {
    let mut excess = table.len().saturating_sub(settings.cache_capacity);
    while excess > 0 {
        let Some(key) = committed_keys.pop_front() else {
            break;
        };
        bloom.insert(&key);
        if table.evict_committed(&key) {
            report.evictions += 1;
            excess -= 1;
        }
    }
}

/// Appends a batch that could not be committed to the recovery file.
fn save_unsaved(settings: &WriterSettings, report: &mut WriterReport, batch: &[Pending]) {
    report.unsaved += batch.len() as u64;
    let written = match &settings.recovery_path {
        Some(path) => super::recovery::save(path, &settings.processor, batch)
            .map(|()| path)
            .map_err(|e| format!("{}: {e}", path.display())),
        None => Err("this store keeps no recovery file".into()),
    };
    match written {
        Ok(path) => report.recovery_file = Some(path.display().to_string()),
        Err(e) => {
            let msg = format!("{} records could not be saved either: {e}", batch.len());
            report.error = Some(match report.error.take() {
                Some(prev) => format!("{prev}; {msg}"),
                None => msg,
            });
        }
    }
}

#[cfg(all(test, not(feature = "loom")))]
mod tests {
    use super::*;
    use crate::idempotency::TaskRecord;

    fn batch() -> Vec<Pending> {
        let task = crate::Task::new("img/1.jpg", "1x1".parse().unwrap()).unwrap();
        vec![Pending {
            record: TaskRecord {
                task,
                status: RecordStatus::Succeeded,
                finished_at: 1,
                output_key: None,
            },
            dead: None,
            ack: None,
        }]
    }

    fn settings(recovery_path: PathBuf) -> WriterSettings {
        WriterSettings::new(Duration::from_millis(1), 1, Some(recovery_path), "p")
    }

    #[test]
    fn unsaved_records_are_appended_to_a_private_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db.unsaved.ndjson");
        let mut report = WriterReport::default();
        save_unsaved(&settings(path.clone()), &mut report, &batch());
        save_unsaved(&settings(path.clone()), &mut report, &batch());
        assert_eq!(report.error, None);
        assert_eq!(report.unsaved, 2);
        assert_eq!(report.recovery_file, Some(path.display().to_string()));
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_link_planted_at_the_recovery_path_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        let path = dir.path().join("t.db.unsaved.ndjson");
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        let mut report = WriterReport::default();
        save_unsaved(&settings(path.clone()), &mut report, &batch());
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        assert_eq!(report.recovery_file, None);
        let error = report.error.unwrap();
        assert!(error.contains(&path.display().to_string()), "{error}");
        assert!(error.contains("symbolic link"), "{error}");
    }
}
