//! The local web console in a real headless Chromium (Debian's `chromium`, driven over the
//! DevTools protocol): the sensor replays a corpus capture (`scan/ndpi__synscan.pcap`, an nmap
//! SYN scan of 1000 ports: one `scan` alert and its incident) and holds (`replay --hold`); the
//! browser logs in with the token, reads the incidents, alert, host and capture-health pages,
//! and gives a `false_positive` verdict with the alert page's button. The sensor is stopped and
//! the capture replayed again from the saved state: the judged alert does not come back, and
//! the statistics count the finding the suppression silenced.
//!
//! Last, `nbad-sensor console` serves the stopped sensor's alerts file and saved state (how
//! `cargo xtask lab` ends), read here with plain HTTP and the bearer token.
//!
//! Screenshots of the four pages are written to `$NBAD_CONSOLE_SCREENSHOTS` when set (that is
//! how docs/console/*.png are made), else into the test's scratch folder.

use std::io::{BufRead as _, BufReader};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use headless_chrome::protocol::cdp::Page::CaptureScreenshotFormatOption;
use headless_chrome::{Browser, LaunchOptions, Tab};
use nbad_tests::corpus::Corpus;
use nbad_tests::gate::{self, Need};
use nbad_tests::sensor::sensor_bin;
use serde_json::Value;

/// The capture: a vertical scan, whose alert repeats on a replay from the saved state.
const CAPTURE: &str = "scan/ndpi__synscan.pcap";
/// The scanner in it.
const SCANNER: &str = "172.16.0.8";
const TOKEN: &str = "console-test-token-0123456789";
const LIMIT: Duration = Duration::from_secs(120);

struct Held {
    child: Child,
    url: String,
}

impl Drop for Held {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config(dir: &Path) -> Result<PathBuf> {
    let token = dir.join("token");
    std::fs::write(&token, TOKEN)?;
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600))?;
    let cfg = dir.join("sensor.toml");
    std::fs::write(
        &cfg,
        format!(
            "[sensor]\nid = \"console-test\"\nhome_networks = [\"172.16.0.0/12\"]\n\n\
             [console]\nlisten = \"0\"\ntoken_file = \"{}\"\n\n\
             [detection]\nstate_file = \"{}\"\n",
            token.display(),
            dir.join("state.json").display()
        ),
    )?;
    Ok(cfg)
}

fn replay_args(cfg: &Path, dir: &Path, name: &str, pcap: &Path) -> Vec<std::ffi::OsString> {
    vec![
        "replay".into(),
        "-c".into(),
        cfg.into(),
        "--flows".into(),
        "".into(),
        "--stats".into(),
        dir.join(format!("{name}.stats.json")).into(),
        "--alerts".into(),
        dir.join(format!("{name}.alerts.jsonl")).into(),
        "--quiet".into(),
        pcap.into(),
    ]
}

/// Starts `replay --hold` and waits until the input has ended; returns the console's URL.
fn hold(cfg: &Path, dir: &Path, pcap: &Path) -> Result<Held> {
    let mut child = Command::new(sensor_bin()?)
        .args(replay_args(cfg, dir, "first", pcap))
        .arg("--hold")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting nbad-sensor replay --hold")?;
    let stderr = child.stderr.take().context("no stderr")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(std::result::Result::ok) {
            eprintln!("    sensor: {line}");
            let _ = tx.send(line);
        }
    });
    let mut held = Held { child, url: String::new() };
    let deadline = Instant::now() + LIMIT;
    loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .context("the sensor did not say it holds")?;
        if let Some(url) = line.strip_prefix("nbad-sensor: console at ") {
            held.url = url.trim_end_matches('/').to_owned();
        }
        if line.contains("input ended; holding") {
            break;
        }
    }
    ensure!(!held.url.is_empty(), "the sensor did not print the console's URL");
    Ok(held)
}

