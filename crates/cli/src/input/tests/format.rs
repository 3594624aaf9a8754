//! Formats and file-level errors: detection, forced formats, line numbers,
//! array punctuation, truncation, trailing data, and messages that show input.

use std::borrow::Cow;

use super::*;
use crate::input::error::{escape_invisible, is_invisible};

#[test]
fn json_array_with_defaults() {
    let input = format!(
        r#"[{A}, {{"image_key": "img/b.jpg", "size": "400x400", "id": "x7", "idempotency_key": "k"}}]"#
    );
    assert_eq!(
        read(&input),
        [
            "1 #0 ok id=1 img/a.jpg 200x200 key=img/a.jpg:200x200",
            "1 #1 ok id=x7 img/b.jpg 400x400 key=k",
        ]
    );
    let mut reader = TaskReader::new(input.as_bytes(), "t", ReaderOptions::default());
    assert_eq!(reader.format(), None);
    let Some(Ok(Record::Task { task, .. })) = reader.next() else {
        panic!("a task")
    };
    assert_eq!(reader.format(), Some(InputFormat::Json));
    assert_eq!((task.attempts(), task.created_at() > 0), (0, true));
    assert_eq!(read("[]"), Vec::<String>::new());
    assert_eq!(read(" \n [ \n ] \n\n"), Vec::<String>::new());
}

#[test]
fn ndjson_with_blank_lines() {
    let input = format!("\n{A}\n\n   \n{B}\n\t\n{A}");
    assert_eq!(
        read(&input),
        [
            "2 #0 ok id=1 img/a.jpg 200x200 key=img/a.jpg:200x200",
            "5 #1 ok id=2 img/b.jpg 400x400 key=img/b.jpg:400x400",
            "7 #2 ok id=3 img/a.jpg 200x200 key=img/a.jpg:200x200",
        ]
    );
    let mut reader = TaskReader::new(input.as_bytes(), "t", ReaderOptions::default());
    reader.next();
    assert_eq!(reader.format(), Some(InputFormat::Ndjson));
}

#[test]
fn pretty_printed_array_keeps_line_numbers() {
    let input = "[\n  {\n    \"image_key\": \"img/a.jpg\",\n    \"size\": \"200x200\"\n  },\n  \
                 {\"image_key\": \"img/b.jpg\", \"size\": \"800x800\"}\n]\n";
    assert_eq!(
        read(input),
        [
            "2 #0 ok id=1 img/a.jpg 200x200 key=img/a.jpg:200x200",
            "6 #1 ok id=2 img/b.jpg 800x800 key=img/b.jpg:800x800",
        ]
    );
    let broken = format!("[\n  {A},\n  {{\n    \"image_key\" \"img/b.jpg\",\n  }}\n]");
    assert_eq!(
        read(&broken)[1],
        "error: tasks.json:4:17: invalid JSON: expected `:`"
    );
}

#[test]
fn crlf_line_endings() {
    let array = format!("[\r\n{A},\r\n\r\n{B}\r\n]\r\n");
    assert_eq!(
        read(&array),
        [
            "2 #0 ok id=1 img/a.jpg 200x200 key=img/a.jpg:200x200",
            "4 #1 ok id=2 img/b.jpg 400x400 key=img/b.jpg:400x400",
        ]
    );
    let lines = format!("{A}\r\n\r\n{B}\r\n");
    assert_eq!(
        read(&lines),
        [
            "1 #0 ok id=1 img/a.jpg 200x200 key=img/a.jpg:200x200",
            "3 #1 ok id=2 img/b.jpg 400x400 key=img/b.jpg:400x400",
        ]
    );
    assert_eq!(
        error_of(format!("[\r\n{A}\r\n  x]").as_bytes()),
        "tasks.json:3:3: expected ',' or ']' after a task, found 'x'"
    );
}

#[test]
fn byte_order_mark_is_skipped() {
    let bom = "\u{FEFF}";
    assert_eq!(read(&format!("{bom}[{A}]")).len(), 1);
    assert_eq!(read(&format!("{bom}{A}\n{B}\n")).len(), 2);
    assert_eq!(
        error_of(format!("{bom}x").as_bytes()),
        format!("tasks.json:1:1: {FILE_ERROR}, found 'x'")
    );
    assert_eq!(
        error_of(b"\xEF\xBB[]"),
        "tasks.json:1:1: invalid UTF-8 (byte 0xEF); task files must be UTF-8 text"
    );
}

