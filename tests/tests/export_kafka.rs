//! Kafka, with the real binary and a real Kafka-protocol broker on loopback (tansu; see
//! `nbad_tests::receivers::kafka` for why tansu and how it is read back):
//!
//! - the `kafka` alert sink: every alert of a corpus replay arrives, once per `event.id`, on
//!   the partition Kafka's default partitioner gives its key;
//! - the broker cut off in the middle of a delivery and back: no alert lost (at-least-once:
//!   duplicates allowed, compared as sets of `event.id`);
//! - the broker not there when delivery starts, started later: the spooled alerts go out;
//! - `[output.kafka]`: every flow record of corpus replays arrives, with per-flow packet and
//!   byte sums equal to the JSON output, every record of a flow on one partition.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use nbad_tests::flows;
use nbad_tests::receivers::kafka::{Relay, Tansu, default_partition};
use nbad_tests::receivers::send::{self, config, sink};
use nbad_tests::receivers::{alerts, free_port, not_installed, wait_until};
use nbad_tests::{Corpus, sensor};
use serde_json::Value;

const PARTITIONS: u32 = 3;

fn start_tansu(dir: &std::path::Path) -> Result<Option<Tansu>> {
    let port = free_port()?;
    Tansu::start(dir, port, port)
}

/// The `event.id`s in the records, with how often each came, checking each record's
/// partition against its key's.
fn ids_on_their_partitions(records: &[(u32, Value)]) -> Result<BTreeMap<String, usize>> {
    let mut ids = BTreeMap::new();
    for (p, v) in records {
        let id =
            v.pointer("/event/id").and_then(Value::as_str).with_context(|| format!("no event.id in {v}"))?;
        let want = default_partition(id.as_bytes(), PARTITIONS);
        ensure!(*p == want, "alert {id} is on partition {p}, its key's is {want}");
        *ids.entry(id.to_owned()).or_insert(0) += 1;
    }
    Ok(ids)
}

fn kafka_sink(broker: &str, extra: &str) -> String {
    sink(
        "kafka",
        "kafka",
        &format!("brokers = [\"{broker}\"]\ntopic = \"alerts\"\ncreate_partitions = {PARTITIONS}\n{extra}"),
    )
}

#[test]
fn every_alert_of_a_corpus_replay_reaches_kafka_once_per_event_id_on_its_keys_partition() -> Result<()> {
    let Some(corpus) = Corpus::open_or_skip()? else { return Ok(()) };
    let dir = tempfile::tempdir()?;
    let Some(tansu) = start_tansu(dir.path())? else {
        not_installed("tansu");
        return Ok(());
    };
    let _ran = nbad_tests::gate::Ran::start();
    let cfg = config(dir.path(), &kafka_sink(&tansu.bootstrap(), "compression = \"zstd\""))?;
    let alerts_path = dir.path().join("alerts.jsonl");
    let scans: Vec<_> = corpus.in_category("scan").map(|e| corpus.path(e)).collect();
    let mut args: Vec<&OsStr> = vec![
        OsStr::new("replay"),
        OsStr::new("--quiet"),
        OsStr::new("--config"),
        cfg.as_os_str(),
        OsStr::new("--flows"),
        OsStr::new(""),
        OsStr::new("--alerts"),
        alerts_path.as_os_str(),
    ];
    args.extend(scans.iter().map(|p| p.as_os_str()));
    let run = sensor::run(&args, dir.path(), Duration::from_secs(120))?;
    ensure!(run.succeeded(), "{}", run.describe());
    let raised: BTreeSet<String> = sensor::read_json_lines(&alerts_path)?
        .iter()
        .filter_map(|a| a.pointer("/event/id").and_then(Value::as_str).map(str::to_owned))
        .collect();
    ensure!(raised.len() >= 5, "the scan captures raise alerts: {}", raised.len());
    let got = ids_on_their_partitions(&tansu.consume("alerts")?)?;
    let once: BTreeSet<String> = got.keys().cloned().collect();
    ensure!(once == raised, "Kafka has {:?}, the replay raised {:?}", once, raised);
    ensure!(got.values().all(|n| *n == 1), "an alert arrived twice without a failure: {got:?}");
    println!("{} alerts of the scan captures, each once in Kafka on its key's partition", raised.len());
    Ok(())
}

