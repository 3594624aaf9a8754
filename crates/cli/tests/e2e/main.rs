//! The end-to-end tests: the built `taskq` binary (and the library parts
//! behind it) on real files, real SQLite databases and real processes, one
//! module per concern, linked into one test binary.

mod bench_harness;
mod browser;
mod cli;
mod crash;
mod dashboard;
mod dlq_cli;
mod hostile_input;
mod live_page;
mod metrics;
mod parser_props;
mod pg;
mod pg_dlq;
mod pg_faults;
mod processor_records;
mod s3;
mod signals;
mod storage_faults;
mod thumbnail;

/// The repository's top folder: the README, `examples/`, `results/`.
pub const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