#[test]
fn empty_or_unrecognised_files_are_refused() {
    assert_eq!(
        error_of(b""),
        format!("tasks.json:1:1: {FILE_ERROR}, found end of file")
    );
    assert_eq!(
        error_of(b" \n\n\t"),
        format!("tasks.json:3:2: {FILE_ERROR}, found end of file")
    );
    assert_eq!(
        error_of(b"\xEF\xBB\xBF"),
        format!("tasks.json:1:1: {FILE_ERROR}, found end of file")
    );
    assert_eq!(
        error_of(b"hello"),
        format!("tasks.json:1:1: {FILE_ERROR}, found 'h'")
    );
    assert_eq!(
        error_of("  é".as_bytes()),
        format!("tasks.json:1:3: {FILE_ERROR}, found 'é'")
    );
    let e = first_error(b"", ReaderOptions::default());
    assert!(matches!(e.kind(), InputErrorKind::Format(_)));
    assert_eq!(
        (e.source_name(), e.line(), e.column()),
        ("tasks.json", Some(1), Some(1))
    );
}

#[test]
fn forced_formats() {
    let json = ReaderOptions {
        format: InputFormat::Json,
        ..Default::default()
    };
    let ndjson = ReaderOptions {
        format: InputFormat::Ndjson,
        ..Default::default()
    };
    let e = first_error(A.as_bytes(), json);
    assert!(matches!(e.kind(), InputErrorKind::Format(_)));
    assert_eq!(
        e.to_string(),
        "tasks.json:1:1: expected '[' to start a JSON array of task objects, found '{'"
    );
    assert_eq!(
        read_with(format!("\u{FEFF} [{A}]").as_bytes(), json).len(),
        1
    );
    // An empty NDJSON file is simply empty.
    assert_eq!(read_with(b"", ndjson), Vec::<String>::new());
    assert_eq!(read_with(b"\n \n", ndjson), Vec::<String>::new());
    let reader = TaskReader::new(&b""[..], "t", ndjson);
    assert_eq!(reader.format(), Some(InputFormat::Ndjson));
    // A pretty-printed array is not NDJSON: its lines are read one by one,
    // and only the task on a line of its own is one.
    let items = read_with(format!("[\n{A}\n]").as_bytes(), ndjson);
    assert_eq!(
        items,
        [
            "1 #0 invalid: not JSON: the line ends inside an array (expected ']') \
             at column 1",
            "2 #1 ok id=2 img/a.jpg 200x200 key=img/a.jpg:200x200",
            "3 #2 invalid: not JSON: expected value at column 1",
        ]
    );
    let strict = ReaderOptions {
        strict: true,
        ..ndjson
    };
    assert_eq!(
        read_with(format!("[\n{A}\n]").as_bytes(), strict),
        ["error: tasks.json:1:1: invalid JSON: EOF while parsing a list"]
    );
}

#[test]
fn invalid_utf8_is_a_file_error() {
    let in_string = b"{\"image_key\": \"img/\xFF.jpg\", \"size\": \"200x200\"}\n";
    assert_eq!(
        strict_error_of(in_string),
        "tasks.json:1:20: invalid UTF-8 (byte 0xFF); task files must be UTF-8 text"
    );
    let after_wide = "[{\"image_key\": \"ü"
        .as_bytes()
        .iter()
        .chain(b"\xC3(\"}]")
        .copied();
    assert_eq!(
        error_of(&after_wide.collect::<Vec<u8>>()),
        "tasks.json:1:18: invalid UTF-8 (byte 0xC3); task files must be UTF-8 text"
    );
    let unknown_field = format!("{A}\n{{\"x\": \"\x00\"}}\n").replace('\0', "");
    let mut bytes = unknown_field.into_bytes();
    bytes.splice(bytes.len() - 3..bytes.len() - 3, *b"\xED\xA0\x80");
    assert_eq!(
        strict_error_of(&bytes),
        "tasks.json:2:8: invalid UTF-8 (byte 0xED); task files must be UTF-8 text"
    );
    let mut between = format!("[{A},\n ").into_bytes();
    between.extend_from_slice(b"\xFF]");
    assert_eq!(
        error_of(&between),
        "tasks.json:2:2: invalid UTF-8 (byte 0xFF); task files must be UTF-8 text"
    );
    assert_eq!(
        error_of(b"\xFF\xFE[]"),
        "tasks.json:1:1: invalid UTF-8 (byte 0xFF); task files must be UTF-8 text"
    );
    let e = first_error(b"[\"\xC0\xAF\"]", ReaderOptions::default());
    assert!(matches!(e.kind(), InputErrorKind::NotUtf8(0xC0)));
}

