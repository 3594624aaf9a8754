//! Task files `taskq generate` writes read back as the tasks generated.

use taskq::task::{Size, Task};
use taskq_bench::generate::{generate_tasks, write_tasks, GenerateOptions, OutputFormat};

use crate::input::{InputFormat, ReaderOptions, Record, TaskReader};

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
            (
                t.id().to_string(),
                t.image_key().to_string(),
                t.size(),
                t.idempotency_key().to_string(),
            )
        })
        .collect()
}

#[test]
fn written_files_read_back() {
    for format in [OutputFormat::Json, OutputFormat::Ndjson] {
        let o = GenerateOptions {
            format,
            ..opts(3000, 0.25, 77)
        };
        let mut bytes = Vec::new();
        assert_eq!(write_tasks(&o, &mut bytes).unwrap(), 3000);
        let reader = TaskReader::new(&bytes[..], "gen", ReaderOptions::default());
        let mut read = Vec::new();
        for record in reader {
            match record.unwrap() {
                Record::Task { line, index, task } => {
                    // One task per line; the JSON array's '[' is line 1.
                    let offset = u64::from(format == OutputFormat::Json);
                    assert_eq!(line, index + 1 + offset);
                    read.push(task);
                }
                Record::Invalid { error, .. } => panic!("{error}"),
            }
        }
        assert_eq!(summary(read.into_iter()), summary(generate_tasks(&o)));
    }
}

#[test]
fn empty_output_is_valid() {
    let mut json = Vec::new();
    assert_eq!(write_tasks(&opts(0, 0.0, 1), &mut json).unwrap(), 0);
    assert_eq!(json, b"[\n]\n");
    let mut reader = TaskReader::new(&json[..], "empty", ReaderOptions::default());
    assert!(reader.next().is_none());
    assert_eq!(reader.format(), Some(InputFormat::Json));
    let mut ndjson = Vec::new();
    let o = GenerateOptions {
        format: OutputFormat::Ndjson,
        ..opts(0, 0.0, 1)
    };
    assert_eq!(write_tasks(&o, &mut ndjson).unwrap(), 0);
    assert!(ndjson.is_empty());
    assert_eq!(generate_tasks(&o).count(), 0);
}
