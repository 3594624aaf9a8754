//! [`Thumbnail`]: the real job. Reads a task's source image from an
//! [`ObjectStore`], resizes it to fit inside the task's size, and writes the
//! variant to `variants/{WxH}/{image_key}`.
//!
//! # One attempt, stage by stage
//!
//! 1. **read**: the source is opened and streamed in 64 KiB chunks into
//! 2. **decode** (`image`; JPEG or PNG, told by the content, not the name),
//!    then converted to 8-bit RGB, or RGBA when the source has alpha. Decoding
//!    is bounded: sources over [`MAX_SOURCE_DIMENSION`] a side, or needing more
//!    than [`MAX_DECODE_BYTES`], are refused (`too_large`).
//! 3. **resize** (`fast_image_resize`, SIMD, Catmull-Rom convolution): the
//!    image is scaled, up or down, to the largest size that fits inside the
//!    box with its aspect ratio kept ([`fit_inside`]): one side equals the
//!    box's, the other is at most the box's.
//! 4. **encode**: JPEG (quality [`JPEG_QUALITY`]) for JPEG sources, PNG
//!    otherwise, streamed into
//! 5. **write**: a temporary object, synced and renamed into place on commit.
//!
//! The read and write stages count the time inside storage calls; decode and
//! encode count the rest of their wall time. The same source and size always
//! give the same bytes, so an attempt repeated after a crash rewrites the
//! same variant.
//!
//! # Failures
//!
//! A missing source, a key the store refuses, undecodable or unsupported
//! data and oversized images are permanent (dead-lettered at once); storage
//! I/O errors are transient (retried with backoff).

use std::cell::RefCell;
use std::io;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::{CompressionType, FilterType as PngFilter, PngEncoder};
use image::{
    DynamicImage, ExtendedColorType, ImageEncoder, ImageError, ImageFormat, ImageReader, Limits,
    RgbImage, RgbaImage,
};

use crate::object_store::{ObjectError, ObjectReader, ObjectStore, ObjectWriter};
use taskq::processor::stages::StageStats;
use taskq::processor::{Attempt, Output, ProcessError, Processor, ProcessorReport};
use taskq::task::{Size, Task};

/// The folder (key prefix) variants are written under.
pub const VARIANTS_PREFIX: &str = "variants";

/// The name thumbnail records carry ([`Processor::name`]). `v1`: fit inside
/// the size with a Catmull-Rom filter, JPEG at quality [`JPEG_QUALITY`] for
/// JPEG sources and PNG otherwise. A change to any of these that changes the
/// output bytes takes a new version, so that variants made the old way are
/// made again rather than counted as done.
pub const NAME: &str = "thumbnail/v1";

/// JPEG quality of JPEG variants (1–100).
pub const JPEG_QUALITY: u8 = 85;

/// Largest accepted source width or height, in pixels.
pub const MAX_SOURCE_DIMENSION: u32 = 16_384;

/// Most memory a decoder may allocate for one source, in bytes (512 MiB).
pub const MAX_DECODE_BYTES: u64 = 512 * 1024 * 1024;

/// The stages timed in the report, in pipeline order.
pub const STAGES: [&str; 5] = ["read", "decode", "resize", "encode", "write"];
const READ: usize = 0;
const DECODE: usize = 1;
const RESIZE: usize = 2;
const ENCODE: usize = 3;
const WRITE: usize = 4;

/// The resize filter: a Catmull-Rom cubic convolution whose support widens
/// with the downscale factor (so every source pixel contributes). The same
/// filter as `image::imageops::FilterType::CatmullRom`.
pub const FILTER: FilterType = FilterType::CatmullRom;

/// The key a variant of `image_key` at `size` is written to:
/// `variants/{WxH}/{image_key}`.
///
/// # Examples
///
/// ```
/// use taskq_thumbnail::thumbnail::variant_key;
/// assert_eq!(variant_key("img/a.jpg", "200x200".parse().unwrap()), "variants/200x200/img/a.jpg");
/// ```
pub fn variant_key(image_key: &str, size: Size) -> String {
    format!("{VARIANTS_PREFIX}/{size}/{image_key}")
}

