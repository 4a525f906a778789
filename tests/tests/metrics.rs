//! The Prometheus endpoint of a live `nbad-sensor run` (libpcap on a veth in a test
//! namespace, see `nbad_tests::live`): scraped over HTTP inside that namespace while bounded UDP
//! traffic flows, it reports the packets captured, the flow table's fill and capacity, the
//! capture-loss gauge, the configuration version and the hooks the alert stages will feed
//! (zero for now), in the OpenMetrics text format. Other paths get 404.
//!
//! Needs root, `ip netns` and python3 (the scraper runs inside the namespace, where the
//! endpoint listens on 127.0.0.1); otherwise it is reported as skipped
//! (`nbad_tests::gate`).
//! Takes about 5 s.

use nbad_tests::live as support;

use std::fs;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use support::{Link, Sensor, wait_until};

const CONFIG: &str = "[sensor]\nid = \"metrics-test\"\n\n[capture]\nmode = \"pcap\"\ninterface = \"cap0\"\n\
                      read_timeout_ms = 20\n\n[flows]\nworkers = 1\n\n[output]\nflows = \"\"\n\n\
                      [metrics]\nlisten = \"127.0.0.1:0\"\n";

/// `GET url` from inside `ns`: `(status, body)`.
fn scrape(ns: &str, url: &str) -> Result<(u16, String)> {
    let script = "import sys, urllib.request, urllib.error\n\
                  try:\n    r = urllib.request.urlopen(sys.argv[1], timeout=5)\n    print(r.status)\n    \
                  print(r.headers.get('Content-Type'))\n    sys.stdout.write(r.read().decode())\n\
                  except urllib.error.HTTPError as e:\n    print(e.code)\n    print('')\n";
    let out = Command::new("timeout")
        .args(["10", "ip", "netns", "exec", ns, "python3", "-c", script, url])
        .output()
        .context("running the scraper")?;
    if !out.status.success() {
        bail!("scraper failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut lines = text.splitn(3, '\n');
    let status = lines.next().unwrap_or_default().trim().parse().context("status code")?;
    let content_type = lines.next().unwrap_or_default();
    if status == 200 && !content_type.starts_with("application/openmetrics-text") {
        bail!("unexpected Content-Type {content_type:?}");
    }
    Ok((status, lines.next().unwrap_or_default().to_owned()))
}

/// The value of the sample line `name` (exact name and labels).
fn sample(page: &str, name: &str) -> Option<f64> {
    page.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

#[test]
fn a_live_sensor_serves_stage_counters_and_hooks_to_prometheus() -> Result<()> {
    let Some(_ran) = support::require() else { return Ok(()) };
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("sensor.toml");
    fs::write(&config, CONFIG)?;
    let link = Link::new("nbadmt", 2)?;
    let mut sensor = Sensor::start(&link.sensor_ns, &config, dir.path().join("sensor.log"))?;
    sensor.wait_log("capturing on cap0", 0, Duration::from_secs(20))?;
    sensor.wait_log("metrics at http://", 0, Duration::from_secs(5))?;
    let log = sensor.log_text();
    let url = log
        .lines()
        .find_map(|l| l.split("metrics at ").nth(1))
        .map(str::trim)
        .context("the metrics address in the log")?
        .to_owned();

    link.send_udp(&[43_001, 43_002], 5, Duration::from_millis(10))?;
    let mut page = String::new();
    // Packets are counted by the capture thread at once, flows by the workers with their next
    // batch (at the latest when the capture clock enters a new second).
    wait_until("10 packets and 2 flows counted", Duration::from_secs(10), || {
        page = scrape(&link.sensor_ns, &url)?.1;
        Ok(sample(&page, "nbad_capture_packets_total").is_some_and(|n| n >= 10.0)
            && sample(&page, "nbad_flows_created_total").is_some_and(|n| n >= 2.0))
    })
    .with_context(|| format!("last scrape:\n{page}"))?;

    for (name, expected) in [
        ("nbad_flows_capacity", Some(1_000_000.0)),
        ("nbad_config_version", Some(1.0)),
        ("nbad_capture_kernel_dropped_total", Some(0.0)),
        ("nbad_capture_loss_ratio", Some(0.0)),
        ("nbad_alerts_total{detector=\"scan\"}", Some(0.0)),
        ("nbad_alerts_total{detector=\"capture_loss\"}", Some(0.0)),
        ("nbad_packet_to_alert_latency_seconds_count", Some(0.0)),
        ("nbad_packet_to_alert_latency_seconds_bucket{le=\"+Inf\"}", Some(0.0)),
    ] {
        assert_eq!(sample(&page, name), expected, "{name} in:\n{page}");
    }
    let fill = sample(&page, "nbad_flows_fill_ratio").context("fill ratio")?;
    assert!(fill > 0.0 && fill < 0.001, "fill ratio {fill}");
    assert!(page.trim_end().ends_with("# EOF"), "{page}");

    let root = url.trim_end_matches("/metrics");
    assert_eq!(scrape(&link.sensor_ns, &format!("{root}/"))?.0, 404);

    let code = sensor.stop()?;
    assert_eq!(code, Some(0), "exit code after SIGTERM");
    Ok(())
}
