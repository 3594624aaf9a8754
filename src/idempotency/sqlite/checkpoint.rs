//! The checkpointer thread: copies the WAL into the database off the
//! writer's commit path.
//!
//! Invariant: it only ever runs `PASSIVE` checkpoints (it never waits for or
//! blocks the writer), and [`Checkpointer::stop`] joins the thread.

use std::time::Duration;

use rusqlite::Connection;

/// Copies the WAL into the database every 50 ms on its own connection and
/// thread (`PASSIVE`: it never waits for the writer), so that no commit pays
/// for a checkpoint. SQLite restarts the WAL from its start once a checkpoint
/// has caught up, so the file stays bounded.
pub(super) struct Checkpointer {
    stop: std::sync::Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>,
    handle: std::thread::JoinHandle<()>,
}

impl Checkpointer {
    /// Starts the thread, which checkpoints over `conn` until stopped.
    pub(super) fn start(conn: Connection) -> Self {
        let stop = std::sync::Arc::new((std::sync::Mutex::new(false), std::sync::Condvar::new()));
        let flag = stop.clone();
        let handle = std::thread::Builder::new()
            .name("taskq-checkpoint".into())
            .spawn(move || {
                let (lock, cv) = &*flag;
                let mut stopped = lock.lock().unwrap_or_else(|p| p.into_inner());
                while !*stopped {
                    let (guard, _) = cv
                        .wait_timeout(stopped, Duration::from_millis(50))
                        .unwrap_or_else(|p| p.into_inner());
                    stopped = guard;
                    if !*stopped {
                        let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
                    }
                }
            })
            .expect("the checkpoint thread starts");
        Checkpointer { stop, handle }
    }

    /// Stops the thread and waits for it to end.
    pub(super) fn stop(self) {
        *self.stop.0.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.stop.1.notify_all();
        let _ = self.handle.join();
    }
}