/// The size of a `width`×`height` image scaled to fit inside `bound` with its
/// aspect ratio kept: one side equals the bound's, the other is the rounded
/// proportional length (at least 1, at most the bound's).
///
/// # Examples
///
/// ```
/// use taskq_thumbnail::thumbnail::fit_inside;
/// let box200 = "200x200".parse().unwrap();
/// assert_eq!(fit_inside(1024, 768, box200), (200, 150));
/// assert_eq!(fit_inside(768, 1024, box200), (150, 200));
/// assert_eq!(fit_inside(50, 50, box200), (200, 200)); // small sources are scaled up
/// ```
pub fn fit_inside(width: u32, height: u32, bound: Size) -> (u32, u32) {
    let (w, h) = (u64::from(width.max(1)), u64::from(height.max(1)));
    let (bw, bh) = (u64::from(bound.width), u64::from(bound.height));
    if w * bh >= h * bw {
        // Width-limited: the width touches the box.
        let nh = (2 * h * bw + w) / (2 * w);
        (bound.width, nh.clamp(1, bh) as u32)
    } else {
        let nw = (2 * w * bh + h) / (2 * h);
        (nw.clamp(1, bw) as u32, bound.height)
    }
}

/// Decoded pixels, 8 bits per channel.
#[derive(Clone, Debug, PartialEq)]
pub enum Pixels {
    /// Red, green, blue.
    Rgb8(RgbImage),
    /// Red, green, blue, alpha (not premultiplied).
    Rgba8(RgbaImage),
}

impl Pixels {
    /// Width and height.
    pub fn dimensions(&self) -> (u32, u32) {
        match self {
            Pixels::Rgb8(i) => i.dimensions(),
            Pixels::Rgba8(i) => i.dimensions(),
        }
    }

    fn from_image(image: DynamicImage, format: ImageFormat) -> Self {
        if format != ImageFormat::Jpeg && image.color().has_alpha() {
            Pixels::Rgba8(image.into_rgba8())
        } else {
            Pixels::Rgb8(image.into_rgb8())
        }
    }
}

thread_local! {
    /// One resizer per worker thread: it keeps its scratch buffers between tasks.
    static RESIZER: RefCell<Resizer> = RefCell::new(Resizer::new());
}

/// Resizes `src` to exactly `width`×`height` with `fast_image_resize` (SIMD,
/// [`FILTER`]; alpha is premultiplied for the filter and divided out after).
///
/// # Errors
///
/// A permanent `resize` [`ProcessError`] for a zero-sized source or target.
pub fn resize(src: &Pixels, width: u32, height: u32) -> Result<Pixels, ProcessError> {
    let (sw, sh) = src.dimensions();
    let (raw, pixel_type) = match src {
        Pixels::Rgb8(i) => (i.as_raw().as_slice(), PixelType::U8x3),
        Pixels::Rgba8(i) => (i.as_raw().as_slice(), PixelType::U8x4),
    };
    let fail = |e: &dyn std::fmt::Display| {
        ProcessError::permanent(
            "resize",
            format!("cannot resize {sw}x{sh} to {width}x{height}: {e}"),
        )
    };
    let view = ImageRef::new(sw, sh, raw, pixel_type).map_err(|e| fail(&e))?;
    let mut dst = Image::new(width, height, pixel_type);
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FILTER));
    RESIZER
        .with(|r| r.borrow_mut().resize(&view, &mut dst, &options))
        .map_err(|e| fail(&e))?;
    let buf = dst.into_vec();
    let bad_len = || fail(&"the resizer returned a buffer of the wrong size");
    Ok(match src {
        Pixels::Rgb8(_) => {
            Pixels::Rgb8(RgbImage::from_raw(width, height, buf).ok_or_else(bad_len)?)
        }
        Pixels::Rgba8(_) => {
            Pixels::Rgba8(RgbaImage::from_raw(width, height, buf).ok_or_else(bad_len)?)
        }
    })
}

