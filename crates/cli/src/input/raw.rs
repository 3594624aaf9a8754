//! From a record's bytes to a [`Task`]: the tolerant raw form (`Val`,
//! `RawRecord`: each known field accepts any JSON type and remembers what it
//! got), its validation, and the rewriting of numbers beyond the range of an
//! `f64`, which serde_json skips but will not parse as values.
//!
//! Invariant: a record that is well-formed JSON never becomes an
//! [`InputError`] here: whatever its fields hold, it is a [`Task`] or a
//! [`TaskError`].

use std::borrow::Cow;
use std::fmt;
use std::io::BufRead;
use std::ops::Range;

use compact_str::{CompactString, ToCompactString};
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use super::{InputError, InputErrorKind, Record, TaskReader};
use taskq::task::{validate_key, Size, Task, TaskError};

impl<R: BufRead> TaskReader<R> {
    /// Parses the record in `buf` and validates it into a task.
    pub(super) fn parse_record(&mut self, line: u64, column: u64) -> Result<Record, InputError> {
        let index = self.index;
        self.index += 1;
        let text = match std::str::from_utf8(&self.buf) {
            Ok(text) => text,
            Err(e) => {
                let offset = e.valid_up_to();
                let (l, c) = self.buf_position(offset, line, column);
                return Err(self.error(l, c, InputErrorKind::NotUtf8(self.buf[offset])));
            }
        };
        let task = match serde_json::from_str::<RawRecord<'_>>(text) {
            Ok(raw) => raw.into_task(index),
            Err(e) => self.parse_with_big_numbers(text, e, index, line, column)?,
        };
        Ok(match task {
            Ok(task) => Record::Task { line, index, task },
            Err(error) => Record::Invalid { line, index, error },
        })
    }

    /// Parses and validates a record that serde_json refused with `error`, in
    /// case it refused only a number beyond the range of an `f64` (like `1e999`):
    /// valid JSON, which serde_json skips in unknown fields but will not parse
    /// as a value.
    ///
    /// Such numbers are replaced by small ones of the same length (`1e999`
    /// becomes `0    `), so that the record parses and any other error keeps its
    /// position. It is parsed twice, with `0` and with `1`: a known field whose
    /// value differs between the two held a big number ([`Val::OutOfRange`]).
    pub(super) fn parse_with_big_numbers(
        &self,
        text: &str,
        error: serde_json::Error,
        index: u64,
        line: u64,
        column: u64,
    ) -> Result<Result<Task, TaskError>, InputError> {
        let spans = big_numbers(text);
        if spans.is_empty() {
            return Err(self.json_error(&error, line, column));
        }
        let zeros = replace_numbers(text, &spans, b'0');
        let ones = replace_numbers(text, &spans, b'1');
        match (
            serde_json::from_str::<RawRecord<'_>>(&zeros),
            serde_json::from_str::<RawRecord<'_>>(&ones),
        ) {
            (Ok(raw), Ok(other)) => Ok(raw.with_out_of_range(other).into_task(index)),
            (Err(e), _) | (_, Err(e)) => Err(self.json_error(&e, line, column)),
        }
    }
}

/// The length of the JSON number at the start of `b` (the longest prefix that
/// is one, as serde_json reads it); 0 when it does not start with one.
pub(super) fn number_len(b: &[u8]) -> usize {
    let digits = |mut i: usize| {
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        i
    };
    let mut i = usize::from(b.first() == Some(&b'-'));
    match b.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => i = digits(i + 1),
        _ => return 0,
    }
    if b.get(i) == Some(&b'.') && b.get(i + 1).is_some_and(u8::is_ascii_digit) {
        i = digits(i + 1);
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        let exponent = i + 1 + usize::from(matches!(b.get(i + 1), Some(b'+' | b'-')));
        if b.get(exponent).is_some_and(u8::is_ascii_digit) {
            i = digits(exponent);
        }
    }
    i
}

