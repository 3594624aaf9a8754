//! Sample source images and their task file, made from a seed: the real job
//! can run end to end with nothing downloaded.
//!
//! Image `i` (1-based) is `img/{i:06}.png` when `i` is a multiple of 4 and
//! `img/{i:06}.jpg` otherwise: a diagonal colour gradient whose direction and
//! hues depend on the seed and `i`, with ±12 of per-pixel noise. The task
//! file, `tasks.json` at the store's root, asks for every image at every
//! requested size. The same options always give the same bytes.

use std::io::Write;

use image::{ImageFormat, Rgb, RgbImage};
use serde::Serialize;

use crate::object_store::{ObjectError, ObjectStore};
use crate::thumbnail::{encode, Pixels};
use taskq::error::Error;
use taskq::processor::{mix, splitmix};
use taskq::setting;
use taskq::task::{Size, MAX_DIMENSION};

/// The key of the task file that [`seed_images`] writes.
pub const TASKS_KEY: &str = "tasks.json";

/// Most images [`seed_images`] writes in one call.
pub const MAX_SAMPLE_IMAGES: u64 = 1_000_000;

/// What [`seed_images`] makes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SampleOptions {
    /// How many images.
    pub count: u64,
    /// Seed of the gradients and the noise.
    pub seed: u64,
    /// Width of every image, pixels.
    pub width: u32,
    /// Height of every image, pixels.
    pub height: u32,
    /// The variant sizes each image gets a task for.
    pub sizes: Vec<Size>,
}

impl SampleOptions {
    /// `count` 1024×768 images with seed 0, each with tasks for 200x200 and 400x400.
    pub fn new(count: u64) -> Self {
        SampleOptions {
            count,
            seed: 0,
            width: 1024,
            height: 768,
            sizes: vec![
                Size::new(200, 200).expect("valid"),
                Size::new(400, 400).expect("valid"),
            ],
        }
    }

    /// Checks every setting.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the first bad setting.
    pub fn validate(&self) -> Result<(), Error> {
        if !(1..=MAX_SAMPLE_IMAGES).contains(&self.count) {
            return Err(Error::config(
                setting::COUNT,
                format!(
                    "must be between 1 and {MAX_SAMPLE_IMAGES}, got {}",
                    self.count
                ),
            ));
        }
        for (name, v) in [(setting::WIDTH, self.width), (setting::HEIGHT, self.height)] {
            if !(1..=MAX_DIMENSION).contains(&v) {
                return Err(Error::config(
                    name,
                    format!("must be between 1 and {MAX_DIMENSION}, got {v}"),
                ));
            }
        }
        if self.sizes.is_empty() {
            return Err(Error::config(
                setting::SIZES,
                "must name at least one WxH size",
            ));
        }
        Ok(())
    }
}

/// What [`seed_images`] wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SampleSummary {
    /// Images written.
    pub images: u64,
    /// Tasks in the task file.
    pub tasks: u64,
    /// Bytes of the images.
    pub bytes: u64,
}

/// The key of sample image `index` (1-based).
///
/// # Examples
///
/// ```
/// use taskq_thumbnail::samples::sample_key;
/// assert_eq!(sample_key(1), "img/000001.jpg");
/// assert_eq!(sample_key(4), "img/000004.png");
/// ```
pub fn sample_key(index: u64) -> String {
    let ext = if index.is_multiple_of(4) {
        "png"
    } else {
        "jpg"
    };
    format!("img/{index:06}.{ext}")
}

/// The pixels of sample image `index` for `seed`.
pub fn sample_image(seed: u64, index: u64, width: u32, height: u32) -> RgbImage {
    let h = mix(seed, &index.to_le_bytes());
    // Per-image gradient: start colour, per-axis slopes, all from the hash.
    let base = [
        (h & 0xff) as i32,
        ((h >> 8) & 0xff) as i32,
        ((h >> 16) & 0xff) as i32,
    ];
    let slope = |shift: u32| ((h >> shift) & 0x1ff) as i32 - 256; // -256..=255 over the image
    let (sx, sy) = (
        [slope(24), slope(33), slope(42)],
        [slope(51), slope(7), slope(15)],
    );
    let (w, hgt) = (width.max(1) as i32, height.max(1) as i32);
    let mut noise = splitmix(h ^ 0x5a5a_5a5a);
    RgbImage::from_fn(width, height, |x, y| {
        let (x, y) = (x as i32, y as i32);
        let mut px = [0u8; 3];
        for c in 0..3 {
            // xorshift64: cheap deterministic noise, ±12.
            noise ^= noise << 13;
            noise ^= noise >> 7;
            noise ^= noise << 17;
            let n = (noise % 25) as i32 - 12;
            let v = base[c] + sx[c] * x / w + sy[c] * y / hgt + n;
            px[c] = v.rem_euclid(512).min(511 - v.rem_euclid(512)).clamp(0, 255) as u8;
        }
        Rgb(px)
    })
}

