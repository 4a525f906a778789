//! The command line: raw arguments → validated configuration → a run.
//!
//! One module per subcommand (`replay`, `live` for `run`, `baseline`, `check_config`; `alerts` lives with
//! delivery in [`crate::deliver::cli`]), and what `run` and `replay` share: alert delivery
//! ([`delivery`]) and the replay's progress display ([`progress`]).
//!
//! Exit codes are decided here and only here ([`exit_code`]): 0 success, 2 usage or
//! configuration error, 3 alerts still undelivered in the spool at exit ([`Undelivered`]:
//! the run itself succeeded), 1 any other runtime failure.

mod baseline;
mod check_config;
mod console;
mod delivery;
mod export;
mod live;
mod progress;
mod replay;
mod verdict;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use crate::config::{self, Config, ConfigError};
use crate::deliver::Undelivered;
use crate::detect::{Engine, state};
use crate::output::{self, flow_json::FlowJsonWriter};
use crate::pipeline::analysis::AlertWriter;
use crate::reload::ConfigHandle;

/// Exit code: success.
pub const EXIT_OK: u8 = 0;
/// Exit code: a runtime failure (unreadable capture, interface problem, ...).
pub const EXIT_FAILURE: u8 = 1;
/// Exit code: a usage or configuration error.
pub const EXIT_USAGE: u8 = 2;
/// Exit code: the command ran, but alerts are still undelivered in the spool.
pub const EXIT_UNDELIVERED: u8 = 3;

/// Where `run` looks for its configuration when `--config` is not given.
pub const DEFAULT_CONFIG: &str = "/etc/nbad-sensor/sensor.toml";

/// nbad-sensor turns packets into bidirectional flow records (ECS JSON), from
/// a live interface (SPAN or tap port) or from capture files.
#[derive(Debug, Parser)]
#[command(
    name = "nbad-sensor",
    version,
    about = "Network behaviour anomaly detection sensor: turns packets from a SPAN/tap port or from \
             capture files into bidirectional flow records (ECS JSON lines)",
    after_help = "Exit codes: 0 success, 1 runtime failure, 2 usage or configuration error, 3 alerts \
                  still undelivered in the spool at exit (replay, alerts send).\n\
                  Every key of the configuration file is documented in configs/sensor.example.toml.",
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Capture live on the configured interface until SIGINT or SIGTERM.
    Run {
        /// Configuration file.
        #[arg(long, short, value_name = "FILE", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// Write flow records here (`-` = stdout); overrides `output.flows`.
        #[arg(long, value_name = "PATH")]
        flows: Option<String>,
        /// Write statistics JSON here (`-` = stdout); overrides `output.stats`.
        #[arg(long, value_name = "PATH")]
        stats: Option<String>,
        /// Write alerts here as ECS JSON lines (`-` = stdout).
        #[arg(long, value_name = "PATH")]
        alerts: Option<String>,
    },
    /// Replay capture files (pcap or pcapng, in the order given) and exit once
    /// every flow has been flushed.
    Replay {
        /// Configuration file (built-in defaults when absent).
        #[arg(long, short, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Write flow records here (`-` = stdout); overrides `output.flows`.
        #[arg(long, value_name = "PATH")]
        flows: Option<String>,
        /// Write statistics JSON here (`-` = stdout); overrides `output.stats`.
        #[arg(long, value_name = "PATH")]
        stats: Option<String>,
        /// Write alerts here as ECS JSON lines (`-` = stdout).
        #[arg(long, value_name = "PATH")]
        alerts: Option<String>,
        /// Load and save baselines here; overrides `detection.state_file`.
        #[arg(long, value_name = "FILE")]
        state: Option<PathBuf>,
        /// Draw no progress bar (a summary line still goes out every --progress-interval).
        #[arg(long, short)]
        quiet: bool,
        /// Seconds between progress summary lines when no bar is drawn (stderr not a terminal,
        /// or --quiet); 0 for none.
        #[arg(long, value_name = "SECONDS", default_value_t = 30)]
        progress_interval: u64,
        /// After the input ends, keep answering the control socket and serving the console
        /// (`[console]`) from the final state until SIGINT or SIGTERM; statistics are written
        /// then.
        #[arg(long)]
        hold: bool,
        /// Capture files.
        #[arg(required = true, value_name = "PCAP")]
        pcaps: Vec<PathBuf>,
    },
    /// Show or reset a host's saved baseline.
    Baseline {
        #[command(subcommand)]
        action: BaselineAction,
    },
    /// Run built-in checks of every detector on traffic the sensor generates
    /// itself; exit 0 when every check passes.
    Selftest,
    /// Validate a configuration file and print the effective configuration,
    /// defaults included, and the memory budget of its caps.
    CheckConfig {
        /// Print only the bytes the service's MemoryMax should be for this file on this
        /// machine (the budget × 1.5, rounded up to MiB).
        #[arg(long, group = "memory")]
        memory_max: bool,
        /// Print only the bytes the service's MemoryHigh should be (the budget × 1.2).
        #[arg(long, group = "memory")]
        memory_high: bool,
        /// Print only the memory budget in bytes: what the sensor may hold with these caps.
        #[arg(long, group = "memory")]
        memory_budget: bool,
        /// Configuration file.
        file: PathBuf,
    },
    /// Alert delivery: re-send alert files through the configured sinks.
    Alerts {
        #[command(subcommand)]
        command: crate::deliver::cli::AlertsCommand,
    },
    /// Give an analyst's verdict on an alert (or on every alert of an incident): a
    /// false_positive or benign_expected verdict creates a scoped suppression; a
    /// true_positive keeps the alert's bucket out of the baseline. Goes to the running
    /// sensor's control socket, or to a stopped sensor's state file.
    Verdict {
        /// The alert's `event.id`, or an incident's id.
        id: String,
        /// What the alert was.
        #[arg(long, value_parser = ["true_positive", "false_positive", "benign_expected"])]
        verdict: String,
        /// Why (required: a suppression without a reason rots).
        #[arg(long)]
        reason: String,
        /// Who (default: the user running the command).
        #[arg(long)]
        author: Option<String>,
        /// How long the suppression lasts, e.g. `7d`, `12h` (default
        /// `detection.verdicts.default_expiry_s`).
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        expires: Option<std::time::Duration>,
        /// Widen the suppression from the host to this network (it must hold the host).
        #[arg(long, value_name = "CIDR")]
        host_cidr: Option<String>,
        #[command(flatten)]
        to: SensorArgs,
    },
    /// Print what analysts' verdicts say: precision per detector and rule, time to detect
    /// per true-positive incident, and the suppressions in force.
    Report {
        #[command(flatten)]
        of: SensorArgs,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Serve the web console (`[console]`) of a stopped sensor: the alerts of an alerts file
    /// (ECS JSON lines, as `--alerts` writes them), host pages and verdicts from
    /// `detection.state_file`, until SIGINT or SIGTERM.
    Console {
        /// Configuration file (its `[console]` and `detection.state_file`).
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
        /// The alerts to list.
        #[arg(long, value_name = "FILE")]
        alerts: Option<PathBuf>,
    },
    /// Write the deterministic demo capture (ten minutes of a small office
    /// network, generated by the sensor itself) to a pcap file.
    Generate {
        /// Seed of the scenario.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Output pcap file.
        out: PathBuf,
    },
}