#[test]
fn truncated_arrays() {
    assert_eq!(
        error_of(b"["),
        "tasks.json:1:2: unexpected end of file: the task array opened on line 1 \
         is not closed (expected a task or ']')"
    );
    assert_eq!(
        error_of(format!("\n[{A}").as_bytes()),
        "tasks.json:2:47: unexpected end of file: the task array opened on line 2 \
         is not closed (expected ',' or ']')"
    );
    assert_eq!(
        error_of(format!("[{A},\n").as_bytes()),
        "tasks.json:2:1: unexpected end of file: the task array opened on line 1 \
         is not closed (expected a task after ',')"
    );
    assert_eq!(
        error_of(b"[{\"image_key\": \"img/a"),
        "tasks.json:1:22: unexpected end of file: the task starting at line 1, \
         column 2 is cut off"
    );
    assert_eq!(
        error_of(b"[{\"x\": [1}\n"),
        "tasks.json:1:10: invalid JSON: expected `,` or `]`"
    );
    assert_eq!(
        error_of(b"[1"),
        "tasks.json:1:3: unexpected end of file: the task array opened on line 1 \
         is not closed (expected ',' or ']')"
    );
    let e = first_error(b"[", ReaderOptions::default());
    assert!(matches!(e.kind(), InputErrorKind::Truncated(_)));
}

#[test]
fn trailing_data_after_the_array() {
    assert_eq!(
        error_of(b"[]x"),
        "tasks.json:1:3: unexpected 'x' after the closing ']' of the task array \
         (only whitespace may follow it)"
    );
    let two = format!("[{A}]\n[{B}]");
    let items = read(&two);
    assert_eq!(items.len(), 2);
    assert!(
        items[1].starts_with("error: tasks.json:2:1: unexpected '['"),
        "{items:?}"
    );
    assert_eq!(read("[] \n \r\n"), Vec::<String>::new());
    let e = first_error(b"[] {}", ReaderOptions::default());
    assert!(matches!(e.kind(), InputErrorKind::TrailingData(_)));
}

#[test]
fn array_punctuation_errors() {
    assert_eq!(
        error_of(format!("[{A} {B}]").as_bytes()),
        "tasks.json:1:48: expected ',' or ']' after a task, found '{'"
    );
    assert_eq!(
        error_of(format!("[\n{A}}}]").as_bytes()),
        "tasks.json:2:46: expected ',' or ']' after a task, found '}'"
    );
    assert_eq!(
        error_of(format!("[{A},]").as_bytes()),
        "tasks.json:1:48: expected a task object after ',' (no trailing comma allowed), \
         found ']'"
    );
    assert_eq!(
        error_of(format!("[,{A}]").as_bytes()),
        "tasks.json:1:2: expected a task object or ']' after '[', found ','"
    );
    assert_eq!(
        error_of(format!("[{A},,{B}]").as_bytes()),
        "tasks.json:1:48: expected a task object after ',', found ','"
    );
    assert_eq!(
        error_of(b"[{\"image_key\": \"img/a.jpg\" \"size\": 1}]"),
        "tasks.json:1:28: invalid JSON: expected `,` or `}`"
    );
    assert_eq!(
        error_of(b"[1, tru]"),
        "tasks.json:1:5: invalid JSON: `tru` is not a JSON value"
    );
    assert_eq!(
        strict_error_of(format!("{A}\n{A}\n{{\"image_key\": }}\n").as_bytes()),
        "tasks.json:3:15: invalid JSON: expected value"
    );
    assert_eq!(
        strict_error_of(format!("{A} {B}\n").as_bytes()),
        "tasks.json:1:47: invalid JSON: trailing characters"
    );
    // Columns count characters, not bytes.
    assert_eq!(
        strict_error_of("{\"image_key\": \"ü\", \"size\": 5 x}".as_bytes()),
        "tasks.json:1:30: invalid JSON: expected `,` or `}`"
    );
    assert_eq!(
        error_of("[\"ü\", é]".as_bytes()),
        "tasks.json:1:7: expected a task object after ',', found 'é'"
    );
    let e = first_error(b"[tru]", ReaderOptions::default());
    assert!(matches!(e.kind(), InputErrorKind::Syntax(_)));
}

