//! Every way a value can be rejected, and the message that names the file, key, value and
//! valid range.

use std::path::Path;
use std::time::Duration;

use super::{ORIGIN, parse, rejection};
use crate::config::ConfigError;

#[test]
fn rejects_unknown_key_and_names_it() {
    let message = rejection("[flows]\nmax_flow = 5\n");
    assert!(message.starts_with("configs/x.toml: "), "{message}");
    assert!(message.contains("line 2"), "{message}");
    assert!(message.contains("unknown field `max_flow`"), "{message}");
    assert!(message.contains("`max_flows`"), "lists the valid keys: {message}");
}

#[test]
fn rejects_unknown_table_and_names_it() {
    let message = rejection("[flow]\nmax_flows = 5\n");
    assert!(message.starts_with("configs/x.toml: "), "{message}");
    assert!(message.contains("unknown field `flow`"), "{message}");
    assert!(message.contains("`flows`"), "{message}");
}

#[test]
fn rejects_syntax_and_type_errors_with_file_and_line() {
    let syntax = rejection("[sensor\nid = \"a\"\n");
    assert!(syntax.starts_with("configs/x.toml: TOML parse error at line 1"), "{syntax}");
    let wrong_type = rejection("[capture]\npromiscuous = \"yes\"\n");
    assert!(wrong_type.starts_with("configs/x.toml: TOML parse error at line 2"), "{wrong_type}");
    assert!(matches!(parse("[flows]\nmax_flows = 1.5\n"), Err(ConfigError::Parse { .. })));
}

#[test]
fn rejects_zero_max_flows_naming_key_value_and_range() {
    assert_eq!(
        rejection("[flows]\nmax_flows = 0\n"),
        "configs/x.toml: flows.max_flows = 0 is invalid: expected an integer from 1 to 100000000"
    );
    let err = parse("[flows]\nmax_flows = 0\n").expect_err("rejected");
    let ConfigError::Invalid { path, key, value, .. } = err else { panic!("not Invalid: {err:?}") };
    assert_eq!((path.as_path(), key.as_str(), value.as_str()), (Path::new(ORIGIN), "flows.max_flows", "0"));
}

#[test]
fn rejects_negative_numbers_with_the_range_not_a_type_error() {
    assert_eq!(
        rejection("[capture]\nsnaplen = -1\n"),
        "configs/x.toml: capture.snaplen = -1 is invalid: expected an integer from 64 to 262144 bytes"
    );
}

/// (table, key, lowest valid, highest valid, other lines needed in the same table).
pub(super) const RANGES: &[(&str, &str, i64, i64, &str)] = &[
    ("capture", "snaplen", 64, 262_144, ""),
    ("capture", "buffer_bytes", 1_048_576, 2_147_483_647, ""),
    ("capture", "read_timeout_ms", 1, 1000, ""),
    ("capture", "threads", 1, 64, ""),
    ("capture.xdp", "samples_per_direction", 0, 4_294_967_295, ""),
    ("capture.xdp", "sample_len", 0, 256, ""),
    ("capture.xdp", "flow_map_entries", 1, 16_777_216, ""),
    ("capture.xdp", "sample_ring_bytes", 4096, 1_073_741_824, ""),
    ("capture.xdp", "sample_rate_per_sec", 0, 1_000_000, ""),
    ("capture.xdp", "sample_burst", 0, 4_294_967_295, ""),
    ("capture.xdp", "poll_interval_ms", 100, 10_000, ""),
    ("flows", "tcp_idle_timeout_s", 1, 86_400, "emergency_idle_timeout_s = 1"),
    ("flows", "udp_idle_timeout_s", 1, 86_400, "emergency_idle_timeout_s = 1"),
    ("flows", "icmp_idle_timeout_s", 1, 86_400, "emergency_idle_timeout_s = 1"),
    ("flows", "other_idle_timeout_s", 1, 86_400, "emergency_idle_timeout_s = 1"),
    ("flows", "tcp_close_linger_s", 0, 300, ""),
    ("flows", "active_timeout_s", 1, 3600, ""),
    (
        "flows",
        "emergency_idle_timeout_s",
        1,
        86_400,
        "tcp_idle_timeout_s = 86400\nudp_idle_timeout_s = 86400\n\
         icmp_idle_timeout_s = 86400\nother_idle_timeout_s = 86400",
    ),
    ("flows", "max_flows", 1, 100_000_000, ""),
    ("flows", "workers", 0, 256, ""),
    ("flows", "batch_size", 1, 65_536, ""),
    ("flows", "channel_depth", 1, 4096, ""),
    ("output", "stats_interval_s", 1, 3600, ""),
];

#[test]
fn every_numeric_key_accepts_its_range_and_rejects_just_outside_it() {
    for &(table, key, lo, hi, extra) in RANGES {
        let text = |value: i64| format!("[{table}]\n{key} = {value}\n{extra}\n");
        for value in [lo, hi] {
            if let Err(err) = parse(&text(value)) {
                panic!("{table}.{key} = {value} should be valid: {err}");
            }
        }
        for value in [lo - 1, hi + 1] {
            let message = rejection(&text(value));
            let head = format!(
                "configs/x.toml: {table}.{key} = {value} is invalid: expected an integer from {lo} to {hi}"
            );
            assert!(message.starts_with(&head), "{message}");
        }
    }
}

