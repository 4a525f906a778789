//! The flow-record output of a live sensor, reopened after a reload.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::sync::Arc;

use super::ConfigHandle;
use crate::config::OutputTarget;

/// Opens `path` for appending, creating it.
pub(super) fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// A `Write` for flow records that follows `output.flows` through reloads.
///
/// `FlowJsonWriter` hands its output whole lines only, in one `write_all` per chunk, so each
/// `write_all` starts at a record boundary: that is where a new version is noticed and the
/// output reopened. Records before it went to the old file (flushed first), records from it
/// on go to the new one; none is split or lost. A reopen that fails (the file became
/// unwritable after the reload checked it) is logged and the old output kept.
pub struct ReloadableOutput {
    handle: Arc<ConfigHandle>,
    seen: u64,
    out: Option<Box<dyn Write + Send>>,
}

impl std::fmt::Debug for ReloadableOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadableOutput").field("seen", &self.seen).finish_non_exhaustive()
    }
}

impl ReloadableOutput {
    /// The output of the handle's current configuration, already open.
    pub fn new(handle: Arc<ConfigHandle>) -> anyhow::Result<Self> {
        let current = handle.load();
        let out = crate::output::open(&current.config.output.flows)?;
        Ok(Self { seen: current.version, handle, out })
    }

    fn follow_reload(&mut self) {
        if self.handle.version() == self.seen {
            return;
        }
        let current = self.handle.load();
        self.seen = current.version;
        if let Some(old) = self.out.as_mut()
            && let Err(e) = old.flush()
        {
            eprintln!("nbad-sensor: error: flushing the old flow output before reopening: {e}");
        }
        match crate::output::open(&current.config.output.flows) {
            Ok(out) => {
                self.out = out;
                if let OutputTarget::File(path) = &current.config.output.flows {
                    eprintln!("nbad-sensor: flow records now go to {}", path.display());
                }
            }
            Err(e) => eprintln!("nbad-sensor: error: {e:#}; flow records still go to the previous output"),
        }
    }
}

impl Write for ReloadableOutput {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.out.as_mut() {
            Some(out) => out.write(buf),
            None => Ok(buf.len()),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.follow_reload();
        match self.out.as_mut() {
            Some(out) => out.write_all(buf),
            None => Ok(()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.out.as_mut() {
            Some(out) => out.flush(),
            None => Ok(()),
        }
    }
}
