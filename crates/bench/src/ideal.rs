//! The makespan an ideal pool would reach on a run's own failures.
//!
//! With injected failures, `ceil(tasks / workers) × latency` is no longer a
//! reachable makespan: the failed attempts add work, and a task failing near
//! the end waits its backoff with nothing left to overlap it. To tell what the
//! engine costs from what the failures cost, each faulted run is compared with
//! [`ideal_makespan_s`]: a pool with no scheduling cost at all, replaying the
//! same failures, latencies and backoff delays (the [`Simulated`] processor and
//! the [`RetryPolicy`] draw them from seeds, so they can be replayed exactly).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use taskq::processor::{ErrorClass, Simulated};
use taskq::retry::RetryPolicy;
use taskq::task::Task;

/// The makespan, seconds, of an ideal pool of `workers` threads on `tasks`
/// (all submitted at time 0), with the latencies and failures `processor`
/// draws and the retries `policy` allows, each after its drawn delay.
///
/// A worker starts its next attempt the instant it is free: the retry that has
/// been due longest if one is, else the next fresh task in submission order
/// (taskq's order: its workers take due retries from the injector before
/// fresh tasks from the lanes); with neither, it idles until the next retry
/// is due. Nothing else costs time: no queueing, no wake-up, no clock skew.
///
/// This is a reference, not a lower bound: a real engine takes the fresh tasks
/// in the order its producers happened to submit them, and another order of
/// the same attempts can put fewer failures in the last round and end sooner.
///
/// # Examples
///
/// ```
/// use taskq_bench::ideal::ideal_makespan_s;
/// use taskq::{RetryPolicy, Simulated, SimulatedConfig, Task};
///
/// let tasks: Vec<Task> = (0..10)
///     .map(|i| Task::new(&format!("img/{i}.jpg"), "200x200".parse().unwrap()).unwrap())
///     .collect();
/// let p = Simulated::new(SimulatedConfig { latency_ms: 10.0, ..Default::default() }).unwrap();
/// // No failures: ceil(10 / 4) rounds of 10 ms.
/// let s = ideal_makespan_s(&tasks, 4, &p, &RetryPolicy::default());
/// assert!((s - 0.030).abs() < 1e-9);
/// ```
pub fn ideal_makespan_s(
    tasks: &[Task],
    workers: usize,
    processor: &Simulated,
    policy: &RetryPolicy,
) -> f64 {
    // Times in nanoseconds, so the heaps order exact integers.
    let ns = |d: Duration| d.as_nanos() as u64;
    // Workers by the time they are free.
    let mut free: BinaryHeap<Reverse<u64>> = (0..workers.max(1)).map(|_| Reverse(0)).collect();
    // Retries by due time (then task index, so ties replay the same way).
    let mut due: BinaryHeap<Reverse<(u64, usize, u32)>> = BinaryHeap::new();
    let mut next_fresh = 0;
    let mut makespan = 0;
    while let Some(Reverse(now)) = free.pop() {
        let (index, attempt, start) = match due.peek() {
            Some(&Reverse((at, i, a))) if at <= now => {
                due.pop();
                (i, a, now)
            }
            _ if next_fresh < tasks.len() => {
                next_fresh += 1;
                (next_fresh - 1, 1, now)
            }
            Some(&Reverse((at, i, a))) => {
                // Idle until the next retry is due.
                due.pop();
                (i, a, at)
            }
            // Nothing left for this worker.
            None => continue,
        };
        let task = &tasks[index];
        let (latency, failure) = processor.outcome(task, attempt);
        let end = start + ns(latency);
        if failure == Some(ErrorClass::Transient) && policy.allows_retry(attempt) {
            let delay = policy.delay(task.idempotency_key(), attempt);
            due.push(Reverse((end + ns(delay), index, attempt + 1)));
        } else {
            makespan = makespan.max(end);
        }
        free.push(Reverse(end));
    }
    makespan as f64 / 1e9
}

#[cfg(test)]
mod tests {
    use super::*;
    use taskq::processor::SimulatedConfig;

    fn tasks(n: usize) -> Vec<Task> {
        (0..n)
            .map(|i| Task::new(&format!("img/{i:06}.jpg"), "200x200".parse().unwrap()).unwrap())
            .collect()
    }

    fn processor(transient_rate: f64, seed: u64) -> Simulated {
        Simulated::new(SimulatedConfig {
            latency_ms: 30.0,
            transient_rate,
            seed,
            ..SimulatedConfig::default()
        })
        .unwrap()
    }

    #[test]
    fn without_failures_it_is_whole_rounds() {
        let p = processor(0.0, 0);
        let policy = RetryPolicy::default();
        assert!((ideal_makespan_s(&tasks(100), 8, &p, &policy) - 0.390).abs() < 1e-9);
        assert!((ideal_makespan_s(&tasks(8), 8, &p, &policy) - 0.030).abs() < 1e-9);
        assert!((ideal_makespan_s(&tasks(3), 1, &p, &policy) - 0.090).abs() < 1e-9);
    }

    #[test]
    fn one_worker_adds_every_retry_and_waits_out_the_last_delay() {
        // One task, every attempt fails: 4 attempts of 30 ms and the three
        // delays between them, idle.
        let p = processor(1.0, 7);
        let policy = RetryPolicy::default();
        let t = tasks(1);
        let delays: f64 = (1..=3)
            .map(|a| policy.delay(t[0].idempotency_key(), a).as_secs_f64())
            .sum();
        let got = ideal_makespan_s(&t, 1, &p, &policy);
        assert!((got - (0.120 + delays)).abs() < 1e-6, "{got}");
    }

    #[test]
    fn failures_cost_at_least_their_extra_attempts() {
        let policy = RetryPolicy::default();
        for seed in 0..20 {
            let p = processor(0.1, seed);
            let t = tasks(100);
            let extra: usize = t
                .iter()
                .map(|task| {
                    (1..=4)
                        .take_while(|&a| p.outcome(task, a).1 == Some(ErrorClass::Transient))
                        .count()
                        .min(3)
                })
                .sum();
            let rounds = (100 + extra).div_ceil(8) as f64;
            let got = ideal_makespan_s(&t, 8, &p, &policy);
            assert!(
                got + 1e-9 >= rounds * 0.030,
                "seed {seed}: {got} < {rounds} rounds"
            );
        }
    }
}
