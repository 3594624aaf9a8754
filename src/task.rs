//! A task: one image variant to produce, with the key that makes it idempotent.
//!
//! Strings are [`CompactString`]s: the usual keys (`img/000123.jpg`,
//! `img/000123.jpg:200x200`) are at most 24 bytes and live inline, so building,
//! moving and dropping a task allocates nothing on the hot path.

use std::fmt;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use compact_str::CompactString;
use serde::{Deserialize, Serialize};

/// Largest accepted width or height of a variant, in pixels.
pub const MAX_DIMENSION: u32 = 10_000;

/// Longest accepted `image_key` (and `idempotency_key`), in bytes.
pub const MAX_KEY_BYTES: usize = 1024;

/// The pixel size of a variant, written `WxH` (for example `200x200`).
///
/// # Examples
///
/// ```
/// use taskq::Size;
/// let size: Size = "400x300".parse().unwrap();
/// assert_eq!((size.width, size.height), (400, 300));
/// assert_eq!(size.to_string(), "400x300");
/// assert!("0x5".parse::<Size>().is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Size {
    /// Width in pixels, 1..=10000.
    pub width: u32,
    /// Height in pixels, 1..=10000.
    pub height: u32,
}

impl Size {
    /// A size after checking both dimensions are within `1..=10000`.
    ///
    /// # Errors
    ///
    /// A [`TaskError::Field`] naming `size` when a dimension is out of range.
    pub fn new(width: u32, height: u32) -> Result<Self, TaskError> {
        for (name, v) in [("width", width), ("height", height)] {
            if !(1..=MAX_DIMENSION).contains(&v) {
                return Err(TaskError::field(
                    "size",
                    format!("{name} must be between 1 and {MAX_DIMENSION}, got {v}"),
                ));
            }
        }
        Ok(Size { width, height })
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}", self.width, self.height)
    }
}

impl FromStr for Size {
    type Err = TaskError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            TaskError::field(
                "size",
                format!(
                    "expected WxH with 1 <= W,H <= {MAX_DIMENSION} (like \"200x200\"), got {s:?}"
                ),
            )
        };
        let (w, h) = s.split_once('x').ok_or_else(bad)?;
        let dim = |d: &str| -> Result<u32, TaskError> {
            // Digits only: no sign, no spaces, no leading '+', at most 5 digits.
            if d.is_empty() || d.len() > 5 || !d.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            d.parse().map_err(|_| bad())
        };
        let (w, h) = (dim(w)?, dim(h)?);
        if !(1..=MAX_DIMENSION).contains(&w) || !(1..=MAX_DIMENSION).contains(&h) {
            return Err(bad());
        }
        Ok(Size {
            width: w,
            height: h,
        })
    }
}