#[test]
fn a_broker_cut_off_mid_delivery_and_back_loses_no_alert() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    let relay = Relay::start(port)?;
    let Some(tansu) = Tansu::start(dir.path(), port, relay.port)? else {
        not_installed("tansu");
        return Ok(());
    };
    let _ran = nbad_tests::gate::Ran::start();
    let file = dir.path().join("alerts.jsonl");
    let sent = alerts::write(&file, 0xca, 20_000)?;
    let cfg = config(dir.path(), &kafka_sink(&tansu.bootstrap(), "batch_max_events = 50"))?;
    let child = send::spawn(&cfg, 180, &[&file])?;
    let started =
        wait_until(Duration::from_secs(60), || tansu.consume("alerts").is_ok_and(|r| r.len() >= 500));
    ensure!(started, "delivery started; {}", tansu.log());
    relay.down();
    std::thread::sleep(Duration::from_secs(3));
    relay.up();
    let out = child.wait_with_output()?;
    let err = send::stderr(&out);
    ensure!(out.status.success(), "{err}");
    ensure!(
        err.contains("cannot deliver") && err.contains("delivers again"),
        "the outage is reported: {err}"
    );
    let got = ids_on_their_partitions(&tansu.consume("alerts")?)?;
    let ids: BTreeSet<String> = got.keys().cloned().collect();
    let missing: Vec<_> = sent.difference(&ids).take(5).collect();
    ensure!(missing.is_empty(), "{} alerts lost, e.g. {missing:?}", sent.difference(&ids).count());
    let copies: usize = got.values().sum();
    println!(
        "broker cut off for 3 s mid-delivery: all {} alerts arrived ({} records: at-least-once)",
        sent.len(),
        copies
    );
    Ok(())
}

#[test]
fn alerts_spooled_while_the_broker_is_stopped_arrive_once_it_is_started() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    if nbad_tests::receivers::find_program("tansu", &[nbad_tests::receivers::kafka::tansu_path()]).is_none() {
        not_installed("tansu");
        return Ok(());
    }
    let _ran = nbad_tests::gate::Ran::start();
    let file = dir.path().join("alerts.jsonl");
    let sent = alerts::write(&file, 0xcb, 500)?;
    let cfg = config(dir.path(), &kafka_sink(&format!("127.0.0.1:{port}"), ""))?;
    let child = send::spawn(&cfg, 120, &[&file])?;
    std::thread::sleep(Duration::from_secs(3));
    let tansu = Tansu::start(dir.path(), port, port)?.context("tansu installed")?;
    let out = child.wait_with_output()?;
    ensure!(out.status.success(), "{}", send::stderr(&out));
    let got = ids_on_their_partitions(&tansu.consume("alerts")?)?;
    let ids: BTreeSet<String> = got.keys().cloned().collect();
    ensure!(ids == sent, "{} of {} alerts arrived", ids.len(), sent.len());
    Ok(())
}

#[test]
fn flow_records_reach_kafka_with_the_json_outputs_counts_and_each_flow_on_one_partition() -> Result<()> {
    let Some(corpus) = Corpus::open_or_skip()? else { return Ok(()) };
    let dir = tempfile::tempdir()?;
    let Some(tansu) = start_tansu(dir.path())? else {
        not_installed("tansu");
        return Ok(());
    };
    let _ran = nbad_tests::gate::Ran::start();
    let cfg = dir.path().join("sensor.toml");
    std::fs::write(
        &cfg,
        format!(
            "[sensor]\nid = \"kafka-flows\"\n[detection]\nenabled = false\n[output.kafka]\nbrokers = [\"{}\"]\n\
             topic = \"flows\"\ncreate_partitions = {PARTITIONS}\nbatch_max_records = 200\nlinger_ms = 20\n",
            tansu.bootstrap()
        ),
    )?;
    let mut want = flows::FlowTotals::new();
    for c in [
        "benign_mixed/ndpi__1kxun.pcap",
        "exfil_bulk_upload/sv__filecontainer-smb.pcap",
        "icmp_tunnel/ndpi__icmp-tunnel.pcap",
    ] {
        let capture = corpus.path(corpus.entry(c)?);
        let flows_path = dir.path().join("flows.json");
        let stats_path = dir.path().join("stats.json");
        let _ = std::fs::remove_file(&flows_path);
        let args: [&OsStr; 9] = [
            OsStr::new("replay"),
            OsStr::new("--quiet"),
            OsStr::new("--config"),
            cfg.as_os_str(),
            OsStr::new("--flows"),
            flows_path.as_os_str(),
            OsStr::new("--stats"),
            stats_path.as_os_str(),
            capture.as_os_str(),
        ];
        let run = sensor::run(&args, dir.path(), Duration::from_secs(120))?;
        ensure!(run.succeeded(), "{}", run.describe());
        let stats = sensor::read_stats(&stats_path)?;
        let x = stats.pointer("/output/export/0").context("no export stats")?;
        ensure!(x["kind"] == "kafka" && x["sent"] == x["offered"], "not everything was produced: {x}");
        for (k, t) in flows::totals_from_records(&sensor::read_json_lines(&flows_path)?)? {
            want.entry(k).or_default().add(t.packets, t.bytes);
        }
    }
    let records = tansu.consume("flows")?;
    let mut partition_of: BTreeMap<String, u32> = BTreeMap::new();
    for (p, v) in &records {
        let cid = v.pointer("/network/community_id").and_then(Value::as_str).context("no community_id")?;
        let want_p = default_partition(cid.as_bytes(), PARTITIONS);
        ensure!(*p == want_p, "flow {cid} on partition {p}, its key's is {want_p}");
        ensure!(*partition_of.entry(cid.to_owned()).or_insert(*p) == *p, "flow {cid} on two partitions");
    }
    let values: Vec<Value> = records.into_iter().map(|(_, v)| v).collect();
    let got = flows::totals_from_records(&values)?;
    let diff = flows::diff(&want, &got);
    ensure!(
        diff.is_empty(),
        "{} flows differ (expected = JSON, got = Kafka):\n{}",
        diff.len(),
        flows::render_diff(&diff, 12)
    );
    println!("{} flow records in Kafka, {} flows, equal to the JSON output", values.len(), want.len());
    Ok(())
}

