//! The one place the crate takes its synchronisation primitives from.
//!
//! Normally these are `std::sync`, `std::thread`, `crossbeam-deque` and
//! `crossbeam-utils`. Under the `loom` feature they are loom's model-checked
//! types, and the work-stealing deques are replaced by [`loom_deque`], a small
//! mutex-based deque with the same API, so that the engine's own code (admission,
//! parking, the worker loop, drain) runs inside `loom::model` unchanged.
//!
//! Engine code imports only from here. Nothing in the crate uses a `static` atomic.
//!
//! Two loom-only adjustments, each explained where it is made:
//! - atomics are loom's, but constructed with a `SeqCst` store of their initial
//!   value ([`loom_atomic`]), which removes a false alarm of loom's partial
//!   `SeqCst` support on store-load pairs;
//! - `Arc` stays `std::sync::Arc`: reference counting is not one of our
//!   protocols, and loom's `Arc` calls into the model when it is dropped, which
//!   aborts the test process (a panic inside a destructor during unwinding) as
//!   soon as loom reports a deadlock. The deadlock reports are what the
//!   lost-wake-up models and their `should_panic` tests rely on.

#[cfg(not(feature = "loom"))]
pub(crate) use std::sync::{atomic, Arc, Condvar, Mutex, MutexGuard};

#[cfg(feature = "loom")]
pub(crate) use loom::sync::{Condvar, Mutex, MutexGuard};
#[cfg(feature = "loom")]
pub(crate) use std::sync::Arc;

/// Atomics: `std::sync::atomic` normally, [`loom_atomic`] in models.
#[cfg(feature = "loom")]
pub(crate) mod atomic {
    pub(crate) use super::loom_atomic::*;
}

#[cfg(feature = "loom")]
mod loom_atomic;

pub(crate) use crossbeam_utils::CachePadded;

/// Threads: `std::thread` normally, `loom::thread` in models.
pub(crate) mod thread {
    #[cfg(not(feature = "loom"))]
    pub(crate) use std::thread::{Builder, JoinHandle};

    #[cfg(feature = "loom")]
    pub(crate) use loom::thread::{Builder, JoinHandle};
}

/// Work-stealing deques: `crossbeam-deque` normally, [`loom_deque`] in models.
pub(crate) mod deque {
    #[cfg(not(feature = "loom"))]
    pub(crate) use crossbeam_deque::{Injector, Steal, Stealer, Worker};

    #[cfg(feature = "loom")]
    pub(crate) use super::loom_deque::{Injector, Steal, Stealer, Worker};
}

#[cfg(feature = "loom")]
pub(crate) mod loom_deque;

#[cfg(feature = "loom")]
pub(crate) mod fault;

mod backoff;
pub(crate) mod map;
pub(crate) use backoff::Backoff;

/// Locks a mutex, treating poisoning as recoverable: every protected state in the
/// crate stays consistent across a panic (updates are single assignments), and a
/// panicking processor is caught before it can poison anything.
// Under loom, `LOOM_LOCATION` then names the caller, not this helper.
#[cfg_attr(feature = "loom", track_caller)]
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// Waits on a condition variable, with the same poisoning policy as [`lock`].
// Under loom, `LOOM_LOCATION` then names the caller, not this helper.
#[cfg_attr(feature = "loom", track_caller)]
pub(crate) fn wait<'a, T>(cv: &Condvar, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
    match cv.wait(guard) {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// Waits on a condition variable for at most `timeout`.
#[cfg_attr(feature = "loom", allow(dead_code))]
// Under loom, `LOOM_LOCATION` then names the caller, not this helper.
#[cfg_attr(feature = "loom", track_caller)]
pub(crate) fn wait_timeout<'a, T>(
    cv: &Condvar,
    guard: MutexGuard<'a, T>,
    timeout: std::time::Duration,
) -> MutexGuard<'a, T> {
    match cv.wait_timeout(guard, timeout) {
        Ok((g, _)) => g,
        Err(poisoned) => poisoned.into_inner().0,
    }
}