/// Writes `options.count` sample images and the task file [`TASKS_KEY`] into
/// `store` (each through the store's atomic writes; the task file last, so a
/// task file is only ever there with every image it names).
///
/// # Errors
///
/// [`Error::Config`] for bad options, [`Error::Io`] naming the key that could
/// not be written.
pub fn seed_images(
    store: &dyn ObjectStore,
    options: &SampleOptions,
) -> Result<SampleSummary, Error> {
    options.validate()?;
    let failed = |e: ObjectError| {
        Error::io(
            "cannot write a sample",
            std::io::Error::other(e.to_string()),
        )
    };
    let mut summary = SampleSummary::default();
    let mut tasks = String::from("[\n");
    for i in 1..=options.count {
        let key = sample_key(i);
        let format = if key.ends_with(".png") {
            ImageFormat::Png
        } else {
            ImageFormat::Jpeg
        };
        let pixels = Pixels::Rgb8(sample_image(options.seed, i, options.width, options.height));
        let mut writer = store.create(&key).map_err(failed)?;
        encode(&pixels, format, &mut writer).map_err(|e| {
            Error::io(
                format!("cannot write sample {key}"),
                std::io::Error::other(e),
            )
        })?;
        summary.bytes += writer.commit().map_err(failed)?.bytes;
        summary.images += 1;
        for size in &options.sizes {
            if summary.tasks > 0 {
                tasks.push_str(",\n");
            }
            tasks.push_str(&format!(r#"{{"image_key": "{key}", "size": "{size}"}}"#));
            summary.tasks += 1;
        }
    }
    tasks.push_str("\n]\n");
    let mut writer = store.create(TASKS_KEY).map_err(failed)?;
    writer
        .write_all(tasks.as_bytes())
        .map_err(|e| Error::io(format!("cannot write {TASKS_KEY}"), e))?;
    writer.commit().map_err(failed)?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object_store::LocalStore;

    #[test]
    fn samples_are_deterministic_and_decode() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let options = SampleOptions {
            count: 5,
            seed: 7,
            width: 64,
            height: 48,
            sizes: vec!["20x20".parse().unwrap()],
        };
        for dir in [&a, &b] {
            let s = seed_images(&LocalStore::open(dir.path()).unwrap(), &options).unwrap();
            assert_eq!((s.images, s.tasks), (5, 5));
        }
        for i in 1..=5 {
            let key = sample_key(i);
            let x = std::fs::read(a.path().join(&key)).unwrap();
            assert_eq!(x, std::fs::read(b.path().join(&key)).unwrap());
            let img = image::load_from_memory(&x).unwrap();
            assert_eq!((img.width(), img.height()), (64, 48));
        }
        let tasks = std::fs::read_to_string(a.path().join(TASKS_KEY)).unwrap();
        let parsed: serde_json::Value = serde_json::from_str(&tasks).unwrap();
        assert_eq!(parsed.as_array().unwrap().len(), 5);
        assert_ne!(sample_image(1, 1, 8, 8), sample_image(2, 1, 8, 8));
        assert_ne!(sample_image(1, 1, 8, 8), sample_image(1, 2, 8, 8));
    }

    #[test]
    fn bad_options_name_the_setting() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).unwrap();
        let mut o = SampleOptions::new(0);
        let e = seed_images(&store, &o).unwrap_err().to_string();
        assert!(e.starts_with("invalid setting count: "), "{e}");
        o.count = 1;
        o.width = 0;
        assert!(seed_images(&store, &o)
            .unwrap_err()
            .to_string()
            .starts_with("invalid setting width: "));
    }
}
