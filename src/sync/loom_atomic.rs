//! loom's atomics, each constructed with a `SeqCst` store of its initial value.
//!
//! Loom treats `SeqCst` accesses as acquire/release, except that a `SeqCst`
//! load never returns a `SeqCst` store older than another `SeqCst` store of the
//! same atomic. The value an atomic is created with is recorded as a plain
//! release store, so that rule does not cover it: a `SeqCst` load can still
//! read the initial value after a newer `SeqCst` store. That is a false alarm
//! for every store-load (Dekker) pair whose flag starts at its initial value:
//! `Admission`'s `waiters`, `Sleep`'s `sleepers`. Under C++20 (and Rust's)
//! rules such a load cannot read the initial value: the load would be
//! coherence-ordered before the newer store, and with the other side's pair
//! that closes a cycle in the single total order of `SeqCst` operations.
//!
//! Repeating the initial value as a `SeqCst` store at construction (before the
//! atomic is shared) brings it under loom's rule and changes nothing else: the
//! models then reject only what the real memory model allows. Code that uses
//! weaker orderings is modelled exactly as before (a `Relaxed` or `Acquire`
//! load may still read the initial value), which is what lets
//! `Fault::WeakOrdering` be caught.
//!
//! The wrappers dereference to loom's types, so every operation is loom's own.

pub(crate) use loom::sync::atomic::{fence, Ordering};

macro_rules! seq_cst_initialised {
    ($($name:ident($int:ty)),* $(,)?) => {$(
        #[doc = concat!("loom's `", stringify!($name), "`, initialised with a `SeqCst` store.")]
        #[derive(Debug)]
        #[allow(dead_code)] // not every width is in use at every moment
        pub(crate) struct $name(loom::sync::atomic::$name);

        #[allow(dead_code)]
        impl $name {
            #[track_caller]
            pub(crate) fn new(value: $int) -> Self {
                let atomic = loom::sync::atomic::$name::new(value);
                atomic.store(value, Ordering::SeqCst);
                $name(atomic)
            }
        }

        impl Default for $name {
            #[track_caller]
            fn default() -> Self {
                Self::new(Default::default())
            }
        }

        impl std::ops::Deref for $name {
            type Target = loom::sync::atomic::$name;

            fn deref(&self) -> &Self::Target {
                &self.0
            }
        }
    )*};
}

seq_cst_initialised!(
    AtomicBool(bool),
    AtomicU32(u32),
    AtomicU64(u64),
    AtomicUsize(usize),
    AtomicI64(i64),
);
