//! `capture.threads`: multi-queue live capture through one `PACKET_FANOUT` group (libpcap only).
//! Its range is checked with every other range in `rejections::RANGES`.

use super::{parse, rejection};

#[test]
fn capture_threads_defaults_to_one() {
    assert_eq!(parse("").expect("empty config is valid").capture.threads, 1);
}

#[test]
fn capture_threads_accepts_up_to_64_with_libpcap() {
    let config = parse("[capture]\nmode = \"pcap\"\nthreads = 4\n").expect("valid");
    assert_eq!(config.capture.threads, 4);
}

#[test]
fn rejects_zero_and_65_capture_threads_naming_key_value_and_range() {
    assert_eq!(
        rejection("[capture]\nthreads = 0\n"),
        "configs/x.toml: capture.threads = 0 is invalid: expected an integer from 1 to 64 capture threads"
    );
    assert_eq!(
        rejection("[capture]\nthreads = 65\n"),
        "configs/x.toml: capture.threads = 65 is invalid: expected an integer from 1 to 64 capture threads"
    );
}

#[test]
fn rejects_several_capture_threads_with_xdp_or_auto_mode() {
    for mode in ["xdp", "auto"] {
        let message = rejection(&format!("[capture]\nmode = \"{mode}\"\nthreads = 2\n"));
        assert!(
            message.starts_with(&format!(
                "configs/x.toml: capture.threads = 2 is invalid: expected 1 with capture.mode = \"{mode}\""
            )),
            "{message}"
        );
        assert!(message.contains("capture.mode = \"pcap\""), "says what would work: {message}");
    }
    let one = parse("[capture]\nmode = \"xdp\"\nthreads = 1\n").expect("one thread is fine with XDP");
    assert_eq!(one.capture.threads, 1);
}

#[test]
fn check_config_prints_capture_threads() {
    let config = parse("[capture]\nthreads = 3\n").expect("valid");
    let printed = config.effective_toml();
    assert!(printed.contains("\n[capture]\n") && printed.contains("\nthreads = 3\n"), "{printed}");
}
