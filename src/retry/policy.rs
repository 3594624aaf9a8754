//! [`RetryPolicy`]: whether a transiently failed task is tried again, and
//! after how long (exponential backoff with full jitter).
//!
//! Invariant: the policy is pure arithmetic over its settings: the same seed,
//! key and attempt always give the same delay, and a delay after attempt `n`
//! lies in `[0, bound(n))`.

use std::time::Duration;

use serde::Serialize;

use crate::processor::{mix, unit};
use crate::setting;
use crate::setting::ConfigError;

/// When and how often a transiently failed task is tried again.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RetryPolicy {
    /// Retries after the first attempt (so at most `max_retries + 1` attempts).
    pub max_retries: u32,
    /// Backoff base, milliseconds.
    pub backoff_base_ms: u64,
    /// Backoff cap, milliseconds.
    pub backoff_max_ms: u64,
    /// Seed of the jitter draws.
    pub seed: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 3,
            backoff_base_ms: 50,
            backoff_max_ms: 5_000,
            seed: 0,
        }
    }
}

impl RetryPolicy {
    /// Checks the settings.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] naming the bad setting.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_retries > 100 {
            return Err(ConfigError::new(
                setting::RETRY_MAX_RETRIES,
                format!("must be at most 100, got {}", self.max_retries),
            ));
        }
        if self.backoff_max_ms < self.backoff_base_ms {
            return Err(ConfigError::new(
                setting::RETRY_BACKOFF_MAX_MS,
                format!(
                    "must be at least {} ({}), got {}",
                    setting::RETRY_BACKOFF_BASE_MS,
                    self.backoff_base_ms,
                    self.backoff_max_ms
                ),
            ));
        }
        if self.backoff_max_ms > 24 * 3_600_000 {
            return Err(ConfigError::new(
                setting::RETRY_BACKOFF_MAX_MS,
                format!("must be at most one day, got {}", self.backoff_max_ms),
            ));
        }
        Ok(())
    }

    /// Whether a task that has made `attempts` attempts may try again.
    pub fn allows_retry(&self, attempts: u32) -> bool {
        attempts <= self.max_retries
    }

    /// The upper bound of the delay after the `attempt`-th attempt failed
    /// (1-based): `min(cap, base × 2^(attempt − 1))`.
    pub fn bound(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(40);
        let ms = self
            .backoff_base_ms
            .saturating_mul(1u64 << exp)
            .min(self.backoff_max_ms);
        Duration::from_millis(ms)
    }

    /// The delay before retrying `key` after its `attempt`-th attempt failed:
    /// full jitter, uniform in `[0, bound(attempt))`, drawn from the seed, the
    /// key and the attempt (the same inputs give the same delay).
    ///
    /// # Examples
    ///
    /// ```
    /// use taskq::RetryPolicy;
    /// let p = RetryPolicy { backoff_base_ms: 100, backoff_max_ms: 1000, ..Default::default() };
    /// for attempt in 1..=6 {
    ///     assert!(p.delay("img/a.jpg:200x200", attempt) < p.bound(attempt));
    /// }
    /// assert_eq!(p.bound(1).as_millis(), 100);
    /// assert_eq!(p.bound(3).as_millis(), 400);
    /// assert_eq!(p.bound(9).as_millis(), 1000);
    /// ```
    pub fn delay(&self, key: &str, attempt: u32) -> Duration {
        let bound = self.bound(attempt);
        let u = unit(mix(
            self.seed ^ u64::from(attempt).wrapping_mul(0x9e37_79b9),
            key.as_bytes(),
        ));
        bound.mul_f64(u)
    }
}

#[cfg(all(test, not(feature = "loom")))]
mod tests {
    use super::*;

    #[test]
    fn delays_stay_in_bounds_and_are_seeded() {
        let p = RetryPolicy {
            max_retries: 5,
            backoff_base_ms: 10,
            backoff_max_ms: 100,
            seed: 9,
        };
        let mut distinct = std::collections::HashSet::new();
        for i in 0..2000 {
            let key = format!("img/{i}.jpg:200x200");
            for attempt in 1..=6 {
                let d = p.delay(&key, attempt);
                assert!(d < p.bound(attempt), "{d:?} >= {:?}", p.bound(attempt));
                assert_eq!(d, p.delay(&key, attempt));
                distinct.insert(d);
            }
        }
        assert!(distinct.len() > 1000, "jitter must spread delays");
        assert_eq!(p.bound(1), Duration::from_millis(10));
        assert_eq!(p.bound(4), Duration::from_millis(80));
        assert_eq!(p.bound(5), Duration::from_millis(100));
        assert!(p.allows_retry(5) && !p.allows_retry(6));
        let other = RetryPolicy {
            seed: 10,
            ..p.clone()
        };
        assert_ne!(
            (1..50).map(|a| p.delay("k", a)).collect::<Vec<_>>(),
            (1..50).map(|a| other.delay("k", a)).collect::<Vec<_>>()
        );
    }

    #[test]
    fn bad_policies_are_named() {
        let e = RetryPolicy {
            backoff_base_ms: 10,
            backoff_max_ms: 5,
            ..Default::default()
        }
        .validate()
        .unwrap_err();
        assert!(e.to_string().contains("retry.backoff_max_ms"), "{e}");
        let e = RetryPolicy {
            max_retries: 1000,
            ..Default::default()
        }
        .validate()
        .unwrap_err();
        assert!(e.to_string().contains("retry.max_retries"), "{e}");
    }
}
