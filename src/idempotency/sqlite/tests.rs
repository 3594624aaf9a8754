//! Unit tests of the SQLite store: records, schema versions and migrations,
//! read-only opening, foreign files, dead letters and file permissions.

use std::path::Path;

use rusqlite::Connection;

use super::schema::MIGRATIONS;
use super::*;
use crate::idempotency::store::{
    DeadLetter, Pending, ProcessorRecords, RecordStatus, Store, StoreError,
};
use crate::idempotency::TaskRecord;
use crate::processor::ErrorClass;
use crate::task::Task;

fn rec(r: TaskRecord) -> Pending {
    Pending {
        record: r,
        dead: None,
        ack: None,
    }
}

fn record(i: u32, status: RecordStatus) -> TaskRecord {
    let task = Task::new(&format!("img/{i:06}.jpg"), "200x200".parse().unwrap())
        .unwrap()
        .with_id(i.to_string());
    TaskRecord {
        task,
        status,
        finished_at: 1,
        output_key: Some("out".into()),
    }
}

#[test]
fn create_commit_lookup() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("t.db"), SqliteOptions::default()).unwrap();
    let mut w = store.writer("p").unwrap();
    w.commit(&[
        rec(record(1, RecordStatus::Succeeded)),
        rec(record(2, RecordStatus::Failed)),
    ])
    .unwrap();
    let mut r = store.reader("p").unwrap();
    let hit = r
        .lookup_succeeded("img/000001.jpg:200x200")
        .unwrap()
        .unwrap();
    assert_eq!(hit.size, "200x200");
    assert_eq!(hit.output_key.as_deref(), Some("out"));
    assert!(r
        .lookup_succeeded("img/000002.jpg:200x200")
        .unwrap()
        .is_none());
    assert!(r.lookup_succeeded("nope").unwrap().is_none());
    let mut keys = vec![];
    assert_eq!(
        store
            .for_each_succeeded_key("p", &mut |k| keys.push(k.to_string()))
            .unwrap(),
        1
    );
    assert_eq!(keys, ["img/000001.jpg:200x200"]);
}

#[test]
fn success_is_never_overwritten_failure_is() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("t.db"), SqliteOptions::default()).unwrap();
    let mut w = store.writer("p").unwrap();
    w.commit(&[rec(record(1, RecordStatus::Failed))]).unwrap();
    w.commit(&[rec(record(1, RecordStatus::Succeeded))])
        .unwrap();
    w.commit(&[rec(record(1, RecordStatus::Failed))]).unwrap();
    let conn = store.connection().unwrap();
    let (status, version): (String, i64) = conn
        .query_row("SELECT status, version FROM tasks", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!((status.as_str(), version), ("succeeded", 2));
}

