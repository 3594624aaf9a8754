//! Deterministic task files for benchmarks and tests, with a chosen share of duplicates.
//!
//! The tasks for a given [`GenerateOptions`] are the same on every run:
//!
//! 1. Task `i` (1-based) gets id `"i"`.
//! 2. A seeded [`SmallRng`] decides which tasks are duplicates: exactly
//!    `round(duplicates × count)` of them (at most `count - 1`, since the first task
//!    has nothing to repeat), spread uniformly over positions 2..=count.
//! 3. A fresh task takes the next key number `n` (1, 2, 3, ...) and image key
//!    `img/{n:06}.jpg`; a duplicate repeats the key number of an earlier fresh task
//!    picked uniformly by the same generator.
//! 4. The size of key number `n` is drawn uniformly from 200x200, 400x400 and
//!    800x800 by a hash of the seed and `n`, so a duplicate repeats its original's
//!    size (and hence its idempotency key) without the generator remembering
//!    earlier tasks: memory stays constant for any count.

use std::io::{self, BufWriter, Write};

use compact_str::{format_compact, ToCompactString};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use taskq::task::{Size, Task};

/// The sizes a generated task may have.
const SIZES: [Size; 3] = [
    Size {
        width: 200,
        height: 200,
    },
    Size {
        width: 400,
        height: 400,
    },
    Size {
        width: 800,
        height: 800,
    },
];

/// The layout of a generated file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputFormat {
    /// A JSON array with one task per line: `[\n{...},\n{...}\n]\n`.
    Json,
    /// One task object per line.
    Ndjson,
}

/// What to generate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GenerateOptions {
    /// How many tasks (0 is allowed).
    pub count: u64,
    /// The file layout, for [`write_tasks`].
    pub format: OutputFormat,
    /// The share of tasks, in `0.0..=1.0`, that repeat an earlier task.
    pub duplicates: f64,
    /// Seed for the generator; the same seed gives the same tasks.
    pub seed: u64,
}

/// Options that cannot generate a task list.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum GenerateError {
    /// The duplicate share is outside `0.0..=1.0` (or NaN).
    #[error("--duplicates must be a share between 0.0 and 1.0, got {0}")]
    Duplicates(f64),
}

impl GenerateOptions {
    /// Checks the options.
    ///
    /// # Errors
    ///
    /// [`GenerateError::Duplicates`] when `duplicates` is not within `0.0..=1.0`.
    pub fn validate(&self) -> Result<(), GenerateError> {
        if !(0.0..=1.0).contains(&self.duplicates) {
            return Err(GenerateError::Duplicates(self.duplicates));
        }
        Ok(())
    }
}

/// The stream of (key number, size) pairs behind both [`generate_tasks`] and
/// [`write_tasks`].
struct Draws {
    rng: SmallRng,
    seed: u64,
    count: u64,
    emitted: u64,
    /// Fresh key numbers handed out so far (they are 1..=fresh).
    fresh: u64,
    /// Duplicates still to place among the remaining positions.
    duplicates_left: u64,
}

impl Draws {
    fn new(opts: &GenerateOptions) -> Self {
        let wanted = (opts.duplicates * opts.count as f64).round() as u64;
        Draws {
            rng: SmallRng::seed_from_u64(opts.seed),
            seed: opts.seed,
            count: opts.count,
            emitted: 0,
            fresh: 0,
            duplicates_left: wanted.min(opts.count.saturating_sub(1)),
        }
    }
}

impl Iterator for Draws {
    type Item = (u64, Size);

    fn next(&mut self) -> Option<(u64, Size)> {
        if self.emitted == self.count {
            return None;
        }
        // Selection sampling: with `left` positions to go, this one is a duplicate
        // with probability duplicates_left / left, which places exactly the wanted
        // number, uniformly. The first position is always fresh.
        let left = self.count - self.emitted;
        let duplicate = self.fresh > 0
            && self.duplicates_left > 0
            && self.rng.random_range(0..left) < self.duplicates_left;
        let n = if duplicate {
            self.duplicates_left -= 1;
            self.rng.random_range(1..=self.fresh)
        } else {
            self.fresh += 1;
            self.fresh
        };
        self.emitted += 1;
        Some((n, size_of(self.seed, n)))
    }
}

