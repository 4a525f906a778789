//! `[privacy]`: defaults, the key file's checks, and the retention range.

use std::os::unix::fs::PermissionsExt as _;
use std::time::Duration;

use super::{parse, rejection};

fn key_file(mode: u32) -> tempfile::NamedTempFile {
    let f = tempfile::NamedTempFile::new().expect("a temporary file");
    std::fs::write(f.path(), [3u8; 32]).expect("write the key");
    std::fs::set_permissions(f.path(), std::fs::Permissions::from_mode(mode)).expect("chmod");
    f
}

#[test]
fn privacy_is_off_by_default() {
    let p = parse("").expect("empty file").privacy;
    assert!(p.pseudonymize_inside.is_none() && !p.drop_payload_fields);
    assert_eq!((p.key_file, p.state_retention), (None, None));
}

#[test]
fn pseudonymisation_reads_its_key_from_a_private_key_file() {
    let f = key_file(0o440);
    let text = format!("[privacy]\npseudonymize_inside = true\nkey_file = {:?}\n", f.path().display());
    let p = parse(&text).expect("valid").privacy;
    assert_eq!(p.pseudonymize_inside.expect("on").bytes(), &[3u8; 32]);
    assert_eq!(p.key_file.as_deref(), Some(f.path()));
}

#[test]
fn pseudonymisation_without_a_key_file_names_the_key_to_set() {
    let err = rejection("[privacy]\npseudonymize_inside = true\n");
    assert!(err.contains("privacy.key_file = \"\" is invalid") && err.contains("openssl rand"), "{err}");
}

#[test]
fn a_world_readable_key_file_is_refused_with_its_mode() {
    let f = key_file(0o644);
    let err =
        rejection(&format!("[privacy]\npseudonymize_inside = true\nkey_file = {:?}\n", f.path().display()));
    assert!(err.contains("privacy.key_file") && err.contains("0644"), "{err}");
}

#[test]
fn a_key_file_is_not_read_while_pseudonymisation_is_off() {
    let p = parse("[privacy]\nkey_file = \"/nonexistent/key\"\n").expect("not read").privacy;
    assert!(p.pseudonymize_inside.is_none());
}

#[test]
fn state_retention_takes_zero_or_one_day_to_ten_years() {
    let p = parse("[privacy]\nstate_retention_s = 7776000\n").expect("90 days").privacy;
    assert_eq!(p.state_retention, Some(Duration::from_secs(7_776_000)));
    let err = rejection("[privacy]\nstate_retention_s = 3600\n");
    assert!(
        err.contains("privacy.state_retention_s = 3600 is invalid: expected an integer from 86400"),
        "{err}"
    );
}
