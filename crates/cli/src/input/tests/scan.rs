//! The byte layer: strings and escapes, the word-at-a-time searches against
//! byte loops, the byte-order mark and reads at the end of the input.

use std::io::{self, BufReader, Read};

use super::*;
use crate::input::scan::{find_byte, skip_plain_string_bytes, STRING_SPECIAL};

#[test]
fn control_characters_in_strings_are_file_errors() {
    assert_eq!(
        error_of(b"[{\"image_key\": \"img/a\nb.jpg\", \"size\": \"1x1\"}]"),
        "tasks.json:1:22: invalid JSON: control character (\\u0000-\\u001F) found while parsing a string"
    );
    assert_eq!(
        strict_error_of(b"{\"image_key\": \"img/a\tb.jpg\", \"size\": \"1x1\"}\n"),
        "tasks.json:1:21: invalid JSON: control character (\\u0000-\\u001F) found while parsing a string"
    );
    assert_eq!(
        strict_error_of(b"{\"x\": \"img/a\tb.jpg\", \"size\": \"1x1\"}\n"),
        "tasks.json:1:13: invalid JSON: control character (\\u0000-\\u001F) found while parsing a string"
    );
}

#[test]
fn array_strings_with_escapes_and_brackets() {
    let input = concat!(
        r#"[{"image_key": "img/a\"]}.jpg", "size": "1x1", "x": "\\", "#,
        r#""y": ["]", "\\\"", "[[[", {"}": "{"}]},"#,
        "\n",
        r#" {"image_key": "img/ü\u00e9.jpg", "size": "2x2", "z": "é]"} x]"#
    );
    let items = read(input);
    assert_eq!(
        items[0],
        "1 #0 ok id=1 img/a\"]}.jpg 1x1 key=img/a\"]}.jpg:1x1"
    );
    assert_eq!(items[1], "2 #1 ok id=2 img/üé.jpg 2x2 key=img/üé.jpg:2x2");
    let second_line = input.split('\n').nth(1).unwrap();
    let column = second_line[..second_line.find(" x]").unwrap()]
        .chars()
        .count()
        + 2;
    assert_eq!(
        items[2],
        format!("error: tasks.json:2:{column}: expected ',' or ']' after a task, found 'x'")
    );
    // Brackets inside strings never count towards the depth limit.
    let quoted = format!(
        r#"[{{"x": "{}", "image_key": "img/a.jpg", "size": "1x1"}}]"#,
        "[{".repeat(200)
    );
    assert!(read(&quoted)[0].contains(" ok "));
}

#[test]
fn word_at_a_time_scans_match_byte_loops() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::SmallRng::seed_from_u64(1);
    // Bytes near the lane tricks' edges: the targets, their neighbours, 0x00,
    // 0x1F/0x20, 0x7F/0x80, 0xFF.
    let alphabet = [
        b'"', b'\\', b'\n', b'!', b'#', b'[', b']', 0x00, 0x01, 0x1F, 0x20, 0x21, 0x7F, 0x80, 0xFF,
        b'a', b'a', b'a', b'a', b'a',
    ];
    for _ in 0..20_000 {
        let len = rng.random_range(0..40);
        let hay: Vec<u8> = (0..len)
            .map(|_| alphabet[rng.random_range(0..alphabet.len())])
            .collect();
        let from = rng.random_range(0..=len);
        let naive = (from..len)
            .find(|&i| STRING_SPECIAL[hay[i] as usize])
            .unwrap_or(len);
        assert_eq!(
            skip_plain_string_bytes(&hay, from),
            naive,
            "{hay:?} from {from}"
        );
        for needle in [b'\n', b'"', 0x00, 0x80] {
            let naive = hay.iter().position(|&b| b == needle);
            assert_eq!(find_byte(needle, &hay), naive, "{hay:?} {needle}");
        }
    }
}

/// One step of a [`Script`].
enum Step {
    Bytes(&'static [u8]),
    End,
    Interrupted,
}

/// A `Read` that plays its steps, then fails the test: a read after the
/// last step is a read after the end of the input.
struct Script(std::collections::VecDeque<Step>);

impl Read for Script {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        match self.0.pop_front() {
            Some(Step::Bytes(b)) => {
                out[..b.len()].copy_from_slice(b);
                Ok(b.len())
            }
            Some(Step::End) => Ok(0),
            Some(Step::Interrupted) => Err(io::ErrorKind::Interrupted.into()),
            None => panic!("read after the end of the input"),
        }
    }
}

