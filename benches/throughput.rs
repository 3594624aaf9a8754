//! End-to-end throughput of no-op tasks: one producer, 1,000,000 tasks, by
//! worker count, capacity and submission style. Tasks are built before timing.
//!
//! `cargo bench --bench throughput`; the engine issue's target is
//! `noop_1m/submit_iter/w2_c1024` ≥ 25 M tasks/s on the 2-core reference machine.

mod support;

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use taskq::{Engine, EngineConfig, Noop, Task};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const TASKS: usize = 1_000_000;

fn tasks() -> Vec<Task> {
    let base = Task::new("img/000001.jpg", "200x200".parse().unwrap()).unwrap();
    vec![base; TASKS]
}

fn run(workers: usize, capacity: usize, batched: bool, tasks: Vec<Task>) -> taskq::Report {
    let engine = Engine::start(
        EngineConfig {
            workers,
            capacity,
            ..Default::default()
        },
        Noop,
    )
    .unwrap();
    let submitter = engine.submitter();
    if batched {
        submitter.submit_iter(&mut tasks.into_iter()).unwrap();
    } else {
        for t in tasks {
            submitter.submit(t).unwrap();
        }
    }
    drop(submitter);
    engine.shutdown()
}

fn noop_1m(c: &mut Criterion) {
    let mut group = c.benchmark_group("noop_1m");
    group.throughput(Throughput::Elements(TASKS as u64));
    group.sample_size(10);
    for (style, batched) in [("submit", false), ("submit_iter", true)] {
        for workers in [2, 4] {
            let id = BenchmarkId::new(style, format!("w{workers}_c1024"));
            group.bench_function(id, |b| {
                b.iter_batched(
                    tasks,
                    |t| run(workers, 1024, batched, t),
                    BatchSize::PerIteration,
                )
            });
        }
    }
    group.finish();
}

fn capacity_sweep(c: &mut Criterion) {
    let mut group = c.benchmark_group("noop_1m_capacity");
    group.throughput(Throughput::Elements(TASKS as u64));
    group.sample_size(10);
    for capacity in [64, 1024, 16384] {
        group.bench_function(BenchmarkId::new("submit_iter_w2", capacity), |b| {
            b.iter_batched(
                tasks,
                |t| run(2, capacity, true, t),
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = support::config();
    targets = noop_1m, capacity_sweep
}
criterion_main!(benches);
