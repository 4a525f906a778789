//! The command line as an operator meets it: help and version, usage errors, configuration
//! checking, and the errors of `replay` and `run` that stop before any packet is read. Exit codes
//! are the contract: 0 success, 2 usage or configuration error, 1 runtime failure.

pub mod common;

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use common::{run_sensor, write_file};
use nbad_sensor::synth::PcapWriter;

const SUBCOMMANDS: [&str; 4] = ["run", "replay", "check-config", "generate"];
const SECTIONS: [&str; 12] = [
    "[sensor]",
    "[capture]",
    "[decode]",
    "[flows]",
    "[output]",
    "[metrics]",
    "[control]",
    "[console]",
    "[detection]",
    "[alerts]",
    "[response]",
    "[privacy]",
];

fn shipped_configs() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("listing {}: {e}", dir.display()))
        .map(|entry| entry.expect("reading a configs/ entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .collect();
    files.sort();
    files
}

/// `check-config` on a file holding `body` must exit 2, print nothing on stdout, and say
/// everything in `needles` (plus the file's path) on stderr.
fn assert_config_rejected(body: &str, needles: &[&str]) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = write_file(dir.path(), "bad.toml", body);
    let out = run_sensor(["check-config".as_ref(), path.as_os_str()]);
    out.assert_code(2, &format!("check-config of {body:?}"));
    assert!(out.stdout.is_empty(), "a rejected config prints no effective config: {}", out.stdout);
    for needle in std::iter::once(path.to_str().expect("UTF-8 temp path")).chain(needles.iter().copied()) {
        assert!(
            out.stderr.contains(needle),
            "the error for {body:?} should mention {needle:?}:\n{}",
            out.stderr
        );
    }
}

#[test]
fn help_exits_0_and_lists_every_subcommand() {
    let out = run_sensor(["--help"]);
    out.assert_code(0, "--help");
    assert!(out.stdout.contains("Usage: nbad-sensor <COMMAND>"), "{}", out.stdout);
    assert!(out.stdout.contains("flow records"), "help says what the tool does: {}", out.stdout);
    for sub in SUBCOMMANDS {
        assert!(
            out.stdout.lines().any(|line| line.trim_start().starts_with(&format!("{sub} "))),
            "--help should list `{sub}` with a description:\n{}",
            out.stdout
        );
    }
}

#[test]
fn version_exits_0_and_prints_the_package_version() {
    let out = run_sensor(["--version"]);
    out.assert_code(0, "--version");
    assert_eq!(out.stdout.trim_end(), format!("nbad-sensor {}", env!("CARGO_PKG_VERSION")));
}

#[test]
fn subcommand_help_documents_the_output_overrides() {
    for sub in ["run", "replay"] {
        let out = run_sensor([sub, "--help"]);
        out.assert_code(0, &format!("{sub} --help"));
        for option in ["--config", "--flows", "--stats"] {
            assert!(out.stdout.contains(option), "`{sub} --help` should document {option}:\n{}", out.stdout);
        }
    }
}

#[test]
fn unknown_flag_is_a_usage_error_with_exit_2() {
    let out = run_sensor(["--bogus"]);
    out.assert_code(2, "--bogus");
    assert!(out.stderr.contains("--bogus"), "the error names the flag: {}", out.stderr);
    assert!(out.stdout.is_empty(), "{}", out.stdout);
}

#[test]
fn unknown_subcommand_and_replay_without_files_are_usage_errors_with_exit_2() {
    let out = run_sensor(["frobnicate"]);
    out.assert_code(2, "unknown subcommand");
    assert!(out.stderr.contains("frobnicate"), "{}", out.stderr);

    let out = run_sensor(["replay"]);
    out.assert_code(2, "replay with no capture files");
    assert!(out.stderr.contains("<PCAP>"), "the error names the missing argument: {}", out.stderr);
}

#[test]
fn check_config_accepts_every_shipped_config_and_prints_every_section() {
    let configs = shipped_configs();
    assert!(configs.len() >= 3, "configs/ should hold the shipped examples: {configs:?}");
    for path in configs {
        let out = run_sensor(["check-config".as_ref(), path.as_os_str()]);
        out.assert_code(0, &format!("check-config {}", path.display()));
        for section in SECTIONS {
            assert!(
                out.stdout.lines().any(|line| line == section),
                "{}: effective config lacks {section}:\n{}",
                path.display(),
                out.stdout
            );
        }
        let parsed: toml::Table = toml::from_str(&out.stdout).unwrap_or_else(|e| {
            panic!("{}: effective config is not TOML: {e}\n{}", path.display(), out.stdout)
        });
        assert_eq!(parsed.len(), SECTIONS.len(), "{}: {parsed:?}", path.display());
        assert!(out.stderr.contains("configuration is valid"), "{}", out.stderr);
    }
}

