//! Alert spool append rate: `Delivery::submit` (serialise the alert, append one CRC-framed
//! record to the active segment) as the pipeline's output thread calls it, with the `never`
//! and `interval` fsync policies. The one sink points at a closed loopback port, so its task
//! only backs off and does not compete for the CPU; each sample gets a fresh spool directory.
//! Target: at least 50 000 alerts/s.

use std::hint::black_box;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use nbad_sensor::alert::{Alert, Detector, Evidence, LearningState, Severity, alert_id};
use nbad_sensor::deliver::{
    Delivery, DeliverySettings, Format, FsyncPolicy, SinkKind, SinkSettings, TlsSettings,
};

/// A beaconing alert of typical size (~1 KiB of JSON).
fn alert(n: u64) -> Alert {
    let host: IpAddr = "10.1.2.3".parse().expect("ip");
    let peer: IpAddr = "203.0.113.9".parse().expect("ip");
    let end = 1_767_225_600_000_000_000 + n * 1_000_000_000;
    Alert {
        id: alert_id("bench", Detector::Beaconing, host, Some(peer), Some(443), end),
        timestamp_ns: end,
        sensor_id: "bench".into(),
        detector: Detector::Beaconing,
        description: "Periodic connections to one destination".into(),
        message: "10.1.2.3 connected to 203.0.113.9:443 every 60 s (jitter 0.4 s) for 2 h".into(),
        risk_score: 72,
        severity: Severity::from_score(72),
        host,
        peer: Some(peer),
        port: Some(443),
        transport: Some("tcp".into()),
        community_id: Some("1:LQU9qZlK+B5F3KDmev6m5PMibrg=".into()),
        host_criticality: 3,
        host_owner: Some("finance".into()),
        evidence: Evidence {
            metric: "interval_cv".into(),
            observed: 0.007,
            baseline_mean: None,
            baseline_band: None,
            threshold: 0.1,
            learning_state: LearningState::NotApplicable,
            window_start_ns: end - 7_200_000_000_000,
            window_end_ns: end,
            community_ids: vec!["1:LQU9qZlK+B5F3KDmev6m5PMibrg=".into(); 4],
            details: serde_json::Map::new(),
        },
        incident: None,
        host_role: None,
        record: None,
    }
}

fn settings(dir: &std::path::Path, fsync: FsyncPolicy) -> DeliverySettings {
    DeliverySettings {
        spool_dir: dir.to_path_buf(),
        spool_max_bytes: 1 << 40,
        segment_bytes: 64 << 20,
        fsync,
        sinks: vec![SinkSettings {
            name: "closed".into(),
            min_score: 0,
            format: Format::Ecs,
            batch_max_events: 500,
            timeout: Duration::from_secs(1),
            retry_initial: Duration::from_secs(60),
            retry_max: Duration::from_secs(60),
            kind: SinkKind::Http {
                url: "http://127.0.0.1:9/".into(),
                token: String::new(),
                gzip: false,
                tls: TlsSettings::default(),
            },
        }],
        ..DeliverySettings::default()
    }
}

fn spool_append(c: &mut Criterion) {
    let alerts: Vec<Alert> = (0..1024).map(alert).collect();
    let mut group = c.benchmark_group("spool");
    group.throughput(Throughput::Elements(1));
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(5));
    for (name, fsync) in [
        ("submit_fsync_never", FsyncPolicy::Never),
        ("submit_fsync_interval_1s", FsyncPolicy::Interval(Duration::from_secs(1))),
    ] {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let dir = tempfile::tempdir().expect("temp dir");
                let delivery = Delivery::start(&settings(dir.path(), fsync), "bench").expect("start");
                let start = Instant::now();
                for i in 0..iters {
                    delivery.submit(black_box(&alerts[(i % 1024) as usize])).expect("submit");
                }
                let took = start.elapsed();
                delivery.shutdown(Duration::ZERO);
                took
            });
        });
    }
    group.finish();
}

criterion_group!(benches, spool_append);
criterion_main!(benches);
