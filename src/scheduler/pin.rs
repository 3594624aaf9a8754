//! Pinning workers to cores with `core_affinity`.

use serde::Serialize;

/// Whether worker threads are pinned to cores.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PinMode {
    /// Pin round-robin over the cores this process may use when there are no more
    /// workers than cores; leave workers unpinned when they outnumber the cores
    /// (two pinned workers sharing a core cannot move away from each other, and
    /// the kernel balances oversubscribed threads better).
    #[default]
    Auto,
    /// Always pin, round-robin over the allowed cores.
    On,
    /// Never pin.
    Off,
}

impl crate::setting::Choice for PinMode {
    const CHOICES: &'static [(Self, &'static str, &'static str)] = &[
        (
            PinMode::Auto,
            "auto",
            "Pin when there are no more workers than cores",
        ),
        (
            PinMode::On,
            "on",
            "Always pin, round-robin over the allowed cores",
        ),
        (PinMode::Off, "off", "Never pin"),
    ];
}

/// The core each worker is pinned to (`None`: unpinned), round-robin over the
/// cores this process may run on.
pub(crate) fn plan(mode: PinMode, workers: usize) -> Vec<Option<usize>> {
    #[cfg(feature = "loom")]
    let cores: Vec<usize> = {
        let _ = mode;
        Vec::new()
    };
    #[cfg(not(feature = "loom"))]
    let cores: Vec<usize> = match mode {
        PinMode::Off => Vec::new(),
        PinMode::On | PinMode::Auto => core_affinity::get_core_ids()
            .unwrap_or_default()
            .into_iter()
            .map(|c| c.id)
            .collect(),
    };
    if cores.is_empty() || (mode == PinMode::Auto && workers > cores.len()) {
        return vec![None; workers];
    }
    (0..workers).map(|i| Some(cores[i % cores.len()])).collect()
}

/// Pins the calling thread; returns whether the OS accepted it.
pub(crate) fn pin_current(core: usize) -> bool {
    #[cfg(feature = "loom")]
    {
        let _ = core;
        false
    }
    #[cfg(not(feature = "loom"))]
    {
        core_affinity::set_for_current(core_affinity::CoreId { id: core })
    }
}

#[cfg(all(test, not(feature = "loom")))]
mod tests {
    use super::*;

    #[test]
    fn auto_pins_only_when_cores_suffice() {
        let cores = core_affinity::get_core_ids().unwrap_or_default().len();
        if cores == 0 {
            return;
        }
        assert!(plan(PinMode::Auto, cores).iter().all(Option::is_some));
        assert!(plan(PinMode::Auto, cores + 1).iter().all(Option::is_none));
        let on = plan(PinMode::On, cores * 2);
        assert!(on.iter().all(Option::is_some));
        assert_eq!(on[0], on[cores]);
        assert!(plan(PinMode::Off, 2).iter().all(Option::is_none));
    }
}
