//! The thumbnail job: images per second through the engine for 1024×768
//! sources to 200x200 with 1 and 2 workers, and the resize step alone,
//! `fast_image_resize` against `image::imageops::resize` with the same filter.
//!
//! `cargo bench --bench thumbnail`; the targets on the 2-core
//! reference machine: parallel efficiency (images/s with 2 workers ÷ twice
//! that with 1) ≥ 0.9, and the resize ≥ 3× faster than `image`'s.
//!
//! The engine runs have no idempotency database (every iteration does all
//! the work again) and write every variant through the store's atomic,
//! fsynced writes, as a real run does.

mod support;

use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::imageops::{self, FilterType as ImageFilter};
use image::RgbImage;
use taskq::{Engine, EngineConfig, Task};
use taskq_thumbnail::object_store::LocalStore;
use taskq_thumbnail::samples::{sample_image, sample_key, seed_images, SampleOptions};
use taskq_thumbnail::thumbnail::{self, Pixels};
use taskq_thumbnail::Thumbnail;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Sources per engine run (every 4th a PNG, as `taskq seed-images` makes them).
const IMAGES: u64 = 32;

fn seeded_store() -> (tempfile::TempDir, Arc<LocalStore>) {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::open(dir.path()).unwrap();
    let options = SampleOptions {
        sizes: vec!["200x200".parse().unwrap()],
        ..SampleOptions::new(IMAGES)
    };
    seed_images(&store, &options).unwrap();
    (dir, Arc::new(store))
}

fn run(store: &Arc<LocalStore>, workers: usize) -> taskq::Report {
    let engine = Engine::start(
        EngineConfig {
            workers,
            capacity: 256,
            ..Default::default()
        },
        Thumbnail::with_store(store.clone()),
    )
    .unwrap();
    let submitter = engine.submitter();
    for i in 1..=IMAGES {
        let task = Task::new(&sample_key(i), "200x200".parse().unwrap()).unwrap();
        submitter.submit(task).unwrap();
    }
    drop(submitter);
    let report = engine.shutdown();
    assert_eq!(report.counts.succeeded, IMAGES);
    report
}

fn engine(c: &mut Criterion) {
    let (_dir, store) = seeded_store();
    let mut group = c.benchmark_group("thumbnail_1024x768_to_200x200");
    group.throughput(Throughput::Elements(IMAGES));
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(2));
    group.measurement_time(Duration::from_secs(12));
    for workers in [1, 2] {
        group.bench_function(BenchmarkId::new("engine", format!("w{workers}")), |b| {
            b.iter(|| run(&store, workers))
        });
    }
    group.finish();
}

/// `fast_image_resize` with `filter`, RGB8, a fresh resizer each time as in
/// a cold worker (the processor keeps one per thread; see `fir_catmull_rom`).
fn fir(src: &RgbImage, w: u32, h: u32, filter: FilterType) -> Vec<u8> {
    let view = ImageRef::new(src.width(), src.height(), src.as_raw(), PixelType::U8x3).unwrap();
    let mut dst = Image::new(w, h, PixelType::U8x3);
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(filter));
    Resizer::new().resize(&view, &mut dst, &options).unwrap();
    dst.into_vec()
}

fn resize(c: &mut Criterion) {
    let src = sample_image(0, 1, 1024, 768);
    let pixels = Pixels::Rgb8(src.clone());
    let (w, h) = thumbnail::fit_inside(1024, 768, "200x200".parse().unwrap());
    let mut group = c.benchmark_group("resize_1024x768_to_200x150");
    group.throughput(Throughput::Elements(1));
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(4));
    // The processor's own path (thread-local resizer, Catmull-Rom).
    group.bench_function("fir_catmull_rom", |b| {
        b.iter(|| thumbnail::resize(&pixels, w, h).unwrap())
    });
    group.bench_function("image_catmull_rom", |b| {
        b.iter(|| imageops::resize(&src, w, h, ImageFilter::CatmullRom))
    });
    group.bench_function("fir_bilinear", |b| {
        b.iter(|| fir(&src, w, h, FilterType::Bilinear))
    });
    // `image`'s Triangle filter is its bilinear.
    group.bench_function("image_bilinear", |b| {
        b.iter(|| imageops::resize(&src, w, h, ImageFilter::Triangle))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = support::config();
    targets = resize, engine
}
criterion_main!(benches);
