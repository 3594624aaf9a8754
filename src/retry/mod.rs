//! Retries: the backoff policy, and the delay queue where a task waits for its
//! next attempt without holding a worker.
//!
//! - [`RetryPolicy`] (`policy.rs`): attempt → delay, with seeded full jitter.
//! - [`DelayQueue`] (`delay_queue.rs`): the hand-back protocol between the
//!   workers that push a failed task and the timer thread that re-injects it,
//!   with its model-checking notes.

mod delay_queue;
mod policy;

pub use delay_queue::DelayQueue;
pub use policy::RetryPolicy;