/// Encodes `pixels` as JPEG (quality [`JPEG_QUALITY`]; RGB only) when
/// `format` is JPEG, as PNG otherwise, into `out`.
///
/// # Errors
///
/// The encoder's error; an I/O error of `out` comes back as
/// [`ImageError::IoError`].
pub fn encode(
    pixels: &Pixels,
    format: ImageFormat,
    out: &mut dyn io::Write,
) -> Result<(), ImageError> {
    match (format, pixels) {
        (ImageFormat::Jpeg, Pixels::Rgb8(i)) => JpegEncoder::new_with_quality(out, JPEG_QUALITY)
            .write_image(i.as_raw(), i.width(), i.height(), ExtendedColorType::Rgb8),
        (ImageFormat::Jpeg, Pixels::Rgba8(i)) => {
            let rgb = DynamicImage::ImageRgba8(i.clone()).into_rgb8();
            JpegEncoder::new_with_quality(out, JPEG_QUALITY).write_image(
                rgb.as_raw(),
                rgb.width(),
                rgb.height(),
                ExtendedColorType::Rgb8,
            )
        }
        (_, Pixels::Rgb8(i)) => {
            png(out).write_image(i.as_raw(), i.width(), i.height(), ExtendedColorType::Rgb8)
        }
        (_, Pixels::Rgba8(i)) => {
            png(out).write_image(i.as_raw(), i.width(), i.height(), ExtendedColorType::Rgba8)
        }
    }
}

fn png(out: &mut dyn io::Write) -> PngEncoder<&mut dyn io::Write> {
    PngEncoder::new_with_quality(out, CompressionType::Default, PngFilter::Adaptive)
}

/// At most `n` holders at once: the CPU slots of [`Thumbnail::with_cpu_slots`].
struct Slots {
    free: Mutex<usize>,
    freed: Condvar,
}

impl Slots {
    fn acquire(&self) -> SlotGuard<'_> {
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        while *free == 0 {
            free = self.freed.wait(free).unwrap_or_else(|p| p.into_inner());
        }
        *free -= 1;
        SlotGuard(self)
    }
}

/// A held CPU slot, given back when dropped (a panic included).
struct SlotGuard<'a>(&'a Slots);

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        *self.0.free.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        self.0.freed.notify_one();
    }
}

/// Makes image variants: see the [module docs](self).
pub struct Thumbnail {
    store: Arc<dyn ObjectStore>,
    stats: StageStats,
    cpu: Option<Slots>,
}

impl std::fmt::Debug for Thumbnail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Thumbnail").finish_non_exhaustive()
    }
}

impl Thumbnail {
    /// A processor reading sources from and writing variants to `store`.
    pub fn new(store: impl ObjectStore) -> Self {
        Self::with_store(Arc::new(store))
    }

    /// As [`new`](Thumbnail::new), over a shared store.
    pub fn with_store(store: Arc<dyn ObjectStore>) -> Self {
        Thumbnail {
            store,
            stats: StageStats::new(&STAGES),
            cpu: None,
        }
    }

    /// Lets at most `n` attempts at once run their CPU stages (decode,
    /// resize, encode); an attempt waits for a slot once its source has
    /// answered, and gives it back before its variant is committed. With a
    /// store whose requests take milliseconds (S3), run more workers than
    /// cores and give it one slot per core: the workers waiting on requests
    /// hold no slot, so the cores stay busy with the others, and no more
    /// than `n` decoders compete for them.
    ///
    /// # Panics
    ///
    /// When `n` is 0.
    pub fn with_cpu_slots(mut self, n: usize) -> Self {
        assert!(n > 0, "at least one CPU slot");
        self.cpu = Some(Slots {
            free: Mutex::new(n),
            freed: Condvar::new(),
        });
        self
    }

    /// Opens the task's source: its reader and the time it took.
    fn open(&self, task: &Task) -> Result<(Box<dyn ObjectReader>, u64), ProcessError> {
        let opened = Instant::now();
        let reader = self
            .store
            .open(task.image_key())
            .map_err(|e| object_error("source", e))?;
        Ok((reader, ns(opened)))
    }

