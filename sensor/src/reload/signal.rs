//! The thread that turns SIGHUP into a reload.

use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;

use anyhow::Context as _;
use signal_hook::consts::SIGHUP;
use signal_hook::iterator::{Handle, Signals};

use super::ConfigHandle;

/// Waits for SIGHUP and reloads `path` into the handle, logging the outcome in one line.
/// Installed before the capture starts, so that SIGHUP never terminates the sensor (its
/// default action). Dropping it stops the thread.
#[derive(Debug)]
pub struct SighupReloader {
    signals: Handle,
    thread: Option<JoinHandle<()>>,
}

impl SighupReloader {
    /// Starts the thread.
    pub fn start(handle: Arc<ConfigHandle>, path: PathBuf) -> anyhow::Result<Self> {
        let mut signals = Signals::new([SIGHUP]).context("cannot install the SIGHUP handler")?;
        let control = signals.handle();
        let thread = std::thread::Builder::new()
            .name("nbad-reload".into())
            .spawn(move || {
                for _ in signals.forever() {
                    match handle.reload(&path) {
                        Ok(report) => eprintln!(
                            "nbad-sensor: configuration reloaded from {} (version {}): applied {}; {}",
                            path.display(),
                            report.version,
                            report.applied.join(", "),
                            if report.needs_restart.is_empty() {
                                "nothing else changed".to_owned()
                            } else {
                                format!(
                                    "changed but kept until a restart: {}",
                                    report.needs_restart.join(", ")
                                )
                            }
                        ),
                        Err(e) => eprintln!(
                            "nbad-sensor: error: reload refused, the running configuration (version {}) \
                             is kept: {e}",
                            handle.version()
                        ),
                    }
                }
            })
            .context("cannot start the reload thread")?;
        Ok(Self { signals: control, thread: Some(thread) })
    }
}

impl Drop for SighupReloader {
    fn drop(&mut self) {
        self.signals.close();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