/// Where the record `text` holds numbers, outside strings, that serde_json
/// refuses as out of range.
pub(super) fn big_numbers(text: &str) -> Vec<Range<usize>> {
    let b = text.as_bytes();
    let mut spans = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            b'-' | b'0'..=b'9' => {
                let len = number_len(&b[i..]);
                if len == 0 {
                    i += 1;
                    continue;
                }
                // The number is well-formed, so only its range can fail.
                if serde_json::from_str::<f64>(&text[i..i + len]).is_err() {
                    spans.push(i..i + len);
                }
                i += len;
            }
            _ => i += 1,
        }
    }
    spans
}

/// `text` with each number in `spans` replaced by `digit` (after the number's
/// sign, if any) and spaces, to the same length.
pub(super) fn replace_numbers(text: &str, spans: &[Range<usize>], digit: u8) -> String {
    let mut bytes = text.as_bytes().to_vec();
    for span in spans {
        let number = &mut bytes[span.clone()];
        let at = usize::from(number[0] == b'-');
        number[at] = digit;
        number[at + 1..].fill(b' ');
    }
    String::from_utf8(bytes).expect("ASCII replaced by ASCII")
}

/// A JSON value as far as validation cares: strings (borrowed when unescaped)
/// and integers are kept, anything else is reduced to its type.
enum Val<'a> {
    Str(Cow<'a, str>),
    UInt(u64),
    Int(i64),
    Float(f64),
    /// A number beyond the range of an `f64` (see
    /// [`TaskReader::parse_with_big_numbers`]).
    OutOfRange,
    Bool,
    Null,
    Array,
    Object,
}

impl Val<'_> {
    fn type_name(&self) -> &'static str {
        match self {
            Val::Str(_) => "a string",
            Val::UInt(_) | Val::Int(_) | Val::Float(_) | Val::OutOfRange => "a number",
            Val::Bool => "a boolean",
            Val::Null => "null",
            Val::Array => "an array",
            Val::Object => "an object",
        }
    }
}

/// Accepts any JSON value, as a [`Val`].
struct ValVisitor;

impl<'de> Visitor<'de> for ValVisitor {
    type Value = Val<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Val::Bool)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(u64::try_from(v).map_or(Val::Int(v), Val::UInt))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Val::UInt(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Val::Float(v))
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Val::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Val::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Val::Str(Cow::Owned(v)))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Val::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Val::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Val::Array)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Val::Object)
    }
}

impl<'de> Deserialize<'de> for Val<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValVisitor)
    }
}

/// The fields a task object may hold; anything else is ignored.
enum Field {
    ImageKey,
    Size,
    Id,
    IdempotencyKey,
    Other,
}

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct FieldVisitor;
        impl Visitor<'_> for FieldVisitor {
            type Value = Field;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Field, E> {
                Ok(match v {
                    "image_key" => Field::ImageKey,
                    "size" => Field::Size,
                    "id" => Field::Id,
                    "idempotency_key" => Field::IdempotencyKey,
                    _ => Field::Other,
                })
            }
        }
        d.deserialize_str(FieldVisitor)
    }
}

/// A task object's known fields, each holding whatever JSON it had.
#[derive(Default)]
struct RawTask<'a> {
    image_key: Option<Val<'a>>,
    size: Option<Val<'a>>,
    id: Option<Val<'a>>,
    idempotency_key: Option<Val<'a>>,
    /// The first known field seen twice.
    duplicate: Option<&'static str>,
}

/// A parsed record: a task object, or the type of the non-object it was.
enum RawRecord<'a> {
    Object(RawTask<'a>),
    NotAnObject(&'static str),
}

impl<'de> Deserialize<'de> for RawRecord<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct RecordVisitor;
        impl<'de> Visitor<'de> for RecordVisitor {
            type Value = RawRecord<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a task object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut raw = RawTask::default();
                while let Some(field) = map.next_key::<Field>()? {
                    let (slot, name) = match field {
                        Field::ImageKey => (&mut raw.image_key, "image_key"),
                        Field::Size => (&mut raw.size, "size"),
                        Field::Id => (&mut raw.id, "id"),
                        Field::IdempotencyKey => (&mut raw.idempotency_key, "idempotency_key"),
                        Field::Other => {
                            map.next_value::<IgnoredAny>()?;
                            continue;
                        }
                    };
                    let value = map.next_value::<Val<'de>>()?;
                    if slot.replace(value).is_some() && raw.duplicate.is_none() {
                        raw.duplicate = Some(name);
                    }
                }
                Ok(RawRecord::Object(raw))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                ValVisitor.visit_seq(seq)?;
                Ok(RawRecord::NotAnObject("an array"))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(RawRecord::NotAnObject("a boolean"))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(RawRecord::NotAnObject("a number"))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(RawRecord::NotAnObject("a number"))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(RawRecord::NotAnObject("a number"))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
                Ok(RawRecord::NotAnObject("a string"))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(RawRecord::NotAnObject("null"))
            }
        }
        d.deserialize_any(RecordVisitor)
    }
}

