//! Opening files by path and the precheck pass.

use std::io;
use std::path::Path;

use super::*;

#[test]
fn open_errors_name_the_path() {
    let missing = Path::new("no-such-dir/tasks.json");
    let e = open_path(missing, ReaderOptions::default()).unwrap_err();
    let os = io::Error::from(io::ErrorKind::NotFound);
    assert!(matches!(e.kind(), InputErrorKind::Open(ref io) if io.kind() == os.kind()));
    assert_eq!(e.line(), None);
    #[cfg(target_os = "linux")]
    assert_eq!(
        e.to_string(),
        "no-such-dir/tasks.json: cannot open: No such file or directory (os error 2)"
    );
    let dir = std::env::temp_dir();
    let e = open_path(&dir, ReaderOptions::default()).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("{}: cannot open: is a directory", dir.display())
    );
}

#[test]
fn precheck_counts_or_fails() {
    let dir = std::env::temp_dir();
    let good = dir.join(format!("taskq-precheck-good-{}.ndjson", std::process::id()));
    let bad = dir.join(format!("taskq-precheck-bad-{}.json", std::process::id()));
    // An invalid task and two lines that are not JSON records: counted.
    let head = format!("{A}\n{B}\n[1]\n{{\"x\n");
    let tail = format!("{A}\n");
    std::fs::write(
        &good,
        [head.as_bytes(), b"\xFF\n", tail.as_bytes()].concat(),
    )
    .unwrap();
    std::fs::write(&bad, format!("[\n{A},\n{B}\n")).unwrap();
    let counted = precheck_path(&good, ReaderOptions::default());
    let strict = ReaderOptions {
        strict: true,
        ..ReaderOptions::default()
    };
    let refused = precheck_path(&good, strict);
    let failed = precheck_path(&bad, ReaderOptions::default());
    let _ = std::fs::remove_file(&good);
    let _ = std::fs::remove_file(&bad);
    assert_eq!(
        counted.unwrap(),
        Precheck {
            tasks: 3,
            invalid: 3,
            format: InputFormat::Ndjson
        }
    );
    // Strict: the first invalid record, an invalid task on line 3.
    let e = refused.unwrap_err();
    assert_eq!((e.line(), e.column()), (Some(3), None));
    assert!(matches!(e.kind(), InputErrorKind::InvalidTask(_)));
    let e = failed.unwrap_err();
    assert_eq!(e.source_name(), bad.display().to_string());
    assert_eq!(e.line(), Some(4));
    assert!(matches!(e.kind(), InputErrorKind::Truncated(_)));
}
