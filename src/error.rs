//! The library's error type. It never prints or exits; its messages say what to change.

use std::io;

use crate::setting::ConfigError;

/// Everything that can stop taskq from starting or finishing a run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A setting is out of range or inconsistent.
    #[error("invalid setting {setting}: {message}")]
    Config {
        /// The setting, named by its field ([`setting`](crate::setting):
        /// `workers`, `store.batch_size`); the command line names its flag
        /// instead (`taskq_cli::flags::flag_for`).
        setting: &'static str,
        /// What is wrong and what is accepted.
        message: String,
    },
    /// The idempotency store could not be opened, read or written.
    #[error(transparent)]
    Store(#[from] crate::idempotency::StoreError),
    /// Another process holds the object store's lock: one run per store.
    #[error("store {} is in use by {holder} (another taskq run); wait for it to finish", root.display())]
    StoreInUse {
        /// The store's root directory.
        root: std::path::PathBuf,
        /// Who holds it: `pid N`, or `another process` when its id cannot be read.
        holder: String,
    },
    /// A file or thread could not be opened, written or started.
    #[error("{context}: {cause}")]
    Io {
        /// What was being done.
        context: String,
        /// The operating system's error (part of the message, not a separate
        /// `source`, so that `{:#}` states it once).
        cause: io::Error,
    },
}

impl From<crate::processor::SimulatedError> for Error {
    fn from(e: crate::processor::SimulatedError) -> Self {
        match e {
            crate::processor::SimulatedError::Config(c) => c.into(),
            crate::processor::SimulatedError::EffectsLog { path, cause } => Error::Io {
                context: format!("cannot open effects log {}", path.display()),
                cause,
            },
        }
    }
}

impl From<ConfigError> for Error {
    fn from(e: ConfigError) -> Self {
        Error::Config {
            setting: e.setting,
            message: e.message,
        }
    }
}

impl Error {
    /// [`Error::Config`] naming `setting` (one of [`setting::ALL`](crate::setting::ALL),
    /// or a setting of the embedder's own).
    pub fn config(setting: &'static str, message: impl Into<String>) -> Self {
        Error::Config {
            setting,
            message: message.into(),
        }
    }

    /// [`Error::Io`]: `context` says what was being done, with which file.
    pub fn io(context: impl Into<String>, cause: io::Error) -> Self {
        Error::Io {
            context: context.into(),
            cause,
        }
    }
}
