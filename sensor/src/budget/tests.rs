use std::path::PathBuf;

use super::{MIB, MemoryBudget, UNIT_CPUS};
use crate::config;

fn packaging(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../packaging").join(file)
}

/// The packaged configuration (`configs/appliance.toml`, installed as sensor.toml) on the
/// appliance the shipped unit is sized for: `UNIT_CPUS` CPUs, `flows.workers = 0` resolved to
/// one fewer.
fn packaged_budget() -> MemoryBudget {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../configs/appliance.toml");
    let mut cfg = config::load(&path).expect("the packaged configuration loads");
    assert!(cfg.flows.workers_auto, "appliance.toml leaves flows.workers to the machine");
    cfg.flows.workers = usize::try_from(UNIT_CPUS - 1).unwrap_or(1);
    MemoryBudget::of(&cfg, UNIT_CPUS)
}

/// A `Key=VALUE` of a unit file, as bytes (`K`, `M`, `G` suffixes as systemd reads them).
fn unit_bytes(unit: &str, key: &str) -> u64 {
    let text = std::fs::read_to_string(packaging(unit)).expect("the unit file");
    let value = text
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("{unit} sets no {key}"))
        .trim();
    let (digits, unit_bytes) = match value.char_indices().last() {
        Some((i, 'K')) => (&value[..i], 1024),
        Some((i, 'M')) => (&value[..i], MIB),
        Some((i, 'G')) => (&value[..i], 1024 * MIB),
        _ => (value, 1),
    };
    digits.parse::<u64>().unwrap_or_else(|e| panic!("{unit}: {key}={value}: {e}")) * unit_bytes
}

#[test]
fn the_shipped_units_memory_max_covers_the_budget_of_the_packaged_configuration() {
    let budget = packaged_budget();
    for unit in ["nbad-sensor.service", "nbad-sensor@.service"] {
        let (max, high) = (unit_bytes(unit, "MemoryMax"), unit_bytes(unit, "MemoryHigh"));
        assert!(
            max >= budget.memory_max(),
            "{unit}: MemoryMax={max} is under {} computed for the packaged configuration:\n{budget}",
            budget.memory_max()
        );
        assert!(
            high >= budget.memory_high(),
            "{unit}: MemoryHigh={high} under {}\n{budget}",
            budget.memory_high()
        );
        assert!(high < max, "{unit}: MemoryHigh={high} must stay under MemoryMax={max}");
    }
}

#[test]
fn memory_max_is_the_budget_with_half_again_as_headroom_in_whole_mib() {
    let budget = packaged_budget();
    let (total, max, high) = (budget.total(), budget.memory_max(), budget.memory_high());
    assert_eq!(max % MIB, 0, "{max}");
    assert!(max >= total * 3 / 2 && max < total * 3 / 2 + MIB, "{max} for a budget of {total}");
    assert!(total < high && high < max, "budget {total}, high {high}, max {max}");
}

#[test]
fn the_budget_grows_with_max_flows_and_the_detectors_caps() {
    let cfg = config::default();
    let base = MemoryBudget::of(&cfg, 4).total();
    let mut more_flows = cfg.clone();
    more_flows.flows.max_flows *= 2;
    let per_flow =
        (MemoryBudget::of(&more_flows, 4).total() - base) / u64::try_from(cfg.flows.max_flows).unwrap_or(1);
    assert!((128..=512).contains(&per_flow), "{per_flow} bytes per flow");
    let mut more_sources = cfg.clone();
    more_sources.detection.scan.max_sources *= 2;
    assert!(MemoryBudget::of(&more_sources, 4).total() > base);
    let mut off = cfg;
    off.detection.enabled = false;
    assert!(MemoryBudget::of(&off, 4).total() < base);
}

#[test]
fn the_breakdown_is_comments_only_so_check_config_output_stays_a_valid_file() {
    let cfg = config::default();
    let text = format!("{}\n{}", cfg.effective_toml(), MemoryBudget::of(&cfg, 4));
    assert!(text.contains("# Memory budget"), "{text}");
    let mut back = config::from_str(&text, "<effective>").expect("the output loads");
    back.origin.clone_from(&cfg.origin);
    assert_eq!(back, cfg);
}