fn screenshot(tab: &Tab, dir: &Path, name: &str) -> Result<()> {
    let png = tab.capture_screenshot(CaptureScreenshotFormatOption::Png, None, None, true)?;
    ensure!(png.starts_with(b"\x89PNG"), "{name}: not a PNG");
    std::fs::write(dir.join(format!("{name}.png")), png)?;
    Ok(())
}

fn open(tab: &Tab, url: &str) -> Result<String> {
    tab.navigate_to(url)?.wait_until_navigated()?;
    tab.get_content()
}

fn alert_ids(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut ids = Vec::new();
    for line in text.lines() {
        let doc: Value = serde_json::from_str(line)?;
        if doc.pointer("/event/dataset").and_then(Value::as_str) == Some("nbad.alert") {
            ids.push(doc.pointer("/event/id").and_then(Value::as_str).unwrap_or_default().to_owned());
        }
    }
    Ok(ids)
}

#[test]
fn the_console_shows_the_replayed_scan_and_a_verdict_given_in_the_browser_silences_it_next_time() -> Result<()>
{
    let Some(_ran) = gate::require(&[Need::Program { program: "chromium", package: "chromium" }]) else {
        return Ok(());
    };
    let chromium = nbad_tests::lab::preflight::find_program("chromium").context("chromium on $PATH")?;
    let Some(corpus) = Corpus::open_or_skip()? else { return Ok(()) };
    let pcap = corpus.path(corpus.entry(CAPTURE)?);
    let scratch = tempfile::tempdir()?;
    let dir = scratch.path();
    let shots = std::env::var_os("NBAD_CONSOLE_SCREENSHOTS").map_or_else(|| dir.to_path_buf(), PathBuf::from);
    std::fs::create_dir_all(&shots)?;
    let cfg = config(dir)?;
    let held = hold(&cfg, dir, &pcap)?;
    let first = alert_ids(&dir.join("first.alerts.jsonl"))?;
    ensure!(first.len() == 1, "the scan raises one alert: {first:?}");
    let alert_id = first[0].clone();

    let browser = Browser::new(
        LaunchOptions::default_builder()
            .path(Some(chromium))
            .sandbox(false)
            .window_size(Some((1200, 1100)))
            .idle_browser_timeout(LIMIT)
            .build()
            .map_err(|e| anyhow::anyhow!("chromium launch options: {e}"))?,
    )?;
    let tab: Arc<Tab> = browser.new_tab()?;

    // Without the token: refused.
    let refused = open(&tab, &format!("{}/", held.url))?;
    ensure!(refused.contains("Authentication required"), "an anonymous visit is refused");

    // The login sets the cookie and lands on the incidents page.
    let page = open(&tab, &format!("{}/login?token={TOKEN}", held.url))?;
    for want in ["Open incidents", SCANNER, "reconnaissance", "vertical scan", &alert_id] {
        ensure!(page.contains(want), "incidents page lacks {want:?}");
    }
    screenshot(&tab, &shots, "incidents")?;

    // The alert's evidence, reached by clicking its link.
    tab.find_element(&format!("a[href='/alert/{alert_id}']"))?.click()?;
    tab.wait_for_element("#evidence-chart svg")?;
    let page = tab.get_content()?;
    for want in
        ["Evidence: distinct_ports", "observed", "threshold", "Flows behind it", "1:", "false positive"]
    {
        ensure!(page.contains(want), "alert page lacks {want:?}");
    }
    let observed = tab.find_element("#observed")?.get_inner_text()?;
    ensure!(observed == "1000", "observed value {observed:?}");
    screenshot(&tab, &shots, "alert")?;

    // The host: learning state, baselines, the hourly chart.
    let page = open(&tab, &format!("{}/host/{SCANNER}", held.url))?;
    for want in ["Host 172.16.0.8", "learning state", "Baselines", "dst_ports", "Outbound bytes per hour"] {
        ensure!(page.contains(want), "host page lacks {want:?}");
    }
    tab.wait_for_element("#history-chart svg")?;
    screenshot(&tab, &shots, "host")?;

    // Capture health.
    let page = open(&tab, &format!("{}/health", held.url))?;
    for want in
        ["kernel drops", "capture loss", "Flow table", "Alert sinks", "alerts remembered for verdicts: 1"]
    {
        ensure!(page.contains(want), "health page lacks {want:?}");
    }
    screenshot(&tab, &shots, "health")?;

    // The verdict, by the alert page's button.
    open(&tab, &format!("{}/alert/{alert_id}", held.url))?;
    tab.find_element("#verdict-false_positive")?.click()?;
    let deadline = Instant::now() + LIMIT;
    let page = loop {
        let page = tab.get_content()?;
        if page.contains("Given: ") || Instant::now() > deadline {
            break page;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    ensure!(page.contains("false_positive"), "the verdict is shown on the alert page");
    ensure!(page.contains("1 suppression(s) created"), "the verdict created a suppression");
    drop(tab);
    drop(browser);

    // Stop the holding sensor; the verdict is in its state file.
    let mut held = held;
    let status = Command::new("kill").args(["-TERM", &held.child.id().to_string()]).status()?;
    ensure!(status.success(), "kill -TERM");
    let deadline = Instant::now() + LIMIT;
    let code = loop {
        if let Some(s) = held.child.try_wait()? {
            break s;
        }
        if Instant::now() > deadline {
            bail!("the holding sensor did not stop on SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    ensure!(code.success(), "the holding sensor exited with {code}");
    let state = std::fs::read_to_string(dir.join("state.json"))?;
    ensure!(state.contains("false_positive"), "the verdict was saved with the baselines");

    // The next replay from the saved state: the same finding is silenced.
    let out = Command::new(sensor_bin()?).args(replay_args(&cfg, dir, "second", &pcap)).output()?;
    ensure!(out.status.success(), "second replay: {}", String::from_utf8_lossy(&out.stderr));
    let second = alert_ids(&dir.join("second.alerts.jsonl"))?;
    ensure!(!second.contains(&alert_id), "the judged alert came back: {second:?}");
    let stats: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("second.stats.json"))?)?;
    let suppressed = stats.pointer("/detection/verdicts/counters/suppressed").and_then(Value::as_u64);
    ensure!(suppressed >= Some(1), "the suppression silenced a finding: {suppressed:?}");

    // The stopped sensor's console (`nbad-sensor console`, how `cargo xtask lab` ends): the first
    // run's alerts and the saved baselines.
    let mut stopped = Command::new(sensor_bin()?)
        .args(["console", "-c"])
        .arg(&cfg)
        .arg("--alerts")
        .arg(dir.join("first.alerts.jsonl"))
        .stderr(Stdio::piped())
        .spawn()?;
    let stderr = stopped.stderr.take().context("no stderr")?;
    let line = BufReader::new(stderr).lines().next().context("no line from the console")??;
    let url = line.split_whitespace().find(|w| w.starts_with("http://")).context("no URL")?.to_owned();
    let got = (|| -> Result<(String, String)> {
        Ok((get(&url, &format!("alert/{alert_id}"))?, get(&url, &format!("host/{SCANNER}"))?))
    })();
    let _ = stopped.kill();
    let _ = stopped.wait();
    let (alert, host) = got?;
    ensure!(alert.starts_with("HTTP/1.1 200") && alert.contains("vertical scan"), "stopped console: {alert}");
    ensure!(host.starts_with("HTTP/1.1 200") && host.contains("Baselines"), "stopped console: {host}");
    Ok(())
}

/// A GET of `path` below `url` with the token, as raw HTTP/1.1.
fn get(url: &str, path: &str) -> Result<String> {
    use std::io::{Read as _, Write as _};
    let addr = url.trim_start_matches("http://").trim_end_matches('/');
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(LIMIT))?;
    write!(
        s,
        "GET /{path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n"
    )?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}
