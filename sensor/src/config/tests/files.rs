//! The effective-config printout, and the files shipped in `configs/`.

use std::collections::BTreeSet;

use super::{configs_dir, dotted_keys, net, parse};
use crate::config::{self, Config};

#[test]
fn effective_toml_round_trips_to_the_same_config() {
    let text = "[sensor]\nid = \"rt\"\nhome_networks = [\"10.0.0.0/8\", \"2001:db8::/32\"]\n\
                [capture]\nmode = \"auto\"\ninterface = \"eth1\"\nfilter = 'not host \"x\" and port 53 \\ '\nsnaplen = 128\n\
                [capture.xdp]\nattach = \"native\"\nsample_len = 64\nsample_burst = 0\npoll_interval_ms = 250\n\
                [decode]\ngre = false\nvxlan_ports = [4789, 8472]\n\
                [flows]\nworkers = 2\ntcp_close_linger_s = 0\n\
                [output]\nflows = \"/var/log/flows.jsonl\"\nstats = \"-\"\n";
    for config in [parse(text).expect("valid"), config::default()] {
        let effective = config.effective_toml();
        let again = config::from_str(&effective, config.origin()).expect("effective config loads");
        assert_eq!(again, config, "{effective}");
    }
}

#[test]
fn effective_toml_shows_every_key_and_notes_the_resolved_worker_count() {
    let config = config::default();
    let effective = config.effective_toml();
    let keys = dotted_keys(&effective);
    let example = std::fs::read_to_string(configs_dir().join("sensor.example.toml"));
    let all = dotted_keys(&example.expect("example exists"));
    assert!(keys.is_superset(&all), "{effective}");
    assert!(effective.contains("# interface is not set"), "{effective}");
    let note = format!("workers = 0 # auto: resolved to {} ", config.flows.workers);
    assert!(effective.contains(&note), "{effective}");
}

#[test]
fn example_config_sets_every_key_to_its_default() {
    let path = configs_dir().join("sensor.example.toml");
    let text = std::fs::read_to_string(&path).expect("example exists");
    let effective_keys = dotted_keys(&config::default().effective_toml());
    let mut documented = dotted_keys(&text);
    // The two keys without a fixed default are shown commented out.
    for (key, line) in [("sensor.id", "# id = "), ("capture.interface", "# interface = ")] {
        assert!(text.contains(line), "example shows {key} commented out");
        documented.insert(key.to_owned());
    }
    let mut expected = effective_keys;
    expected.insert("capture.interface".to_owned());
    assert_eq!(documented, expected);

    let example = config::load(&path).expect("example loads");
    assert_eq!(Config { origin: example.origin.clone(), ..config::default() }, example);
}

#[test]
fn every_file_in_configs_loads() {
    let mut loaded = BTreeSet::new();
    for entry in std::fs::read_dir(configs_dir()).expect("configs/ exists") {
        let path = entry.expect("readable entry").path();
        if path.extension().is_some_and(|ext| ext == "toml") {
            if let Err(err) = config::load(&path) {
                panic!("{err:#?}\n{err}");
            }
            loaded.insert(path.file_name().map(|n| n.to_string_lossy().into_owned()));
        }
    }
    for name in ["sensor.example.toml", "minimal.toml", "demo.toml"] {
        assert!(loaded.contains(&Some(name.to_owned())), "{name} missing from configs/");
    }
}

#[test]
fn minimal_config_is_ready_for_live_capture() {
    let config = config::load(configs_dir().join("minimal.toml")).expect("loads");
    assert_eq!(config.require_interface().expect("interface set"), "eth0");
    assert_eq!(config.sensor.home_networks, [net("10.0.0.0/8"), net("192.168.0.0/16")]);
}
