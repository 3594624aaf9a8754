//! Promise 3, second half: an idle engine uses no CPU. In a test binary of its
//! own, so that no other test's threads are counted.
#![cfg(not(feature = "loom"))]

use std::thread;
use std::time::Duration;

use taskq::{Engine, EngineConfig};

#[test]
fn idle_engine_uses_no_cpu() {
    let engine = Engine::start(
        EngineConfig {
            workers: 4,
            ..Default::default()
        },
        taskq::Noop,
    )
    .unwrap();
    thread::sleep(Duration::from_millis(50));
    let before = process_cpu_time();
    thread::sleep(Duration::from_millis(300));
    let used = process_cpu_time() - before;
    // Four spinning workers would burn ~1.2 s of CPU here; parked ones burn ~0.
    assert!(
        used < Duration::from_millis(60),
        "idle engine used {used:?} of CPU"
    );
    engine.shutdown();
}

fn process_cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    // utime and stime are fields 14 and 15 (1-based), i.e. 11 and 12 after the ')'.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10)
}
