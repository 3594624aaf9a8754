//! [`Gate`]: holds workers until a batch is queued (`--queue-first`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};

/// Holds workers until the batch is queued (`--queue-first` for taskq and
/// the rayon peer, whose workers start with the engine).
pub(crate) struct Gate {
    /// Fast path once open. Written once by `open`, read by every task.
    is_open: AtomicBool,
    open: Mutex<bool>,
    opened: Condvar,
}

impl Gate {
    pub(crate) fn new() -> Self {
        Gate {
            is_open: AtomicBool::new(false),
            open: Mutex::new(false),
            opened: Condvar::new(),
        }
    }

    pub(crate) fn wait(&self) {
        // Acquire: pairs with the Release in `open`.
        if self.is_open.load(Ordering::Acquire) {
            return;
        }
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        while !*open {
            open = self.opened.wait(open).unwrap_or_else(|p| p.into_inner());
        }
    }

    pub(crate) fn open(&self) {
        *self.open.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.is_open.store(true, Ordering::Release);
        self.opened.notify_all();
    }
}