#[test]
fn schema_versions_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    drop(SqliteStore::open(&path, SqliteOptions::default()).unwrap());
    // Reopening an up-to-date file is fine.
    drop(SqliteStore::open(&path, SqliteOptions::default()).unwrap());
    let conn = Connection::open(&path).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    let e = SqliteStore::open(&path, SqliteOptions::default()).unwrap_err();
    assert!(
        matches!(e, StoreError::NewerSchema { found: 99, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("newer"));
}

/// A version-1 file (its CHECKs as IN lists) is migrated in place: same
/// rows, the checks still enforced, and its keys still deduplicate.
#[test]
fn a_version_1_file_is_migrated_with_its_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1.db");
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        conn.execute(
            "INSERT INTO tasks (idempotency_key, id, image_key, size, status, attempts,
                created_at, finished_at, output_key, version)
             VALUES ('img/a.jpg:200x200', '7', 'img/a.jpg', '200x200', 'succeeded', 2,
                10, 20, 'variants/200x200/img/a.jpg', 3)",
            [],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO dead_letter VALUES ('img/b.jpg:200x200', '8', 'img/b.jpg',
                '200x200', 11, 'permanent', 'bad_source', 'cannot decode', 1, 12, 12)",
            [],
        )
        .unwrap();
    }
    let store = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
    let conn = store.connection().unwrap();
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    let row: (String, String, i64, i64) = conn
        .query_row(
            "SELECT id, output_key, attempts, version FROM tasks
             WHERE idempotency_key = 'img/a.jpg:200x200'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    assert_eq!(row, ("7".into(), "variants/200x200/img/a.jpg".into(), 2, 3));
    let dead: i64 = conn
        .query_row("SELECT count(*) FROM dead_letter", [], |r| r.get(0))
        .unwrap();
    assert_eq!(dead, 1);
    let schema: String = conn
        .query_row(
            "SELECT sql FROM sqlite_schema WHERE name = 'tasks'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(schema.contains("status = 'queued' OR"), "{schema}");
    let bad = conn.execute(
        "INSERT INTO tasks (idempotency_key, id, image_key, size, status, attempts, created_at)
         VALUES ('k', '1', 'img/k.jpg', '1x1', 'done', 1, 0)",
        [],
    );
    assert!(bad.is_err(), "the status check still holds");
    // Its rows say no processor: done for none.
    let mut reader = store.reader("simulated").unwrap();
    assert!(reader
        .lookup_succeeded("img/a.jpg:200x200")
        .unwrap()
        .is_none());
    let mut reader = store.reader(UNKNOWN_PROCESSOR).unwrap();
    let found = reader
        .lookup_succeeded("img/a.jpg:200x200")
        .unwrap()
        .unwrap();
    assert_eq!(
        found.output_key.as_deref(),
        Some("variants/200x200/img/a.jpg")
    );
}

/// A version-2 file: the schema the previous release wrote.
fn version_2_file(path: &Path) {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch(MIGRATIONS[0]).unwrap();
    conn.execute_batch(MIGRATIONS[1]).unwrap();
    conn.pragma_update(None, "user_version", 2).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.execute(
        "INSERT INTO tasks (idempotency_key, id, image_key, size, status, attempts,
            created_at, finished_at, output_key, version)
         VALUES ('img/a.jpg:200x200', '7', 'img/a.jpg', '200x200', 'succeeded', 1,
            10, 20, 'variants/200x200/img/a.jpg', 1)",
        [],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO dead_letter VALUES ('img/b.jpg:200x200', '8', 'img/b.jpg',
            '200x200', 11, 'permanent', 'bad_source', 'cannot decode', 1, 12, 12)",
        [],
    )
    .unwrap();
}

/// Version 2 -> 3: every row is kept, with an unknown processor, so no
/// processor takes an old record for its own.
#[test]
fn a_version_2_file_is_migrated_with_unknown_processors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v2.db");
    version_2_file(&path);
    let store = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
    assert_eq!(store.schema_version(), 3);
    let letters = store.dead_letters(None).unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].processor, UNKNOWN_PROCESSOR);
    assert_eq!(letters[0].kind, "bad_source");
    for p in ["simulated", NAME_OF_THUMBNAIL] {
        let mut r = store.reader(p).unwrap();
        assert!(r.lookup_succeeded("img/a.jpg:200x200").unwrap().is_none());
        assert_eq!(store.for_each_succeeded_key(p, &mut |_| {}).unwrap(), 0);
    }
    assert_eq!(
        store.other_processors("simulated").unwrap(),
        [ProcessorRecords {
            processor: UNKNOWN_PROCESSOR.into(),
            succeeded: 1
        }]
    );
    // The same key, now done by a processor, is a row of its own.
    let mut w = store.writer("simulated").unwrap();
    let mut r = record(1, RecordStatus::Succeeded);
    r.task = Task::new("img/a.jpg", "200x200".parse().unwrap()).unwrap();
    w.commit(&[rec(r)]).unwrap();
    let rows: i64 = store
        .connection()
        .unwrap()
        .query_row("SELECT count(*) FROM tasks", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 2);
    // Adopting gives the unknown dead letter to a processor.
    assert_eq!(store.adopt_dead_letters("simulated", None).unwrap(), 1);
    assert_eq!(store.dead_letters(None).unwrap()[0].processor, "simulated");
}

/// The thumbnail processor's record name (`taskq_thumbnail::NAME`).
const NAME_OF_THUMBNAIL: &str = "thumbnail/v1";

