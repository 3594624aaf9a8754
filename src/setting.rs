//! The settings as the library names them, and [`ConfigError`], the error
//! that names one.
//!
//! Invariant: a setting is named by its field, as an embedder writes it in
//! the configuration it builds: a field of [`EngineConfig`](crate::EngineConfig)
//! or of the run's options bare (`workers`, `producers`), a field of a nested
//! section with the section's name (`store.batch_size`, `retry.max_retries`).
//! The library never names a command-line flag; the command line maps each
//! name here to its flag (`taskq_cli::flags::flag_for`).
//!
//! This module imports nothing from the crate, so every module that
//! validates settings (the engine, the store, the processors) may use it
//! without depending on [`Error`](crate::Error), which depends on them.

/// `EngineConfig::workers`.
pub const WORKERS: &str = "workers";
/// `EngineConfig::capacity`.
pub const CAPACITY: &str = "capacity";
/// `EngineConfig::release_batch`.
pub const RELEASE_BATCH: &str = "release_batch";
/// `EngineConfig::task_timeout_ms`.
pub const TASK_TIMEOUT_MS: &str = "task_timeout_ms";
/// `EngineConfig::store`: the idempotency store as a whole.
pub const STORE: &str = "store";
/// `StoreConfig::path`, the database.
pub const STORE_PATH: &str = "store.path";
/// `StoreConfig::batch_size`.
pub const STORE_BATCH_SIZE: &str = "store.batch_size";
/// `StoreConfig::batch_ms`.
pub const STORE_BATCH_MS: &str = "store.batch_ms";
/// `StoreConfig::cache_capacity`.
pub const STORE_CACHE_CAPACITY: &str = "store.cache_capacity";
/// `RetryPolicy::max_retries`.
pub const RETRY_MAX_RETRIES: &str = "retry.max_retries";
/// `RetryPolicy::backoff_base_ms`.
pub const RETRY_BACKOFF_BASE_MS: &str = "retry.backoff_base_ms";
/// `RetryPolicy::backoff_max_ms`.
pub const RETRY_BACKOFF_MAX_MS: &str = "retry.backoff_max_ms";
/// The shutdown timeout (`EngineConfig::shutdown_timeout_ms`), given in seconds.
pub const SHUTDOWN_TIMEOUT: &str = "shutdown_timeout";
/// The processor ([`Processor::name`](crate::Processor::name) among others).
pub const PROCESSOR: &str = "processor";
/// `SimulatedConfig::latency_ms`.
pub const LATENCY_MS: &str = "latency_ms";
/// `SimulatedConfig::jitter_ms`.
pub const JITTER_MS: &str = "jitter_ms";
/// `SimulatedConfig::transient_rate`.
pub const TRANSIENT_RATE: &str = "transient_rate";
/// `SimulatedConfig::permanent_rate`.
pub const PERMANENT_RATE: &str = "permanent_rate";
/// `RunConfig::tasks`, the task file.
pub const TASKS: &str = "tasks";
/// `RunConfig::producers`.
pub const PRODUCERS: &str = "producers";
/// `RunConfig::object_store`, the object store's root.
pub const OBJECT_STORE: &str = "object_store";
/// `RunConfig::seed_images`.
pub const SEED_IMAGES: &str = "seed_images";
/// `RunConfig::max_record_bytes`.
pub const MAX_RECORD_BYTES: &str = "max_record_bytes";
/// `SampleOptions::count`.
pub const COUNT: &str = "count";
/// `SampleOptions::width`.
pub const WIDTH: &str = "width";
/// `SampleOptions::height`.
pub const HEIGHT: &str = "height";
/// `SampleOptions::sizes`.
pub const SIZES: &str = "sizes";

/// Every setting the library names in its errors.
pub const ALL: &[&str] = &[
    WORKERS,
    CAPACITY,
    RELEASE_BATCH,
    TASK_TIMEOUT_MS,
    STORE,
    STORE_PATH,
    STORE_BATCH_SIZE,
    STORE_BATCH_MS,
    STORE_CACHE_CAPACITY,
    RETRY_MAX_RETRIES,
    RETRY_BACKOFF_BASE_MS,
    RETRY_BACKOFF_MAX_MS,
    SHUTDOWN_TIMEOUT,
    PROCESSOR,
    LATENCY_MS,
    JITTER_MS,
    TRANSIENT_RATE,
    PERMANENT_RATE,
    TASKS,
    PRODUCERS,
    OBJECT_STORE,
    SEED_IMAGES,
    MAX_RECORD_BYTES,
    COUNT,
    WIDTH,
    HEIGHT,
    SIZES,
];

/// A setting out of range or inconsistent: which one, and what is accepted.
/// It becomes [`Error::Config`](crate::Error::Config) (`From`).
///
/// # Examples
///
/// ```
/// use taskq::setting::{self, ConfigError};
/// let e = ConfigError::new(setting::WORKERS, "must be at least 1, got 0");
/// assert_eq!(e.to_string(), "invalid setting workers: must be at least 1, got 0");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid setting {setting}: {message}")]
pub struct ConfigError {
    /// The setting, named by its field (one of [`ALL`]).
    pub setting: &'static str,
    /// What is wrong and what is accepted.
    pub message: String,
}

impl ConfigError {
    /// The error naming `setting`.
    pub fn new(setting: &'static str, message: impl Into<String>) -> Self {
        ConfigError {
            setting,
            message: message.into(),
        }
    }
}

/// A setting whose value is one of a few names (`block` or `reject`): the
/// names, what each means, and parsing by name. The command line builds its
/// choices from [`CHOICES`](Choice::CHOICES), so the library and the flags
/// cannot disagree on a spelling.
///
/// # Examples
///
/// ```
/// use taskq::setting::Choice;
/// use taskq::AdmissionMode;
/// assert_eq!(AdmissionMode::from_name("reject"), Some(AdmissionMode::Reject));
/// assert_eq!(AdmissionMode::Block.name(), "block");
/// assert_eq!(AdmissionMode::from_name("Block"), None);
/// ```
pub trait Choice: Copy + PartialEq + 'static {
    /// Every value, its name, and one line on what it does, in the order
    /// help lists them.
    const CHOICES: &'static [(Self, &'static str, &'static str)];

    /// The value's name.
    fn name(self) -> &'static str {
        Self::CHOICES
            .iter()
            .find(|(v, _, _)| *v == self)
            .map(|(_, n, _)| *n)
            .expect("CHOICES lists every value")
    }

    /// The value named `name` (exactly, case-sensitive), if any.
    fn from_name(name: &str) -> Option<Self> {
        Self::CHOICES
            .iter()
            .find(|(_, n, _)| *n == name)
            .map(|(v, _, _)| *v)
    }
}
