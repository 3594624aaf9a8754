//! One job on a worker: claim the key, run the attempt, and settle the outcome
//! (success, retry, dead letter, duplicate), then complete the task.
//!
//! # A job's way through
//!
//! 1. First attempt only: claim the idempotency key ([`claim`](crate::idempotency::claim)).
//!    A duplicate or a conflict completes at once; a key in flight for a task
//!    with other parameters sends the job to the delay queue for a moment.
//! 2. If the store failed earlier, the task is not run: it fails unrecorded with
//!    kind `storage_unavailable` (a rerun does it). If shutdown timed out, it is
//!    not run either: it is dead-lettered with kind `shutdown` (nothing is
//!    dropped silently).
//! 3. The attempt runs under `catch_unwind` with its deadline; a panic is a failed
//!    attempt (class configurable, permanent by default), an attempt that overran
//!    its deadline is a transient `timeout`.
//! 4. Success: the key's cache entry becomes done, the record goes to the writer.
//!    Transient failure with retries left: the job goes to the delay queue,
//!    keeping its admission slot and its claim. Otherwise: the claim is given up
//!    and the task is dead-lettered (or, without a store, failed).
//! 5. Completion: one latency sample, one admission slot released, the observer
//!    told and the outcome logged (`debug` for failures, retries and dead
//!    letters, `trace` for the rest; off by default, at the cost of one
//!    load). In group-commit mode a task with a record completes only after
//!    the writer committed it (see [`Shared::complete_batch`]).

use std::mem::MaybeUninit;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

use compact_str::CompactString;
use tracing::Level;

use super::{Job, Outcome, Shared, WorkerCtx};
use crate::idempotency::claim::Claim;
use crate::idempotency::writer::Pending;
use crate::idempotency::{DeadLetter, RecordStatus, StoreError, TaskRecord};
use crate::metrics::Recorder;
use crate::processor::{Attempt, ErrorClass, Output, ProcessError};
use crate::sync::atomic::Ordering::Relaxed;
use crate::task::unix_millis;

/// Outcome of the claim step.
enum Claimed {
    /// Process the task.
    Proceed,
    /// Completed as a duplicate (or a conflict); nothing more to do.
    Settled,
    /// Parked in the delay queue to claim again shortly.
    Deferred,
}

impl Shared {
    /// Runs one job on the calling worker and returns the clock reading at its
    /// end.
    ///
    /// `start` is when the worker turned to this job: the end of its previous
    /// job when it went straight on, or a fresh reading after it was idle. So
    /// service time is the worker's whole time on the task, fetching included,
    /// and costs one clock read per task instead of two.
    pub(crate) fn execute(&self, mut job: Box<Job>, start: u64, ctx: &mut WorkerCtx) -> u64 {
        let mut expired = false;
        if let Some(retry) = &mut job.retry {
            if retry.queued_at != 0 {
                ctx.recorder.retry_wait_ns +=
                    u128::from(self.clock.delta_as_nanos(retry.queued_at, self.clock.raw()));
                retry.queued_at = 0;
            }
            expired = retry.expired;
        }
        if !job.claimed {
            match self.claim(&mut job, ctx) {
                Claimed::Proceed => {}
                Claimed::Settled => {
                    let end = self.clock.raw();
                    self.complete(job.submitted_at, end, ctx);
                    ctx.spare.recycle(&self.pool, job);
                    return end;
                }
                Claimed::Deferred => {
                    job.retry_mut().queued_at = self.clock.raw();
                    self.delay
                        .push(job, Instant::now() + std::time::Duration::from_millis(1));
                    return self.clock.raw();
                }
            }
        }
        if self.storage_down.load(Relaxed) {
            // Nothing more is run once records cannot be kept: the task is
            // failed unrecorded (and the dead-letter queue lives in the same
            // store), so a rerun of the input does it.
            let end = self.clock.raw();
            if job.claimed {
                if let Some(idem) = &self.idem {
                    idem.table.abandon(&job.task.idempotency_key);
                }
            }
            let e = ProcessError::transient(
                "storage_unavailable",
                "not run: the store failed earlier in this run",
            );
            ctx.recorder.failure(e.class, &e.kind);
            ctx.recorder.failed.add(1);
            self.observe(&job.task, Outcome::Failed { error: &e });
            self.complete(job.submitted_at, end, ctx);
            ctx.spare.recycle(&self.pool, job);
            return end;
        }
        if expired || self.expiring.load(Relaxed) {
            let reason = match job.retry.as_mut().and_then(|r| r.last_error.take()) {
                Some(e) => format!("shutdown timed out while waiting to retry (last error: {e})"),
                None => "shutdown timed out before the task ran".to_string(),
            };
            let end = self.clock.raw();
            self.fail_for_good(
                &mut job,
                ProcessError::transient("shutdown", reason),
                end,
                ctx,
            );
            ctx.spare.recycle(&self.pool, job);
            return end;
        }

        let number = job.task.attempts + 1;
        let deadline = self.task_timeout.map(|t| Instant::now() + t);
        let attempt = Attempt { number, deadline };
        // The processor writes its result straight into `returned`. Returned
        // through `catch_unwind` (or into an `Option`, which must stay `None`
        // if the call panics), the result was copied with wide loads right
        // after the processor's narrow stores: a store-forwarding stall that
        // cost a quarter of this function on no-op tasks (under a fifth now:
        // the compiler still moves part of the result through the stack).
        let mut returned = MaybeUninit::<Result<Output, ProcessError>>::uninit();
        ctx.recorder.begin();
        let caught = catch_unwind(AssertUnwindSafe(|| {
            returned.write(self.processor.process(&job.task, &attempt));
        }));
        let end = self.clock.raw();
        job.task.attempts = number;
        let rec = &ctx.recorder;
        rec.served(self.clock.delta_as_nanos(start, end));
        if number == 1 {
            rec.started.add(1);
        }
        let result = match caught.map(|()| {
            // SAFETY: the closure returned normally, so its only statement,
            // the `write`, completed: `returned` is initialised, and it is
            // read once, here.
            unsafe { returned.assume_init() }
        }) {
            Ok(Ok(_)) if deadline.is_some_and(|d| Instant::now() > d) => {
                Err(ProcessError::transient(
                    "timeout",
                    format!(
                        "attempt ran longer than the task timeout of {:?}",
                        self.task_timeout.unwrap_or_default()
                    ),
                ))
            }
            Ok(r) => r,
            Err(panic) => Err(ProcessError {
                class: self.panic_class,
                kind: "panic".into(),
                message: panic_message(&*panic),
            }),
        };
        match result {
            Ok(output) => {
                self.succeed(&mut job, output, end, ctx);
                ctx.spare.recycle(&self.pool, job);
            }
            Err(e) => {
                ctx.recorder.failure(e.class, &e.kind);
                if e.class == ErrorClass::Transient && self.retry.allows_retry(number) {
                    self.schedule_retry(job, e, ctx);
                } else {
                    self.fail_for_good(&mut job, e, end, ctx);
                    ctx.spare.recycle(&self.pool, job);
                }
            }
        }
        end
    }

