//! `cargo xtask detect-report`: detection figures on the shared corpus for nbad-sensor and for
//! nDPI's flow risks (`ndpiReader`, Debian package libndpi-bin), side by side.
//!
//! For every row of the detection table (`nbad_tests::detection::table`), it replays the capture
//! with the table's config and runs `ndpiReader -v 2` on it. An episode counts as detected by
//! nbad-sensor when an alert of the row's detector names the row's host at fault; by nDPI when a
//! flow with that host as an endpoint carries one of the risks [`NDPI_RISKS`] maps the category
//! to. On the benign captures (`benign_mixed`, `large_background`), every nbad alert is a false
//! alert, and so is every distinct (client, server, risk) of nDPI with a risk from any category's
//! list; both are divided by the host-hours of observed activity (see
//! `nbad_tests::detection::host_hours`).
//!
//! It also counts, flow by flow, how often the sensor's protocol identification agrees with
//! nDPI's ([`agreement`]), and runs the analyst's loop on every capture that alerts: verdicts
//! from the ground truth, precision and time to detect, and what they change ([`verdicts`]).
//!
//! Prints a markdown report and writes it into `docs/DETECTION.md` between the
//! `<!-- detect-report:begin -->` and `<!-- detect-report:end -->` markers.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use clap::Args;
use nbad_tests::Corpus;
use nbad_tests::detection::{self, CASES, Case, Expect};

use crate::cmd::{self, heading, note};

mod agreement;
mod verdicts;

#[derive(Debug, Args)]
pub struct DetectReportArgs {
    /// Print the report only; leave docs/DETECTION.md as it is.
    #[arg(long)]
    no_write: bool,
}

/// nDPI 4.2 risks that count as detecting an episode of each category. nDPI judges one flow at
/// a time: it has no risk for volume (exfiltration), fan-out (scan), periodicity (beaconing) or
/// floods, so those categories get the nearest flow risks or none.
pub const NDPI_RISKS: &[(&str, &[&str])] = &[
    (
        "beacon_c2",
        &[
            "Possible Exploit Detected",
            "Possibly Malicious JA3 Fingerprint",
            "Possibly Malicious SSL Cert. SHA1 Fingerprint",
            "HTTP Suspicious User-Agent",
            "HTTP Suspicious URL",
            "HTTP Suspicious Header",
            "HTTP Suspicious Content",
            "Suspicious DGA Domain name",
            "Risky ASN",
            "Risky Domain Name",
            "Binary Application Transfer",
        ],
    ),
    (
        "dns_tunnel",
        &[
            "Suspicious DNS Traffic",
            "Suspicious DGA Domain name",
            "DNS Packet Larger Than 512 bytes",
            "Fragmented DNS Message",
        ],
    ),
    ("dos_flood", &["Malformed Packet"]),
    ("exfil_bulk_upload", &["Binary Application Transfer"]),
    ("icmp_tunnel", &["Malformed Packet", "Suspicious Entropy"]),
    (
        "proto_nonstandard_port",
        &[
            "Known Protocol on Non Standard Port",
            "TLS (probably) Not Carrying HTTPS",
            "Binary Application Transfer",
        ],
    ),
    ("scan", &["Malformed Packet"]),
];

const BENIGN: [&str; 2] = ["benign_mixed", "large_background"];
const BEGIN: &str = "<!-- detect-report:begin -->";
const END: &str = "<!-- detect-report:end -->";