#[test]
fn flow_records_spooled_while_kafka_is_away_are_produced_at_the_next_start() -> Result<()> {
    let Some(corpus) = Corpus::open_or_skip()? else { return Ok(()) };
    if nbad_tests::receivers::find_program("tansu", &[nbad_tests::receivers::kafka::tansu_path()]).is_none() {
        not_installed("tansu");
        return Ok(());
    }
    let _ran = nbad_tests::gate::Ran::start();
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    let cfg = dir.path().join("sensor.toml");
    std::fs::write(
        &cfg,
        format!(
            "[sensor]\nid = \"kafka-spool\"\n[detection]\nenabled = false\n[output.kafka]\n\
             brokers = [\"127.0.0.1:{port}\"]\ntopic = \"flows\"\ncreate_partitions = {PARTITIONS}\n\
             timeout_ms = 1000\nretry_initial_ms = 100\nretry_max_ms = 300\nspool_dir = \"{}\"\n",
            dir.path().join("flow-spool").display()
        ),
    )?;
    let replay = |capture: &str| -> Result<(flows::FlowTotals, Value)> {
        let capture = corpus.path(corpus.entry(capture)?);
        let flows_path = dir.path().join("flows.json");
        let stats_path = dir.path().join("stats.json");
        let _ = std::fs::remove_file(&flows_path);
        let args: [&OsStr; 9] = [
            OsStr::new("replay"),
            OsStr::new("--quiet"),
            OsStr::new("--config"),
            cfg.as_os_str(),
            OsStr::new("--flows"),
            flows_path.as_os_str(),
            OsStr::new("--stats"),
            stats_path.as_os_str(),
            capture.as_os_str(),
        ];
        let run = sensor::run(&args, dir.path(), Duration::from_secs(120))?;
        ensure!(run.succeeded(), "{}", run.describe());
        let stats = sensor::read_stats(&stats_path)?;
        let x = stats.pointer("/output/export/0").cloned().context("no export stats")?;
        Ok((flows::totals_from_records(&sensor::read_json_lines(&flows_path)?)?, x))
    };
    let n = |x: &Value, k: &str| x.get(k).and_then(Value::as_u64).unwrap_or(u64::MAX);

    // No broker: everything stays in the spool, nothing is dropped.
    let (first, x) = replay("benign_mixed/ndpi__1kxun.pcap")?;
    ensure!(n(&x, "sent") == 0 && n(&x, "spooled") == n(&x, "offered"), "all spooled: {x}");
    ensure!(n(&x, "dropped_queue_full") + n(&x, "dropped_shutdown") == 0, "nothing dropped: {x}");
    let offered_first = n(&x, "offered");

    // The broker is up at the next start: the spool's records go out with the new ones.
    let tansu = Tansu::start(dir.path(), port, port)?.context("tansu installed")?;
    let (second, x) = replay("icmp_tunnel/ndpi__icmp-tunnel.pcap")?;
    ensure!(n(&x, "sent") == offered_first + n(&x, "offered") && n(&x, "spooled") == 0, "all produced: {x}");
    let mut want = first;
    for (k, t) in second {
        want.entry(k).or_default().add(t.packets, t.bytes);
    }
    let values: Vec<Value> = tansu.consume("flows")?.into_iter().map(|(_, v)| v).collect();
    let got = flows::totals_from_records(&values)?;
    let diff = flows::diff(&want, &got);
    ensure!(diff.is_empty(), "{} flows differ:\n{}", diff.len(), flows::render_diff(&diff, 12));
    println!(
        "{} records spooled without a broker, produced at the next start with the next run's",
        offered_first
    );
    Ok(())
}
