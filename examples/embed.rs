//! Embedding the engine: a processor of your own, run twice over the same
//! SQLite file. Uses the `taskq` crate alone (no command line, no image
//! codecs):
//!
//! ```text
//! cargo run --release -p taskq --example embed
//! ```
//!
//! The processor writes a small text "variant" per task under a scratch
//! folder. Keys with `flaky` in them fail transiently on their first attempt
//! (retried with backoff, then done); keys with `broken` fail for good
//! (dead-lettered). The second run finds every key the first one finished in
//! the database and completes those tasks as duplicates, without calling the
//! processor.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use taskq::{
    Attempt, Engine, EngineConfig, Output, ProcessError, Processor, RetryPolicy, StoreConfig, Task,
};

/// Writes `{root}/{WxH}/{image_key}.txt` for each task.
struct TextVariants {
    root: PathBuf,
    calls: AtomicU64,
}

impl Processor for TextVariants {
    fn process(&self, task: &Task, attempt: &Attempt) -> Result<Output, ProcessError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let key = task.image_key();
        if key.contains("broken") {
            return Err(ProcessError::permanent(
                "unreadable",
                "the source is corrupt",
            ));
        }
        if key.contains("flaky") && attempt.number == 1 {
            return Err(ProcessError::transient("unavailable", "try again"));
        }
        let size = task.size();
        let out = self.root.join(size.to_string()).join(format!("{key}.txt"));
        let write = || -> std::io::Result<()> {
            std::fs::create_dir_all(out.parent().expect("a file has a parent"))?;
            std::fs::write(&out, format!("{key} at {size}\n"))
        };
        // An I/O error may pass (a full disk, a busy file): retry it.
        write().map_err(|e| ProcessError::transient("io", e.to_string()))?;
        Ok(Output {
            output_key: Some(out.display().to_string().into()),
        })
    }

    /// The name records are kept under: change the version when the output
    /// changes, and earlier records no longer count as done.
    fn name(&self) -> &str {
        "text-variants/v1"
    }
}

fn run(dir: &Path, keys: &[&str]) -> Result<(u64, taskq::Report), Box<dyn std::error::Error>> {
    let config = EngineConfig {
        workers: 4,
        capacity: 64,
        store: Some(StoreConfig::new(dir.join("taskq.db"))),
        retry: RetryPolicy {
            backoff_base_ms: 5,
            ..RetryPolicy::default()
        },
        ..EngineConfig::default()
    };
    let processor = std::sync::Arc::new(TextVariants {
        root: dir.join("variants"),
        calls: AtomicU64::new(0),
    });
    let engine = Engine::start(config, processor.clone())?;
    let submitter = engine.submitter();
    for (i, key) in keys.iter().enumerate() {
        for size in ["200x200", "400x300"] {
            let task = Task::new(key, size.parse()?)?.with_id(format!("{i}-{size}"));
            submitter.submit(task)?;
        }
    }
    drop(submitter);
    let report = engine.shutdown();
    Ok((processor.calls.load(Ordering::Relaxed), report))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("taskq-embed-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let keys = ["img/a.jpg", "img/b.jpg", "img/flaky.jpg", "img/broken.jpg"];

    let (calls, first) = run(&dir, &keys)?;
    let c = &first.counts;
    println!(
        "first run:  {} succeeded, {} dead-lettered, {} retried, {} duplicates ({calls} processor calls)",
        c.succeeded, c.dead_lettered, c.retried, c.duplicates
    );
    assert_eq!((c.succeeded, c.dead_lettered, c.retried), (6, 2, 2));

    let (calls, second) = run(&dir, &keys)?;
    let c = &second.counts;
    println!(
        "second run: {} succeeded, {} dead-lettered, {} retried, {} duplicates ({calls} processor calls)",
        c.succeeded, c.dead_lettered, c.retried, c.duplicates
    );
    // Finished keys are skipped; dead letters stay dead until retried on
    // purpose, so the broken key's tasks run (and fail) again.
    assert_eq!(c.duplicates, 6);
    assert_eq!(calls, 2);

    println!("variants under {}", dir.join("variants").display());
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