fn play(steps: Vec<Step>) -> Vec<String> {
    let reader = BufReader::new(Script(steps.into()));
    TaskReader::new(reader, "tty", ReaderOptions::default())
        .map(describe)
        .collect()
}

#[test]
fn the_end_of_the_input_is_read_once() {
    let a = b"{\"image_key\": \"img/a.jpg\", \"size\": \"200x200\"}";
    let ok = "1 #0 ok id=1 img/a.jpg 200x200 key=img/a.jpg:200x200";
    use Step::*;
    // Interrupted reads are retried, before the end of the input...
    assert_eq!(
        play(vec![
            Interrupted,
            Bytes(b"["),
            Interrupted,
            Bytes(a),
            Bytes(b"]"),
            End
        ]),
        [ok]
    );
    // ...but the end is final: nothing is read after it, however the input
    // ends (Ctrl-D on a terminal is an end).
    assert_eq!(play(vec![Bytes(a), End]), [ok]);
    assert_eq!(play(vec![Bytes(a), Bytes(b"\n \n"), End]), [ok]);
    assert_eq!(play(vec![Bytes(b"[]"), End]), Vec::<String>::new());
    assert_eq!(
        play(vec![Bytes(b"["), Bytes(a), End]),
        [
            ok,
            "error: tty:1:47: unexpected end of file: the task array opened on line 1 \
             is not closed (expected ',' or ']')"
        ]
    );
    assert_eq!(
        play(vec![Bytes(b"[tru"), End]),
        ["error: tty:1:2: invalid JSON: `tru` is not a JSON value"]
    );
    assert_eq!(
        play(vec![Bytes(b"\xEF"), End]),
        ["error: tty:1:1: invalid UTF-8 (byte 0xEF); task files must be UTF-8 text"]
    );
    assert_eq!(
        play(vec![End]),
        [format!("error: tty:1:1: {FILE_ERROR}, found end of file")]
    );
}

#[test]
fn a_short_first_read_of_0xef_is_not_a_broken_bom() {
    let ndjson = ReaderOptions {
        format: InputFormat::Ndjson,
        ..Default::default()
    };
    // U+FF5B and U+F000 start with 0xEF; `read_with` also reads them one
    // byte at a time.
    let brace = "\u{FF5B}\"image_key\": \"img/a.jpg\"}\n";
    assert_eq!(
        read_with(brace.as_bytes(), ReaderOptions::default()),
        [format!(
            "error: tasks.json:1:1: {FILE_ERROR}, found '\u{FF5B}'"
        )]
    );
    assert_eq!(
        read_with(brace.as_bytes(), ndjson),
        ["1 #0 invalid: not JSON: expected value at column 1"]
    );
    assert_eq!(
        read_with("\u{F000}".as_bytes(), ReaderOptions::default()),
        [format!(
            "error: tasks.json:1:1: {FILE_ERROR}, found '\u{F000}'"
        )]
    );
    // A BOM split across reads is still a BOM, and what follows it is read
    // from the right place.
    for capacity in [1, 2, 4] {
        for input in [format!("\u{FEFF}[{A}]"), format!("\u{FEFF}\n{A}")] {
            let reader = BufReader::with_capacity(capacity, input.as_bytes());
            let items: Vec<String> = TaskReader::new(reader, "t", ReaderOptions::default())
                .map(describe)
                .collect();
            assert_eq!(items.len(), 1, "{items:?}");
            assert!(items[0].contains(" ok "), "{items:?}");
        }
    }
    // A partial BOM, then something else: the bytes are put back and read.
    for input in [&b"\xEF\xBB[]"[..], b"\xEF\xBB", b"\xEF", b"\xEF["] {
        assert_eq!(
            error_of(input),
            "tasks.json:1:1: invalid UTF-8 (byte 0xEF); task files must be UTF-8 text"
        );
    }
    assert_eq!(
        read_with("\u{FEFF}\u{FEFF}[]".as_bytes(), ReaderOptions::default()),
        [format!(
            "error: tasks.json:1:1: {FILE_ERROR}, found '\\u{{feff}}'"
        )]
    );
}