pub fn run(root: &Path, args: &DetectReportArgs) -> Result<()> {
    // The replay helpers run `$NBAD_SENSOR_BIN`: build the sensor, then run this task again in a
    // child with the variable set (setting it in this process would need `unsafe`).
    if std::env::var_os("NBAD_SENSOR_BIN").is_none() {
        heading("detect-report: building the sensor (debug)");
        cmd::run("cargo build -p nbad-sensor", cmd::cargo(["build", "-p", "nbad-sensor"]).current_dir(root))?;
        let bin = crate::target_dir(root).join("debug/nbad-sensor");
        let exe = std::env::current_exe().context("locating the xtask binary")?;
        let mut again = Command::new(exe);
        again.arg("detect-report").env("NBAD_SENSOR_BIN", &bin);
        if args.no_write {
            again.arg("--no-write");
        }
        return cmd::run("detect-report", &mut again);
    }
    if cmd::probe(Command::new("ndpiReader").arg("-h"))?.is_none()
        && cmd::probe(Command::new("sh").args(["-c", "command -v ndpiReader"]))?.is_none()
    {
        bail!("ndpiReader not found: run `cargo xtask setup` (Debian package libndpi-bin)");
    }
    let Some(corpus) = Corpus::open_or_skip()? else {
        bail!("no corpus: put it at ../shared/corpus or set NBAD_CORPUS");
    };
    heading(&format!("detect-report: {} captures, nbad-sensor and ndpiReader", CASES.len()));
    let mut rows = Vec::new();
    let mut agree = agreement::Agreement::default();
    let mut analyst = verdicts::Loop::default();
    for case in CASES {
        rows.push(measure(&corpus, case, &mut agree, &mut analyst).with_context(|| case.capture.to_owned())?);
    }
    let mut report = render(&rows);
    report.push_str(&agree.render());
    report.push_str(&analyst.render());
    println!("{report}");
    if !args.no_write {
        let path = root.join("docs/DETECTION.md");
        write_between_markers(&path, &report)?;
        note(&format!("wrote {}", path.display()));
    }
    Ok(())
}

/// What both tools made of one capture.
#[derive(Debug)]
struct Row {
    case: Case,
    nbad_detected: bool,
    ndpi_detected: bool,
    nbad_alerts: usize,
    /// Distinct (client, server, risk) with a risk from any category's list.
    ndpi_alerts: usize,
    host_hours: f64,
}

fn measure(
    corpus: &Corpus,
    case: &Case,
    agree: &mut agreement::Agreement,
    analyst: &mut verdicts::Loop,
) -> Result<Row> {
    let capture = corpus.root().join(case.capture);
    let scratch = tempdir()?;
    let benign = BENIGN.contains(&case.category());
    let (flows, labels) = ndpi_flows(&capture)?;
    let (alerts, host_hours) = match case.expect {
        Expect::Unreadable { .. } => (Vec::new(), 0.0),
        _ => {
            let outcome = detection::replay_case(corpus.root(), case, true, &scratch)?;
            let hours = match &outcome.flows_path {
                Some(path) if benign => detection::host_hours(path, case.home_networks)?,
                _ => 0.0,
            };
            if let Some(path) = &outcome.flows_path {
                agree.add(case.capture, &labels, path)?;
            }
            analyst.add(corpus.root(), case, &scratch)?;
            (outcome.alerts, hours)
        }
    };
    let _ = fs::remove_dir_all(&scratch);
    let (nbad_detected, ndpi_detected) = match case.episode() {
        Some((detector, host)) => {
            let nbad = alerts.iter().any(|a| a.detector == detector && (host == "-" || a.host == host));
            let wanted = risks_of(case.category());
            let ndpi = flows.iter().any(|f| {
                (host == "-" || f.client == host || f.server == host)
                    && f.risks.iter().any(|r| wanted.contains(&r.as_str()))
            });
            (nbad, ndpi)
        }
        None => (false, false),
    };
    let all: BTreeSet<&str> = NDPI_RISKS.iter().flat_map(|(_, r)| r.iter().copied()).collect();
    let ndpi_alerts = flows
        .iter()
        .flat_map(|f| {
            f.risks.iter().filter(|r| all.contains(r.as_str())).map(move |r| (&f.client, &f.server, r))
        })
        .collect::<BTreeSet<_>>()
        .len();
    Ok(Row { case: *case, nbad_detected, ndpi_detected, nbad_alerts: alerts.len(), ndpi_alerts, host_hours })
}

