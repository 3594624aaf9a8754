//! A connection that comes back: a [`Queue`] that, when its connection is
//! lost (reset, cut, terminated by the server, the server restarting),
//! reconnects with backoff and runs the operation again.
//!
//! Running an operation again is safe for the node's statements: a claim
//! whose answer was lost leaves rows the node finds with
//! [`node::leased_to`](crate::node::leased_to) and hands back; a settle or
//! hand-back that had committed matches no row the second time (fenced on
//! node, attempt and state); heartbeats and rescue rounds are idempotent.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::{PgError, Queue};

/// What a connection must set up again after it reconnects (`LISTEN`,
/// session settings).
pub(crate) type Setup = Box<dyn Fn(&mut Queue) -> Result<(), PgError> + Send>;

/// The first wait before reconnecting; it doubles up to [`MAX_WAIT`].
const FIRST_WAIT: Duration = Duration::from_millis(100);
/// The longest wait between two connection attempts.
const MAX_WAIT: Duration = Duration::from_secs(5);

pub(crate) struct Link {
    url: String,
    queue: Queue,
    role: &'static str,
    setup: Setup,
    give_up_after: Duration,
    reconnects: Arc<AtomicU64>,
    generation: u64,
    rng: u64,
}

impl Link {
    /// Connects (no retry: a node that cannot reach the server at start
    /// fails at once) and runs `setup`.
    pub(crate) fn open(
        url: &str,
        role: &'static str,
        setup: Setup,
        give_up_after: Duration,
        reconnects: Arc<AtomicU64>,
    ) -> Result<Link, PgError> {
        let mut queue = Queue::connect(url)?;
        setup(&mut queue)?;
        let seed = u64::from(std::process::id()) << 32 ^ role.len() as u64;
        Ok(Link {
            url: url.to_string(),
            queue,
            role,
            setup,
            give_up_after,
            reconnects,
            generation: 0,
            rng: taskq::processor::mix(seed, role.as_bytes()),
        })
    }

    /// The connection.
    pub(crate) fn queue(&mut self) -> &mut Queue {
        &mut self.queue
    }

    /// How many times this link reconnected: a caller compares it before
    /// and after [`call`](Link::call) to learn that an answer may have
    /// been lost.
    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    /// Runs `op`; when the connection is lost, reconnects (see
    /// [`restore`](Link::restore)) and runs it again.
    ///
    /// # Errors
    ///
    /// `op`'s error when it is not a lost connection; the lost connection's
    /// error when `quit()` turns true or the server stays unreachable for
    /// the give-up time.
    pub(crate) fn call<T>(
        &mut self,
        quit: &dyn Fn() -> bool,
        mut op: impl FnMut(&mut Queue) -> Result<T, PgError>,
    ) -> Result<T, PgError> {
        loop {
            match op(&mut self.queue) {
                Ok(v) => return Ok(v),
                Err(e) if e.is_connection_lost() || self.queue.is_closed() => {
                    self.restore(e, quit)?;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Reconnects after `lost`, waiting 100 ms, 200 ms, … up to 5 s (each
    /// wait drawn from its upper half), until a connection is made and set
    /// up.
    ///
    /// # Errors
    ///
    /// `lost` (or the last connection error) when `quit()` turns true or
    /// the give-up time passes.
    pub(crate) fn restore(
        &mut self,
        lost: PgError,
        quit: &dyn Fn() -> bool,
    ) -> Result<(), PgError> {
        let since = Instant::now();
        tracing::warn!(
            role = self.role,
            target = self.queue.target(),
            error = %lost,
            "connection lost; reconnecting"
        );
        let mut last = lost;
        let mut wait = FIRST_WAIT;
        loop {
            self.rng = taskq::processor::splitmix(self.rng);
            let half = wait / 2;
            let jitter = half.mul_f64((self.rng >> 11) as f64 / (1u64 << 53) as f64);
            let until = Instant::now() + half + jitter;
            while Instant::now() < until {
                if quit() {
                    return Err(last);
                }
                if since.elapsed() >= self.give_up_after {
                    tracing::warn!(
                        role = self.role,
                        target = self.queue.target(),
                        after_s = since.elapsed().as_secs_f64(),
                        "gave up reconnecting"
                    );
                    return Err(last);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            wait = (wait * 2).min(MAX_WAIT);
            let result = match Queue::connect(&self.url) {
                Ok(mut q) => {
                    let counted = self.queue.statements();
                    q.count(counted);
                    (self.setup)(&mut q).map(|()| q)
                }
                Err(e) => Err(e),
            };
            match result {
                Ok(q) => {
                    self.queue = q;
                    self.generation += 1;
                    self.reconnects.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        role = self.role,
                        target = self.queue.target(),
                        after_s = since.elapsed().as_secs_f64(),
                        "reconnected"
                    );
                    return Ok(());
                }
                Err(e) if e.is_connection_lost() => last = e,
                Err(e) => return Err(e),
            }
        }
    }
}