    /// Step 1.
    fn claim(&self, job: &mut Job, ctx: &mut WorkerCtx) -> Claimed {
        let Some(idem) = &self.idem else {
            return Claimed::Proceed;
        };
        let task = &job.task;
        let fingerprint = idem.table.task_fingerprint(task);
        let key = &task.idempotency_key;
        let history = idem
            .table
            .claim_with_history(&idem.bloom, key, fingerprint, || {
                self.history(key, fingerprint, ctx)
            });
        let claim = match history {
            Ok(claim) => claim,
            Err(e) => {
                let e = ProcessError::transient("store", e.to_string());
                ctx.recorder.failure(e.class, &e.kind);
                ctx.recorder.failed.add(1);
                self.observe(task, Outcome::Failed { error: &e });
                return Claimed::Settled;
            }
        };
        match claim {
            Claim::New => {
                job.claimed = true;
                Claimed::Proceed
            }
            Claim::InFlight | Claim::Done(_) => {
                ctx.recorder.duplicates.add(1);
                let output = match &claim {
                    Claim::Done(o) => o.as_deref(),
                    _ => None,
                };
                self.observe(task, Outcome::Duplicate { output });
                Claimed::Settled
            }
            Claim::Contended => Claimed::Deferred,
            Claim::Conflict => {
                let e = ProcessError::permanent(
                    "idempotency_conflict",
                    format!(
                        "idempotency key {:?} is already used for a task with other parameters",
                        task.idempotency_key
                    ),
                );
                ctx.recorder.failure(e.class, &e.kind);
                ctx.recorder.failed.add(1);
                self.observe(task, Outcome::Failed { error: &e });
                Claimed::Settled
            }
        }
    }

    /// Step 1, second half: a key new to the cache that the Bloom filter may
    /// hold is looked up in the store (the decision is
    /// [`ClaimTable::claim_with_history`](crate::idempotency::ClaimTable::claim_with_history)'s).
    fn history(
        &self,
        key: &str,
        fingerprint: u64,
        ctx: &mut WorkerCtx,
    ) -> Result<Option<crate::idempotency::Recorded>, StoreError> {
        let idem = self.idem.as_ref().expect("called with idempotency on");
        ctx.recorder.history_lookups.add(1);
        let reader = match &mut ctx.reader {
            Some(r) => r,
            None => ctx.reader.insert(idem.store.reader(&idem.processor)?),
        };
        let recorded = reader.lookup_succeeded(key)?;
        if let Some(r) = &recorded {
            // Done by this processor in an earlier run (a record of the key
            // for other parameters is a conflict, counted as such).
            if idem.table.fingerprint(&r.image_key, &r.size) == fingerprint {
                ctx.recorder.history_hits.add(1);
            }
        }
        Ok(recorded)
    }