#[test]
fn effective_config_printed_by_check_config_is_valid_and_reprints_identically() {
    let dir = tempfile::tempdir().expect("temp dir");
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/sensor.example.toml");
    let first = run_sensor(["check-config".as_ref(), example.as_os_str()]);
    first.assert_code(0, "check-config sensor.example.toml");
    let copy = write_file(dir.path(), "effective.toml", &first.stdout);
    let second = run_sensor(["check-config".as_ref(), copy.as_os_str()]);
    second.assert_code(0, "check-config of the printed effective config");
    // The first line names the file it came from; everything after it must be the same.
    let body = |text: &str| text.lines().skip(1).collect::<Vec<_>>().join("\n");
    assert_eq!(body(&second.stdout), body(&first.stdout));
}

#[test]
fn check_config_rejects_an_unknown_key_naming_it_and_the_allowed_keys() {
    assert_config_rejected(
        "[flows]\nmax_flowz = 3\n",
        &["line 2", "unknown field `max_flowz`", "`max_flows`", "`tcp_idle_timeout_s`"],
    );
}

#[test]
fn check_config_rejects_zero_max_flows_stating_the_valid_range() {
    assert_config_rejected(
        "[flows]\nmax_flows = 0\n",
        &["flows.max_flows = 0 is invalid", "an integer from 1 to 100000000"],
    );
}

#[test]
fn check_config_rejects_a_bad_cidr_naming_the_list_entry() {
    assert_config_rejected(
        "[sensor]\nhome_networks = [\"10.0.0.0/8\", \"10.0.0.0/33\"]\n",
        &["sensor.home_networks[1] = \"10.0.0.0/33\" is invalid", "a CIDR such as \"10.0.0.0/8\""],
    );
}

#[test]
fn check_config_rejects_an_unknown_capture_mode_listing_the_valid_ones() {
    assert_config_rejected(
        "[capture]\nmode = \"bogus\"\n",
        &["capture.mode = \"bogus\" is invalid", "one of \"pcap\""],
    );
}

#[test]
fn check_config_of_a_missing_file_exits_2_naming_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("absent.toml");
    let out = run_sensor(["check-config".as_ref(), path.as_os_str()]);
    out.assert_code(2, "check-config of a missing file");
    assert!(out.stderr.contains(path.to_str().expect("UTF-8 temp path")), "{}", out.stderr);
    assert!(out.stderr.contains("cannot read the configuration file"), "{}", out.stderr);
}

#[test]
fn replay_of_a_missing_file_exits_1_naming_the_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("absent.pcap");
    let out = run_sensor(["replay".as_ref(), path.as_os_str()]);
    out.assert_code(1, "replay of a missing file");
    assert!(out.stderr.contains(path.to_str().expect("UTF-8 temp path")), "{}", out.stderr);
    assert!(out.stderr.contains("No such file or directory"), "{}", out.stderr);
}

/// Regression: `CaptureError::Open` printed its OS error in its own message and again as its
/// `source`, so the `{:#}` chain said "No such file or directory (os error 2)" twice.
#[test]
fn replay_error_for_a_missing_file_states_the_os_reason_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("absent.pcap");
    let out = run_sensor(["replay".as_ref(), path.as_os_str()]);
    out.assert_code(1, "replay of a missing file");
    assert_eq!(out.stderr.matches("No such file or directory").count(), 1, "{}", out.stderr);
}

#[test]
fn replay_of_a_non_capture_file_exits_1_naming_its_magic_number() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = write_file(dir.path(), "notes.txt", "bogus text, not a capture\n");
    let out = run_sensor(["replay".as_ref(), path.as_os_str()]);
    out.assert_code(1, "replay of a text file");
    let magic = format!("{:#010x}", u32::from_le_bytes(*b"bogu"));
    for needle in [path.to_str().expect("UTF-8 temp path"), "not a capture file", magic.as_str()] {
        assert!(out.stderr.contains(needle), "the error should mention {needle:?}:\n{}", out.stderr);
    }
}

#[test]
fn replay_of_an_802_11_capture_exits_1_naming_the_link_type() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("wifi.pcap");
    let file = BufWriter::new(File::create(&path).expect("creating the capture"));
    let mut writer = PcapWriter::new(file, 105).expect("writing the pcap header");
    writer.write(1_000_000_000, &[0x08, 0x00, 0, 0, 0xff, 0xff]).expect("writing a frame");
    drop(writer.into_inner().into_inner().expect("flushing the capture"));

    let out = run_sensor(["replay".as_ref(), path.as_os_str()]);
    out.assert_code(1, "replay of a LINKTYPE_IEEE802_11 capture");
    for needle in [path.to_str().expect("UTF-8 temp path"), "link type 105", "IEEE802_11", "ETHERNET (1)"] {
        assert!(out.stderr.contains(needle), "the error should mention {needle:?}:\n{}", out.stderr);
    }
}

