//! SIGHUP reload of a live `nbad-sensor run` (libpcap on a veth in a test namespace, see
//! `nbad_tests::live`): a configuration that does not validate is refused with the reason and the
//! sensor goes on with the running one; a valid one with a new `output.flows` sends the
//! records from then on to the new file. No flow is lost or written twice across the reloads,
//! and a flow that spans them keeps its state: its one record counts every packet.
//!
//! Needs root, `ip netns` and python3; otherwise it is reported as skipped
//! (`nbad_tests::gate`).
//! Takes about 15 s.

use nbad_tests::live as support;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::thread;
use std::time::Duration;

use anyhow::{Result, bail};
use support::{Link, Sensor, udp_flows, wait_until};

/// A datagram every 100 ms from this port, across both reloads.
const LONG_FLOW_PORT: u16 = 41_000;
const LONG_FLOW_PACKETS: u32 = 120;

fn config(interface: &str, flows: &Path) -> String {
    format!(
        "[sensor]\nid = \"reload-test\"\n\n[capture]\nmode = \"pcap\"\ninterface = \"{interface}\"\n\
         read_timeout_ms = 20\n\n[flows]\nudp_idle_timeout_s = 2\nicmp_idle_timeout_s = 2\n\
         emergency_idle_timeout_s = 2\nworkers = 1\n\n[output]\nflows = {:?}\n",
        flows.display().to_string()
    )
}

#[test]
fn sighup_refuses_a_bad_config_and_moves_records_to_a_new_file_without_losing_a_flow() -> Result<()> {
    let Some(_ran) = support::require() else { return Ok(()) };
    let dir = tempfile::tempdir()?;
    let (first, second) = (dir.path().join("first.json"), dir.path().join("second.json"));
    let config_path = dir.path().join("sensor.toml");
    fs::write(&config_path, config("cap0", &first))?;

    let link = Link::new("nbadrl", 1)?;
    let mut sensor = Sensor::start(&link.sensor_ns, &config_path, dir.path().join("sensor.log"))?;
    sensor.wait_log("capturing on cap0", 0, Duration::from_secs(20))?;

    // The long flow runs in the background through everything below.
    let long =
        thread::scope(|scope| -> Result<()> {
            let sender = scope
                .spawn(|| link.send_udp(&[LONG_FLOW_PORT], LONG_FLOW_PACKETS, Duration::from_millis(100)));

            // Phase 1: short flows, recorded in the first file.
            link.send_udp(&[42_001, 42_002], 3, Duration::from_millis(10))?;
            wait_until("phase 1 records", Duration::from_secs(15), || {
                Ok(ports_in(&first).contains_key(&42_002))
            })?;

            // A bad file: refused, with the key named, and the sensor keeps running.
            fs::write(&config_path, "[flows]\nmax_flows = -1\n")?;
            sensor.signal("HUP")?;
            sensor.wait_log("reload refused", 0, Duration::from_secs(10))?;
            let log = sensor.log_text();
            if !log.contains("flows.max_flows") || !sensor.running() {
                bail!("the refusal should name flows.max_flows and the sensor keep running:\n{log}");
            }

            // Phase 2: still the first file.
            link.send_udp(&[42_003], 3, Duration::from_millis(10))?;
            wait_until("phase 2 records", Duration::from_secs(15), || {
                Ok(ports_in(&first).contains_key(&42_003))
            })?;

            // A good file with a new output.
            fs::write(&config_path, config("cap0", &second))?;
            sensor.signal("HUP")?;
            sensor.wait_log("configuration reloaded", 0, Duration::from_secs(10))?;

            // Phase 3: the second file.
            link.send_udp(&[42_004, 42_005], 3, Duration::from_millis(10))?;
            wait_until("phase 3 records", Duration::from_secs(15), || {
                Ok(ports_in(&second).contains_key(&42_005))
            })?;
            sender.join().map_err(|_| anyhow::anyhow!("the long-flow sender panicked"))??;
            Ok(())
        });
    long?;
    let pid = sensor.pid();
    let code = sensor.stop()?;
    if code != Some(0) {
        bail!("the sensor (pid {pid}) exited with {code:?} after SIGTERM");
    }

    let (a, b) = (ports_in(&first), ports_in(&second));
    for port in [42_001, 42_002, 42_003] {
        assert_eq!(a.get(&port), Some(&vec![3]), "port {port} in the first file: {a:?}");
        assert!(!b.contains_key(&port), "port {port} written twice: {b:?}");
    }
    for port in [42_004, 42_005] {
        assert_eq!(b.get(&port), Some(&vec![3]), "port {port} in the second file: {b:?}");
        assert!(!a.contains_key(&port), "port {port} in the old file after the reload: {a:?}");
    }
    // The long flow ended after the reload (at SIGTERM or its idle timeout): one record, in
    // the new file, with every packet, those before the reloads included.
    assert_eq!(b.get(&LONG_FLOW_PORT), Some(&vec![u64::from(LONG_FLOW_PACKETS)]), "{b:?}");
    assert!(!a.contains_key(&LONG_FLOW_PORT), "{a:?}");
    Ok(())
}

/// Source port → packets of each UDP record from that port.
fn ports_in(path: &Path) -> BTreeMap<u16, Vec<u64>> {
    let mut map: BTreeMap<u16, Vec<u64>> = BTreeMap::new();
    for (port, packets) in udp_flows(path) {
        map.entry(port).or_default().push(packets);
    }
    map
}