/// Records are the processor's own: a key done by one is new to another.
#[test]
fn a_key_is_done_only_for_the_processor_that_recorded_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("t.db"), SqliteOptions::default()).unwrap();
    store
        .writer("simulated")
        .unwrap()
        .commit(&[
            rec(record(1, RecordStatus::Succeeded)),
            rec(record(2, RecordStatus::Succeeded)),
        ])
        .unwrap();
    store
        .writer(NAME_OF_THUMBNAIL)
        .unwrap()
        .commit(&[rec(record(2, RecordStatus::Succeeded))])
        .unwrap();
    let key = "img/000001.jpg:200x200";
    assert!(store
        .reader("simulated")
        .unwrap()
        .lookup_succeeded(key)
        .unwrap()
        .is_some());
    assert!(store
        .reader(NAME_OF_THUMBNAIL)
        .unwrap()
        .lookup_succeeded(key)
        .unwrap()
        .is_none());
    assert_eq!(
        store
            .for_each_succeeded_key(NAME_OF_THUMBNAIL, &mut |_| {})
            .unwrap(),
        1
    );
    assert_eq!(
        store.other_processors(NAME_OF_THUMBNAIL).unwrap(),
        [ProcessorRecords {
            processor: "simulated".into(),
            succeeded: 2
        }]
    );
    assert_eq!(
        store.other_processors("simulated").unwrap(),
        [ProcessorRecords {
            processor: NAME_OF_THUMBNAIL.into(),
            succeeded: 1
        }]
    );
}

/// Opening for reading neither migrates nor writes: a version-2 file stays
/// version 2 and byte for byte the same, and its dead letters are listed.
#[test]
fn read_only_opening_neither_migrates_nor_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v2.db");
    version_2_file(&path);
    // Fold the WAL in, so the database file alone holds everything.
    Connection::open(&path)
        .unwrap()
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    let before = std::fs::read(&path).unwrap();
    let store = SqliteStore::open_read_only(&path, SqliteOptions::default()).unwrap();
    assert_eq!(store.schema_version(), 2);
    let letters = store.dead_letters(None).unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].processor, UNKNOWN_PROCESSOR);
    assert!(store.purge_dead_letters(None).is_err());
    assert!(store.writer("p").is_err());
    drop(store);
    assert_eq!(std::fs::read(&path).unwrap(), before);
    let missing = SqliteStore::open_read_only(dir.path().join("none.db"), SqliteOptions::default());
    assert!(missing
        .unwrap_err()
        .to_string()
        .contains("no such database"));
}

#[test]
fn foreign_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.txt");
    std::fs::write(
        &text,
        "this is not a database, just some text that is long enough",
    )
    .unwrap();
    let e = SqliteStore::open(&text, SqliteOptions::default()).unwrap_err();
    assert!(e.to_string().contains("not a SQLite database"), "{e}");
    let other = dir.path().join("other.db");
    Connection::open(&other)
        .unwrap()
        .execute_batch("CREATE TABLE people (name TEXT)")
        .unwrap();
    let e = SqliteStore::open(&other, SqliteOptions::default()).unwrap_err();
    assert!(e.to_string().contains("refusing"), "{e}");
}

#[test]
fn dead_letters_round_trip_and_purge() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("t.db"), SqliteOptions::default()).unwrap();
    let mut w = store.writer("p").unwrap();
    let dl = |i| DeadLetter {
        task: Task {
            created_at: 5,
            attempts: 1,
            ..record(i, RecordStatus::Failed).task
        },
        processor: "p".into(),
        class: ErrorClass::Permanent,
        kind: "bad_source".into(),
        message: "cannot decode".into(),
        attempts: 1,
        first_failed_at: u64::from(i),
        last_failed_at: u64::from(i),
    };
    let with_letter = |i| Pending {
        record: record(i, RecordStatus::Failed),
        dead: Some(dl(i)),
        ack: None,
    };
    w.commit(&[with_letter(1), with_letter(2)]).unwrap();
    let all = store.dead_letters(None).unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0], dl(1));
    assert_eq!(
        store
            .dead_letters(Some("img/000002.jpg:200x200"))
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        store
            .purge_dead_letters(Some("img/000001.jpg:200x200"))
            .unwrap(),
        1
    );
    w.commit(&[rec(record(2, RecordStatus::Succeeded))])
        .unwrap();
    // Another processor's success clears nothing; the same one's does.
    let mut other = store.writer("q").unwrap();
    other
        .commit(&[rec(record(2, RecordStatus::Succeeded))])
        .unwrap();
    let key = "img/000002.jpg:200x200";
    assert_eq!(store.clear_recovered_dead_letters("q", [key]).unwrap(), 0);
    assert_eq!(store.clear_recovered_dead_letters("p", [key]).unwrap(), 1);
    assert!(store.dead_letters(None).unwrap().is_empty());
}

#[cfg(unix)]
#[test]
fn new_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    drop(SqliteStore::open(&path, SqliteOptions::default()).unwrap());
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}
