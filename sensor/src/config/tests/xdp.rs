//! `capture.mode` values and the `[capture.xdp]` table: defaults shared with `XdpSettings`,
//! attach names, and ranges that agree with `XdpSettings::validate` at every boundary.

use std::time::Duration;

use super::rejections::RANGES;
use super::{parse, rejection};
use crate::capture::xdp::{XdpError, XdpMode, XdpSettings};
use crate::config::{CaptureMode, XdpCaptureSettings};

#[test]
fn capture_mode_accepts_pcap_xdp_and_auto() {
    for (text, mode) in [("pcap", CaptureMode::Pcap), ("xdp", CaptureMode::Xdp), ("auto", CaptureMode::Auto)]
    {
        let config = parse(&format!("[capture]\nmode = \"{text}\"\n")).expect("valid mode");
        assert_eq!(config.capture.mode, mode);
        assert_eq!(mode.as_str(), text);
    }
    assert_eq!(CaptureMode::ALL.map(CaptureMode::as_str), ["pcap", "xdp", "auto"]);
}

#[test]
fn xdp_defaults_are_the_xdp_loader_defaults() {
    let xdp = parse("").expect("an empty file is valid").capture.xdp;
    let expected = XdpCaptureSettings {
        attach: XdpMode::Auto,
        settings: XdpSettings::default(),
        poll_interval: Duration::from_secs(1),
    };
    assert_eq!(xdp, expected);
    assert_eq!(parse("[capture.xdp]\n").expect("an empty table is valid").capture.xdp, expected);
}

#[test]
fn xdp_keys_map_onto_xdp_settings() {
    let config = parse(
        "[capture]\nmode = \"xdp\"\ninterface = \"eth1\"\n\
         [capture.xdp]\nattach = \"skb\"\nsamples_per_direction = 0\nsample_len = 96\n\
         flow_map_entries = 1000\nsample_ring_bytes = 65536\nsample_rate_per_sec = 10\n\
         sample_burst = 5\npoll_interval_ms = 250\n",
    )
    .expect("valid");
    let expected = XdpCaptureSettings {
        attach: XdpMode::Skb,
        settings: XdpSettings {
            samples_per_direction: 0,
            sample_len: 96,
            flow_map_entries: 1000,
            sample_ring_bytes: 65_536,
            sample_rate_per_sec: 10,
            sample_burst: 5,
        },
        poll_interval: Duration::from_millis(250),
    };
    assert_eq!(config.capture.xdp, expected);
}

#[test]
fn attach_accepts_native_skb_and_auto() {
    for (text, mode) in [("native", XdpMode::Native), ("skb", XdpMode::Skb), ("auto", XdpMode::Auto)] {
        let config = parse(&format!("[capture.xdp]\nattach = \"{text}\"\n")).expect("valid attach");
        assert_eq!(config.capture.xdp.attach, mode);
        assert_eq!(XdpCaptureSettings::attach_name(mode), text);
    }
}

#[test]
fn rejects_unknown_attach_mode_listing_valid_values() {
    let message = rejection("[capture.xdp]\nattach = \"driver\"\n");
    assert!(
        message.starts_with(
            "configs/x.toml: capture.xdp.attach = \"driver\" is invalid: \
             expected one of \"native\", \"skb\", \"auto\""
        ),
        "{message}"
    );
}

#[test]
fn rejects_unknown_xdp_key_listing_valid_keys() {
    let message = rejection("[capture.xdp]\nsample_length = 64\n");
    assert!(message.contains("unknown field `sample_length`"), "{message}");
    assert!(message.contains("`sample_len`"), "{message}");
}

/// The default `XdpSettings` with the field named `key` set to `value`.
fn with(key: &str, value: u32) -> XdpSettings {
    let mut settings = XdpSettings::default();
    let field = match key {
        "samples_per_direction" => &mut settings.samples_per_direction,
        "sample_len" => &mut settings.sample_len,
        "flow_map_entries" => &mut settings.flow_map_entries,
        "sample_ring_bytes" => &mut settings.sample_ring_bytes,
        "sample_rate_per_sec" => &mut settings.sample_rate_per_sec,
        "sample_burst" => &mut settings.sample_burst,
        _ => panic!("{key} is not an XdpSettings field"),
    };
    *field = value;
    settings
}

#[test]
fn xdp_ranges_agree_with_xdp_settings_validate_at_every_boundary() {
    let xdp_keys =
        RANGES.iter().filter(|&&(table, key, ..)| table == "capture.xdp" && key != "poll_interval_ms");
    let mut checked = 0;
    for &(_, key, lo, hi, _) in xdp_keys {
        for value in [lo, hi] {
            let value = u32::try_from(value).expect("a valid value fits XdpSettings");
            if let Err(err) = with(key, value).validate() {
                panic!("config accepts {key} = {value}, XdpSettings does not: {err}");
            }
        }
        // Just outside the range, where a u32 can hold it, XdpSettings must refuse too.
        for value in [lo - 1, hi + 1].into_iter().filter_map(|v| u32::try_from(v).ok()) {
            let err = with(key, value).validate().expect_err("config rejects it, so must XdpSettings");
            assert!(matches!(err, XdpError::InvalidSetting { key: k, .. } if k == key), "{err}");
        }
        checked += 1;
    }
    assert_eq!(checked, 6, "every XdpSettings field has a row in RANGES");
}