/// Regression: a classic pcap whose link-type field carried FCS information in its upper bits
/// (`0x4000_0000`: FCS length 4, on top of link type 0) was refused as "link type 1073741824
/// (unknown)", where libpcap and Wireshark read BSD NULL/loopback. The bits are masked as they
/// mask them, and every record is read.
#[test]
fn replay_masks_the_fcs_bits_of_a_classic_pcap_link_type_and_reads_every_record() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("null-with-fcs-bits.pcap");
    let file = BufWriter::new(File::create(&path).expect("creating the capture"));
    let mut writer = PcapWriter::new(file, 0x4000_0000).expect("writing the pcap header");
    // BSD NULL: the address family (AF_INET = 2) in the writer's byte order, then IPv4/UDP.
    let mut frame = 2u32.to_le_bytes().to_vec();
    frame.extend_from_slice(&[
        0x45, 0, 0, 29, 0, 1, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2, // IPv4, 29 bytes
        0x9c, 0x40, 0x00, 0x35, 0, 9, 0, 0, 0x61, // UDP 40000 -> 53, one byte of payload
    ]);
    for i in 0..3u64 {
        writer.write(1_000_000_000 + i * 1_000_000, &frame).expect("writing a frame");
    }
    drop(writer.into_inner().into_inner().expect("flushing the capture"));

    let out = run_sensor(["replay".as_ref(), "--flows".as_ref(), "-".as_ref(), path.as_os_str()]);
    out.assert_code(0, "replay of a NULL capture with FCS bits in its link type");
    let record: serde_json::Value =
        serde_json::from_str(out.stdout.lines().next().expect("one flow record")).expect("JSON");
    assert_eq!(record["network"]["packets"], 3, "{record}");
    assert_eq!(record["network"]["bytes"], 3 * 29, "{record}");
    assert_eq!(record["source"]["ip"], "10.0.0.1", "{record}");
}

#[test]
fn run_without_an_interface_exits_2_naming_capture_interface() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = write_file(dir.path(), "no-interface.toml", "[sensor]\nid = \"cli-test\"\n");
    let out = run_sensor(["run".as_ref(), "--config".as_ref(), config.as_os_str()]);
    out.assert_code(2, "run without capture.interface");
    for needle in
        [config.to_str().expect("UTF-8 temp path"), "capture.interface is not set", "interface = \"eth0\""]
    {
        assert!(out.stderr.contains(needle), "the error should mention {needle:?}:\n{}", out.stderr);
    }
}

#[test]
fn generate_writes_a_classic_pcap_and_reports_the_frame_count() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("demo.pcap");
    let out = run_sensor(["generate".as_ref(), "--seed".as_ref(), "1".as_ref(), path.as_os_str()]);
    out.assert_code(0, "generate");
    let bytes = std::fs::read(&path).expect("reading the generated capture");
    assert_eq!(bytes.get(..4), Some(&0xa1b2_c3d4_u32.to_le_bytes()[..]), "classic pcap magic");
    assert_eq!(bytes.get(20..24), Some(&1_u32.to_le_bytes()[..]), "LINKTYPE_ETHERNET");
    assert!(out.stderr.contains("wrote ") && out.stderr.contains(" frames to "), "{}", out.stderr);
}

#[test]
fn generate_into_a_missing_folder_exits_1_naming_the_path() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("no-such-folder/demo.pcap");
    let out = run_sensor(["generate".as_ref(), path.as_os_str()]);
    out.assert_code(1, "generate into a missing folder");
    assert!(out.stderr.contains(path.to_str().expect("UTF-8 temp path")), "{}", out.stderr);
}

/// Regression: statistics were written to a temporary file renamed over the target, which
/// replaced `/dev/null` (a device node) with a regular file.
#[test]
fn stats_to_a_device_node_are_written_in_place_not_renamed_over_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let pcap = dir.path().join("demo.pcap");
    let made = run_sensor(["generate".as_ref(), pcap.as_os_str()]);
    assert_eq!(made.code, Some(0), "{}", made.stderr);
    let out = run_sensor([
        "replay".as_ref(),
        "--flows".as_ref(),
        "/dev/null".as_ref(),
        "--stats".as_ref(),
        "/dev/null".as_ref(),
        pcap.as_os_str(),
    ]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    use std::os::unix::fs::FileTypeExt as _;
    let kind = std::fs::metadata("/dev/null").expect("/dev/null").file_type();
    assert!(kind.is_char_device(), "/dev/null is no longer a device: {kind:?}");
}
