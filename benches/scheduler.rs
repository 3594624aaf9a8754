//! The scheduler's queues: where a worker finds its next task.
//!
//! Each benchmark moves a batch of `N` items through one path and reports per
//! item:
//!
//! - `local_pop`: items in the worker's own deque, popped by `find` (`Local`).
//! - `lane_push_steal`: a producer pushes to its lane (`push_lane`), the
//!   worker's `find` steals batches from the lane and pops the rest locally.
//! - `lane_push_all_steal`: the same with one `push_lane_all` per batch.
//! - `injector_steal`: items on the global injector (retries, closed lanes).
//! - `sibling_steal`: items in worker 1's deque, taken by worker 0 (`Sibling`
//!   steals a batch, then `Local` pops).
//! - `lane_cross_thread`: a producer thread pushes while the worker thread
//!   drains concurrently (the real hand-off, cache traffic included).
//!
//! `cargo bench --bench scheduler`; add `-- --profile-time 10` for flamegraphs
//! (see `benches/support/mod.rs` for where they land).

mod support;

use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use taskq::internals::{LaneView, Scheduler, Source};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const N: u64 = 1024;

fn single_thread(c: &mut Criterion) {
    let mut group = c.benchmark_group("scheduler");
    group.throughput(Throughput::Elements(N));
    let (s, locals) = Scheduler::<u64>::new(2);
    let lane = s.open_lane();
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut view = LaneView::new();

    // Drains everything worker `w` can find; returns how many items.
    let mut drain = |w: usize, view: &mut LaneView<u64>, expect: Source| {
        let mut n = 0u64;
        let mut first = None;
        while let Some((item, src)) = s.find(w, &locals[w], &mut rng, view) {
            black_box(item);
            first.get_or_insert(src);
            n += 1;
        }
        debug_assert_eq!(first, Some(expect));
        n
    };

    group.bench_function(BenchmarkId::new("local_pop", N), |b| {
        b.iter(|| {
            for i in 0..N {
                locals[0].push(i);
            }
            assert_eq!(drain(0, &mut view, Source::Local), N);
        })
    });
    group.bench_function(BenchmarkId::new("lane_push_steal", N), |b| {
        b.iter(|| {
            for i in 0..N {
                s.push_lane(&lane, i);
            }
            assert_eq!(drain(0, &mut view, Source::Lane), N);
        })
    });
    group.bench_function(BenchmarkId::new("lane_push_all_steal", N), |b| {
        b.iter(|| {
            s.push_lane_all(&lane, 0..N);
            assert_eq!(drain(0, &mut view, Source::Lane), N);
        })
    });
    group.bench_function(BenchmarkId::new("injector_steal", N), |b| {
        b.iter(|| {
            for i in 0..N {
                s.push(i);
            }
            assert_eq!(drain(0, &mut view, Source::Injector), N);
        })
    });
    group.bench_function(BenchmarkId::new("sibling_steal", N), |b| {
        b.iter(|| {
            for i in 0..N {
                locals[1].push(i);
            }
            assert_eq!(drain(0, &mut view, Source::Sibling), N);
        })
    });
    group.finish();
    s.close_lane(lane);
}

fn cross_thread(c: &mut Criterion) {
    let mut group = c.benchmark_group("scheduler");
    group.throughput(Throughput::Elements(N));
    group.bench_function(BenchmarkId::new("lane_cross_thread", N), |b| {
        b.iter_custom(|iters| {
            let (s, mut locals) = Scheduler::<u64>::new(1);
            let local = locals.pop().unwrap();
            let total = iters * N;
            let start = Instant::now();
            std::thread::scope(|scope| {
                let s = &s;
                scope.spawn(move || {
                    let lane = s.open_lane();
                    for i in 0..total {
                        s.push_lane(&lane, i);
                    }
                    s.close_lane(lane);
                });
                let (mut rng, mut view) = (1u64, LaneView::new());
                let mut got = 0;
                while got < total {
                    match s.find(0, &local, &mut rng, &mut view) {
                        Some((item, _)) => {
                            black_box(item);
                            got += 1;
                        }
                        None => std::hint::spin_loop(),
                    }
                }
            });
            start.elapsed()
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = support::config();
    targets = single_thread, cross_thread
}
criterion_main!(benches);
