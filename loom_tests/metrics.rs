//! Metrics (promise 7): merged counters equal the sum of the per-worker ones,
//! and the latency histogram holds one sample per completed task, whichever
//! worker completed it. Driven through the real `Engine`.

use std::sync::{Arc, Mutex};

use taskq::{Attempt, Output, ProcessError, Processor, Task};

use crate::check;
use crate::drain::{start, task};

/// Fails task 0 permanently, succeeds the others; records what it saw.
#[derive(Clone, Default)]
struct FailFirst(Arc<Mutex<Vec<String>>>);

impl Processor for FailFirst {
    fn process(&self, task: &Task, _: &Attempt) -> Result<Output, ProcessError> {
        self.0.lock().unwrap().push(task.image_key.to_string());
        if task.image_key == "img/0.jpg" {
            Err(ProcessError::permanent(
                "bad_parameter",
                "task 0 always fails",
            ))
        } else {
            Ok(Output::default())
        }
    }
}

/// Two workers, capacity 2, three tasks (one failing): whichever worker
/// completes what, the merged report adds up.
#[test]
fn merged_counts_are_the_sum_of_per_worker_counts() {
    check(2, None, || {
        let processor = FailFirst::default();
        let engine = start(2, 2, processor.clone(), None);
        let submitter = engine.submitter();
        for i in 0..3 {
            submitter.submit(task(i)).unwrap();
        }
        drop(submitter);
        let report = engine.shutdown();
        let c = &report.counts;
        let per_worker: u64 = report.workers.iter().map(|w| w.tasks).sum();
        let attempts: u64 = report.workers.iter().map(|w| w.attempts).sum();
        assert_eq!(report.workers.len(), 2);
        assert_eq!(per_worker, c.completed(), "Σ workers[].tasks = completed");
        assert_eq!(c.completed(), 3);
        assert_eq!((c.succeeded, c.failed), (2, 1));
        assert_eq!(
            report.latency_ms.count,
            c.completed(),
            "one latency sample per task"
        );
        assert_eq!(attempts, c.attempts, "Σ workers[].attempts = attempts");
        assert_eq!(
            report.service_ms.count, c.attempts,
            "one service sample per attempt"
        );
        assert_eq!(processor.0.lock().unwrap().len(), 3);
    });
}