    /// Step 4, success. The task moves into its record; the emptied job's box
    /// is recycled by the caller.
    fn succeed(&self, job: &mut Job, output: Output, end: u64, ctx: &mut WorkerCtx) {
        let Some(idem) = &self.idem else {
            ctx.recorder.succeeded.add(1);
            self.observe(&job.task, Outcome::Succeeded { output: &output });
            self.complete(job.submitted_at, end, ctx);
            return;
        };
        idem.table
            .finish(&job.task.idempotency_key, output.output_key.clone());
        let group = idem.group_commit;
        if !group {
            ctx.recorder.succeeded.add(1);
            self.observe(&job.task, Outcome::Succeeded { output: &output });
        }
        let submitted_at = job.submitted_at;
        self.hand_to_writer(
            Pending {
                record: TaskRecord {
                    task: std::mem::replace(&mut job.task, crate::Task::empty()),
                    status: RecordStatus::Succeeded,
                    finished_at: unix_millis(),
                    output_key: output.output_key,
                },
                dead: None,
                ack: group.then_some(submitted_at),
            },
            ctx,
        );
        if !group {
            self.complete(submitted_at, end, ctx);
        }
    }

    /// Step 4, retry: the job waits in the delay queue, not on this worker.
    fn schedule_retry(&self, mut job: Box<Job>, e: ProcessError, ctx: &mut WorkerCtx) {
        let number = job.task.attempts;
        ctx.recorder.retried.add(1);
        *ctx.recorder.retries_by_attempt.entry(number).or_insert(0) += 1;
        let delay = self.retry.delay(&job.task.idempotency_key, number);
        if log_enabled(Level::DEBUG) {
            log_retry(&job.task, &e, delay);
        }
        let now = self.clock.raw();
        let retry = job.retry_mut();
        if retry.first_failed_at == 0 {
            retry.first_failed_at = unix_millis();
        }
        retry.last_error = Some(e);
        retry.queued_at = now;
        self.delay.push(job, Instant::now() + delay);
    }

    /// Step 4, failure for good: dead-letter (with a store) or fail. The task
    /// moves into its record; the emptied job's box is recycled by the caller.
    fn fail_for_good(&self, job: &mut Job, e: ProcessError, end: u64, ctx: &mut WorkerCtx) {
        let Some(idem) = &self.idem else {
            ctx.recorder.failed.add(1);
            self.observe(&job.task, Outcome::Failed { error: &e });
            self.complete(job.submitted_at, end, ctx);
            return;
        };
        if job.claimed {
            idem.table.abandon(&job.task.idempotency_key);
        }
        let group = idem.group_commit;
        if !group {
            ctx.recorder.dead_lettered.add(1);
            self.observe(&job.task, Outcome::DeadLettered { error: &e });
        }
        let now = unix_millis();
        let submitted_at = job.submitted_at;
        let dead = DeadLetter {
            task: job.task.clone(),
            processor: idem.processor.to_string(),
            class: e.class,
            kind: e.kind.to_string(),
            message: e.message,
            attempts: job.task.attempts,
            first_failed_at: match job.retry.as_ref().map(|r| r.first_failed_at) {
                Some(t) if t != 0 => t,
                _ => now,
            },
            last_failed_at: now,
        };
        self.hand_to_writer(
            Pending {
                record: TaskRecord {
                    task: std::mem::replace(&mut job.task, crate::Task::empty()),
                    status: RecordStatus::Failed,
                    finished_at: now,
                    output_key: None,
                },
                dead: Some(dead),
                ack: group.then_some(submitted_at),
            },
            ctx,
        );
        if !group {
            self.complete(submitted_at, end, ctx);
        }
    }

    /// Buffers a record on the worker and hands the buffer to the writer when it
    /// is full or its oldest record has waited half the batch time.
    fn hand_to_writer(&self, pending: Pending, ctx: &mut WorkerCtx) {
        if ctx.pending.is_empty() {
            ctx.pending_since = self.clock.raw();
        }
        ctx.pending.push(pending);
        let idem = self.idem.as_ref().expect("called with idempotency on");
        if ctx.pending.len() >= idem.flush_records
            || self
                .clock
                .delta_as_nanos(ctx.pending_since, self.clock.raw())
                >= idem.flush_ns
        {
            self.flush_writes(ctx);
        }
    }

