//! The simulated processors: seeded blocking I/O with faults, and CPU-bound hashing.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::{mix, splitmix, unit, Attempt, ErrorClass, Output, ProcessError, Processor};
use crate::setting;
use crate::setting::ConfigError;
use crate::task::Task;

/// Settings of the [`Simulated`] processor.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SimulatedConfig {
    /// Mean time one attempt blocks, milliseconds (the seed: 30).
    pub latency_ms: f64,
    /// Each attempt's latency is drawn uniformly from `latency ± jitter` (at least 0).
    pub jitter_ms: f64,
    /// Share of attempts that fail transiently, `0..=1`, drawn per (key, attempt).
    pub transient_rate: f64,
    /// Share of keys that fail permanently, `0..=1`, drawn per key (so every
    /// attempt of such a key fails the same way).
    pub permanent_rate: f64,
    /// Seed of every draw: the same seed and input give the same outcomes.
    pub seed: u64,
    /// Append one line per processing performed (`key<TAB>attempt`), written
    /// straight to the file before the attempt returns.
    pub effects_log: Option<PathBuf>,
}

impl Default for SimulatedConfig {
    fn default() -> Self {
        SimulatedConfig {
            latency_ms: 30.0,
            jitter_ms: 0.0,
            transient_rate: 0.0,
            permanent_rate: 0.0,
            seed: 0,
            effects_log: None,
        }
    }
}

impl SimulatedConfig {
    /// Checks every setting.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] naming the first bad setting.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let ms = |name: &'static str, v: f64| {
            if !v.is_finite() || !(0.0..=3_600_000.0).contains(&v) {
                return Err(ConfigError::new(
                    name,
                    format!("must be between 0 and 3600000 milliseconds, got {v}"),
                ));
            }
            Ok(())
        };
        ms(setting::LATENCY_MS, self.latency_ms)?;
        ms(setting::JITTER_MS, self.jitter_ms)?;
        for (name, v) in [
            (setting::TRANSIENT_RATE, self.transient_rate),
            (setting::PERMANENT_RATE, self.permanent_rate),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(ConfigError::new(
                    name,
                    format!("must be a probability between 0 and 1, got {v}"),
                ));
            }
        }
        Ok(())
    }
}

/// Why a [`Simulated`] processor could not be built. It becomes the library's
/// [`Error`](crate::Error) (`From`): `Config` or `Io`.
#[derive(Debug, thiserror::Error)]
pub enum SimulatedError {
    /// A setting is out of range.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The effects log cannot be opened for appending.
    #[error("cannot open effects log {}: {cause}", path.display())]
    EffectsLog {
        /// The log's path.
        path: std::path::PathBuf,
        /// The operating system's error.
        cause: std::io::Error,
    },
}

/// The seed's blocking I/O, simulated: sleeps, fails on a seeded schedule,
/// honours deadlines, and can log each processing it performs.
#[derive(Debug)]
pub struct Simulated {
    config: SimulatedConfig,
    effects: Option<File>,
}

impl Simulated {
    /// A simulated processor.
    ///
    /// # Errors
    ///
    /// [`SimulatedError::Config`] for a bad setting,
    /// [`SimulatedError::EffectsLog`] when the effects log cannot be opened.
    pub fn new(config: SimulatedConfig) -> Result<Self, SimulatedError> {
        config.validate()?;
        let effects = match &config.effects_log {
            Some(path) => Some(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|cause| SimulatedError::EffectsLog {
                        path: path.clone(),
                        cause,
                    })?,
            ),
            None => None,
        };
        Ok(Simulated { config, effects })
    }

    /// The settings.
    pub fn config(&self) -> &SimulatedConfig {
        &self.config
    }

    /// What attempt `attempt` (1-based) of `task` will do, without doing it:
    /// how long it blocks, and how it then fails (`None`: it succeeds). The
    /// same seed, key and attempt always give the same answer, so a benchmark
    /// can replay a run's failures in a model of an ideal pool.
    pub fn outcome(&self, task: &Task, attempt: u32) -> (Duration, Option<ErrorClass>) {
        let c = &self.config;
        let key_hash = mix(c.seed, task.idempotency_key.as_bytes());
        let latency = self.latency(key_hash, attempt);
        let failure = if c.permanent_rate > 0.0
            && unit(splitmix(key_hash ^ 0xbb67_ae85)) < c.permanent_rate
        {
            Some(ErrorClass::Permanent)
        } else if c.transient_rate > 0.0
            && unit(splitmix(
                key_hash ^ 0x3c6e_f372 ^ (u64::from(attempt) << 32),
            )) < c.transient_rate
        {
            Some(ErrorClass::Transient)
        } else {
            None
        };
        (latency, failure)
    }

    fn latency(&self, key_hash: u64, attempt: u32) -> Duration {
        let c = &self.config;
        let mut ms = c.latency_ms;
        if c.jitter_ms > 0.0 {
            let u = unit(splitmix(key_hash ^ 0x6a09_e667 ^ u64::from(attempt)));
            ms += (2.0 * u - 1.0) * c.jitter_ms;
        }
        Duration::from_secs_f64(ms.max(0.0) / 1000.0)
    }
}

