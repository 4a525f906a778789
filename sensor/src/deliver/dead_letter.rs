//! The dead-letter file: alerts a receiver refused for good (400, 401, 403, 413, a bulk item's
//! 4xx, a HEC error code that is not "busy"), one JSON line each with the sink, the reason and
//! the alert itself, so nothing refused is lost: `nbad-sensor alerts send DEAD-LETTER-FILE`
//! re-sends them once the cause (a token, a mapping) is fixed.

use std::fs::{File, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde_json::{Value, json};

/// The shared dead-letter file.
#[derive(Debug)]
pub(crate) struct DeadLetter {
    path: PathBuf,
    file: Mutex<Option<File>>,
}

impl DeadLetter {
    pub(crate) fn new(path: &Path) -> Self {
        Self { path: path.to_path_buf(), file: Mutex::new(None) }
    }

    /// Appends one dead letter. `payload` is the alert's JSON as spooled (kept verbatim when it
    /// does not parse).
    pub(crate) fn write(&self, sink: &str, reason: &str, payload: &[u8]) -> io::Result<()> {
        let alert = serde_json::from_slice::<Value>(payload)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(payload).into_owned()));
        let line = json!({
            "time": super::format::rfc3339(crate::clock::wall_ns()),
            "sink": sink,
            "reason": reason,
            "alert": alert,
        });
        let mut guard = self.file.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if guard.is_none() {
            if let Some(parent) = self.path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            *guard = Some(OpenOptions::new().create(true).append(true).open(&self.path)?);
        }
        let file = guard.as_mut().ok_or_else(|| io::Error::other("dead-letter file not open"))?;
        let mut text = line.to_string();
        text.push('\n');
        file.write_all(text.as_bytes())?;
        file.sync_data()
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}