    fn decode(
        &self,
        task: &Task,
        mut reader: Box<dyn ObjectReader>,
        open_ns: u64,
    ) -> Result<(Pixels, ImageFormat), ProcessError> {
        let key = task.image_key();
        let before = reader.stats();
        let decoding = Instant::now();
        let source = ImageReader::new(&mut reader)
            .with_guessed_format()
            .map_err(|e| {
                ProcessError::transient("io", format!("source {key:?}: cannot read: {e}"))
            })?;
        let format = match source.format() {
            Some(f @ (ImageFormat::Jpeg | ImageFormat::Png)) => f,
            Some(f) => {
                return Err(ProcessError::permanent(
                    "unsupported_format",
                    format!("source {key:?}: {f:?} images are not supported (JPEG and PNG are)"),
                ))
            }
            None => {
                return Err(ProcessError::permanent(
                    "undecodable",
                    format!("source {key:?}: not a JPEG or PNG image (unrecognised content)"),
                ))
            }
        };
        let mut source = source;
        let mut limits = Limits::default();
        limits.max_image_width = Some(MAX_SOURCE_DIMENSION);
        limits.max_image_height = Some(MAX_SOURCE_DIMENSION);
        limits.max_alloc = Some(MAX_DECODE_BYTES);
        source.limits(limits);
        let image = source.decode().map_err(|e| image_error(key, "decode", e))?;
        if image.width() == 0 || image.height() == 0 {
            return Err(ProcessError::permanent(
                "undecodable",
                format!("source {key:?}: the image has no pixels"),
            ));
        }
        let pixels = Pixels::from_image(image, format);
        let after = reader.stats();
        let read_ns = after.io_ns - before.io_ns;
        self.stats.add(READ, open_ns + read_ns);
        self.stats.add(DECODE, ns(decoding).saturating_sub(read_ns));
        self.stats.read(after.bytes);
        Ok((pixels, format))
    }

    /// Encodes the variant into a new object under `key`, to be committed
    /// by [`commit`](Self::commit).
    fn encode(
        &self,
        key: &str,
        pixels: &Pixels,
        format: ImageFormat,
    ) -> Result<Encoded, ProcessError> {
        let creating = Instant::now();
        let mut writer = self
            .store
            .create(key)
            .map_err(|e| object_error("variant", e))?;
        let create_ns = ns(creating);
        let before = writer.stats();
        let encoding = Instant::now();
        encode(pixels, format, &mut writer).map_err(|e| image_error(key, "encode", e))?;
        let encode_wall = ns(encoding);
        let during = writer.stats().io_ns - before.io_ns;
        self.stats.add(ENCODE, encode_wall.saturating_sub(during));
        Ok(Encoded {
            writer,
            io_ns: create_ns + during,
        })
    }

    /// Makes the encoded variant durable and visible.
    fn commit(&self, encoded: Encoded) -> Result<(), ProcessError> {
        let committing = Instant::now();
        let written = encoded
            .writer
            .commit()
            .map_err(|e| object_error("variant", e))?;
        self.stats.add(WRITE, encoded.io_ns + ns(committing));
        self.stats.wrote(written.bytes);
        Ok(())
    }
}

impl Processor for Thumbnail {
    fn name(&self) -> &str {
        NAME
    }

    fn process(&self, task: &Task, _attempt: &Attempt) -> Result<Output, ProcessError> {
        // The source's first answer comes before a CPU slot is taken, and
        // the commit after it is given back.
        let (reader, open_ns) = self.open(task)?;
        let slot = self.cpu.as_ref().map(Slots::acquire);
        let (source, format) = self.decode(task, reader, open_ns)?;
        let (sw, sh) = source.dimensions();
        let (w, h) = fit_inside(sw, sh, task.size());
        let resizing = Instant::now();
        let variant = resize(&source, w, h)?;
        drop(source);
        self.stats.add(RESIZE, ns(resizing));
        let key = variant_key(task.image_key(), task.size());
        let encoded = self.encode(&key, &variant, format)?;
        drop(variant);
        drop(slot);
        self.commit(encoded)?;
        self.stats.item();
        Ok(Output {
            output_key: Some(key.into()),
        })
    }

    fn report(&self) -> Option<ProcessorReport> {
        Some(self.stats.report("thumbnail"))
    }
}

/// A variant encoded into an uncommitted object.
struct Encoded {
    writer: Box<dyn ObjectWriter>,
    /// Time in storage calls so far.
    io_ns: u64,
}

