//! Delivery end to end inside the library: spool → sink task → receiver, with the file sink
//! and a minimal HTTP receiver on loopback that fails on demand.

use std::collections::BTreeSet;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::config::{DeliverySettings, Format, FsyncPolicy, SinkKind, SinkSettings, TlsSettings};
use super::{Delivery, format};
use crate::alert::Alert;

fn alert(n: u32, score: u8) -> Alert {
    let mut a = format::tests::sample();
    a.id = format!("{n:032x}");
    a.risk_score = score;
    a
}

fn settings(dir: &std::path::Path, sinks: Vec<SinkSettings>) -> DeliverySettings {
    DeliverySettings {
        spool_dir: dir.join("spool"),
        dead_letter: dir.join("dead.jsonl"),
        fsync: FsyncPolicy::Never,
        sinks,
        ..DeliverySettings::default()
    }
}

fn sink(name: &str, min_score: u8, kind: SinkKind) -> SinkSettings {
    SinkSettings {
        name: name.into(),
        min_score,
        format: Format::Ecs,
        batch_max_events: 7,
        timeout: Duration::from_secs(2),
        retry_initial: Duration::from_millis(10),
        retry_max: Duration::from_millis(50),
        kind,
    }
}

fn ids_in(path: &std::path::Path) -> BTreeSet<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).expect("json line")["event"]["id"]
                .as_str()
                .expect("id")
                .to_owned()
        })
        .collect()
}

#[test]
fn every_alert_reaches_the_file_sink_and_low_scores_are_filtered_per_sink() {
    let dir = tempfile::tempdir().expect("temp dir");
    let all = dir.path().join("all.jsonl");
    let high = dir.path().join("high.jsonl");
    let file =
        |p: &std::path::Path| SinkKind::File { path: p.to_path_buf(), rotate_bytes: 1 << 20, rotate_keep: 2 };
    let d = Delivery::start(
        &settings(dir.path(), vec![sink("all", 0, file(&all)), sink("high", 50, file(&high))]),
        "s1",
    )
    .expect("start");
    for n in 0..40 {
        d.submit(&alert(n, if n % 2 == 0 { 80 } else { 20 })).expect("submit");
    }
    let m = d.shutdown(Duration::from_secs(10));
    assert_eq!(ids_in(&all).len(), 40);
    assert_eq!(ids_in(&high).len(), 20);
    assert_eq!((m.sinks[0].sent, m.sinks[1].sent, m.sinks[1].filtered), (40, 20, 20));
    assert_eq!((m.sinks[0].spool_depth, m.sinks[1].spool_depth), (0, 0));
}

#[test]
fn the_file_sink_rotates_by_size_and_keeps_rotate_keep_files() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("a.jsonl");
    let kind = SinkKind::File { path: path.clone(), rotate_bytes: 8192, rotate_keep: 2 };
    let d = Delivery::start(&settings(dir.path(), vec![sink("f", 0, kind)]), "s1").expect("start");
    for n in 0..60 {
        d.submit(&alert(n, 90)).expect("submit");
    }
    d.shutdown(Duration::from_secs(10));
    assert!(std::fs::metadata(&path).expect("current").len() <= 8192);
    assert!(dir.path().join("a.jsonl.1").exists() && dir.path().join("a.jsonl.2").exists());
    assert!(!dir.path().join("a.jsonl.3").exists());
}