#[test]
fn non_objects_are_invalid_tasks() {
    let input = format!("[[1, [2]], 3, -4.5e1, \"s\", null, true, {{}}, {A}, [[{{}}]]]");
    assert_eq!(
        read(&input),
        [
            "1 #0 invalid: expected a JSON object for a task, got an array",
            "1 #1 invalid: expected a JSON object for a task, got a number",
            "1 #2 invalid: expected a JSON object for a task, got a number",
            "1 #3 invalid: expected a JSON object for a task, got a string",
            "1 #4 invalid: expected a JSON object for a task, got null",
            "1 #5 invalid: expected a JSON object for a task, got a boolean",
            "1 #6 invalid: missing field `image_key`",
            "1 #7 ok id=8 img/a.jpg 200x200 key=img/a.jpg:200x200",
            "1 #8 invalid: expected a JSON object for a task, got an array",
        ]
    );
    let ndjson = ReaderOptions {
        format: InputFormat::Ndjson,
        ..Default::default()
    };
    assert_eq!(
        read_with(b"[1]\n\"s\"\n42\n", ndjson),
        [
            "1 #0 invalid: expected a JSON object for a task, got an array",
            "2 #1 invalid: expected a JSON object for a task, got a string",
            "3 #2 invalid: expected a JSON object for a task, got a number",
        ]
    );
}

#[test]
fn nothing_follows_an_error() {
    let mut reader = TaskReader::new(&b"[}"[..], "t", ReaderOptions::default());
    assert!(matches!(reader.next(), Some(Err(_))));
    assert!(reader.next().is_none());
    assert!(reader.next().is_none());
    let mut done = TaskReader::new(A.as_bytes(), "t", ReaderOptions::default());
    assert!(matches!(done.next(), Some(Ok(Record::Task { .. }))));
    assert!(done.next().is_none());
    assert!(done.next().is_none());
}

#[test]
fn messages_escape_invisible_characters() {
    assert_eq!(
        error_of(b"[tc\x1bc]"),
        "tasks.json:1:2: invalid JSON: `tc\\u{1b}c` is not a JSON value"
    );
    assert_eq!(
        error_of(b"[1\x08\x08]"),
        "tasks.json:1:2: invalid JSON: `1\\u{8}\\u{8}` is not a JSON value"
    );
    assert_eq!(
        error_of("\u{85}[]".as_bytes()),
        format!("tasks.json:1:1: {FILE_ERROR}, found '\\u{{85}}'")
    );
    assert_eq!(
        error_of("[\u{9b}31m]".as_bytes()),
        "tasks.json:1:2: expected a task object or ']' after '[', found '\\u{9b}'"
    );
    assert_eq!(
        error_of("[]\u{202E}".as_bytes()),
        "tasks.json:1:3: unexpected '\\u{202e}' after the closing ']' of the task array \
         (only whitespace may follow it)"
    );
    assert_eq!(
        escape_invisible("a\u{200B}b\u{2066}c\u{AD}\u{E0041}\u{7F}é日"),
        "a\\u{200b}b\\u{2066}c\\u{ad}\\u{e0041}\\u{7f}é日"
    );
    assert!(matches!(escape_invisible("img/ü.jpg"), Cow::Borrowed(_)));
    for c in (0..=0x10FFFF).filter_map(char::from_u32) {
        if c.is_control() {
            assert!(is_invisible(c), "{c:?}");
        }
    }
}

#[test]
fn format_serializes_lowercase() {
    assert_eq!(
        serde_json::to_string(&InputFormat::Ndjson).unwrap(),
        "\"ndjson\""
    );
    assert_eq!(InputFormat::default(), InputFormat::Auto);
}