fn risks_of(category: &str) -> &'static [&'static str] {
    NDPI_RISKS.iter().find(|(c, _)| *c == category).map_or(&[], |(_, r)| r)
}

fn tempdir() -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("nbad-detect-report-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// One flow of `ndpiReader -v 2`: its endpoints' addresses and its risks.
#[derive(Debug, PartialEq)]
struct NdpiFlow {
    client: String,
    server: String,
    risks: Vec<String>,
}

/// nDPI's flows of `capture` with their risks, and the flows it labelled by payload.
fn ndpi_flows(capture: &Path) -> Result<(Vec<NdpiFlow>, Vec<agreement::NdpiLabel>)> {
    let out = Command::new("ndpiReader")
        .arg("-i")
        .arg(capture)
        .args(["-v", "2"])
        .output()
        .context("running ndpiReader")?;
    // ndpiReader exits non-zero on files it cannot read (802.11): no flows.
    let text = String::from_utf8_lossy(&out.stdout);
    Ok((
        text.lines().filter_map(parse_ndpi_line).collect(),
        text.lines().filter_map(agreement::parse_label).collect(),
    ))
}

/// `\t1\tTCP 172.16.238.1:49656 <-> 172.16.238.131:80 [proto: ...][Risk: ** A **** B **][...]`
fn parse_ndpi_line(line: &str) -> Option<NdpiFlow> {
    let mut words = line.split_whitespace();
    words.next()?.parse::<u64>().ok()?;
    let _transport = words.next()?;
    let client = words.next()?;
    let arrow = words.next()?;
    if arrow != "<->" && arrow != "->" {
        return None;
    }
    let server = words.next()?;
    let risks = line
        .split_once("[Risk: ")
        .and_then(|(_, rest)| rest.split_once(']'))
        .map(|(risks, _)| {
            risks.split("**").map(str::trim).filter(|r| !r.is_empty()).map(str::to_owned).collect()
        })
        .unwrap_or_default();
    Some(NdpiFlow { client: address(client), server: address(server), risks })
}

/// `10.0.0.1:80` → `10.0.0.1`; `[2a01::1]:443` → `2a01::1`.
fn address(endpoint: &str) -> String {
    let host = endpoint.rsplit_once(':').map_or(endpoint, |(h, _)| h);
    host.trim_start_matches('[').trim_end_matches(']').to_owned()
}

fn render(rows: &[Row]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "### Episodes detected, per category\n");
    let _ = writeln!(out, "| category | episodes | nbad-sensor | nDPI 4.2 risks |");
    let _ = writeln!(out, "|---|---:|---:|---:|");
    let mut by_category: BTreeMap<&str, (usize, usize, usize)> = BTreeMap::new();
    for row in rows.iter().filter(|r| r.case.is_episode()) {
        let e = by_category.entry(row.case.category()).or_default();
        e.0 += 1;
        e.1 += usize::from(row.nbad_detected);
        e.2 += usize::from(row.ndpi_detected);
    }
    let (mut total, mut nbad, mut ndpi) = (0, 0, 0);
    for (category, (n, a, b)) in &by_category {
        let _ = writeln!(out, "| {category} | {n} | {a}/{n} | {b}/{n} |");
        (total, nbad, ndpi) = (total + n, nbad + a, ndpi + b);
    }
    let _ = writeln!(out, "| **all** | {total} | **{nbad}/{total}** | **{ndpi}/{total}** |\n");

    let benign: Vec<&Row> = rows.iter().filter(|r| BENIGN.contains(&r.case.category())).collect();
    let hours: f64 = benign.iter().map(|r| r.host_hours).sum();
    let nbad_alerts: usize = benign.iter().map(|r| r.nbad_alerts).sum();
    let ndpi_alerts: usize = benign.iter().map(|r| r.ndpi_alerts).sum();
    let per = |n: usize| if hours > 0.0 { n as f64 / hours } else { 0.0 };
    let _ = writeln!(out, "### False alerts on the benign captures\n");
    let _ = writeln!(
        out,
        "{} captures (benign_mixed, large_background), {hours:.2} host-hours of observed activity.\n",
        benign.len()
    );
    let _ = writeln!(out, "| tool | false alerts | per host-hour |");
    let _ = writeln!(out, "|---|---:|---:|");
    let _ = writeln!(out, "| nbad-sensor | {nbad_alerts} | {:.1} |", per(nbad_alerts));
    let _ = writeln!(out, "| nDPI 4.2 (mapped risks) | {ndpi_alerts} | {:.1} |\n", per(ndpi_alerts));

    let _ = writeln!(out, "### Per capture\n");
    let _ = writeln!(out, "| capture | expected | nbad-sensor | nDPI |");
    let _ = writeln!(out, "|---|---|---|---|");
    for row in rows {
        let expected = match row.case.expect {
            Expect::Alert { detector, host } => format!("{detector} on {host}"),
            Expect::Miss { detector, host, .. } => format!("{detector} on {host} (expected miss)"),
            Expect::Benign { max_alerts, .. } => format!("benign, budget {max_alerts}"),
            Expect::Unreadable { .. } => "unreadable link type".to_owned(),
        };
        let (a, b) = if row.case.is_episode() {
            (yes_no(row.nbad_detected).to_owned(), yes_no(row.ndpi_detected).to_owned())
        } else {
            (format!("{} alerts", row.nbad_alerts), format!("{} alerts", row.ndpi_alerts))
        };
        let _ = writeln!(out, "| {} | {expected} | {a} | {b} |", row.case.capture);
    }
    out
}

