//! A criterion [`Profiler`] that samples with `pprof` and writes a flamegraph SVG.
//!
//! criterion calls [`Profiler::start_profiling`] and
//! [`Profiler::stop_profiling`] around each benchmark it runs under
//! `--profile-time`, passing the benchmark's directory
//! (`<target>/criterion/<group>/<benchmark>/profile`). The SVG lands there as
//! `flamegraph.svg`. pprof's own `criterion` feature is not used, so pprof and
//! criterion versions need not match.

use std::fs::{self, File};
use std::path::Path;

use criterion::profiler::Profiler;
use pprof::ProfilerGuard;

/// Samples the whole process with `SIGPROF` at a fixed rate while a benchmark
/// is profiled.
pub struct Flamegraph {
    frequency: i32,
    active: Option<ProfilerGuard<'static>>,
}

impl Flamegraph {
    /// A profiler sampling `frequency` times per second.
    pub fn new(frequency: i32) -> Self {
        Flamegraph {
            frequency,
            active: None,
        }
    }
}

impl Profiler for Flamegraph {
    fn start_profiling(&mut self, benchmark_id: &str, _benchmark_dir: &Path) {
        let guard = pprof::ProfilerGuardBuilder::default()
            .frequency(self.frequency)
            // Unwinding through these while they hold locks can deadlock.
            .blocklist(&["libc", "libgcc", "pthread", "vdso"])
            .build();
        match guard {
            Ok(g) => self.active = Some(g),
            Err(e) => eprintln!("flamegraph: cannot profile {benchmark_id}: {e}"),
        }
    }

    fn stop_profiling(&mut self, benchmark_id: &str, benchmark_dir: &Path) {
        let Some(guard) = self.active.take() else {
            return;
        };
        let written = (|| -> Result<std::path::PathBuf, Box<dyn std::error::Error>> {
            let report = guard.report().build()?;
            fs::create_dir_all(benchmark_dir)?;
            let path = benchmark_dir.join("flamegraph.svg");
            report.flamegraph(File::create(&path)?)?;
            Ok(path)
        })();
        match written {
            Ok(path) => eprintln!("flamegraph: {}", path.display()),
            Err(e) => eprintln!("flamegraph: cannot write {benchmark_id}'s: {e}"),
        }
    }
}
