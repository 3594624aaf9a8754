//! taskq's thumbnail job: [`Thumbnail`], a [`Processor`](taskq::Processor)
//! that reads a task's source image from an [`ObjectStore`](object_store::ObjectStore),
//! resizes it and writes the variant back; [`object_store`], the store
//! trait and [`LocalStore`](object_store::LocalStore) (a local directory);
//! and [`samples`], seeded sample images and their task file, so that the
//! job runs end to end with nothing downloaded.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use taskq::{Engine, EngineConfig, StoreConfig, Task};
//! use taskq_thumbnail::object_store::LocalStore;
//! use taskq_thumbnail::samples::{seed_images, SampleOptions};
//! use taskq_thumbnail::Thumbnail;
//!
//! let dir = tempfile::tempdir()?;
//! let store = Arc::new(LocalStore::open(dir.path())?);
//! seed_images(&*store, &SampleOptions::new(2))?;
//! let config = EngineConfig {
//!     workers: 2,
//!     store: Some(StoreConfig::new(dir.path().join("taskq.db"))),
//!     ..EngineConfig::default()
//! };
//! let engine = Engine::start(config, Thumbnail::new(store.clone()))?;
//! let submitter = engine.submitter();
//! submitter.submit(Task::new("img/000001.jpg", "200x200".parse()?)?)?;
//! let report = engine.shutdown();
//! assert_eq!(report.counts.succeeded, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![warn(missing_docs)]

pub mod object_store;
pub mod samples;
pub mod thumbnail;

pub use thumbnail::{Thumbnail, NAME};
