//! Admission: the depth counter every submission and completion goes through.
//!
//! - `admission_uncontended/try_acquire_release`: one slot reserved and freed, one thread.
//! - `admission_uncontended/acquire_many_release/<k>`: `k` slots per compare-and-swap
//!   (the `submit_iter` path), reported per slot.
//! - `admission_uncontended/release_batch/<k>`: a worker's completions released in
//!   batches of `k` (the worker path), per completion.
//! - `admission_contended/try_acquire_release/2_threads`: two threads reserving and
//!   freeing on one counter at once; time per pair of operations on each thread.
//! - `admission_contended/acquire_many_256_release/2_threads`: the same, 256 slots at a
//!   time (throughput per slot).
//!
//! `cargo bench --bench admission`; add `-- --profile-time 10` for flamegraphs
//! (see `benches/support/mod.rs` for where they land).

mod support;

use std::hint::black_box;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use taskq::internals::{Admission, ReleaseBatch};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn uncontended(c: &mut Criterion) {
    let mut group = c.benchmark_group("admission_uncontended");
    group.throughput(Throughput::Elements(1));
    let a = Admission::new(1024);
    group.bench_function("try_acquire_release", |b| {
        b.iter(|| {
            black_box(a.try_acquire()).unwrap();
            let _ = black_box(a.release(1));
        })
    });
    for k in [16usize, 256] {
        group.throughput(Throughput::Elements(k as u64));
        group.bench_with_input(BenchmarkId::new("acquire_many_release", k), &k, |b, &k| {
            b.iter(|| {
                let got = a.acquire_many(black_box(k)).unwrap();
                let _ = a.release(got);
            })
        });
        group.throughput(Throughput::Elements(1));
        group.bench_with_input(BenchmarkId::new("release_batch", k), &k, |b, &k| {
            let mut batch = ReleaseBatch::new(k);
            b.iter(|| {
                a.try_acquire().unwrap();
                let _ = black_box(batch.add(&a));
            });
            let _ = batch.flush(&a);
        });
    }
    group.finish();
}

/// Runs `per_thread` on `threads` threads at once, released together; returns
/// the longest thread's time.
fn on_threads(threads: usize, per_thread: impl Fn() + Sync) -> Duration {
    let barrier = Barrier::new(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    let start = Instant::now();
                    per_thread();
                    start.elapsed()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .max()
            .unwrap()
    })
}

fn contended(c: &mut Criterion) {
    let mut group = c.benchmark_group("admission_contended");
    group.throughput(Throughput::Elements(2));
    let a = Admission::new(1024);
    group.bench_function("try_acquire_release/2_threads", |b| {
        b.iter_custom(|iters| {
            on_threads(2, || {
                for _ in 0..iters {
                    black_box(a.try_acquire()).unwrap();
                    let _ = black_box(a.release(1));
                }
            })
        })
    });
    // Capacity 1024: both threads always get their 256 slots.
    group.throughput(Throughput::Elements(2 * 256));
    group.bench_function("acquire_many_256_release/2_threads", |b| {
        b.iter_custom(|iters| {
            on_threads(2, || {
                for _ in 0..iters {
                    let got = a.acquire_many(256).unwrap();
                    let _ = black_box(a.release(got));
                }
            })
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = support::config();
    targets = uncontended, contended
}
criterion_main!(benches);
