//! [`Engine::shutdown`], which drives the shutdown protocol of the
//! [module docs](super), and the timed wait for the drain that only it uses.
//!
//! Invariant: the writer's queue is closed only after every worker has been
//! joined, so no worker can hand the writer a record after it has stopped.

use std::time::{Duration, Instant};

use crate::metrics::Report;
use crate::sync::atomic::Ordering::Relaxed;
use crate::sync::{lock, wait_timeout};

use super::{report, Engine, Shared};

impl Engine {
    /// Stops admission, lets every admitted task complete (retries included),
    /// commits every record, joins the threads and returns the merged report.
    /// With `shutdown_timeout_ms` set, tasks still waiting when it runs out are
    /// dead-lettered with kind `shutdown` instead of being run.
    ///
    /// # Panics
    ///
    /// Only if an engine thread itself panicked outside a task (a bug).
    pub fn shutdown(mut self) -> Report {
        self.shared.close();
        if let Some(ms) = self.config.shutdown_timeout_ms {
            if !self.shared.wait_drained(Duration::from_millis(ms)) {
                self.shared.expiring.store(true, Relaxed);
                self.shared.delay.expire();
                self.shared.scheduler.sleep.notify_all();
            }
        }
        let mut exits = Vec::with_capacity(self.workers.len());
        for handle in self.workers.drain(..) {
            exits.push(
                handle
                    .join()
                    .expect("a worker thread panicked outside a task"),
            );
        }
        let writer = self.writer.take().map(|handle| {
            let idem = self.shared.idem.as_ref().expect("a writer has a store");
            idem.handoff.close();
            handle.join().expect("the writer thread panicked")
        });
        self.shared.delay.close();
        if let Some(timer) = self.timer.take() {
            timer.join().expect("the retry timer thread panicked");
        }
        let elapsed = self.started.elapsed().as_secs_f64();
        report::build(&self.shared, &self.config, exits, writer, elapsed)
    }
}

impl Shared {
    /// Waits until drained or `timeout` passed; true if drained.
    pub(super) fn wait_drained(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut drained = lock(&self.drained);
        while !*drained {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            drained = wait_timeout(&self.drained_cv, drained, deadline - now);
        }
        true
    }
}
