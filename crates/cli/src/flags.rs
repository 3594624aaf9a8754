//! Command-line flags for the settings the library names by field
//! ([`setting`]): the one table between the two names, used by the command
//! line and the benchmark harness to say errors in their users' words.
//!
//! Invariant: every setting in [`setting::ALL`] has exactly one flag here or a
//! place in [`NO_FLAG`], and every flag here exists on the command line
//! (tested).

use taskq::error::Error;
use taskq::setting;

/// The flag that sets each setting the library names in its errors
/// ([`setting`]): the one table between the two names. A field of a nested
/// section and the flag of the section's own argument group read alike
/// (`store.batch_size`, `--batch-size`).
pub const FLAGS: &[(&str, &str)] = &[
    (setting::WORKERS, "--workers"),
    (setting::CAPACITY, "--capacity"),
    (setting::TASK_TIMEOUT_MS, "--task-timeout-ms"),
    (setting::STORE, "--db"),
    (setting::STORE_PATH, "--db"),
    (setting::STORE_BATCH_SIZE, "--batch-size"),
    (setting::STORE_BATCH_MS, "--batch-ms"),
    (setting::STORE_CACHE_CAPACITY, "--cache-capacity"),
    (setting::RETRY_MAX_RETRIES, "--max-retries"),
    (setting::RETRY_BACKOFF_BASE_MS, "--backoff-base-ms"),
    (setting::RETRY_BACKOFF_MAX_MS, "--backoff-max-ms"),
    (setting::SHUTDOWN_TIMEOUT, "--shutdown-timeout"),
    (setting::PROCESSOR, "--processor"),
    (setting::LATENCY_MS, "--latency-ms"),
    (setting::JITTER_MS, "--jitter-ms"),
    (setting::TRANSIENT_RATE, "--transient-rate"),
    (setting::PERMANENT_RATE, "--permanent-rate"),
    (setting::TASKS, "--tasks"),
    (setting::PRODUCERS, "--producers"),
    (setting::OBJECT_STORE, "--store"),
    (setting::SEED_IMAGES, "--seed-images"),
    (setting::MAX_RECORD_BYTES, "--max-record-bytes"),
    (setting::COUNT, "--count"),
    (setting::WIDTH, "--width"),
    (setting::HEIGHT, "--height"),
    (setting::SIZES, "--sizes"),
];

/// Settings no flag sets: the command line leaves them at their defaults, so
/// their errors never reach it.
pub const NO_FLAG: &[&str] = &[setting::RELEASE_BATCH];

/// The flag that sets `setting` (a name from [`setting`]), if one does.
///
/// # Examples
///
/// ```
/// use taskq::setting;
/// use taskq_cli::flags::flag_for;
/// assert_eq!(flag_for(setting::STORE_BATCH_SIZE), Some("--batch-size"));
/// assert_eq!(flag_for(setting::RELEASE_BATCH), None);
/// ```
pub fn flag_for(setting: &str) -> Option<&'static str> {
    FLAGS
        .iter()
        .find(|(name, _)| *name == setting)
        .map(|&(_, flag)| flag)
}

/// `err` as the command line says it: an [`Error::Config`] names the flag of
/// its setting, and a setting its message mentions by field
/// (`retry.backoff_base_ms`) by its flag too. Other errors are unchanged.
///
/// # Examples
///
/// ```
/// use taskq::{setting, Error};
/// use taskq_cli::flags::named_by_flag;
/// let e = Error::from(taskq::setting::ConfigError::new(
///     setting::RETRY_BACKOFF_MAX_MS,
///     format!("must be at least {} (50), got 10", setting::RETRY_BACKOFF_BASE_MS),
/// ));
/// assert_eq!(
///     named_by_flag(e).to_string(),
///     "invalid setting --backoff-max-ms: must be at least --backoff-base-ms (50), got 10"
/// );
/// ```
pub fn named_by_flag(err: Error) -> Error {
    match err {
        Error::Config {
            setting,
            mut message,
        } => {
            // Only names that cannot be ordinary words (`store.path`,
            // `batch_ms`) are replaced inside the message.
            for &(name, flag) in FLAGS {
                if name.contains(['.', '_']) && message.contains(name) {
                    message = message.replace(name, flag);
                }
            }
            Error::Config {
                setting: flag_for(setting).unwrap_or(setting),
                message,
            }
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use clap::CommandFactory;

    use super::*;
    use crate::cli::Cli;

    fn long_flags(cmd: &clap::Command, out: &mut BTreeSet<String>) {
        for arg in cmd.get_arguments() {
            if let Some(long) = arg.get_long() {
                out.insert(format!("--{long}"));
            }
        }
        for sub in cmd.get_subcommands() {
            long_flags(sub, out);
        }
    }

    #[test]
    fn every_setting_the_library_names_has_a_flag() {
        for &name in setting::ALL {
            let flagged = flag_for(name).is_some();
            let unflagged = NO_FLAG.contains(&name);
            assert!(
                flagged != unflagged,
                "{name}: needs exactly one of a flag in FLAGS or a place in NO_FLAG"
            );
        }
    }

    #[test]
    fn every_flag_in_the_table_exists_and_names_a_library_setting() {
        let mut flags = BTreeSet::new();
        long_flags(&Cli::command(), &mut flags);
        let mut seen = BTreeSet::new();
        for &(name, flag) in FLAGS {
            assert!(
                setting::ALL.contains(&name),
                "{name} is not in setting::ALL"
            );
            assert!(seen.insert(name), "{name} is listed twice");
            assert!(
                flags.contains(flag),
                "{name}: no flag {flag} on the command line"
            );
        }
        for &name in NO_FLAG {
            assert!(
                setting::ALL.contains(&name),
                "{name} is not in setting::ALL"
            );
        }
    }

    #[test]
    fn config_errors_name_the_flag_and_others_pass_through() {
        let e = named_by_flag(Error::config(
            setting::WORKERS,
            "must be between 1 and 1024, got 0",
        ));
        assert_eq!(
            e.to_string(),
            "invalid setting --workers: must be between 1 and 1024, got 0"
        );
        let e = named_by_flag(Error::config(setting::RELEASE_BATCH, "must be at least 1"));
        assert_eq!(
            e.to_string(),
            "invalid setting release_batch: must be at least 1"
        );
        let e = named_by_flag(Error::io(
            "cannot open x",
            std::io::ErrorKind::NotFound.into(),
        ));
        assert!(matches!(e, Error::Io { .. }), "{e}");
    }
}