fn ns(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// Classes a store error: I/O is transient, everything else permanent.
fn object_error(what: &str, e: ObjectError) -> ProcessError {
    let message = format!("{what} {e}");
    if e.is_transient() {
        ProcessError::transient(e.kind(), message)
    } else {
        ProcessError::permanent(e.kind(), message)
    }
}

/// Classes a codec error: storage I/O is transient; a source that ends early
/// (`UnexpectedEof`), bad data, unsupported features and limits are permanent.
fn image_error(key: &str, op: &str, e: ImageError) -> ProcessError {
    match e {
        ImageError::IoError(io) if io.kind() == io::ErrorKind::UnexpectedEof => {
            ProcessError::permanent(
                "undecodable",
                format!("{key:?}: cannot {op}: truncated: {io}"),
            )
        }
        ImageError::IoError(io) => {
            ProcessError::transient("io", format!("{key:?}: cannot {op}: {io}"))
        }
        ImageError::Limits(l) => ProcessError::permanent(
            "too_large",
            format!(
                "{key:?}: cannot {op}: {l} (at most {MAX_SOURCE_DIMENSION} pixels a side, \
                 {} MiB of decoded data)",
                MAX_DECODE_BYTES >> 20
            ),
        ),
        ImageError::Unsupported(u) => {
            ProcessError::permanent("unsupported_format", format!("{key:?}: cannot {op}: {u}"))
        }
        other if op == "encode" => {
            ProcessError::permanent("encode", format!("{key:?}: cannot {op}: {other}"))
        }
        other => ProcessError::permanent("undecodable", format!("{key:?}: cannot {op}: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object_store::LocalStore;
    use taskq::ErrorClass;

    fn size(s: &str) -> Size {
        s.parse().unwrap()
    }

    #[test]
    fn fit_inside_keeps_the_aspect_and_touches_the_box() {
        for (w, h, b) in [
            (1024, 768, "200x200"),
            (768, 1024, "200x200"),
            (1024, 768, "400x300"),
            (1000, 1, "200x200"),
            (1, 1000, "200x200"),
            (3, 7, "10000x10000"),
            (4000, 3000, "1x1"),
            (256, 192, "640x100"),
            (1, 1, "7x3"),
        ] {
            let b = size(b);
            let (nw, nh) = fit_inside(w, h, b);
            assert!(nw <= b.width && nh <= b.height, "{w}x{h} in {b}: {nw}x{nh}");
            assert!(nw == b.width || nh == b.height, "{w}x{h} in {b}: {nw}x{nh}");
            assert!(nw >= 1 && nh >= 1);
            // Aspect kept within rounding of the shorter side.
            let exact_h = f64::from(h) * f64::from(nw) / f64::from(w);
            let exact_w = f64::from(w) * f64::from(nh) / f64::from(h);
            assert!(
                (f64::from(nh) - exact_h).abs() <= 0.5 + 1e-9
                    || (f64::from(nw) - exact_w).abs() <= 0.5 + 1e-9
                    || nw == 1
                    || nh == 1,
                "{w}x{h} in {b}: {nw}x{nh}"
            );
        }
    }

    #[test]
    fn resize_gives_the_requested_size_and_keeps_colour() {
        let src = Pixels::Rgb8(RgbImage::from_pixel(64, 48, image::Rgb([200, 10, 30])));
        let out = resize(&src, 20, 15).unwrap();
        assert_eq!(out.dimensions(), (20, 15));
        let Pixels::Rgb8(img) = out else {
            panic!("RGB in, RGB out")
        };
        assert!(img.pixels().all(|p| p.0 == [200, 10, 30]));
        let src = Pixels::Rgba8(RgbaImage::from_pixel(10, 10, image::Rgba([1, 2, 3, 128])));
        assert!(matches!(resize(&src, 30, 30).unwrap(), Pixels::Rgba8(_)));
    }

    fn store_with(files: &[(&str, Vec<u8>)]) -> (tempfile::TempDir, Thumbnail) {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).unwrap();
        for (key, bytes) in files {
            store.put(key, &mut &bytes[..]).unwrap();
        }
        (dir, Thumbnail::new(store))
    }

    fn png_bytes(img: &Pixels) -> Vec<u8> {
        let mut out = Vec::new();
        encode(img, ImageFormat::Png, &mut out).unwrap();
        out
    }

    #[test]
    fn png_with_alpha_stays_png_with_alpha_and_output_is_deterministic() {
        let src = Pixels::Rgba8(RgbaImage::from_fn(40, 20, |x, y| {
            image::Rgba([x as u8 * 6, y as u8 * 12, 7, (x + y) as u8 * 4])
        }));
        let (dir, p) = store_with(&[("a.png", png_bytes(&src))]);
        let task = Task::new("a.png", size("10x10")).unwrap();
        let out = p.process(&task, &Attempt::first()).unwrap();
        assert_eq!(out.output_key.as_deref(), Some("variants/10x10/a.png"));
        let path = dir.path().join("variants/10x10/a.png");
        let first = std::fs::read(&path).unwrap();
        let img = image::load_from_memory(&first).unwrap();
        assert_eq!((img.width(), img.height()), (10, 5));
        assert!(img.color().has_alpha());
        p.process(&task, &Attempt::first()).unwrap();
        assert_eq!(
            std::fs::read(&path).unwrap(),
            first,
            "same input, same bytes"
        );
        let r = p.report().unwrap();
        assert_eq!(r.items, 2);
        assert_eq!(r.stages.len(), STAGES.len());
        assert!(r.stages.iter().all(|s| s.count == 2), "{r:?}");
        assert!(r.bytes_read > 0 && r.bytes_written > 0);
    }

    #[test]
    fn failures_are_classed() {
        let good = png_bytes(&Pixels::Rgb8(RgbImage::new(8, 8)));
        let truncated = good[..good.len() / 2].to_vec();
        let (_dir, p) = store_with(&[
            ("garbage.jpg", b"this is not an image at all".to_vec()),
            ("truncated.png", truncated),
            ("gif.gif", b"GIF89a\x01\x00\x01\x00\x00\x00\x00;".to_vec()),
        ]);
        for (key, kind) in [
            ("missing.jpg", "not_found"),
            ("garbage.jpg", "undecodable"),
            ("truncated.png", "undecodable"),
            ("gif.gif", "unsupported_format"),
        ] {
            let task = Task::new(key, size("4x4")).unwrap();
            let e = p.process(&task, &Attempt::first()).unwrap_err();
            assert_eq!(
                (e.class, e.kind.as_str()),
                (ErrorClass::Permanent, kind),
                "{key}: {e}"
            );
            assert!(e.message.contains(key), "{e}");
        }
        assert_eq!(p.report().unwrap().items, 0);
    }

    #[test]
    fn cpu_slots_bound_how_many_hold_one_at_once() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let slots = Slots {
            free: Mutex::new(2),
            freed: Condvar::new(),
        };
        let (holding, most) = (AtomicUsize::new(0), AtomicUsize::new(0));
        std::thread::scope(|s| {
            for _ in 0..6 {
                s.spawn(|| {
                    for _ in 0..50 {
                        let _slot = slots.acquire();
                        let now = holding.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        std::thread::yield_now();
                        holding.fetch_sub(1, Ordering::SeqCst);
                    }
                });
            }
        });
        assert!(most.load(Ordering::SeqCst) <= 2, "{most:?}");
        assert_eq!(*slots.free.lock().unwrap(), 2, "every slot given back");
    }

    #[test]
    fn with_cpu_slots_makes_the_same_variants_and_gives_slots_back_on_failure() {
        let src = Pixels::Rgb8(RgbImage::from_fn(30, 30, |x, y| {
            image::Rgb([x as u8 * 8, y as u8 * 8, 99])
        }));
        let (dir, p) = store_with(&[("a.png", png_bytes(&src)), ("bad.png", b"junk".to_vec())]);
        let plain = p.process(&Task::new("a.png", size("9x9")).unwrap(), &Attempt::first());
        let first = std::fs::read(dir.path().join("variants/9x9/a.png")).unwrap();
        assert!(plain.is_ok());
        let p = Thumbnail {
            store: p.store.clone(),
            stats: StageStats::new(&STAGES),
            cpu: None,
        }
        .with_cpu_slots(1);
        let bad = Task::new("bad.png", size("9x9")).unwrap();
        for _ in 0..3 {
            // A failed decode gives its slot back: the next attempt would
            // wait forever otherwise.
            assert!(p.process(&bad, &Attempt::first()).is_err());
        }
        p.process(&Task::new("a.png", size("9x9")).unwrap(), &Attempt::first())
            .unwrap();
        let second = std::fs::read(dir.path().join("variants/9x9/a.png")).unwrap();
        assert_eq!(first, second);
        assert_eq!(*p.cpu.as_ref().unwrap().free.lock().unwrap(), 1);
    }
}
