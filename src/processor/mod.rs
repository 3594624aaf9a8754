//! What a worker does with a task: the [`Processor`] trait, its error classes,
//! and the processors shipped with taskq.
//!
//! - [`Noop`]: returns at once (pure scheduling overhead).
//! - [`CpuHash`]: a fixed amount of hashing per task (CPU-bound work).
//! - [`Simulated`]: the seed's blocking I/O: sleeps a latency with jitter, fails
//!   on a seeded schedule, honours the per-attempt deadline.
//!
//! The real job, `Thumbnail`, lives beside the
//! engine in the `taskq-thumbnail` crate, with its object store: this
//! module imports neither.

use std::fmt;
use std::time::Instant;

use compact_str::CompactString;
use serde::{Deserialize, Serialize};

use crate::task::Task;

mod report;
mod simulated;
pub mod stages;
pub use report::{ProcessorReport, StageReport};
pub use simulated::{CpuHash, Simulated, SimulatedConfig, SimulatedError};

/// Whether a failure is worth retrying.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ErrorClass {
    /// Might succeed if tried again: timeouts, temporarily unavailable, I/O hiccups.
    Transient,
    /// Will fail again: bad parameters, missing source, undecodable data, panics.
    Permanent,
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorClass::Transient => "transient",
            ErrorClass::Permanent => "permanent",
        })
    }
}

impl crate::setting::Choice for ErrorClass {
    const CHOICES: &'static [(Self, &'static str, &'static str)] = &[
        (
            ErrorClass::Transient,
            "transient",
            "Might succeed if tried again (retried with backoff)",
        ),
        (
            ErrorClass::Permanent,
            "permanent",
            "Will fail again (dead-lettered at once)",
        ),
    ];
}

/// A failed processing attempt.
///
/// # Examples
///
/// ```
/// use taskq::{ErrorClass, ProcessError};
/// let e = ProcessError::transient("timeout", "took longer than 50 ms");
/// assert_eq!(e.class, ErrorClass::Transient);
/// assert_eq!(e.to_string(), "transient timeout: took longer than 50 ms");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{class} {kind}: {message}")]
pub struct ProcessError {
    /// Retry or not.
    pub class: ErrorClass,
    /// A short machine-readable kind (`timeout`, `unavailable`, `bad_parameter`, …).
    pub kind: CompactString,
    /// A human-readable message.
    pub message: String,
}

impl ProcessError {
    /// A transient failure.
    pub fn transient(kind: &str, message: impl Into<String>) -> Self {
        ProcessError {
            class: ErrorClass::Transient,
            kind: kind.into(),
            message: message.into(),
        }
    }

    /// A permanent failure.
    pub fn permanent(kind: &str, message: impl Into<String>) -> Self {
        ProcessError {
            class: ErrorClass::Permanent,
            kind: kind.into(),
            message: message.into(),
        }
    }
}

/// What a successful processing produced.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Output {
    /// Where the variant was written, if anywhere.
    pub output_key: Option<CompactString>,
}

/// The attempt being made: its number and its deadline.
#[derive(Clone, Copy, Debug)]
pub struct Attempt {
    /// 1 for the first attempt, 2 for the first retry, …
    pub number: u32,
    /// When the attempt times out, if a per-attempt timeout is set. A processor
    /// that can stop early should return a transient `timeout` error by then; the
    /// engine classes an attempt that ends later as a timeout regardless.
    pub deadline: Option<Instant>,
}

impl Attempt {
    /// A first attempt with no deadline.
    pub fn first() -> Self {
        Attempt {
            number: 1,
            deadline: None,
        }
    }
}

