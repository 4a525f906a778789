//! Alert delivery to real receivers: the real `nbad-sensor alerts send` delivers ECS alert
//! files through the spool to rsyslog, syslog-ng, Redis, NATS JetStream, an OpenSearch-
//! compatible server and a Splunk HEC contract server, all started here on loopback. Each
//! test compares the set of `event.id`s that arrived with the set sent.
//!
//! A receiver that is not installed makes its test count as skipped (`nbad_tests::gate`), which
//! fails a CI run: CI installs them (`cargo xtask setup`).

use std::collections::BTreeSet;
use std::time::Duration;

use nbad_tests::receivers::send::{self, config, sink};
use nbad_tests::receivers::{
    alerts, free_port, hec::Hec, nats::Nats, opensearch::OpenSearch, redis::Redis, syslog, wait_until,
};

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

fn skip(what: &str) {
    nbad_tests::receivers::not_installed(what);
}

#[test]
fn every_alert_reaches_a_redis_stream() {
    let dir = tmp();
    let Some(redis) = Redis::start(dir.path(), free_port().expect("port")).expect("redis starts") else {
        return skip("redis-server");
    };
    let file = dir.path().join("alerts.jsonl");
    let sent = alerts::write(&file, 0xa1, 300).expect("alerts");
    let keys = format!("url = \"{}\"\nstream = \"nbad:alerts\"", redis.url());
    let cfg = config(dir.path(), &sink("redis", "redis", &keys)).expect("config");
    let out = send::run(&cfg, 60, &[&file]).expect("alerts send runs");
    assert!(out.status.success(), "{}", send::stderr(&out));
    let text = redis.stream_text("nbad:alerts").expect("XRANGE");
    assert_eq!(alerts::ids_in(&text, 0xa1), sent);
}

#[test]
fn every_alert_reaches_a_nats_jetstream_stream_with_acknowledgement() {
    let dir = tmp();
    let Some(nats) = Nats::start(dir.path(), free_port().expect("port")).expect("nats starts") else {
        return skip("nats-server");
    };
    let file = dir.path().join("alerts.jsonl");
    let sent = alerts::write(&file, 0xa2, 200).expect("alerts");
    let keys = format!("url = \"{}\"\nsubject = \"nbad.alerts\"\nstream = \"NBAD\"", nats.url());
    let cfg = config(dir.path(), &sink("nats", "nats", &keys)).expect("config");
    let out = send::run(&cfg, 60, &[&file]).expect("alerts send runs");
    assert!(out.status.success(), "{}\n{}", send::stderr(&out), nats.process.log());
    let messages = nats.messages("NBAD").expect("read the stream");
    assert_eq!(alerts::ids_in(&messages.join("\n"), 0xa2), sent);
}

#[test]
fn opensearch_bulk_create_indexes_every_alert_once_and_a_resend_is_a_harmless_409() {
    let dir = tmp();
    let Some(os) = OpenSearch::start(dir.path(), free_port().expect("port")).expect("osmem starts") else {
        return skip("osmem-server");
    };
    let file = dir.path().join("alerts.jsonl");
    let sent = alerts::write(&file, 0xa3, 250).expect("alerts");
    let keys = format!("url = \"{}\"\nindex = \"nbad-alerts\"\ngzip = true", os.url());
    let cfg = config(dir.path(), &sink("elasticsearch", "os", &keys)).expect("config");
    for round in 0..2 {
        let out = send::run(&cfg, 60, &[&file]).expect("alerts send runs");
        let err = send::stderr(&out);
        assert!(out.status.success(), "round {round}: {err}");
        assert!(err.contains("250 sent, 0 dead-lettered"), "round {round}: {err}");
        let ids = os.ids("nbad-alerts").expect("_search");
        assert_eq!(ids.len(), 250, "round {round}: every alert exactly once");
        assert_eq!(ids.into_iter().collect::<BTreeSet<_>>(), sent);
    }
}

