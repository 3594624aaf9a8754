//! The engine's promises through its public API: bound, conservation,
//! wake-ups, drain and metrics (`engine_promises`), idempotency across runs
//! and crashes of the store (`idempotency`), retries and dead letters
//! (`retry`). One test binary; `tests/idle_cpu.rs` stays apart because it
//! measures the whole process's CPU time.

mod engine_promises;
mod idempotency;
mod retry;