/// Produces one image variant.
///
/// Called from worker threads, concurrently for different tasks. An
/// implementation must be idempotent in its effect for one idempotency key (the
/// engine runs a key at most once per success, but a crash between the effect and
/// its record may re-run it; write outputs atomically and deterministically).
/// A panic is caught by the engine and counts as a permanent `panic` failure.
///
/// # Examples
///
/// ```
/// use taskq::{Attempt, Output, ProcessError, Processor, Task};
/// struct Upper;
/// impl Processor for Upper {
///     fn process(&self, task: &Task, _: &Attempt) -> Result<Output, ProcessError> {
///         if task.image_key().ends_with(".jpg") {
///             Ok(Output { output_key: Some(format!("out/{}/{}", task.size(), task.image_key()).into()) })
///         } else {
///             Err(ProcessError::permanent("unsupported", "not a JPEG"))
///         }
///     }
/// }
/// let t = Task::new("img/a.jpg", "200x200".parse().unwrap()).unwrap();
/// assert_eq!(Upper.process(&t, &Attempt::first()).unwrap().output_key.unwrap(), "out/200x200/img/a.jpg");
/// ```
pub trait Processor: Send + Sync + 'static {
    /// Processes one attempt of `task`.
    ///
    /// # Errors
    ///
    /// A [`ProcessError`] whose class decides between retry and dead-letter.
    fn process(&self, task: &Task, attempt: &Attempt) -> Result<Output, ProcessError>;

    /// The name its records carry: the processor and a version of what it
    /// produces (`thumbnail/v1`). A key is done for a run only if its record
    /// was made under the same name, so a record of another processor (or of
    /// an older output format) never makes this one skip a task. Change the
    /// name when the output changes; keep it stable otherwise, or history
    /// stops counting.
    ///
    /// The default is the type's name ([`std::any::type_name`]), which moves
    /// when the type is renamed or moved: a processor whose records matter
    /// should return a name of its own. It must not be empty.
    fn name(&self) -> &str {
        std::any::type_name::<Self>()
    }

    /// The processor's own account of the work done so far (bytes moved, time
    /// per stage), for the run's [`Report`](crate::Report). The runner calls
    /// it once the engine has drained. The default reports nothing.
    fn report(&self) -> Option<ProcessorReport> {
        None
    }
}

/// Does nothing and succeeds: measures the engine alone.
#[derive(Clone, Copy, Debug, Default)]
pub struct Noop;

impl Processor for Noop {
    #[inline]
    fn process(&self, _task: &Task, _attempt: &Attempt) -> Result<Output, ProcessError> {
        Ok(Output::default())
    }
    fn name(&self) -> &str {
        "noop"
    }
}

impl<P: Processor + ?Sized> Processor for std::sync::Arc<P> {
    fn process(&self, task: &Task, attempt: &Attempt) -> Result<Output, ProcessError> {
        (**self).process(task, attempt)
    }
    fn name(&self) -> &str {
        (**self).name()
    }
    fn report(&self) -> Option<ProcessorReport> {
        (**self).report()
    }
}

impl<P: Processor + ?Sized> Processor for Box<P> {
    fn process(&self, task: &Task, attempt: &Attempt) -> Result<Output, ProcessError> {
        (**self).process(task, attempt)
    }
    fn name(&self) -> &str {
        (**self).name()
    }
    fn report(&self) -> Option<ProcessorReport> {
        (**self).report()
    }
}

/// A 64-bit mix of `seed` and `bytes` (FNV-1a, then the splitmix64 finaliser):
/// stable across runs and platforms, for seeded per-task decisions (the
/// simulated processor's faults, the sample images' colours).
///
/// ```
/// use taskq::processor::mix;
/// assert_eq!(mix(7, b"img/000001.jpg"), mix(7, b"img/000001.jpg"));
/// assert_ne!(mix(7, b"img/000001.jpg"), mix(8, b"img/000001.jpg"));
/// ```
pub fn mix(seed: u64, bytes: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    splitmix(h)
}

/// The splitmix64 finaliser: a bijective 64-bit mix, so that consecutive
/// inputs give unrelated outputs.
pub fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Maps a hash to a uniform float in `[0, 1)`.
pub(crate) fn unit(h: u64) -> f64 {
    (h >> 11) as f64 / (1u64 << 53) as f64
}