#[test]
fn splunk_hec_gets_every_alert_after_server_is_busy_and_ocsf_honours_min_score() {
    let dir = tmp();
    let hec = Hec::start("good-token", 2, Duration::ZERO).expect("hec");
    let file = dir.path().join("alerts.jsonl");
    let sent = alerts::write(&file, 0xa4, 100).expect("alerts");
    let all = format!("url = \"{}\"\ntoken = \"good-token\"\nbatch_max_events = 30", hec.url());
    let ocsf_hec = Hec::start("good-token", 0, Duration::ZERO).expect("hec");
    let ocsf =
        format!("url = \"{}\"\ntoken = \"good-token\"\nformat = \"ocsf\"\nmin_score = 50", ocsf_hec.url());
    let sinks = sink("splunk_hec", "hec", &all) + &sink("splunk_hec", "hec-ocsf", &ocsf);
    let cfg = config(dir.path(), &sinks).expect("config");
    let out = send::run(&cfg, 60, &[&file]).expect("alerts send runs");
    let err = send::stderr(&out);
    assert!(out.status.success(), "{err}");
    assert_eq!(hec.accepted(), sent);
    assert!(err.contains("HEC code 9"), "the busy collector is reported: {err}");
    assert!(err.contains("delivers again"), "{err}");
    // Scores are 10..=100 in turn: 50 and above is 6 in 10.
    assert_eq!(ocsf_hec.accepted().len(), 60, "{err}");
    assert!(err.contains("40 below min_score"), "{err}");
}

#[test]
fn a_wrong_hec_token_dead_letters_every_alert_with_the_reason() {
    let dir = tmp();
    let hec = Hec::start("right", 0, Duration::ZERO).expect("hec");
    let file = dir.path().join("alerts.jsonl");
    let sent = alerts::write(&file, 0xa5, 40).expect("alerts");
    let keys = format!("url = \"{}\"\ntoken = \"wrong\"\nbatch_max_events = 10", hec.url());
    let cfg = config(dir.path(), &sink("splunk_hec", "hec", &keys)).expect("config");
    let out = send::run(&cfg, 30, &[&file]).expect("alerts send runs");
    let err = send::stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("40 dead-lettered"), "{err}");
    assert_eq!(err.matches("cannot deliver").count(), 1, "one log line, not one per batch: {err}");
    let dead_path = dir.path().join("spool/dead-letter.jsonl");
    let dead = std::fs::read_to_string(&dead_path).expect("dead-letter file");
    assert_eq!(dead.lines().count(), 40);
    assert!(dead.lines().all(|l| l.contains("HEC code 4") && l.contains("Invalid token")), "{dead}");
    assert_eq!(alerts::ids_in(&dead, 0xa5), sent);
    // Once the token is fixed, the dead-letter file itself is re-sent.
    let fixed = format!("url = \"{}\"\ntoken = \"right\"", hec.url());
    let cfg = config(dir.path(), &sink("splunk_hec", "hec", &fixed)).expect("config");
    let out = send::run(&cfg, 30, &[&dead_path]).expect("re-send runs");
    assert!(out.status.success(), "{}", send::stderr(&out));
    assert_eq!(hec.accepted(), sent);
}

#[test]
fn an_unreachable_collector_keeps_the_alerts_spooled_with_one_clear_log_line() {
    let dir = tmp();
    let port = free_port().expect("port");
    let file = dir.path().join("alerts.jsonl");
    let sent = alerts::write(&file, 0xa6, 50).expect("alerts");
    let keys = format!("url = \"http://127.0.0.1:{port}/alerts\"");
    let cfg = config(dir.path(), &sink("http", "collector", &keys)).expect("config");
    let out = send::run(&cfg, 3, &[&file]).expect("alerts send runs");
    let err = send::stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert_eq!(err.matches("cannot deliver").count(), 1, "{err}");
    assert!(err.contains(&format!("127.0.0.1:{port}")) && err.contains("stay in the spool"), "{err}");
    assert!(err.contains("50 left in the spool"), "{err}");
    // The collector comes up: a run without files delivers the spool.
    let hec = Hec::start_on(port, "t").expect("collector on the same port");
    let keys = format!("url = \"http://127.0.0.1:{port}\"\ntoken = \"t\"");
    let cfg = config(dir.path(), &sink("splunk_hec", "collector", &keys)).expect("config");
    let out = send::run(&cfg, 30, &[]).expect("alerts send runs");
    assert!(out.status.success(), "{}", send::stderr(&out));
    assert_eq!(hec.accepted(), sent);
}