/// The size of key number `n` under `seed`: uniform over [`SIZES`].
fn size_of(seed: u64, n: u64) -> Size {
    // SplitMix64 finaliser over the seed and key number.
    let mut z = seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    SIZES[((u128::from(z) * SIZES.len() as u128) >> 64) as usize]
}

/// The tasks for `opts`, generated lazily; ids are `"1"` to `"{count}"`.
///
/// # Panics
///
/// When `opts` fails [`GenerateOptions::validate`].
///
/// # Examples
///
/// ```
/// use taskq_bench::generate::{generate_tasks, GenerateOptions, OutputFormat};
/// let opts = GenerateOptions { count: 3, format: OutputFormat::Json, duplicates: 0.0, seed: 1 };
/// let keys: Vec<_> = generate_tasks(&opts).map(|t| t.image_key().to_string()).collect();
/// assert_eq!(keys, ["img/000001.jpg", "img/000002.jpg", "img/000003.jpg"]);
/// ```
pub fn generate_tasks(opts: &GenerateOptions) -> impl Iterator<Item = Task> {
    if let Err(e) = opts.validate() {
        panic!("{e}");
    }
    Draws::new(opts).zip(1u64..).map(|((n, size), id)| {
        Task::new(&format_compact!("img/{n:06}.jpg"), size)
            .expect("generated keys are valid")
            .with_id(id.to_compact_string())
    })
}

