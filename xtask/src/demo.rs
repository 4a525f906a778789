//! `cargo xtask demo`: build the sensor, have it write its deterministic synthetic capture,
//! replay that capture with `configs/demo.toml` (flow records stream to the terminal), and
//! summarise the run from the stats JSON.

use std::fs;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};
use clap::Args;

use crate::cmd::{self, heading};
use crate::stats::SensorStats;
use crate::{setup, target_dir};

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Skip `cargo xtask setup`.
    #[arg(long)]
    no_setup: bool,
}

pub fn run(root: &Path, args: &DemoArgs) -> Result<()> {
    if !args.no_setup {
        setup::run()?;
    }
    let target = target_dir(root);
    let sensor = target.join("release/nbad-sensor");
    let demo_dir = target.join("demo");
    let pcap = demo_dir.join("demo.pcap");
    let stats_path = demo_dir.join("stats.json");
    let alerts_path = demo_dir.join("alerts.jsonl");
    fs::create_dir_all(&demo_dir).with_context(|| format!("creating {}", demo_dir.display()))?;

    heading("demo: build the sensor (release)");
    cmd::run("build nbad-sensor", cmd::cargo(["build", "--release", "-p", "nbad-sensor"]).current_dir(root))?;

    heading("demo: generate the synthetic capture");
    cmd::run("nbad-sensor generate", Command::new(&sensor).arg("generate").arg(&pcap).current_dir(root))?;

    heading("demo: replay it (flow records follow)");
    cmd::run(
        "nbad-sensor replay",
        Command::new(&sensor)
            .args(["replay", "--config", "configs/demo.toml", "--flows", "-", "--stats"])
            .arg(&stats_path)
            .arg("--alerts")
            .arg(&alerts_path)
            .arg(&pcap)
            .current_dir(root),
    )?;

    let stats = SensorStats::load(&stats_path)?;
    heading("demo: summary");
    println!(
        "packets read {} ({} bytes), parsed {}",
        stats.capture.packets_read, stats.capture.bytes_read, stats.decode.parsed
    );
    println!(
        "flows created {}, peak active {}, records written {}",
        stats.flows.created, stats.flows.active_peak, stats.flows.records
    );
    let reasons: Vec<String> = stats
        .decode
        .malformed
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(reason, n)| format!("{reason} {n}"))
        .collect();
    println!(
        "malformed {}{}",
        stats.decode.malformed_total,
        if reasons.is_empty() { String::new() } else { format!(" ({})", reasons.join(", ")) }
    );
    println!("replay took {:.3} s; stats in {}", stats.elapsed_s, stats_path.display());
    heading("demo: alerts");
    let alerts =
        fs::read_to_string(&alerts_path).with_context(|| format!("reading {}", alerts_path.display()))?;
    for line in alerts.lines() {
        let a: serde_json::Value =
            serde_json::from_str(line).with_context(|| format!("{}: not JSON", alerts_path.display()))?;
        println!(
            "{:<18} score {:>3}  {}",
            a["rule"]["name"].as_str().unwrap_or("?"),
            a["event"]["risk_score"],
            a["message"].as_str().unwrap_or("")
        );
    }
    println!("{} alerts, as ECS JSON lines in {}", alerts.lines().count(), alerts_path.display());
    Ok(())
}