impl Processor for Simulated {
    /// Latency and fault settings change no output, so they are not part of
    /// the name.
    fn name(&self) -> &str {
        "simulated"
    }

    fn process(&self, task: &Task, attempt: &Attempt) -> Result<Output, ProcessError> {
        let (latency, failure) = self.outcome(task, attempt.number);
        let start = Instant::now();
        if let Some(deadline) = attempt.deadline {
            if start + latency > deadline {
                std::thread::sleep(deadline.saturating_duration_since(start));
                return Err(ProcessError::transient(
                    "timeout",
                    format!("attempt needs {latency:?}, deadline passed"),
                ));
            }
        }
        if !latency.is_zero() {
            std::thread::sleep(latency);
        }
        match failure {
            Some(ErrorClass::Permanent) => {
                return Err(ProcessError::permanent(
                    "bad_source",
                    format!("{} cannot be decoded (injected)", task.image_key),
                ))
            }
            Some(ErrorClass::Transient) => {
                return Err(ProcessError::transient(
                    "unavailable",
                    "object store temporarily unavailable (injected)",
                ))
            }
            None => {}
        }
        if let Some(mut log) = self.effects.as_ref() {
            // One write(2) on an O_APPEND file: the line is in the file (in the
            // kernel's page cache, which survives a process crash) before the
            // attempt returns, and lines from concurrent workers never interleave.
            let line = format!("{}\t{}\n", task.idempotency_key, attempt.number);
            if let Err(e) = log.write_all(line.as_bytes()) {
                return Err(ProcessError::transient(
                    "effects_log",
                    format!("cannot append to effects log: {e}"),
                ));
            }
        }
        Ok(Output {
            output_key: Some(compact_str::format_compact!(
                "variants/{}/{}",
                task.size,
                task.image_key
            )),
        })
    }
}

/// CPU-bound work: a fixed number of hashing rounds per task.
#[derive(Clone, Copy, Debug)]
pub struct CpuHash {
    rounds: u32,
}

impl CpuHash {
    /// Exactly `rounds` rounds of splitmix64 per task.
    pub fn with_rounds(rounds: u32) -> Self {
        CpuHash { rounds }
    }

    /// As many rounds as take about `micros` microseconds on this machine
    /// (calibrated once, on the calling thread).
    pub fn for_micros(micros: f64) -> Self {
        let probe = 200_000u32;
        let mut best = f64::MAX;
        for _ in 0..5 {
            let start = Instant::now();
            std::hint::black_box(hash_rounds(1, probe));
            best = best.min(start.elapsed().as_secs_f64());
        }
        let per_round_us = best * 1e6 / f64::from(probe);
        CpuHash {
            rounds: ((micros / per_round_us).round() as u32).max(1),
        }
    }

    /// Rounds per task.
    pub fn rounds(&self) -> u32 {
        self.rounds
    }
}

fn hash_rounds(seed: u64, rounds: u32) -> u64 {
    let mut h = seed;
    for _ in 0..rounds {
        h = splitmix(h);
    }
    h
}

impl Processor for CpuHash {
    fn name(&self) -> &str {
        "cpu"
    }

    fn process(&self, task: &Task, _attempt: &Attempt) -> Result<Output, ProcessError> {
        let seed = mix(0, task.idempotency_key.as_bytes());
        std::hint::black_box(hash_rounds(seed, self.rounds));
        Ok(Output::default())
    }
}

#[cfg(all(test, not(feature = "loom")))]
mod tests {
    use super::*;

    fn task(i: u32) -> Task {
        Task::new(&format!("img/{i:06}.jpg"), "200x200".parse().unwrap()).unwrap()
    }