fn syslog_case(
    receiver: Option<syslog::Syslog>,
    dir: &std::path::Path,
    tag: u32,
    keys: &str,
    expect_in_body: &str,
) {
    let file = dir.join(format!("alerts-{tag}.jsonl"));
    let sent = alerts::write(&file, tag, 120).expect("alerts");
    let Some(rx) = receiver else { return };
    let cfg = config(dir, &sink("syslog", "siem", keys)).expect("config");
    let out = send::run(&cfg, 60, &[&file]).expect("alerts send runs");
    assert!(out.status.success(), "{}", send::stderr(&out));
    // Best effort: the receiver writes asynchronously; wait for its file to fill.
    wait_until(Duration::from_secs(15), || alerts::ids_in(&rx.received(), tag).len() >= sent.len());
    let text = rx.received();
    assert_eq!(alerts::ids_in(&text, tag), sent, "{}", rx.process.log());
    assert!(text.contains(expect_in_body), "{}", text.lines().next().unwrap_or_default());
    assert!(
        text.contains("[nbad@32473 id=\""),
        "structured data: {}",
        text.lines().next().unwrap_or_default()
    );
}

#[test]
fn rsyslog_receives_rfc5424_over_tcp_with_octet_counting() {
    let dir = tmp();
    let port = free_port().expect("port");
    let rx = syslog::rsyslog(dir.path(), port, None).expect("rsyslog starts");
    if rx.is_none() {
        return skip("rsyslogd");
    }
    let keys = format!("protocol = \"tcp\"\naddress = \"127.0.0.1:{port}\"\nformat = \"ecs\"");
    syslog_case(rx, dir.path(), 0xb1, &keys, "\"kind\":\"alert\"");
}

#[test]
fn rsyslog_receives_cef_over_tls_verified_against_a_test_ca() {
    let dir = tmp();
    let Some(ca) = syslog::TestCa::generate(dir.path()).expect("test CA") else { return skip("openssl") };
    let port = free_port().expect("port");
    let rx = syslog::rsyslog(dir.path(), port, Some(&ca)).expect("rsyslog starts");
    if rx.is_none() {
        return skip("rsyslog-gnutls");
    }
    let keys = format!(
        "protocol = \"tls\"\naddress = \"127.0.0.1:{port}\"\nserver_name = \"localhost\"\nformat = \"cef\"\nca_file = \"{}\"",
        ca.ca.display()
    );
    syslog_case(rx, dir.path(), 0xb2, &keys, "CEF:0|nbad|nbad-sensor|");
}

#[test]
fn syslog_ng_receives_leef_over_tcp() {
    let dir = tmp();
    let port = free_port().expect("port");
    let rx = syslog::syslog_ng(dir.path(), port).expect("syslog-ng starts");
    if rx.is_none() {
        return skip("syslog-ng");
    }
    let keys = format!("protocol = \"tcp\"\naddress = \"127.0.0.1:{port}\"\nformat = \"leef\"");
    syslog_case(rx, dir.path(), 0xb3, &keys, "LEEF:2.0|nbad|nbad-sensor|");
}

#[test]
fn a_tls_syslog_receiver_with_an_untrusted_certificate_is_reported_and_nothing_is_lost() {
    let dir = tmp();
    let Some(ca) = syslog::TestCa::generate(dir.path()).expect("test CA") else { return skip("openssl") };
    let port = free_port().expect("port");
    let Some(_rx) = syslog::rsyslog(dir.path(), port, Some(&ca)).expect("rsyslog starts") else {
        return skip("rsyslog-gnutls");
    };
    let file = dir.path().join("alerts.jsonl");
    alerts::write(&file, 0xb4, 10).expect("alerts");
    // No ca_file: the built-in web roots do not trust the test CA.
    let keys = format!("protocol = \"tls\"\naddress = \"127.0.0.1:{port}\"\nserver_name = \"localhost\"");
    let cfg = config(dir.path(), &sink("syslog", "siem", &keys)).expect("config");
    let out = send::run(&cfg, 2, &[&file]).expect("alerts send runs");
    let err = send::stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("TLS handshake") && err.contains("certificate"), "{err}");
    assert!(err.contains("10 left in the spool"), "{err}");
}
