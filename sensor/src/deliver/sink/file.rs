//! JSON lines in a local file, rotated by size: before a batch would take the file past
//! `rotate_bytes`, `path` becomes `path.1` (and `path.1` `path.2`, …, keeping `rotate_keep`
//! files). A batch is acknowledged once written, flushed and synced.

use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::alert::Alert;
use crate::deliver::config::{Format, SinkKind, SinkSettings};
use crate::deliver::format;
use crate::deliver::retry::{SendError, SendResult};

/// The file sink.
#[derive(Debug)]
pub(crate) struct FileSink {
    path: PathBuf,
    rotate_bytes: u64,
    rotate_keep: u32,
    format: Format,
    file: Option<(File, u64)>,
}

fn numbered(path: &Path, n: u32) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

impl FileSink {
    pub(crate) fn new(s: &SinkSettings) -> Self {
        let (path, rotate_bytes, rotate_keep) = match &s.kind {
            SinkKind::File { path, rotate_bytes, rotate_keep } => (path.clone(), *rotate_bytes, *rotate_keep),
            _ => (PathBuf::new(), u64::MAX, 1),
        };
        Self { path, rotate_bytes, rotate_keep, format: s.format, file: None }
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        self.file = None;
        let _ = fs::remove_file(numbered(&self.path, self.rotate_keep));
        for n in (1..self.rotate_keep).rev() {
            let from = numbered(&self.path, n);
            if from.exists() {
                fs::rename(&from, numbered(&self.path, n + 1))?;
            }
        }
        fs::rename(&self.path, numbered(&self.path, 1))
    }

    pub(crate) fn send(&mut self, batch: &[Alert]) -> SendResult {
        let mut text = Vec::with_capacity(batch.len() * 1024);
        for a in batch {
            serde_json::to_writer(&mut text, &format::json(a, self.format))
                .map_err(|e| SendError::permanent(e.to_string()))?;
            text.push(b'\n');
        }
        let path = self.path.clone();
        let fail = |e: std::io::Error| SendError::retry(format!("{}: {e}", path.display()));
        let size = self.file.as_ref().map(|(_, n)| *n);
        if size.is_some_and(|n| n > 0 && n + text.len() as u64 > self.rotate_bytes) {
            self.rotate().map_err(fail)?;
        }
        if self.file.is_none() {
            if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                fs::create_dir_all(dir).map_err(fail)?;
            }
            let file = OpenOptions::new().create(true).append(true).open(&self.path).map_err(fail)?;
            let len = file.metadata().map_err(fail)?.len();
            self.file = Some((file, len));
            if len > 0 && len + text.len() as u64 > self.rotate_bytes {
                self.rotate().map_err(fail)?;
                let file = OpenOptions::new().create(true).append(true).open(&self.path).map_err(fail)?;
                self.file = Some((file, 0));
            }
        }
        let Some((file, len)) = self.file.as_mut() else { return Err(SendError::retry("file not open")) };
        let written = file.write_all(&text).and_then(|()| file.sync_data());
        if let Err(e) = written {
            self.file = None;
            return Err(fail(e));
        }
        *len += text.len() as u64;
        Ok(Vec::new())
    }
}