/// Writes the tasks for `opts` to `out` in `opts.format`, streaming and buffered;
/// returns how many were written. Each task has `id`, `image_key` and `size` (its
/// idempotency key is the default).
///
/// # Errors
///
/// The first error writing to `out`, or an [`io::ErrorKind::InvalidInput`] error
/// wrapping [`GenerateError`] when `opts` is invalid.
///
/// # Examples
///
/// ```
/// use taskq_bench::generate::{write_tasks, GenerateOptions, OutputFormat};
/// let opts = GenerateOptions { count: 2, format: OutputFormat::Ndjson, duplicates: 0.0, seed: 1 };
/// let mut out = Vec::new();
/// assert_eq!(write_tasks(&opts, &mut out).unwrap(), 2);
/// assert!(String::from_utf8(out).unwrap().starts_with(r#"{"id":"1","image_key":"img/000001.jpg","size":"#));
/// ```
pub fn write_tasks<W: Write>(opts: &GenerateOptions, out: W) -> io::Result<u64> {
    opts.validate()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let mut w = BufWriter::with_capacity(64 * 1024, out);
    let json = opts.format == OutputFormat::Json;
    if json {
        w.write_all(b"[\n")?;
    }
    let mut written = 0u64;
    for (n, size) in Draws::new(opts) {
        if json && written > 0 {
            w.write_all(b",\n")?;
        }
        written += 1;
        write!(
            w,
            r#"{{"id":"{written}","image_key":"img/{n:06}.jpg","size":"{size}"}}"#
        )?;
        if !json {
            w.write_all(b"\n")?;
        }
    }
    if json {
        w.write_all(if written > 0 { b"\n]\n" } else { b"]\n" })?;
    }
    w.flush()?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn opts(count: u64, duplicates: f64, seed: u64) -> GenerateOptions {
        GenerateOptions {
            count,
            format: OutputFormat::Json,
            duplicates,
            seed,
        }
    }

    /// (id, image_key, size, idempotency_key) of each task.
    fn summary(tasks: impl Iterator<Item = Task>) -> Vec<(String, String, Size, String)> {
        tasks
            .map(|t| {
                let (id, key, idem) = (
                    t.id().to_string(),
                    t.image_key().to_string(),
                    t.idempotency_key().to_string(),
                );
                (id, key, t.size(), idem)
            })
            .collect()
    }

    #[test]
    fn same_seed_same_tasks() {
        let a = summary(generate_tasks(&opts(2000, 0.3, 9)));
        let b = summary(generate_tasks(&opts(2000, 0.3, 9)));
        let c = summary(generate_tasks(&opts(2000, 0.3, 10)));
        assert_eq!(a, b);
        assert_ne!(a, c);
        let ids: Vec<String> = (1..=2000).map(|i| i.to_string()).collect();
        assert_eq!(a.iter().map(|t| t.0.clone()).collect::<Vec<_>>(), ids);
        // Sizes of a key do not depend on the duplicate share.
        let fresh = summary(generate_tasks(&opts(10, 0.0, 9)));
        for task in &a {
            if let Some(f) = fresh.iter().find(|f| f.1 == task.1) {
                assert_eq!(f.2, task.2);
            }
        }
    }

    #[test]
    fn no_duplicates_means_distinct_keys() {
        let tasks = summary(generate_tasks(&opts(5000, 0.0, 42)));
        let keys: HashSet<&str> = tasks.iter().map(|t| t.3.as_str()).collect();
        assert_eq!(keys.len(), 5000);
        assert_eq!(tasks[0].1, "img/000001.jpg");
        assert_eq!(tasks[4999].1, "img/005000.jpg");
        assert!(tasks.iter().all(|t| t.3 == format!("{}:{}", t.1, t.2)));
    }

    #[test]
    fn duplicate_share_is_exact_and_repeats_earlier_tasks() {
        for (count, share) in [(10_000, 0.3), (1000, 0.5), (7, 0.3), (100, 1.0), (1, 1.0)] {
            let tasks = summary(generate_tasks(&opts(count, share, 3)));
            let mut seen = HashSet::new();
            let mut repeats = 0u64;
            let mut next_fresh = 1;
            for t in &tasks {
                if seen.contains(&t.3) {
                    repeats += 1;
                } else {
                    // Fresh keys are numbered in order.
                    assert_eq!(t.1, format!("img/{next_fresh:06}.jpg"));
                    next_fresh += 1;
                    seen.insert(t.3.clone());
                }
            }
            let wanted = ((share * count as f64).round() as u64).min(count - 1);
            assert_eq!(repeats, wanted, "count {count}, share {share}");
        }
        let all_same = summary(generate_tasks(&opts(50, 1.0, 3)));
        assert!(all_same.iter().all(|t| t.3 == all_same[0].3));
    }

    #[test]
    fn sizes_are_roughly_uniform() {
        let tasks: Vec<Task> = generate_tasks(&opts(30_000, 0.0, 5)).collect();
        for size in SIZES {
            let n = tasks.iter().filter(|t| t.size() == size).count();
            assert!((9_400..=10_600).contains(&n), "{size}: {n}");
        }
    }

    #[test]
    fn invalid_share_is_refused() {
        for bad in [-0.1, 1.01, f64::NAN] {
            let e = opts(10, bad, 1).validate().unwrap_err();
            assert!(e.to_string().starts_with("--duplicates must be"), "{e}");
            let io = write_tasks(&opts(10, bad, 1), Vec::new()).unwrap_err();
            assert_eq!(io.kind(), io::ErrorKind::InvalidInput);
        }
        assert!(opts(0, 1.0, 1).validate().is_ok());
    }

    #[test]
    fn json_layout_is_one_task_per_line() {
        let mut out = Vec::new();
        write_tasks(&opts(2, 0.0, 1), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4);
        assert_eq!((lines[0], lines[3]), ("[", "]"));
        assert!(lines[1].starts_with(r#"{"id":"1","image_key":"img/000001.jpg","size":""#));
        assert!(lines[1].ends_with("\"},"));
        assert!(lines[2].starts_with(r#"{"id":"2","image_key":"img/000002.jpg","size":""#));
        assert!(text.ends_with("}\n]\n"));
    }
}
