//! The `[privacy]` key file: 32 secret bytes that key the pseudonyms of inside addresses.
//!
//! The key lives in a file of its own, never in the TOML: the configuration file is installed
//! world-readable (0644), is printed back by `check-config` and is copied into tickets and
//! bug reports; a key file can be owned by root, readable by the service's group only, and
//! kept out of all of that. A key file that every user may read (or write) is refused at
//! load, with the `chmod` that fixes it, because anyone who can read the key can undo every
//! pseudonym the sensor has written.
//!
//! Accepted contents: exactly 32 raw bytes, or 64 hexadecimal digits (optionally followed by
//! a newline), as `openssl rand -hex 32` writes them.

use std::io::Read as _;
use std::path::Path;

/// Longer files are refused unread past this (64 hex digits and a CR LF fit).
const MAX_LEN: u64 = 128;

/// 32 key bytes (the Crypto-PAn AES key, then the pad's plaintext). Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct PrivacyKey(pub(crate) [u8; 32]);

impl std::fmt::Debug for PrivacyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PrivacyKey(<32 bytes, not shown>)")
    }
}

impl PrivacyKey {
    /// A key of these bytes (tests, and callers that hold a key already).
    #[must_use]
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The key bytes.
    #[must_use]
    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// Why a key file was refused, in words that follow "expected" in a [`super::ConfigError`].
pub(crate) fn read(path: &Path) -> Result<PrivacyKey, String> {
    let meta = std::fs::metadata(path).map_err(|e| {
        format!("a readable file of 32 random bytes (cannot read it: {e}); create one with `openssl rand -hex 32 > FILE`")
    })?;
    if !meta.is_file() {
        return Err("a regular file of 32 random bytes, not a directory or device".to_owned());
    }
    check_mode(&meta)?;
    // Bounded: a path to something huge (a configuration fuzzer's `/proc/kcore`) is refused,
    // not read whole.
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_LEN + 1).read_to_end(&mut bytes))
        .map_err(|e| format!("a readable file of 32 random bytes (cannot read it: {e})"))?;
    let len =
        if bytes.len() as u64 > MAX_LEN { format!("more than {MAX_LEN}") } else { bytes.len().to_string() };
    parse(&bytes).ok_or_else(|| {
        format!(
            "a file of exactly 32 raw bytes or 64 hexadecimal digits (this one has {len} bytes); \
             create one with `openssl rand -hex 32 > FILE`"
        )
    })
}

#[cfg(unix)]
fn check_mode(meta: &std::fs::Metadata) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o007 != 0 {
        return Err(format!(
            "a key file no other user can read or write (its mode is {mode:04o}; \
             `chmod 0440 FILE` with the service's group as its group, or 0400 owned by its user)"
        ));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_mode(_meta: &std::fs::Metadata) -> Result<(), String> {
    Ok(())
}

fn parse(bytes: &[u8]) -> Option<PrivacyKey> {
    if let Ok(raw) = <[u8; 32]>::try_from(bytes) {
        return Some(PrivacyKey(raw));
    }
    let text = std::str::from_utf8(bytes).ok()?.trim_end_matches(['\n', '\r']);
    if text.len() != 64 {
        return None;
    }
    let mut key = [0u8; 32];
    for (i, out) in key.iter_mut().enumerate() {
        *out = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(PrivacyKey(key))
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    fn key_file(contents: &[u8], mode: u32) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().expect("a temporary file");
        f.write_all(contents).expect("written");
        std::fs::set_permissions(f.path(), std::fs::Permissions::from_mode(mode)).expect("chmod");
        f
    }

    #[test]
    fn reads_raw_and_hex_keys() {
        let raw = key_file(&[7u8; 32], 0o400);
        assert_eq!(read(raw.path()), Ok(PrivacyKey([7; 32])));
        let hex = key_file(format!("{}\n", "0a".repeat(32)).as_bytes(), 0o440);
        assert_eq!(read(hex.path()), Ok(PrivacyKey([10; 32])));
    }

    #[test]
    fn refuses_a_world_readable_key_file_and_says_how_to_fix_it() {
        let f = key_file(&[7u8; 32], 0o644);
        let err = read(f.path()).expect_err("world-readable");
        assert!(err.contains("0644") && err.contains("chmod 0440"), "{err}");
    }

    #[test]
    fn refuses_a_key_of_the_wrong_length() {
        let f = key_file(b"short", 0o400);
        assert!(read(f.path()).expect_err("5 bytes").contains("has 5 bytes"));
    }

    #[test]
    fn a_long_file_is_refused_without_reading_it_whole() {
        let f = key_file(&[1u8; 4096], 0o400);
        assert!(read(f.path()).expect_err("4 KiB").contains("more than 128 bytes"));
    }

    #[test]
    fn the_key_is_never_printed() {
        assert!(!format!("{:?}", PrivacyKey([0xab; 32])).contains("171"));
    }
}
