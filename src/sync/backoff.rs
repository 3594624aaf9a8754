//! Spin-then-yield backoff for idle loops: `crossbeam-utils`' `Backoff`, or a
//! single loom yield in models (a spin loop would make a model's state space
//! infinite).

/// Exponential backoff for a thread that found nothing to do.
#[cfg(not(feature = "loom"))]
pub(crate) struct Backoff(crossbeam_utils::Backoff);

#[cfg(not(feature = "loom"))]
impl Backoff {
    pub(crate) fn new() -> Self {
        Backoff(crossbeam_utils::Backoff::new())
    }

    /// Spins, and yields the thread once spinning is exhausted.
    pub(crate) fn snooze(&self) {
        self.0.snooze();
    }

    /// True once the caller should park instead of snoozing again.
    pub(crate) fn is_completed(&self) -> bool {
        self.0.is_completed()
    }
}

/// In models: one yield, then completed.
#[cfg(feature = "loom")]
pub(crate) struct Backoff(std::cell::Cell<bool>);

#[cfg(feature = "loom")]
impl Backoff {
    pub(crate) fn new() -> Self {
        Backoff(std::cell::Cell::new(false))
    }

    pub(crate) fn snooze(&self) {
        loom::thread::yield_now();
        self.0.set(true);
    }

    pub(crate) fn is_completed(&self) -> bool {
        self.0.get()
    }
}
