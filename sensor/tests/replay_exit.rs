//! How `replay` ends for scripts and CI: its exit code when alerts could not be delivered, and
//! its progress when stderr is not a terminal.

pub mod common;

use std::net::TcpListener;

use common::{run_sensor, write_file};

/// The demo capture (ten minutes of a small office, with an upload that raises an alert under
/// the demo's short learning), written by the sensor itself.
fn demo_capture(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("demo.pcap");
    run_sensor(["generate".as_ref(), path.as_os_str()]).assert_code(0, "generate");
    path
}

/// A loopback port with nothing listening on it.
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
    let port = listener.local_addr().expect("its address").port();
    drop(listener);
    port
}

#[test]
fn replay_with_an_unreachable_collector_exits_3_naming_the_spool_and_the_count() {
    let dir = tempfile::tempdir().expect("temp dir");
    let pcap = demo_capture(dir.path());
    let spool = dir.path().join("spool");
    let demo = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../configs/demo.toml"))
        .expect("configs/demo.toml");
    let config = write_file(
        dir.path(),
        "sensor.toml",
        &format!(
            "{demo}\n[alerts]\nspool_dir = {:?}\ndrain_timeout_ms = 500\n\n[[alerts.sinks]]\ntype = \"http\"\n\
             name = \"collector\"\nurl = \"http://127.0.0.1:{}/alerts\"\nretry_initial_ms = 100\n",
            spool.display().to_string(),
            closed_port()
        ),
    );
    let out = run_sensor([
        "replay".as_ref(),
        "--config".as_ref(),
        config.as_os_str(),
        "--flows".as_ref(),
        "".as_ref(),
        pcap.as_os_str(),
    ]);
    out.assert_code(3, "replay whose alerts cannot reach the collector");
    let spool_text = spool.display().to_string();
    assert!(out.stderr.contains("still pending") && out.stderr.contains(&spool_text), "{}", out.stderr);
    let pending: u64 = out
        .stderr
        .split("nbad-sensor: error: ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a count of pending deliveries in: {}", out.stderr));
    assert!(pending > 0, "{}", out.stderr);
    assert!(out.stderr.contains(&format!("{pending} left in the spool")), "{}", out.stderr);
}

#[test]
fn replay_without_a_terminal_writes_progress_summary_lines_and_no_bar() {
    let dir = tempfile::tempdir().expect("temp dir");
    let pcap = demo_capture(dir.path());
    let size = std::fs::metadata(&pcap).expect("the capture's size").len();
    let out = run_sensor([
        "replay".as_ref(),
        "--progress-interval".as_ref(),
        "1".as_ref(),
        "--flows".as_ref(),
        "".as_ref(),
        pcap.as_os_str(),
    ]);
    out.assert_code(0, "replay");
    let lines: Vec<&str> = out.stderr.lines().filter(|l| l.starts_with("nbad-sensor: replay ")).collect();
    let last = lines.last().unwrap_or_else(|| panic!("a progress line in:\n{}", out.stderr));
    assert!(last.starts_with("nbad-sensor: replay 100.0 % ("), "{last}");
    assert!(
        last.contains(" packets, ") && last.contains(" flows active, ") && last.contains(" alerts"),
        "{last}"
    );
    let total = nbad_sensor::detect::exfiltration::human_bytes(size);
    assert!(last.contains(&format!("of {total})")), "{last} (file of {size} bytes)");
    // No terminal control sequences: nothing was drawn.
    assert!(!out.stderr.contains('\u{1b}'), "{:?}", out.stderr);
}