    /// Hands the worker's buffered records to the writer (blocking while the
    /// writer's queue is full: back-pressure). If the writer has stopped, the
    /// records go to the recovery file through it regardless: the hand-off is
    /// only closed after the workers exit.
    pub(crate) fn flush_writes(&self, ctx: &mut WorkerCtx) {
        if ctx.pending.is_empty() {
            return;
        }
        let idem = self.idem.as_ref().expect("records only exist with a store");
        if let Err(closed) = idem.handoff.send_all(&mut ctx.pending) {
            // Unreachable by construction (closed after workers exit); keep the
            // records rather than lose them.
            debug_assert!(false, "hand-off closed while workers run");
            ctx.pending = closed.0;
        }
    }

    /// Group-commit completion, on the writer thread after a batch's commit.
    pub(crate) fn complete_batch(
        &self,
        batch: &[Pending],
        result: Result<(), &StoreError>,
        rec: &mut Recorder,
    ) {
        let mut released = 0;
        let now = self.clock.raw();
        for p in batch {
            let Some(submitted_at) = p.ack else {
                continue;
            };
            let task = &p.record.task;
            match (result, &p.dead) {
                (Ok(()), None) => {
                    rec.succeeded.add(1);
                    let output = Output {
                        output_key: p.record.output_key.clone(),
                    };
                    self.observe(task, Outcome::Succeeded { output: &output });
                }
                (Ok(()), Some(d)) => {
                    rec.dead_lettered.add(1);
                    let e = ProcessError {
                        class: d.class,
                        kind: CompactString::from(d.kind.as_str()),
                        message: d.message.clone(),
                    };
                    self.observe(task, Outcome::DeadLettered { error: &e });
                }
                (Err(err), _) => {
                    let e = ProcessError::transient(
                        "storage",
                        format!("the task's record was not committed: {err}"),
                    );
                    rec.failure(e.class, &e.kind);
                    rec.failed.add(1);
                    self.observe(task, Outcome::Failed { error: &e });
                }
            }
            rec.complete(self.clock.delta_as_nanos(submitted_at, now));
            released += 1;
        }
        if self.admission.release(released).is_some() {
            self.on_drained();
        }
    }
}

/// Whether an event at `level` can be enabled at all: the global maximum
/// level, one relaxed load. With logging at its default (`warn`), every task
/// event is off here, so the hot path pays this check and a branch, and the
/// events themselves are built out of line.
#[inline]
pub(super) fn log_enabled(level: Level) -> bool {
    level <= tracing::level_filters::STATIC_MAX_LEVEL
        && level <= tracing::level_filters::LevelFilter::current()
}

/// Step 4's log event for a transient failure that will be retried (`debug`).
#[cold]
#[inline(never)]
fn log_retry(task: &crate::Task, e: &ProcessError, delay: std::time::Duration) {
    tracing::debug!(
        task_id = %task.id,
        idempotency_key = %task.idempotency_key,
        attempt = task.attempts,
        class = %e.class,
        kind = %e.kind,
        outcome = "retry_scheduled",
        delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
        "attempt failed, retry scheduled: {}",
        e.message
    );
}

/// Step 5's log event: how a task ended, with its id, key, attempts and (for
/// a failure) the error's class and kind as fields. Failures are `debug`,
/// successes and duplicates (the bulk of a run) `trace`. Called only when
/// [`log_enabled`] for `debug`.
#[cold]
#[inline(never)]
pub(super) fn log_outcome(task: &crate::Task, outcome: &Outcome<'_>) {
    match outcome {
        Outcome::Succeeded { output } => tracing::trace!(
            task_id = %task.id,
            idempotency_key = %task.idempotency_key,
            attempt = task.attempts,
            outcome = "succeeded",
            output_key = output.output_key.as_deref(),
            "task succeeded"
        ),
        Outcome::Duplicate { output } => tracing::trace!(
            task_id = %task.id,
            idempotency_key = %task.idempotency_key,
            attempt = task.attempts,
            outcome = "duplicate",
            output_key = *output,
            "task completed as a duplicate"
        ),
        Outcome::DeadLettered { error: e } => tracing::debug!(
            task_id = %task.id,
            idempotency_key = %task.idempotency_key,
            attempt = task.attempts,
            class = %e.class,
            kind = %e.kind,
            outcome = "dead_lettered",
            "task dead-lettered: {}",
            e.message
        ),
        Outcome::Failed { error: e } => tracing::debug!(
            task_id = %task.id,
            idempotency_key = %task.idempotency_key,
            attempt = task.attempts,
            class = %e.class,
            kind = %e.kind,
            outcome = "failed",
            "task failed: {}",
            e.message
        ),
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        format!("processor panicked: {s}")
    } else if let Some(s) = panic.downcast_ref::<String>() {
        format!("processor panicked: {s}")
    } else {
        "processor panicked".to_string()
    }
}
