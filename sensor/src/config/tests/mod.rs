//! Specification of the configuration layer: defaults, every rejection and its message, the
//! effective-config round trip, and every file shipped in `configs/`.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use ipnet::IpNet;

use crate::capture::xdp::{XdpMode, XdpSettings};
use crate::config::validate::{
    FALLBACK_SENSOR_ID, default_sensor_id, resolve_workers, sensor_id_from_hostname,
};
use crate::config::{self, CaptureMode, Config, ConfigError, OutputTarget};

const ORIGIN: &str = "configs/x.toml";

fn parse(text: &str) -> Result<Config, ConfigError> {
    config::from_str(text, ORIGIN)
}

fn rejection(text: &str) -> String {
    parse(text).expect_err("this configuration must be rejected").to_string()
}

fn net(text: &str) -> IpNet {
    text.parse().expect("test CIDR parses")
}

fn configs_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs")
}

/// Dotted paths of every key in a TOML document (tables are recursed into, so
/// `[capture.xdp] attach` is `capture.xdp.attach`).
fn dotted_keys(text: &str) -> BTreeSet<String> {
    fn walk(prefix: &str, table: &toml::Table, keys: &mut BTreeSet<String>) {
        for (name, value) in table {
            let path = if prefix.is_empty() { name.clone() } else { format!("{prefix}.{name}") };
            match value {
                toml::Value::Table(inner) => walk(&path, inner, keys),
                _ => {
                    keys.insert(path);
                }
            }
        }
    }
    let table: toml::Table = toml::from_str(text).expect("document is valid TOML");
    let mut keys = BTreeSet::new();
    walk("", &table, &mut keys);
    keys
}

mod capture_threads;
mod export;
mod files;
mod privacy;
mod rejections;
mod xdp;

#[test]
fn defaults_fill_every_omitted_key() {
    let config = parse("").expect("an empty file is valid");
    assert_eq!(config.sensor.id, default_sensor_id());
    let expected_networks: Vec<IpNet> =
        ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"].map(net).to_vec();
    assert_eq!(config.sensor.home_networks, expected_networks);

    assert_eq!(config.capture.mode, CaptureMode::Pcap);
    assert_eq!(config.capture.interface, None);
    assert!(config.capture.promiscuous);
    assert_eq!(config.capture.snaplen, 65_535);
    assert_eq!(config.capture.filter, "");
    assert_eq!(config.capture.buffer_bytes, 64 * 1024 * 1024);
    assert_eq!(config.capture.read_timeout, Duration::from_millis(20));
    assert_eq!(config.capture.xdp.attach, XdpMode::Auto);
    assert_eq!(config.capture.xdp.settings, XdpSettings::default());
    assert_eq!(config.capture.xdp.poll_interval, Duration::from_millis(1000));

    assert!(config.decode.gre);
    assert!(config.decode.vxlan);
    assert_eq!(config.decode.vxlan_ports, [4789]);

    let f = &config.flows;
    assert_eq!(f.tcp_idle_timeout, Duration::from_secs(300));
    assert_eq!(f.udp_idle_timeout, Duration::from_secs(60));
    assert_eq!(f.icmp_idle_timeout, Duration::from_secs(60));
    assert_eq!(f.other_idle_timeout, Duration::from_secs(60));
    assert_eq!(f.tcp_close_linger, Duration::from_secs(5));
    assert_eq!(f.active_timeout, Duration::from_secs(60));
    assert_eq!(f.emergency_idle_timeout, Duration::from_secs(10));
    assert_eq!(f.max_flows, 1_000_000);
    assert!(f.workers_auto);
    assert!(f.workers >= 1);
    assert_eq!(f.batch_size, 256);
    assert_eq!(f.channel_depth, 16);

    assert_eq!(config.output.flows, OutputTarget::Stdout);
    assert_eq!(config.output.stats, OutputTarget::None);
    assert_eq!(config.output.stats_interval, Duration::from_secs(10));

    let empty_tables = "[sensor]\n[capture]\n[capture.xdp]\n[decode]\n[flows]\n[output]\n";
    assert_eq!(parse(empty_tables).expect("empty tables are valid"), config);
}