impl TryFrom<String> for Size {
    type Error = TaskError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Size> for String {
    fn from(s: Size) -> String {
        s.to_string()
    }
}

/// Why a task (not a file) was refused: which field, and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TaskError {
    /// A field is present but its value is not acceptable.
    #[error("field `{field}`: {message}")]
    Field {
        /// The JSON field name.
        field: &'static str,
        /// What was wrong and what was expected.
        message: String,
    },
    /// A required field is absent.
    #[error("missing field `{0}`")]
    Missing(&'static str),
    /// The record is valid JSON but not an object.
    #[error("expected a JSON object for a task, got {0}")]
    NotAnObject(&'static str),
    /// The record could not be read as JSON at all: an NDJSON line that is not
    /// UTF-8, not JSON, nested past the depth limit or longer than the size
    /// limit. The reader went on at the next line. The message says what was
    /// expected and where in the line (`not JSON: expected `:` at column 14`).
    #[error("{0}")]
    Malformed(String),
}

impl TaskError {
    /// [`TaskError::Field`]: `field` (`image_key`, `size`, `id`) is wrong, and
    /// `message` says what was expected.
    pub fn field(field: &'static str, message: impl Into<String>) -> Self {
        TaskError::Field {
            field,
            message: message.into(),
        }
    }
}

/// Checks an image key: non-empty, at most 1024 bytes, a relative path with no
/// `..` segment, no NUL, no backslash, no control characters.
///
/// # Errors
///
/// A [`TaskError::Field`] naming `field` and the rule that failed.
pub fn validate_key(field: &'static str, key: &str) -> Result<(), TaskError> {
    if key.is_empty() {
        return Err(TaskError::field(field, "must not be empty"));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(TaskError::field(
            field,
            format!("must be at most {MAX_KEY_BYTES} bytes, got {}", key.len()),
        ));
    }
    if key.bytes().any(|b| b == 0) {
        return Err(TaskError::field(field, "must not contain NUL"));
    }
    // ASCII controls by bytes (the common case); other controls only in non-ASCII keys.
    if key.bytes().any(|b| b < 0x20 || b == 0x7f)
        || (!key.is_ascii() && key.chars().any(char::is_control))
    {
        return Err(TaskError::field(
            field,
            "must not contain control characters",
        ));
    }
    if field == "image_key" {
        if key.starts_with('/') || key.contains('\\') || has_drive_prefix(key) {
            return Err(TaskError::field(
                field,
                format!("must be a relative path with '/' separators, got {key:?}"),
            ));
        }
        if key.split('/').any(|seg| seg == "..") {
            return Err(TaskError::field(
                field,
                format!("must not contain a '..' segment, got {key:?}"),
            ));
        }
        if key.split('/').any(|seg| seg.is_empty() || seg == ".") {
            return Err(TaskError::field(
                field,
                format!("must not contain empty or '.' segments, got {key:?}"),
            ));
        }
    }
    Ok(())
}

fn has_drive_prefix(key: &str) -> bool {
    let b = key.as_bytes();
    b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':'
}

/// Milliseconds since the Unix epoch, now.
pub fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// One image-variant job.
///
/// The idempotency key says when two tasks are the same piece of work: at most one
/// processing per key succeeds, in one run and across runs. The fields are
/// read through accessors and set only through the constructors, which
/// validate them, so a task cannot hold an image key its idempotency key
/// does not describe.
///
/// # Examples
///
/// ```
/// use taskq::Task;
/// let task = Task::new("img/000123.jpg", "200x200".parse().unwrap()).unwrap();
/// assert_eq!(task.idempotency_key(), "img/000123.jpg:200x200");
/// assert_eq!(task.attempts(), 0);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    /// Caller's id (a string or integer in the input), or the task's ordinal in
    /// its input when absent. A label for reports, not an identity.
    pub(crate) id: CompactString,
    /// Where the source image lives, relative to the store root.
    pub(crate) image_key: CompactString,
    /// The variant to produce.
    pub(crate) size: Size,
    /// At most one successful processing per key; defaults to `image_key:size`.
    pub(crate) idempotency_key: CompactString,
    /// When the task was created (parsed or built), Unix milliseconds.
    pub(crate) created_at: u64,
    /// Attempts made so far (0 before the first).
    pub(crate) attempts: u32,
}

impl Task {
    /// The caller's id, or the task's ordinal in its input when it had none:
    /// a label for reports, not an identity.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Where the source image lives, relative to the store root.
    pub fn image_key(&self) -> &str {
        &self.image_key
    }

    /// The variant to produce.
    pub fn size(&self) -> Size {
        self.size
    }

    /// The key that makes the task idempotent (default `image_key:size`).
    pub fn idempotency_key(&self) -> &str {
        &self.idempotency_key
    }

    /// When the task was created (parsed or built), Unix milliseconds.
    pub fn created_at(&self) -> u64 {
        self.created_at
    }

    /// Attempts made so far (0 before the first).
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Sets the attempts made so far: a task resumed from a queue that counts
    /// attempts itself (the PostgreSQL queue) is attempt `n + 1` to its
    /// processor, as it is to the queue.
    ///
    /// ```
    /// use taskq::Task;
    /// let t = Task::new("img/1.jpg", "8x8".parse()?)?.with_attempts(2);
    /// assert_eq!(t.attempts(), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_attempts(mut self, n: u32) -> Self {
        self.attempts = n;
        self
    }

    /// Forgets the attempts made, so that a dead letter submitted again gets
    /// the whole retry budget (`taskq dlq retry`).
    pub fn reset_attempts(&mut self) {
        self.attempts = 0;
    }
}

impl Task {
    /// A placeholder with empty strings, which own no heap memory: what a
    /// recycled job box holds between two tasks.
    pub(crate) fn empty() -> Self {
        Task {
            id: CompactString::const_new(""),
            image_key: CompactString::const_new(""),
            size: Size {
                width: 1,
                height: 1,
            },
            idempotency_key: CompactString::const_new(""),
            created_at: 0,
            attempts: 0,
        }
    }

    /// A task with the default idempotency key `image_key:size`, an empty id and
    /// `created_at` set to now.
    ///
    /// # Errors
    ///
    /// [`TaskError`] when `image_key` breaks the rules of [`validate_key`].
    pub fn new(image_key: &str, size: Size) -> Result<Self, TaskError> {
        validate_key("image_key", image_key)?;
        Ok(Task {
            id: CompactString::default(),
            image_key: image_key.into(),
            size,
            idempotency_key: default_idempotency_key(image_key, size),
            created_at: unix_millis(),
            attempts: 0,
        })
    }

