//! Fault tests of alert delivery with the real binary and real receivers: the receiver goes
//! away for a while, and the sensor is killed with SIGKILL in the middle of delivering. In
//! both cases every spooled alert must arrive (compared as sets of `event.id`; at-least-once
//! allows duplicates).

use std::time::Duration;

use nbad_tests::receivers::send::{self, config, sink};
use nbad_tests::receivers::{alerts, free_port, hec::Hec, nats::Nats, redis::Redis, wait_until};

/// How long a receiver stays down.
const OUTAGE: Duration = Duration::from_secs(2);

/// Waits for `alerts send` and checks that it succeeded and logged the outage and the recovery.
fn ends_after_a_reported_outage(child: std::process::Child) {
    let out = child.wait_with_output().expect("alerts send ends");
    let err = send::stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("cannot deliver") && err.contains("delivers again"),
        "the outage is reported: {err}"
    );
}

/// Waits for `alerts send` and checks that it succeeded.
fn ends_successfully(child: std::process::Child) {
    let out = child.wait_with_output().expect("alerts send ends");
    assert!(out.status.success(), "{}", send::stderr(&out));
}

fn skip(what: &str) {
    nbad_tests::receivers::not_installed(what);
}

#[test]
fn redis_stopped_mid_delivery_and_started_again_receives_every_alert() {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port().expect("port");
    let Some(redis) = Redis::start(dir.path(), port).expect("redis starts") else {
        return skip("redis-server");
    };
    let file = dir.path().join("alerts.jsonl");
    // Enough alerts that delivery is still running when the receiver stops,
    // however fast this machine delivers (3000 once all arrived first).
    let sent = alerts::write(&file, 0xc1, 30_000).expect("alerts");
    let keys = format!("url = \"{}\"\nstream = \"s\"\nbatch_max_events = 20", redis.url());
    let cfg = config(dir.path(), &sink("redis", "redis", &keys)).expect("config");
    let child = send::spawn(&cfg, 120, &[&file]).expect("alerts send starts");
    // Stop Redis as soon as some alerts are in, keep it down for two seconds, start it again.
    let started = wait_until(Duration::from_secs(30), || {
        redis.stream_text("s").is_ok_and(|t| !alerts::ids_in(&t, 0xc1).is_empty())
    });
    assert!(started, "delivery started");
    drop(redis);
    std::thread::sleep(OUTAGE);
    let redis = Redis::start(dir.path(), port).expect("restart").expect("installed");
    ends_after_a_reported_outage(child);
    assert_eq!(alerts::ids_in(&redis.stream_text("s").expect("XRANGE"), 0xc1), sent);
}

#[test]
fn nats_stopped_mid_delivery_and_started_again_receives_every_alert() {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port().expect("port");
    let Some(nats) = Nats::start(dir.path(), port).expect("nats starts") else { return skip("nats-server") };
    let file = dir.path().join("alerts.jsonl");
    // Enough alerts that delivery is still running when the receiver stops
    // (2000 once all arrived before the test could stop NATS).
    let sent = alerts::write(&file, 0xc2, 20_000).expect("alerts");
    let keys = format!("url = \"{}\"\nsubject = \"a\"\nstream = \"A\"\nbatch_max_events = 5", nats.url());
    let cfg = config(dir.path(), &sink("nats", "nats", &keys)).expect("config");
    let child = send::spawn(&cfg, 120, &[&file]).expect("alerts send starts");
    let started = wait_until(Duration::from_secs(30), || nats.count("A").is_ok_and(|n| n > 0));
    assert!(started, "delivery started");
    drop(nats);
    std::thread::sleep(OUTAGE);
    let nats = Nats::start(dir.path(), port).expect("restart").expect("installed");
    // The NATS client reconnects by itself and holds publishes while the server is away, so a
    // two-second outage may never reach the sink as an error (then nothing is logged, and
    // nothing is lost either); what must hold is that every alert arrives.
    ends_successfully(child);
    let got = nats.messages("A").expect("read the stream");
    assert_eq!(alerts::ids_in(&got.join("\n"), 0xc2), sent);
}

#[test]
fn a_sensor_killed_with_sigkill_mid_delivery_delivers_every_spooled_alert_after_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    // A slow collector: 20 ms per request of 20 alerts, so 2000 alerts take seconds.
    let hec = Hec::start("t", 0, Duration::from_millis(20)).expect("hec");
    let file = dir.path().join("alerts.jsonl");
    let sent = alerts::write(&file, 0xc3, 2000).expect("alerts");
    let keys = format!("url = \"{}\"\ntoken = \"t\"\nbatch_max_events = 20", hec.url());
    let cfg = config(dir.path(), &sink("splunk_hec", "hec", &keys)).expect("config");
    let mut child = send::spawn(&cfg, 120, &[&file]).expect("alerts send starts");
    let midway = wait_until(Duration::from_secs(60), || hec.accepted().len() >= 200);
    assert!(midway, "delivery started");
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    let before = hec.accepted().len();
    assert!(before < sent.len(), "killed before the end ({before} delivered)");
    // Restart with the same spool and no files: the spool is replayed from the cursor.
    let out = send::run(&cfg, 120, &[]).expect("restart runs");
    assert!(out.status.success(), "{}", send::stderr(&out));
    assert_eq!(hec.accepted(), sent);
    let events = hec.state.accepted_events.load(std::sync::atomic::Ordering::SeqCst);
    assert!(events as usize <= sent.len() + 20, "at most the batch in flight is sent twice ({events})");
}