#[test]
fn built_in_defaults_are_valid_and_equal_an_empty_file() {
    let default = config::default();
    let empty = parse("").expect("an empty file is valid");
    assert_eq!(default.origin(), Path::new("<built-in defaults>"));
    assert_eq!(Config { origin: empty.origin.clone(), ..default }, empty);
}

#[test]
fn default_sensor_id_is_the_trimmed_hostname_or_a_fallback() {
    assert_eq!(sensor_id_from_hostname(Some("web-01.example.org\n")), "web-01.example.org");
    assert_eq!(sensor_id_from_hostname(Some("bad host\n")), FALLBACK_SENSOR_ID);
    assert_eq!(sensor_id_from_hostname(Some(&"h".repeat(65))), FALLBACK_SENSOR_ID);
    assert_eq!(sensor_id_from_hostname(Some("\n")), FALLBACK_SENSOR_ID);
    assert_eq!(sensor_id_from_hostname(None), FALLBACK_SENSOR_ID);
}

#[test]
fn converts_units_into_durations_and_networks() {
    let config = parse(
        "[sensor]\nhome_networks = [\"2001:db8::/32\"]\n\
         [capture]\nread_timeout_ms = 250\n[flows]\ntcp_close_linger_s = 0\nactive_timeout_s = 3600\n\
         [output]\nstats_interval_s = 2\n",
    )
    .expect("valid");
    assert_eq!(config.sensor.home_networks, [net("2001:db8::/32")]);
    assert_eq!(config.capture.read_timeout, Duration::from_millis(250));
    assert_eq!(config.flows.tcp_close_linger, Duration::ZERO);
    assert_eq!(config.flows.active_timeout, Duration::from_secs(3600));
    assert_eq!(config.output.stats_interval, Duration::from_secs(2));
}

#[test]
fn require_interface_names_the_key_when_absent() {
    let config = parse("").expect("valid");
    let message = config.require_interface().expect_err("no interface").to_string();
    assert!(message.starts_with("configs/x.toml: capture.interface is not set"), "{message}");
    let config = parse("[capture]\ninterface = \"eth0\"\n").expect("valid");
    assert_eq!(config.require_interface().expect("set"), "eth0");
}

#[test]
fn resolves_auto_workers_to_cores_minus_one_but_at_least_one() {
    assert_eq!(resolve_workers(0, 1), 1);
    assert_eq!(resolve_workers(0, 2), 1);
    assert_eq!(resolve_workers(0, 16), 15);
    assert_eq!(resolve_workers(4, 16), 4);
    let explicit = parse("[flows]\nworkers = 3\n").expect("valid");
    assert_eq!((explicit.flows.workers, explicit.flows.workers_auto), (3, false));
}

#[test]
fn output_strings_select_stdout_none_or_a_file() {
    let config = parse("[output]\nflows = \"\"\nstats = \"out/stats.json\"\n").expect("valid");
    assert_eq!(config.output.flows, OutputTarget::None);
    assert_eq!(config.output.stats, OutputTarget::File("out/stats.json".into()));
    let same = rejection("[output]\nflows = \"a.jsonl\"\nstats = \"a.jsonl\"\n");
    assert!(same.starts_with("configs/x.toml: output.stats = \"a.jsonl\" is invalid"), "{same}");
}

#[test]
fn load_names_the_file_it_cannot_read() {
    let err = config::load("/nonexistent/nbad.toml").expect_err("missing file");
    assert_eq!(err.to_string(), "/nonexistent/nbad.toml: cannot read the configuration file");
    let ConfigError::Io { source, .. } = err else { panic!("not Io: {err:?}") };
    assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
}