/// An HTTP/1.1 receiver that answers `fail_first` requests with 503 + Retry-After: 0, then 200,
/// and records the `event.id`s it accepted.
fn receiver(
    fail_first: u32,
    status_after: u16,
) -> (String, Arc<std::sync::Mutex<BTreeSet<String>>>, Arc<AtomicU32>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/alerts", listener.local_addr().expect("addr"));
    let got = Arc::new(std::sync::Mutex::new(BTreeSet::new()));
    let requests = Arc::new(AtomicU32::new(0));
    let (got2, requests2) = (Arc::clone(&got), Arc::clone(&requests));
    std::thread::spawn(move || {
        for stream in listener.incoming().take(200) {
            let Ok(stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            loop {
                let mut len = 0;
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                loop {
                    line.clear();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; len];
                if reader.read_exact(&mut body).is_err() {
                    break;
                }
                let n = requests2.fetch_add(1, Ordering::SeqCst);
                let status = if n < fail_first { 503 } else { status_after };
                if status == 200 {
                    let mut got = got2.lock().expect("lock");
                    for l in String::from_utf8_lossy(&body).lines() {
                        let v: serde_json::Value = serde_json::from_str(l).expect("ndjson");
                        got.insert(v["event"]["id"].as_str().expect("id").to_owned());
                    }
                }
                let mut w = &stream;
                let _ = write!(w, "HTTP/1.1 {status} X\r\nRetry-After: 0\r\nContent-Length: 2\r\n\r\nok");
            }
        }
    });
    (url, got, requests)
}

fn http(url: &str) -> SinkKind {
    SinkKind::Http { url: url.to_owned(), token: "t".into(), gzip: false, tls: TlsSettings::default() }
}

#[test]
fn a_busy_receiver_gets_every_alert_after_retries() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (url, got, requests) = receiver(3, 200);
    let d = Delivery::start(&settings(dir.path(), vec![sink("h", 0, http(&url))]), "s1").expect("start");
    for n in 0..20 {
        d.submit(&alert(n, 90)).expect("submit");
    }
    let m = d.shutdown(Duration::from_secs(20));
    assert_eq!(got.lock().expect("lock").len(), 20);
    assert!(requests.load(Ordering::SeqCst) >= 3 + 3);
    assert_eq!((m.sinks[0].sent, m.sinks[0].failed), (20, 3));
    assert!(m.sinks[0].retried >= 3 && m.sinks[0].healthy, "{:?}", m.sinks[0]);
}

#[test]
fn a_401_dead_letters_the_batch_with_the_reason_and_moves_on() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (url, _, _) = receiver(0, 401);
    let d = Delivery::start(&settings(dir.path(), vec![sink("h", 0, http(&url))]), "s1").expect("start");
    for n in 0..3 {
        d.submit(&alert(n, 90)).expect("submit");
    }
    let m = d.shutdown(Duration::from_secs(10));
    assert_eq!((m.sinks[0].dead_lettered, m.sinks[0].spool_depth), (3, 0));
    let dead = std::fs::read_to_string(dir.path().join("dead.jsonl")).expect("dead letters");
    let first: serde_json::Value = serde_json::from_str(dead.lines().next().expect("line")).expect("json");
    assert_eq!(first["sink"], "h");
    assert!(first["reason"].as_str().expect("reason").contains("HTTP 401"), "{first}");
    assert_eq!(
        super::parse_line(dead.lines().next().expect("line")).expect("re-sendable").id,
        alert(0, 90).id
    );
}

#[test]
fn an_unreachable_receiver_keeps_the_alerts_spooled_for_the_next_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    let closed = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/x", closed.local_addr().expect("addr"));
    drop(closed);
    let s = settings(dir.path(), vec![sink("h", 0, http(&url))]);
    let d = Delivery::start(&s, "s1").expect("start");
    for n in 0..5 {
        d.submit(&alert(n, 90)).expect("submit");
    }
    let m = d.shutdown(Duration::from_millis(500));
    assert_eq!((m.sinks[0].sent, m.sinks[0].spool_depth), (0, 5));
    assert!(!m.sinks[0].healthy && m.sinks[0].failed >= 1);
    // Now the receiver exists: a restart replays the spool.
    let (url, got, _) = receiver(0, 200);
    let d = Delivery::start(&settings(dir.path(), vec![sink("h", 0, http(&url))]), "s1").expect("restart");
    assert_eq!(d.metrics().spool.recovered_records, 5);
    let m = d.shutdown(Duration::from_secs(10));
    assert_eq!((got.lock().expect("lock").len(), m.sinks[0].spool_depth), (5, 0));
}