/// Which sensor `verdict` and `report` talk to.
#[derive(Debug, clap::Args)]
struct SensorArgs {
    /// Configuration file (its `control.socket` and `detection.state_file`).
    #[arg(long, short, value_name = "FILE", default_value = DEFAULT_CONFIG)]
    config: PathBuf,
    /// The running sensor's control socket.
    #[arg(long, value_name = "PATH", conflicts_with = "state")]
    socket: Option<PathBuf>,
    /// A stopped sensor's state file.
    #[arg(long, value_name = "FILE")]
    state: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum BaselineAction {
    /// Print a host's baseline (learning state, per-metric mean and band) as JSON.
    Show {
        /// The host's address.
        host: std::net::IpAddr,
        /// Configuration file (its `detection.state_file` is read).
        #[arg(long, short, value_name = "FILE", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// The state file, instead of the configuration's.
        #[arg(long, value_name = "FILE")]
        state: Option<PathBuf>,
    },
    /// Forget a host's baseline: it learns again from scratch. Stop the sensor
    /// first, or its next snapshot writes the old baseline back.
    Reset {
        /// The host's address.
        host: std::net::IpAddr,
        /// Configuration file (its `detection.state_file` is rewritten).
        #[arg(long, short, value_name = "FILE", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// The state file, instead of the configuration's.
        #[arg(long, value_name = "FILE")]
        state: Option<PathBuf>,
    },
}

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version are "errors" that exit 0; usage errors exit 2.
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    match execute(cli.command) {
        Ok(()) => ExitCode::from(EXIT_OK),
        Err(err) => {
            eprintln!("nbad-sensor: error: {err:#}");
            ExitCode::from(exit_code(&err))
        }
    }
}

