//! [`EngineConfig`]: every engine setting, and its validation.

use serde::Serialize;

use crate::admission::AdmissionMode;
use crate::error::Error;
use crate::idempotency::StoreConfig;
use crate::processor::ErrorClass;
use crate::retry::RetryPolicy;
use crate::setting;

/// Largest accepted worker count.
pub const MAX_WORKERS: usize = 1024;

/// Largest accepted capacity (tasks held at once).
pub const MAX_CAPACITY: usize = 1 << 32;

pub use crate::scheduler::pin::PinMode;

/// Settings of an [`Engine`](crate::Engine).
///
/// # Examples
///
/// ```
/// use taskq::EngineConfig;
/// let config = EngineConfig { workers: 4, capacity: 1024, ..EngineConfig::default() };
/// assert!(config.validate().is_ok());
/// assert!(EngineConfig { workers: 0, ..EngineConfig::default() }.validate().is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EngineConfig {
    /// Worker threads (the seed: 8).
    pub workers: usize,
    /// Most tasks held at once: queued, running or waiting for a retry (the seed: 200).
    pub capacity: usize,
    /// What a producer does when the engine is full.
    pub admission: AdmissionMode,
    /// Core pinning of workers.
    pub pin: PinMode,
    /// Completions a worker batches before releasing their admission slots;
    /// `None` picks `capacity / (4 × workers)`, clamped to 1..=64.
    pub release_batch: Option<usize>,
    /// Idempotency and persistence; `None` runs without them (every task is
    /// processed, nothing is recorded, failures are not dead-lettered).
    pub store: Option<StoreConfig>,
    /// Retries of transient failures.
    pub retry: RetryPolicy,
    /// An attempt running longer than this is a transient `timeout`.
    pub task_timeout_ms: Option<u64>,
    /// How long shutdown waits for the drain before dead-lettering what is left
    /// with kind `shutdown`; `None` waits for everything.
    pub shutdown_timeout_ms: Option<u64>,
    /// How a processor panic is classed (permanent: a panic is a bug, not a hiccup).
    pub panic_class: ErrorClass,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            workers: 8,
            capacity: 200,
            admission: AdmissionMode::Block,
            pin: PinMode::Auto,
            release_batch: None,
            store: None,
            retry: RetryPolicy::default(),
            task_timeout_ms: None,
            shutdown_timeout_ms: None,
            panic_class: ErrorClass::Permanent,
        }
    }
}

impl EngineConfig {
    /// Checks every setting.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the first setting out of range.
    pub fn validate(&self) -> Result<(), Error> {
        if !(1..=MAX_WORKERS).contains(&self.workers) {
            return Err(Error::config(
                setting::WORKERS,
                format!("must be between 1 and {MAX_WORKERS}, got {}", self.workers),
            ));
        }
        if !(1..=MAX_CAPACITY).contains(&self.capacity) {
            return Err(Error::config(
                setting::CAPACITY,
                format!(
                    "must be between 1 and {MAX_CAPACITY}, got {}",
                    self.capacity
                ),
            ));
        }
        if let Some(b) = self.release_batch {
            if b == 0 || b > self.capacity {
                return Err(Error::config(
                    setting::RELEASE_BATCH,
                    format!(
                        "must be between 1 and the capacity ({}), got {b}",
                        self.capacity
                    ),
                ));
            }
        }
        if let Some(store) = &self.store {
            store.validate()?;
        }
        self.retry.validate()?;
        if self.task_timeout_ms == Some(0) {
            return Err(Error::config(
                setting::TASK_TIMEOUT_MS,
                "must be at least 1, got 0",
            ));
        }
        Ok(())
    }
}
