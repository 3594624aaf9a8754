//! Validation of a record into a task: each field's rules and types, and
//! numbers beyond the range of an `f64`.

use super::*;
use crate::input::raw::{big_numbers, number_len, replace_numbers};

#[test]
fn key_rules() {
    let task = |key: &str| format!(r#"{{"image_key": "{key}", "size": "200x200"}}"#);
    let big = "k".repeat(10 * 1024);
    assert_eq!(
        read(&task(&big)),
        ["1 #0 invalid: field `image_key`: must be at most 1024 bytes, got 10240"]
    );
    assert_eq!(
        read(&task("img/ünïcode/日本.jpg")),
        ["1 #0 ok id=1 img/ünïcode/日本.jpg 200x200 key=img/ünïcode/日本.jpg:200x200"]
    );
    assert_eq!(
        read(&task("img/../etc/passwd")),
        ["1 #0 invalid: field `image_key`: must not contain a '..' segment, got \"img/../etc/passwd\""]
    );
    assert_eq!(
        read(&task(r"img/a\u0000.jpg")),
        ["1 #0 invalid: field `image_key`: must not contain NUL"]
    );
    assert_eq!(
        read(&task(r"img\/\u00fc.jpg")),
        ["1 #0 ok id=1 img/ü.jpg 200x200 key=img/ü.jpg:200x200"]
    );
    assert_eq!(
        read(&task("/etc/passwd")),
        ["1 #0 invalid: field `image_key`: must be a relative path with '/' separators, got \"/etc/passwd\""]
    );
    assert_eq!(
        read(&task("")),
        ["1 #0 invalid: field `image_key`: must not be empty"]
    );
}

#[test]
fn size_rules() {
    let task = |size: &str| format!(r#"{{"image_key": "img/a.jpg", "size": {size}}}"#);
    assert!(read(&task("\"10000x1\""))[0].contains(" ok "));
    for bad in ["0x0", "-1x5", "99999x1", "200X200", "", " 200x200"] {
        assert_eq!(
            read(&task(&format!("{bad:?}"))),
            [format!(
                "1 #0 invalid: field `size`: expected WxH with 1 <= W,H <= 10000 \
                 (like \"200x200\"), got {bad:?}"
            )]
        );
    }
    assert_eq!(
        read(&task("200")),
        ["1 #0 invalid: field `size`: expected a string, got a number"]
    );
    assert_eq!(
        read(&task("null")),
        ["1 #0 invalid: field `size`: expected a string, got null"]
    );
    assert_eq!(
        read(&task("{\"w\": 1}")),
        ["1 #0 invalid: field `size`: expected a string, got an object"]
    );
    assert_eq!(
        read(r#"{"image_key": "img/a.jpg"}"#),
        ["1 #0 invalid: missing field `size`"]
    );
}

#[test]
fn id_rules() {
    let with_id = |id: &str| format!(r#"{{"image_key": "img/a.jpg", "size": "1x1", "id": {id}}}"#);
    let input = [
        with_id("\"abc\""),
        with_id("42"),
        with_id("0"),
        with_id("null"),
        with_id("-1"),
        with_id("1.5"),
        with_id("true"),
        "[1]".to_owned(),
        r#"{"image_key": "img/a.jpg", "size": "1x1"}"#.to_owned(),
        with_id("18446744073709551615"),
        with_id("\"\""),
    ]
    .join("\n");
    let ok = |line: u64, id: &str| {
        format!(
            "{line} #{} ok id={id} img/a.jpg 1x1 key=img/a.jpg:1x1",
            line - 1
        )
    };
    assert_eq!(
        read(&input),
        [
            ok(1, "abc"),
            ok(2, "42"),
            ok(3, "0"),
            ok(4, "4"),
            "5 #4 invalid: field `id`: expected a string or a non-negative integer, got -1"
                .to_owned(),
            "6 #5 invalid: field `id`: expected a string or a non-negative integer, got 1.5"
                .to_owned(),
            "7 #6 invalid: field `id`: expected a string or a non-negative integer, got a boolean"
                .to_owned(),
            "8 #7 invalid: expected a JSON object for a task, got an array".to_owned(),
            ok(9, "9"),
            ok(10, "18446744073709551615"),
            ok(11, ""),
        ]
    );
}

#[test]
fn idempotency_key_rules() {
    let with_key =
        |k: &str| format!(r#"{{"image_key": "img/a.jpg", "size": "1x1", "idempotency_key": {k}}}"#);
    let input = [
        with_key("\"run-1\""),
        with_key("null"),
        with_key("5"),
        with_key("\"\""),
        with_key("\"../x\""),
    ]
    .join("\n");
    assert_eq!(
        read(&input),
        [
            "1 #0 ok id=1 img/a.jpg 1x1 key=run-1",
            "2 #1 ok id=2 img/a.jpg 1x1 key=img/a.jpg:1x1",
            "3 #2 invalid: field `idempotency_key`: expected a string, got a number",
            "4 #3 invalid: field `idempotency_key`: must not be empty",
            "5 #4 ok id=5 img/a.jpg 1x1 key=../x",
        ]
    );
}

#[test]
fn field_types_and_unknown_fields() {
    let input = [
        r#"{"image_key": 5, "size": "1x1"}"#,
        r#"{"image_key": ["img/a.jpg"], "size": "1x1"}"#,
        r#"{"image_key": null, "size": "1x1"}"#,
        r#"{"size": "1x1"}"#,
        r#"{"image_key": "img/a.jpg", "size": "1x1", "size": "2x2"}"#,
        r#"{"extra": {"deep": [1, {"x": null}]}, "image_key": "img/a.jpg", "size": "1x1", "\u0069d": "esc", "other": 1e999}"#,
    ]
    .join("\n");
    let items = read(&input);
    assert_eq!(
        items[..5],
        [
            "1 #0 invalid: field `image_key`: expected a string, got a number",
            "2 #1 invalid: field `image_key`: expected a string, got an array",
            "3 #2 invalid: field `image_key`: expected a string, got null",
            "4 #3 invalid: missing field `image_key`",
            "5 #4 invalid: field `size`: appears more than once in the task",
        ]
    );
    assert_eq!(items[5], "6 #5 ok id=esc img/a.jpg 1x1 key=img/a.jpg:1x1");
    let ok = r#"{"extra": {"deep": [1, {"x": null}]}, "image_key": "img/a.jpg", "size": "1x1", "\u0069d": "esc"}"#;
    assert_eq!(read(ok), ["1 #0 ok id=esc img/a.jpg 1x1 key=img/a.jpg:1x1"]);
}

#[test]
fn out_of_range_numbers_are_numbers_of_the_wrong_kind() {
    let task = |field: &str, value: &str| {
        let mut fields = vec![
            ("image_key", "\"img/a.jpg\""),
            ("size", "\"1x1\""),
            ("other", "1e999"),
        ];
        fields.retain(|&(name, _)| name != field);
        fields.push((field, value));
        let fields: Vec<String> = fields
            .iter()
            .map(|(k, v)| format!("\"{k}\": {v}"))
            .collect();
        format!("{{{}}}", fields.join(", "))
    };
    let long = format!("1{}", "0".repeat(400));
    let input = [
        task("image_key", "1e999"),
        task("size", "-1e999"),
        task("id", "1E400"),
        task("id", &long),
        task("idempotency_key", "123456789e300"),
        task("id", "[1e999]"),
        task("id", "-1e-999"),
        format!("{{\"id\": 1e999, {}", &task("id", "2")[1..]),
        "1e999".to_owned(),
        "-1e999".to_owned(),
        "[1e999]".to_owned(),
        task("id", "7"),
    ]
    .join("\n");
    let got_number = "expected a string, got a number";
    let not_an_id = "expected a string or a non-negative integer";
    assert_eq!(
        read(&input),
        [
            format!("1 #0 invalid: field `image_key`: {got_number}"),
            format!("2 #1 invalid: field `size`: {got_number}"),
            format!("3 #2 invalid: field `id`: {not_an_id}, got a number"),
            format!("4 #3 invalid: field `id`: {not_an_id}, got a number"),
            format!("5 #4 invalid: field `idempotency_key`: {got_number}"),
            format!("6 #5 invalid: field `id`: {not_an_id}, got an array"),
            format!("7 #6 invalid: field `id`: {not_an_id}, got -0"),
            "8 #7 invalid: field `id`: appears more than once in the task".to_owned(),
            "9 #8 invalid: expected a JSON object for a task, got a number".to_owned(),
            "10 #9 invalid: expected a JSON object for a task, got a number".to_owned(),
            "11 #10 invalid: expected a JSON object for a task, got an array".to_owned(),
            "12 #11 ok id=7 img/a.jpg 1x1 key=img/a.jpg:1x1".to_owned(),
        ]
    );
    assert_eq!(
        read("[1e999, {\"image_key\": \"img/a.jpg\", \"size\": -1e999},\n2e308]"),
        [
            "1 #0 invalid: expected a JSON object for a task, got a number",
            "1 #1 invalid: field `size`: expected a string, got a number",
            "2 #2 invalid: expected a JSON object for a task, got a number",
        ]
    );
    // Any other error in the record is reported as if the big number were a
    // small one, at the same place.
    for broken in [
        "{\"id\": NUM \"size\": \"1x1\"}\n",
        "{\"id\": NUM, \"image_key\": \"\\ud800\"}\n",
        "[{\"x\": [NUM, NUM], \"id\": NUM}, {\"id\": NUM}x]",
        "[{\"id\": -NUM}}]",
        "{\"id\": [NUM}\n",
        "[NUM x]",
    ] {
        // An NDJSON line is read strictly, to end in the error.
        let error = |text: String| match text.starts_with('{') {
            true => strict_error_of(text.as_bytes()),
            false => error_of(text.as_bytes()),
        };
        let big = error(broken.replace("NUM", "1e999"));
        let small = error(broken.replace("NUM", "12345"));
        assert_eq!(big, small, "{broken}");
        assert!(!big.contains("out of range"), "{big}");
    }
    assert_eq!(number_len(b"-0.5e+10,"), 8);
    assert_eq!(number_len(b"01"), 1);
    assert_eq!(number_len(b"1.e5"), 1);
    assert_eq!(number_len(b"1e"), 1);
    assert_eq!(number_len(b"-x"), 0);
    let text = r#"{"a": "1e999", "b\"": [1e999, 1e308, -2e308]}"#;
    let (first, second) = (text.find("[1e999").unwrap() + 1, text.find("-2e").unwrap());
    assert_eq!(big_numbers(text), [first..first + 5, second..second + 6]);
    assert_eq!(
        replace_numbers(text, &big_numbers(text), b'1'),
        r#"{"a": "1e999", "b\"": [1    , 1e308, -1    ]}"#
    );
}