/// The exit code of a failed command.
#[must_use]
pub fn exit_code(err: &anyhow::Error) -> u8 {
    if err.chain().any(|e| e.downcast_ref::<ConfigError>().is_some()) {
        EXIT_USAGE
    } else if err.chain().any(|e| e.downcast_ref::<Undelivered>().is_some()) {
        EXIT_UNDELIVERED
    } else {
        EXIT_FAILURE
    }
}

fn execute(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Run { config: path, flows, stats, alerts } => {
            let mut cfg = config::load(&path)?;
            apply_overrides(&mut cfg, flows.as_deref(), stats.as_deref());
            // A reload rereads the file; the command line still wins over it.
            let overrides = move |c: &mut Config| apply_overrides(c, flows.as_deref(), stats.as_deref());
            let handle = Arc::new(ConfigHandle::new(cfg.clone(), overrides));
            live::run_live(&cfg, path, &handle, alerts.as_deref())
        }
        Command::Replay { config, flows, stats, alerts, state, quiet, progress_interval, hold, pcaps } => {
            let mut cfg = match config {
                Some(path) => config::load(path)?,
                None => Config::default(),
            };
            apply_overrides(&mut cfg, flows.as_deref(), stats.as_deref());
            if let Some(state) = state {
                cfg.detection.state_file = Some(state);
            }
            let progress = replay::ProgressArgs { quiet, interval_s: progress_interval, hold };
            replay::replay(&cfg, &pcaps, alerts.as_deref(), progress)
        }
        Command::Baseline { action } => baseline::execute(action),
        Command::Selftest => crate::selftest::run(),
        Command::Verdict { id, verdict, reason, author, expires, host_cidr, to } => {
            let req = crate::detect::verdict::Request {
                id,
                verdict,
                reason,
                author: author.unwrap_or_else(verdict::default_author),
                expires_s: expires.map(|d| d.as_secs()),
                host_cidr,
            };
            verdict::give(req, &to.config, to.socket, to.state)
        }
        Command::Report { of, json } => verdict::report(&of.config, of.socket, of.state, json),
        Command::CheckConfig { memory_max, memory_high, memory_budget, file } => {
            let show = match (memory_max, memory_high, memory_budget) {
                (true, _, _) => check_config::Show::MemoryMax,
                (_, true, _) => check_config::Show::MemoryHigh,
                (_, _, true) => check_config::Show::MemoryBudget,
                _ => check_config::Show::Everything,
            };
            check_config::check(&file, show)
        }
        Command::Alerts { command } => crate::deliver::cli::execute(command),
        Command::Console { config: path, alerts } => {
            console::serve_stopped(&config::load(path)?, alerts.as_deref())
        }
        Command::Generate { seed, out } => {
            let file = std::fs::File::create(&out)
                .with_context(|| format!("{}: cannot create the capture file", out.display()))?;
            let timeline = crate::synth::demo::timeline(seed);
            let frames = timeline.len();
            timeline
                .write_pcap(std::io::BufWriter::new(file))
                .and_then(|mut w| std::io::Write::flush(&mut w))
                .with_context(|| format!("{}: cannot write the capture", out.display()))?;
            eprintln!("nbad-sensor: wrote {frames} frames to {}", out.display());
            Ok(())
        }
    }
}

fn apply_overrides(cfg: &mut Config, flows: Option<&str>, stats: Option<&str>) {
    if let Some(flows) = flows {
        cfg.output.flows = output::target_from_arg(flows);
    }
    if let Some(stats) = stats {
        cfg.output.stats = output::target_from_arg(stats);
    }
}

fn flow_writer(cfg: &Config) -> anyhow::Result<Option<FlowJsonWriter>> {
    Ok(output::open(&cfg.output.flows)?.map(|out| FlowJsonWriter::new(out, &cfg.sensor.id)))
}

/// The detection engine for `cfg`, from its saved state when there is one;
/// `None` when detection is off.
pub fn build_engine(cfg: &Config) -> anyhow::Result<Option<Engine>> {
    if !cfg.detection.enabled {
        return Ok(None);
    }
    let saved = match &cfg.detection.state_file {
        Some(path) => state::load(path)?,
        None => None,
    };
    Ok(Some(Engine::new(cfg, saved)))
}

fn alert_writer(arg: Option<&str>) -> anyhow::Result<Option<AlertWriter>> {
    let Some(arg) = arg else { return Ok(None) };
    Ok(output::open(&output::target_from_arg(arg))?.map(AlertWriter::new))
}
