//! The `taskq` command line, as a library so that its end-to-end tests and
//! the fuzz target reach its parts: [`cli`] (the arguments), [`dashboard`] (the web page over the
//! shared queue), [`flags`] (each
//! setting's flag), [`input`] (the streaming task-file reader), [`runner`]
//! (a run of a task file, from settings to report), [`metrics`] (`--metrics-addr`:
//! the Prometheus endpoint), [`store`] (`--store`: a
//! directory or an S3 bucket) and [`dlq`] (the dead-letter commands). The binary is `crates/cli/src/main.rs`.
#![warn(missing_docs)]

pub mod cli;
pub mod dashboard;
pub mod dlq;
pub mod flags;
pub mod input;
pub mod live_page;
pub mod metrics;
pub mod pg;
pub mod runner;
pub mod store;
pub mod web;