fn rejection(text: &str) -> String {
    crate::config::from_str(text, "x.toml").expect_err("rejected").to_string()
}

#[test]
fn sink_config_errors_name_the_key_the_value_and_the_valid_values() {
    let e = rejection("[[alerts.sinks]]\ntype = \"amqp\"\nname = \"k\"\n");
    assert!(e.contains("alerts.sinks[0].type = \"amqp\"") && e.contains("\"kafka\""), "{e}");
    let e =
        rejection("[[alerts.sinks]]\ntype = \"http\"\nname = \"h\"\nurl = \"http://x\"\nstream = \"s\"\n");
    assert!(e.contains("alerts.sinks[0].stream") && e.contains("type = \"http\""), "{e}");
    let e = rejection("[[alerts.sinks]]\ntype = \"redis\"\nname = \"r\"\nurl = \"r\"\nmin_score = 101\n");
    assert!(e.contains("alerts.sinks[0].url"), "{e}");
    let e = rejection("[[alerts.sinks]]\ntype = \"file\"\nname = \"f\"\npath = \"/x\"\nmin_score = 101\n");
    assert!(e.contains("alerts.sinks[0].min_score = 101") && e.contains("0 to 100"), "{e}");
    let e = rejection("[[alerts.sinks]]\ntype = \"syslog\"\nname = \"s\"\naddress = \"nohost\"\n");
    assert!(e.contains("host:port"), "{e}");
    let e = rejection("[alerts]\nfsync = \"sometimes\"\n");
    assert!(e.contains("alerts.fsync") && e.contains("\"interval\""), "{e}");
    let two = "[[alerts.sinks]]\ntype = \"file\"\nname = \"f\"\npath = \"/a\"\n";
    let e = rejection(&format!("{two}{two}"));
    assert!(e.contains("alerts.sinks[1].name"), "{e}");
    let e =
        rejection("[[alerts.sinks]]\ntype = \"http\"\nname = \"h\"\nurl = \"http://x\"\nformat = \"cef\"\n");
    assert!(e.contains("alerts.sinks[0].format = \"cef\""), "{e}");
}

#[test]
fn every_sink_type_round_trips_through_the_effective_config() {
    let text = "[alerts]\nfsync = \"always\"\n\
        [[alerts.sinks]]\ntype = \"file\"\nname = \"f\"\npath = \"/a\"\n\
        [[alerts.sinks]]\ntype = \"http\"\nname = \"h\"\nurl = \"https://c/x\"\ngzip = true\nca_file = \"/ca\"\nclient_cert_file = \"/c\"\nclient_key_file = \"/k\"\n\
        [[alerts.sinks]]\ntype = \"splunk_hec\"\nname = \"s\"\nurl = \"https://s:8088\"\ntoken = \"t\"\nmin_score = 50\n\
        [[alerts.sinks]]\ntype = \"elasticsearch\"\nname = \"e\"\nurl = \"http://e:9200\"\nformat = \"ocsf\"\n\
        [[alerts.sinks]]\ntype = \"syslog\"\nname = \"y\"\naddress = \"[::1]:6514\"\nformat = \"leef\"\n\
        [[alerts.sinks]]\ntype = \"redis\"\nname = \"r\"\nurl = \"redis://r\"\nmaxlen = 1000\n\
        [[alerts.sinks]]\ntype = \"nats\"\nname = \"n\"\nurl = \"nats://n\"\nstream = \"S\"\n";
    let config = crate::config::from_str(text, "x.toml").expect("valid");
    assert_eq!(config.alerts.sinks.len(), 7);
    let again = crate::config::from_str(&config.effective_toml(), "x.toml").expect("effective loads");
    assert_eq!(again.alerts, config.alerts);
}
