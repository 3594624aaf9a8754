//! A run's idempotency state ([`Idem`]) and how it is set up: open the store,
//! commit an earlier run's recovery file, seed the Bloom filter from the
//! history, and run the writer over the hand-off queue.
//!
//! Invariant: the Bloom filter holds every key the store records as succeeded
//! for this processor before the first task is claimed, so a key it has not
//! seen is new (no store lookup needed); its size is fixed for the run.

use std::sync::Arc as StdArc;
use std::time::Duration;

use compact_str::CompactString;

use super::bloom::Bloom;
use super::claim::ClaimTable;
use super::handoff::Handoff;
use super::writer::{self, Pending, WriterReport, WriterSettings};
use super::{recovery, Durability, ProcessorRecords, Store, StoreConfig, StoreError, StoreWriter};

/// Idempotency state shared by workers and the writer.
pub(crate) struct Idem {
    pub(crate) table: ClaimTable,
    pub(crate) bloom: Bloom,
    pub(crate) store: StdArc<dyn Store>,
    pub(crate) handoff: Handoff<Pending>,
    pub(crate) group_commit: bool,
    /// A worker hands its buffered records over at this many...
    pub(crate) flush_records: usize,
    /// ...or once the oldest has waited this long.
    pub(crate) flush_ns: u64,
    /// Succeeded keys in the history at start (this processor's).
    pub(crate) history_keys: u64,
    pub(crate) cache_capacity: usize,
    pub(crate) path: String,
    /// The processor whose records the engine reads and writes.
    pub(crate) processor: CompactString,
    /// Succeeded records of other processors at start (not done for this one).
    pub(crate) other_processors: Vec<ProcessorRecords>,
    /// Records of an earlier run's recovery file committed at start.
    pub(crate) replayed: u64,
}

/// New keys a run's Bloom filter has room for beyond the history, at about
/// 1% false positives: 12M keys at 10 bits each, rounded up to 16 MiB.
const NEW_KEYS_PER_RUN: u64 = 12_000_000;

/// Opens `store` (or, when `None`, the SQLite file of `store_config`), commits
/// an earlier run's recovery file, and seeds the Bloom filter from
/// `processor`'s history.
///
/// The caller has validated `store_config` and checked that `processor` is
/// not empty.
pub(crate) fn open(
    store_config: &StoreConfig,
    store: Option<StdArc<dyn Store>>,
    processor: &str,
) -> Result<Idem, StoreError> {
    let store: StdArc<dyn Store> = match store {
        Some(s) => s,
        #[cfg(feature = "sqlite")]
        None => StdArc::new(super::SqliteStore::open(
            &store_config.path,
            store_config.sqlite_options(),
        )?),
        #[cfg(not(feature = "sqlite"))]
        None => return Err(StoreError::NoStore),
    };
    let replayed = recovery::replay(&*store)?;
    // Count first, then size the filter for the history plus the keys this run
    // may add. Its size is fixed for the run, so memory does not grow with the
    // input; past NEW_KEYS_PER_RUN new keys its false-positive rate rises and
    // more new keys cost a SQLite lookup (never a wrong answer).
    let history_keys = store.for_each_succeeded_key(processor, &mut |_| {})?;
    let bloom = Bloom::with_capacity(history_keys.saturating_add(NEW_KEYS_PER_RUN));
    store.for_each_succeeded_key(processor, &mut |k| bloom.insert(k))?;
    let other_processors = store.other_processors(processor)?;
    let batch = store_config.batch_size;
    // The queue holds one batch while the writer commits the previous one: the
    // writer always has the next batch ready, and a crash in batch mode loses at
    // most two batches plus the workers' small buffers.
    let handoff = Handoff::new(batch.max(64), batch);
    Ok(Idem {
        table: ClaimTable::new(),
        bloom,
        store,
        handoff,
        group_commit: store_config.durability == Durability::GroupCommit,
        flush_records: batch.min(64),
        flush_ns: store_config.batch_ms * 1_000_000 / 2,
        history_keys,
        cache_capacity: store_config.cache_capacity,
        path: store_config.path.display().to_string(),
        processor: processor.into(),
        other_processors,
        replayed,
    })
}

impl Idem {
    /// Runs the writer on the calling thread until the hand-off queue is
    /// closed and drained: commits batches through `writer` with the batch
    /// and cache settings of `config`, and calls `on_batch` after each.
    pub(crate) fn run_writer(
        &self,
        writer: Box<dyn StoreWriter>,
        config: &StoreConfig,
        on_batch: impl FnMut(&mut Vec<Pending>, Result<(), &StoreError>),
    ) -> WriterReport {
        let settings = WriterSettings::new(
            Duration::from_millis(config.batch_ms),
            config.cache_capacity,
            self.store.recovery_path(),
            &self.processor,
        );
        writer::run(
            writer,
            &self.handoff,
            &self.table,
            &self.bloom,
            settings,
            on_batch,
        )
    }
}