/// `expected {what}, got {the type of v}`.
fn wrong_type(field: &'static str, what: &str, v: &Val<'_>) -> TaskError {
    TaskError::field(field, format!("expected {what}, got {}", v.type_name()))
}

/// Whether `a` and `b` are the same number, or not both numbers.
fn same_number(a: &Val<'_>, b: &Val<'_>) -> bool {
    match (a, b) {
        (Val::UInt(x), Val::UInt(y)) => x == y,
        (Val::Int(x), Val::Int(y)) => x == y,
        (Val::Float(x), Val::Float(y)) => x.to_bits() == y.to_bits(),
        (Val::UInt(_) | Val::Int(_) | Val::Float(_), _)
        | (_, Val::UInt(_) | Val::Int(_) | Val::Float(_)) => false,
        _ => true,
    }
}

impl RawRecord<'_> {
    /// This record, parsed with its big numbers replaced by zeros, with each
    /// known field that has another number in `other` (the same record parsed
    /// with ones instead) marked [`Val::OutOfRange`].
    fn with_out_of_range(self, other: RawRecord<'_>) -> Self {
        let (mut raw, other) = match (self, other) {
            (RawRecord::Object(raw), RawRecord::Object(other)) => (raw, other),
            // Not an object: its type is all that matters.
            (record, _) => return record,
        };
        for (slot, other) in [
            (&mut raw.image_key, other.image_key),
            (&mut raw.size, other.size),
            (&mut raw.id, other.id),
            (&mut raw.idempotency_key, other.idempotency_key),
        ] {
            if let (Some(a), Some(b)) = (slot.as_ref(), other.as_ref()) {
                if !same_number(a, b) {
                    *slot = Some(Val::OutOfRange);
                }
            }
        }
        RawRecord::Object(raw)
    }

    /// Validates the record at 0-based position `index` into a task.
    fn into_task(self, index: u64) -> Result<Task, TaskError> {
        let raw = match self {
            RawRecord::Object(raw) => raw,
            RawRecord::NotAnObject(kind) => return Err(TaskError::NotAnObject(kind)),
        };
        if let Some(field) = raw.duplicate {
            return Err(TaskError::field(
                field,
                "appears more than once in the task",
            ));
        }
        let image_key = match raw.image_key {
            None => return Err(TaskError::Missing("image_key")),
            Some(Val::Str(s)) => s,
            Some(v) => return Err(wrong_type("image_key", "a string", &v)),
        };
        validate_key("image_key", &image_key)?;
        let size: Size = match raw.size {
            None => return Err(TaskError::Missing("size")),
            Some(Val::Str(s)) => s.parse()?,
            Some(v) => return Err(wrong_type("size", "a string", &v)),
        };
        let id = match raw.id {
            None | Some(Val::Null) => (index + 1).to_compact_string(),
            Some(Val::Str(s)) => CompactString::from(s),
            Some(Val::UInt(n)) => n.to_compact_string(),
            Some(Val::Int(n)) => {
                let message = format!("expected a string or a non-negative integer, got {n}");
                return Err(TaskError::field("id", message));
            }
            Some(Val::Float(x)) => {
                let message = format!("expected a string or a non-negative integer, got {x}");
                return Err(TaskError::field("id", message));
            }
            Some(v) => return Err(wrong_type("id", "a string or a non-negative integer", &v)),
        };
        let idempotency_key = match raw.idempotency_key {
            None | Some(Val::Null) => None,
            Some(Val::Str(s)) => Some(s),
            Some(v) => return Err(wrong_type("idempotency_key", "a string", &v)),
        };
        Task::from_parts(id, &image_key, size, idempotency_key.as_deref())
    }
}
