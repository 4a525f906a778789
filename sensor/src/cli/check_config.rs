//! `nbad-sensor check-config`: validates a file and prints the effective configuration, then
//! the memory budget of its caps (as comments, so the output stays a valid file); or, with
//! `--memory-max`, `--memory-high` or `--memory-budget`, only the bytes the service unit should carry for it.

use std::path::Path;

use crate::budget::MemoryBudget;
use crate::config;

/// What `check-config` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Show {
    /// The effective configuration and the budget's breakdown.
    Everything,
    /// `MemoryMax` in bytes.
    MemoryMax,
    /// `MemoryHigh` in bytes.
    MemoryHigh,
    /// The budget in bytes.
    MemoryBudget,
}

pub(super) fn check(file: &Path, show: Show) -> anyhow::Result<()> {
    let cfg = config::load(file)?;
    let budget = MemoryBudget::here(&cfg);
    match show {
        Show::Everything => {
            print!("{}", cfg.effective_toml());
            print!("\n{budget}");
            eprintln!("nbad-sensor: {}: configuration is valid", file.display());
        }
        Show::MemoryMax => println!("{}", budget.memory_max()),
        Show::MemoryHigh => println!("{}", budget.memory_high()),
        Show::MemoryBudget => println!("{}", budget.total()),
    }
    Ok(())
}