#[test]
fn emergency_timeout_must_not_exceed_idle_timeouts() {
    let message = rejection("[flows]\nudp_idle_timeout_s = 30\nemergency_idle_timeout_s = 31\n");
    assert!(
        message.starts_with(
            "configs/x.toml: flows.emergency_idle_timeout_s = 31 is invalid: \
             expected at most 30 seconds, the smallest idle timeout (flows.udp_idle_timeout_s)"
        ),
        "{message}"
    );
    let equal = parse("[flows]\nicmp_idle_timeout_s = 5\nemergency_idle_timeout_s = 5\n");
    assert_eq!(equal.expect("equal is allowed").flows.emergency_idle_timeout, Duration::from_secs(5));
}

#[test]
fn rejects_bad_cidr_naming_it() {
    let message = rejection("[sensor]\nhome_networks = [\"10.0.0.0/8\", \"10.0.0.0/33\"]\n");
    assert!(
        message.starts_with(
            "configs/x.toml: sensor.home_networks[1] = \"10.0.0.0/33\" is invalid: expected a CIDR such as"
        ),
        "{message}"
    );
    assert!(rejection("[sensor]\nhome_networks = [\"corp\"]\n").contains("home_networks[0] = \"corp\""));
}

#[test]
fn rejects_near_miss_cidrs_suggesting_the_fix() {
    let bare = rejection("[sensor]\nhome_networks = [\"10.1.2.3\"]\n");
    assert!(bare.contains("write \"10.1.2.3/32\""), "{bare}");
    let host_bits = rejection("[sensor]\nhome_networks = [\"192.168.1.1/16\"]\n");
    assert!(host_bits.contains("did you mean \"192.168.0.0/16\"?"), "{host_bits}");
}

#[test]
fn rejects_empty_home_networks() {
    assert!(
        rejection("[sensor]\nhome_networks = []\n")
            .starts_with("configs/x.toml: sensor.home_networks = [] is invalid: expected at least one CIDR")
    );
}

#[test]
fn rejects_sensor_ids_outside_the_allowed_characters_and_length() {
    for bad in ["", "has space", "émile", &"x".repeat(65)] {
        let message = rejection(&format!("[sensor]\nid = \"{bad}\"\n"));
        assert!(message.contains("sensor.id = "), "{message}");
        assert!(message.contains("1 to 64 characters"), "{message}");
    }
    assert_eq!(parse("[sensor]\nid = \"edge_1.dc-2\"\n").expect("valid").sensor.id, "edge_1.dc-2");
}

#[test]
fn rejects_unknown_capture_mode_listing_valid_values() {
    assert_eq!(
        rejection("[capture]\nmode = \"af_packet\"\n"),
        "configs/x.toml: capture.mode = \"af_packet\" is invalid: expected one of \"pcap\", \"xdp\", \"auto\""
    );
}

#[test]
fn rejects_malformed_interface_names() {
    for bad in ["", "eth 0", "a/b", "sixteen-chars-xx"] {
        let message = rejection(&format!("[capture]\ninterface = \"{bad}\"\n"));
        assert!(message.contains("capture.interface = "), "{message}");
    }
}

#[test]
fn vxlan_ports_must_be_valid_and_present_while_vxlan_is_on() {
    let zero = rejection("[decode]\nvxlan_ports = [4789, 0]\n");
    assert!(zero.starts_with(
        "configs/x.toml: decode.vxlan_ports[1] = 0 is invalid: expected an integer from 1 to 65535"
    ));
    let empty = rejection("[decode]\nvxlan_ports = []\n");
    assert!(empty.contains("decode.vxlan_ports = [] is invalid"), "{empty}");
    let off = parse("[decode]\nvxlan = false\nvxlan_ports = []\n").expect("valid while vxlan is off");
    assert!(off.decode.vxlan_ports.is_empty());
}

#[test]
fn rejects_a_metrics_address_without_a_port_and_accepts_one_with() {
    assert_eq!(
        rejection("[metrics]\nlisten = \"127.0.0.1\"\n"),
        "configs/x.toml: metrics.listen = \"127.0.0.1\" is invalid: expected \"\" (off) or an IP address \
         and port, e.g. \"127.0.0.1:9109\" or \"[::1]:9109\""
    );
    let config = parse("[metrics]\nlisten = \"[::1]:9109\"\n").expect("valid");
    assert_eq!(config.metrics.listen, Some("[::1]:9109".parse().expect("address")));
    assert_eq!(crate::config::default().metrics.listen, None, "off by default");
}

#[test]
fn rejects_lateral_movement_and_host_outlier_values_naming_key_value_and_range() {
    let port = rejection("[detection.lateral_movement]\nports = [445, 0]\n");
    assert!(port.contains("lateral_movement.ports[1] = 0 is invalid"), "{port}");
    assert!(port.contains("from 1 to 65535"), "{port}");
    let window = rejection("[detection.lateral_movement]\nwindow_s = 5\n");
    assert!(window.contains("lateral_movement.window_s = 5 is invalid"), "{window}");
    assert!(window.contains("from 60 to 86400"), "{window}");
    let p = rejection("[detection.lateral_movement]\nmax_probability = 2.0\n");
    assert!(p.contains("lateral_movement.max_probability = 2") && p.contains("is invalid"), "{p}");
    let groups = rejection("[detection.host_outlier]\nmin_group_hosts = 1\n");
    assert!(groups.contains("host_outlier.min_group_hosts = 1 is invalid"), "{groups}");
    let unknown = rejection("[detection.host_outlier]\nsigmas = 3.0\n");
    assert!(unknown.contains("unknown field `sigmas`") && unknown.contains("`sigma`"), "{unknown}");
}
