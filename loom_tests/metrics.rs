//! Metrics (promise 7): merged counters equal the sum of the per-worker ones,
//! and the latency histogram holds one sample per completed task, whichever
//! worker completed it. Driven through the real `Engine`.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use taskq::{Attempt, Output, ProcessError, Processor, Task};

use crate::check;
use crate::drain::{start, task};

/// Fails task 0 permanently, succeeds the others; records what it saw.
#[derive(Clone, Default)]
struct FailFirst(Arc<Mutex<Vec<String>>>);

impl Processor for FailFirst {
    fn process(&self, task: &Task, _: &Attempt) -> Result<Output, ProcessError> {
        self.0.lock().unwrap().push(task.image_key().to_string());
        if task.image_key() == "img/0.jpg" {
            Err(ProcessError::permanent(
                "bad_parameter",
                "task 0 always fails",
            ))
        } else {
            Ok(Output::default())
        }
    }
}

/// Two workers, `tasks` tasks of which task 0 fails, against `capacity`:
/// whichever worker completes what, the merged report adds up. Also checks
/// that some explored execution split the tasks between the two workers, so
/// the sums are not trivially those of a single worker.
fn metrics_model(capacity: usize, tasks: usize) {
    let split_seen = Arc::new(AtomicBool::new(false));
    let split = split_seen.clone();
    check(2, None, move || {
        let processor = FailFirst::default();
        let engine = start(2, capacity, processor.clone(), None);
        let submitter = engine.submitter();
        for i in 0..tasks {
            submitter.submit(task(i)).unwrap();
        }
        drop(submitter);
        let report = engine.shutdown();
        let c = &report.counts;
        let n = tasks as u64;
        let per_worker: u64 = report.workers.iter().map(|w| w.tasks).sum();
        let attempts: u64 = report.workers.iter().map(|w| w.attempts).sum();
        assert_eq!(report.workers.len(), 2);
        assert_eq!(
            per_worker,
            c.completed(),
            "sum of workers[].tasks = completed"
        );
        assert_eq!(c.completed(), n);
        assert_eq!((c.succeeded, c.failed), (n - 1, 1));
        assert_eq!(
            report.latency_ms.count,
            c.completed(),
            "one latency sample per task"
        );
        assert_eq!(attempts, c.attempts, "sum of workers[].attempts = attempts");
        assert_eq!(
            report.service_ms.count, c.attempts,
            "one service sample per attempt"
        );
        assert_eq!(processor.0.lock().unwrap().len(), tasks);
        if report.workers.iter().all(|w| w.tasks > 0) {
            split.store(true, Relaxed);
        }
    });
    assert!(
        split_seen.load(Relaxed),
        "no explored execution used both workers"
    );
}

/// Promise 7: merged counts equal the sum of per-worker counts.
#[test]
fn merged_counts_are_the_sum_of_per_worker_counts() {
    metrics_model(2, 2);
}