fn yes_no(b: bool) -> &'static str {
    if b { "detected" } else { "-" }
}

/// Replaces what lies between [`BEGIN`] and [`END`] in `path` with `report`.
fn write_between_markers(path: &Path, report: &str) -> Result<()> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let (Some(start), Some(end)) = (text.find(BEGIN), text.find(END)) else {
        bail!("{} has no {BEGIN} … {END} markers", path.display());
    };
    let updated = format!("{}{BEGIN}\n\n{report}\n{}", &text[..start], &text[end..]);
    fs::write(path, updated).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_an_ndpi_flow_line_with_its_risks() {
        let line = "\t1\tTCP 172.16.238.1:49656 <-> 172.16.238.131:80 [proto: 92/SSH][Risk: ** Known Protocol on Non Standard Port **** SSH Obsolete Client Version/Cipher **][Risk Score: 200]";
        let flow = parse_ndpi_line(line);
        assert_eq!(
            flow,
            Some(NdpiFlow {
                client: "172.16.238.1".into(),
                server: "172.16.238.131".into(),
                risks: vec![
                    "Known Protocol on Non Standard Port".into(),
                    "SSH Obsolete Client Version/Cipher".into()
                ],
            })
        );
    }

    #[test]
    fn reads_ipv6_endpoints_and_ignores_other_lines() {
        let flow = parse_ndpi_line("\t7\tUDP [2a01::1]:5353 <-> [ff02::fb]:5353 [proto: 8/MDNS]");
        assert_eq!(flow.map(|f| (f.client, f.server)), Some(("2a01::1".into(), "ff02::fb".into())));
        assert_eq!(parse_ndpi_line("\tTCP Packets:           70"), None);
    }

    #[test]
    fn every_episode_category_has_a_risk_mapping() {
        for case in CASES.iter().filter(|c| c.is_episode()) {
            assert!(
                NDPI_RISKS.iter().any(|(c, _)| *c == case.category()),
                "{} has no nDPI mapping",
                case.category()
            );
        }
    }
}
