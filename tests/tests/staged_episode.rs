//! A multi-stage episode on real-capture composites (`nbad_tests::detection::staged`): four
//! inside hosts learn four hours of benign corpus traffic, then one of them scans, moves
//! laterally over SMB, beacons and uploads; a control replays the same hour without it.
//!
//! Holds: `lateral_movement` names the host, an incident record on the host tells the four
//! stages (reconnaissance, lateral movement, command and control, exfiltration) in order in one
//! narrative, the control raises no `lateral_movement`, no `host_outlier` and no incident
//! spanning stages; prints every alert, `host_outlier`'s hits and the false alerts per host-hour
//! (`--nocapture`; the figures are in docs/DETECTION.md).

use anyhow::{Result, ensure};
use nbad_tests::Corpus;
use nbad_tests::detection::staged::{self, HOST, Report, RunResult};

/// The stage count a narrative ends with ("… after 3 alerts in 2 stages.").
fn stages(narrative: &str) -> usize {
    narrative
        .rsplit(" in ")
        .next()
        .and_then(|t| t.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn per_host_hour(r: &RunResult, detector: Option<&str>) -> f64 {
    let n = r.alerts.iter().filter(|a| detector.is_none_or(|d| a.detector == d)).count();
    n as f64 / r.host_hours.max(f64::MIN_POSITIVE)
}

fn print(report: &Report) {
    for (name, r) in
        [("learning", &report.learning), ("episode", &report.episode), ("control", &report.control)]
    {
        println!(
            "{name}: {:.2} host-hours; alerts {} ({:.3}/host-hour), host_outlier {} ({:.3}/host-hour), incident records {}",
            r.host_hours,
            r.alerts.len(),
            per_host_hour(r, None),
            r.alerts.iter().filter(|a| a.detector == "host_outlier").count(),
            per_host_hour(r, Some("host_outlier")),
            r.incidents.len()
        );
        for a in &r.alerts {
            println!("  {}", a.describe());
        }
    }
    for i in &report.episode.incidents {
        println!("incident record: {}", i.message);
    }
}

#[test]
fn a_staged_episode_opens_an_incident_that_tells_it_and_the_control_stays_without_one() -> Result<()> {
    let Some(corpus) = Corpus::open_or_skip()? else {
        return Ok(());
    };
    let _ran = nbad_tests::gate::Ran::start();
    let scratch = tempfile::tempdir()?;
    let report = staged::run(&corpus, scratch.path(), |line| println!("{line}"))?;
    print(&report);
    let lateral = report.episode.of("lateral_movement", HOST);
    ensure!(!lateral.is_empty(), "no lateral_movement on {HOST}");
    let host = HOST.to_string();
    let told = report.episode.incidents.iter().filter(|i| i.host == host).any(|i| {
        let at = |step: &str| i.message.find(&format!("{step} at "));
        let steps = ["reconnaissance", "lateral movement", "command and control", "exfiltration"].map(at);
        steps.iter().all(Option::is_some) && steps.is_sorted() && stages(&i.message) == 4
    });
    ensure!(told, "no incident record on {HOST} tells the four stages in order");
    ensure!(
        report
            .control
            .alerts
            .iter()
            .all(|a| a.detector != "lateral_movement" && a.detector != "host_outlier"),
        "lateral_movement or host_outlier in the control"
    );
    let staged_control: Vec<&str> = report
        .control
        .incidents
        .iter()
        .filter(|i| stages(&i.message) >= 2)
        .map(|i| i.message.as_str())
        .collect();
    ensure!(staged_control.is_empty(), "the control has incidents of several stages: {staged_control:?}");
    Ok(())
}