    #[test]
    fn outcomes_are_seeded_and_near_the_rates() {
        let cfg = SimulatedConfig {
            latency_ms: 0.0,
            transient_rate: 0.3,
            permanent_rate: 0.05,
            seed: 11,
            ..Default::default()
        };
        let p = Simulated::new(cfg.clone()).unwrap();
        let q = Simulated::new(cfg).unwrap();
        let (mut transient, mut permanent) = (0, 0);
        let n = 20_000;
        for i in 0..n {
            let t = task(i);
            let a = p.process(&t, &Attempt::first());
            assert_eq!(
                a,
                q.process(&t, &Attempt::first()),
                "same seed, same outcome"
            );
            match a {
                Err(e) if e.class == ErrorClass::Transient => transient += 1,
                Err(_) => permanent += 1,
                Ok(out) => assert_eq!(
                    out.output_key.unwrap(),
                    format!("variants/200x200/img/{i:06}.jpg")
                ),
            }
        }
        let (t, pm) = (transient as f64 / n as f64, permanent as f64 / n as f64);
        assert!((0.05 - pm).abs() < 0.01, "permanent share {pm}");
        assert!((0.3 * 0.95 - t).abs() < 0.02, "transient share {t}");
    }

    #[test]
    fn permanent_is_per_key_transient_per_attempt() {
        let p = Simulated::new(SimulatedConfig {
            latency_ms: 0.0,
            transient_rate: 0.5,
            permanent_rate: 0.2,
            seed: 3,
            ..Default::default()
        })
        .unwrap();
        let mut transient_then_ok = 0;
        for i in 0..2000 {
            let t = task(i);
            let outcomes: Vec<_> = (1..=4)
                .map(|n| {
                    p.process(
                        &t,
                        &Attempt {
                            number: n,
                            deadline: None,
                        },
                    )
                })
                .collect();
            let perm = outcomes
                .iter()
                .filter(|o| matches!(o, Err(e) if e.class == ErrorClass::Permanent))
                .count();
            assert!(
                perm == 0 || perm == 4,
                "permanent must not depend on the attempt"
            );
            if matches!(outcomes[0], Err(ref e) if e.class == ErrorClass::Transient)
                && outcomes[1].is_ok()
            {
                transient_then_ok += 1;
            }
        }
        assert!(transient_then_ok > 100);
    }

    #[test]
    fn deadline_turns_into_timeout() {
        let p = Simulated::new(SimulatedConfig {
            latency_ms: 200.0,
            ..Default::default()
        })
        .unwrap();
        let attempt = Attempt {
            number: 1,
            deadline: Some(Instant::now() + Duration::from_millis(5)),
        };
        let e = p.process(&task(1), &attempt).unwrap_err();
        assert_eq!(
            (e.class, e.kind.as_str()),
            (ErrorClass::Transient, "timeout")
        );
    }

    #[test]
    fn jitter_stays_in_bounds() {
        let p = Simulated::new(SimulatedConfig {
            latency_ms: 10.0,
            jitter_ms: 4.0,
            ..Default::default()
        })
        .unwrap();
        for i in 0..1000u64 {
            let d = p.latency(splitmix(i), 1).as_secs_f64() * 1000.0;
            assert!((6.0..=14.0).contains(&d), "{d}");
        }
    }

    #[test]
    fn bad_settings_are_named() {
        for (cfg, name) in [
            (
                SimulatedConfig {
                    transient_rate: 1.5,
                    ..Default::default()
                },
                "transient_rate",
            ),
            (
                SimulatedConfig {
                    permanent_rate: -0.1,
                    ..Default::default()
                },
                "permanent_rate",
            ),
            (
                SimulatedConfig {
                    latency_ms: f64::NAN,
                    ..Default::default()
                },
                "latency_ms",
            ),
            (
                SimulatedConfig {
                    jitter_ms: -1.0,
                    ..Default::default()
                },
                "jitter_ms",
            ),
        ] {
            let e = cfg.validate().unwrap_err().to_string();
            assert!(e.contains(name), "{e}");
        }
    }

    #[test]
    fn effects_log_has_one_line_per_processing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("effects.log");
        let p = Simulated::new(SimulatedConfig {
            latency_ms: 0.0,
            effects_log: Some(path.clone()),
            ..Default::default()
        })
        .unwrap();
        p.process(&task(1), &Attempt::first()).unwrap();
        p.process(
            &task(2),
            &Attempt {
                number: 2,
                deadline: None,
            },
        )
        .unwrap();
        let log = std::fs::read_to_string(path).unwrap();
        assert_eq!(
            log,
            "img/000001.jpg:200x200\t1\nimg/000002.jpg:200x200\t2\n"
        );
    }

    #[test]
    fn cpu_hash_calibrates() {
        let c = CpuHash::for_micros(2.0);
        assert!(c.rounds() > 10);
        assert!(CpuHash::with_rounds(5)
            .process(&task(1), &Attempt::first())
            .is_ok());
    }
}