    /// A task from every field a task file may give, `created_at` set to
    /// now: the idempotency key is `idempotency_key` when given, else
    /// `image_key:size`.
    ///
    /// # Errors
    ///
    /// [`TaskError`] when `image_key` or `idempotency_key` breaks the rules
    /// of [`validate_key`].
    ///
    /// # Examples
    ///
    /// ```
    /// use taskq::Task;
    /// let t = Task::from_parts("7".into(), "img/7.jpg", "64x64".parse()?, Some("k7"))?;
    /// assert_eq!((t.id(), t.idempotency_key()), ("7", "k7"));
    /// let t = Task::from_parts("8".into(), "img/8.jpg", "64x64".parse()?, None)?;
    /// assert_eq!(t.idempotency_key(), "img/8.jpg:64x64");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_parts(
        id: CompactString,
        image_key: &str,
        size: Size,
        idempotency_key: Option<&str>,
    ) -> Result<Self, TaskError> {
        validate_key("image_key", image_key)?;
        let idempotency_key = match idempotency_key {
            Some(key) => {
                validate_key("idempotency_key", key)?;
                CompactString::from(key)
            }
            None => default_idempotency_key(image_key, size),
        };
        Ok(Task {
            id,
            image_key: image_key.into(),
            size,
            idempotency_key,
            created_at: unix_millis(),
            attempts: 0,
        })
    }

    /// Sets the id.
    pub fn with_id(mut self, id: impl Into<CompactString>) -> Self {
        self.id = id.into();
        self
    }

    /// Sets an explicit idempotency key.
    ///
    /// # Errors
    ///
    /// [`TaskError`] when the key is empty, too long or holds NUL/control characters.
    pub fn with_idempotency_key(mut self, key: &str) -> Result<Self, TaskError> {
        validate_key("idempotency_key", key)?;
        self.idempotency_key = key.into();
        Ok(self)
    }
}

/// The default idempotency key: `"{image_key}:{size}"`.
pub fn default_idempotency_key(image_key: &str, size: Size) -> CompactString {
    // Built by hand: `format_compact!` goes through `fmt`, which is a quarter of
    // the cost of parsing a record.
    let digits = |v: u32| v.checked_ilog10().unwrap_or(0) as usize + 1;
    // The exact length, so keys of up to 24 bytes stay inline.
    let len = image_key.len() + 2 + digits(size.width) + digits(size.height);
    let mut key = CompactString::with_capacity(len);
    key.push_str(image_key);
    key.push(':');
    push_decimal(&mut key, size.width);
    key.push('x');
    push_decimal(&mut key, size.height);
    key
}

fn push_decimal(out: &mut CompactString, mut v: u32) {
    let mut digits = [0u8; 10];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    for &d in &digits[i..] {
        out.push(char::from(d));
    }
}

#[cfg(all(test, not(feature = "loom")))]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_and_reject() {
        assert_eq!(
            "1x1".parse::<Size>().unwrap(),
            Size {
                width: 1,
                height: 1
            }
        );
        assert_eq!(
            "10000x10000".parse::<Size>().unwrap(),
            Size {
                width: 10000,
                height: 10000
            }
        );
        for bad in [
            "0x0",
            "-1x5",
            "99999x1",
            "200X200",
            "200x",
            "x200",
            "200",
            "",
            " 200x200",
            "200x200 ",
            "+1x1",
            "10001x1",
            "1x10001",
            "1.5x2",
            "200x200x200",
            "２00x200",
        ] {
            assert!(bad.parse::<Size>().is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn keys_are_relative_paths() {
        assert!(validate_key("image_key", "img/a.jpg").is_ok());
        assert!(validate_key("image_key", "img/ünïcode/ß.jpg").is_ok());
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../b",
            "a/..",
            "a\0b",
            "C:/x",
            "a\\b",
            "a//b",
            "./a",
            "a\nb",
        ] {
            assert!(
                validate_key("image_key", bad).is_err(),
                "{bad:?} should be refused"
            );
        }
        assert!(validate_key("image_key", &"a".repeat(1024)).is_ok());
        assert!(validate_key("image_key", &"a".repeat(1025)).is_err());
        // An idempotency key is opaque: only emptiness, length, NUL and controls matter.
        assert!(validate_key("idempotency_key", "../anything:goes").is_ok());
    }

    #[test]
    fn default_key_is_image_and_size() {
        let t = Task::new("img/000001.jpg", "800x800".parse().unwrap()).unwrap();
        assert_eq!(t.idempotency_key, "img/000001.jpg:800x800");
        assert!(!t.idempotency_key.is_heap_allocated());
        let long = "k".repeat(100);
        let s = Size {
            width: 10000,
            height: 7,
        };
        assert_eq!(default_idempotency_key(&long, s), format!("{long}:10000x7"));
    }
}
