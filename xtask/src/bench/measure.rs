//! Running one benchmark subject as a child process and measuring it: wall time from spawn to
//! reaping, and the child's own user and system CPU time and peak RSS from `wait4`'s rusage
//! (the rusage of exactly that child, not of everything xtask has waited for).
//!
//! Linux caveat: `ru_maxrss` is at least the spawning process's own peak RSS, because `exec`
//! records the peak of the address space it replaces (the parent's, under `posix_spawn`'s
//! vfork). So xtask keeps its own memory small while it measures (the capture is built by a
//! child process), lowers its recorded peak to its current RSS right before each spawn
//! (`/proc/self/clear_refs`), records that floor with the sample, and the report flags figures
//! at it.

use std::fs::File;
use std::io::{ErrorKind, Read, Seek, SeekFrom};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;

use crate::cmd;

/// One run of one subject.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Sample {
    pub wall_s: f64,
    pub user_s: f64,
    pub sys_s: f64,
    pub max_rss_kib: u64,
    /// xtask's own peak RSS when it spawned the child: `max_rss_kib` cannot be lower.
    pub rss_floor_kib: u64,
}

impl Sample {
    pub fn cpu_s(&self) -> f64 {
        self.user_s + self.sys_s
    }

    pub fn rss_mib(&self) -> f64 {
        self.max_rss_kib as f64 / 1024.0
    }
}

#[derive(Debug)]
pub struct Finished {
    pub sample: Sample,
    pub status: ExitStatus,
    /// Killed for running longer than the limit.
    pub timed_out: bool,
    /// The last 64 KiB of stdout and of stderr.
    pub stdout: String,
    pub stderr: String,
}

/// Runs `command` to completion with stdout and stderr captured in `log_dir/<label>.{out,err}`;
/// kills it once it has run for `limit`.
pub fn measure(command: &mut Command, log_dir: &Path, label: &str, limit: Duration) -> Result<Finished> {
    let out_path = log_dir.join(format!("{label}.out"));
    let err_path = log_dir.join(format!("{label}.err"));
    command
        .stdin(Stdio::null())
        .stdout(File::create(&out_path).context("creating a log file")?)
        .stderr(File::create(&err_path).context("creating a log file")?);
    let line = cmd::display(command);
    let rss_floor_kib = lower_own_peak_rss_kib().unwrap_or(0);
    let started = Instant::now();
    let mut child = command.spawn().with_context(|| format!("could not start `{line}`"))?;
    let pid = child.id();
    // The watchdog owns the `Child` only to kill it; this thread reaps it with `wait4`. A kill
    // can only go astray if the limit expires in the microseconds between the reaping and the
    // `done` message, and the pid is reused in between.
    let (done, finished) = mpsc::channel::<()>();
    let watchdog = thread::spawn(move || {
        let expired = finished.recv_timeout(limit) == Err(RecvTimeoutError::Timeout);
        if expired {
            child.kill().ok();
        }
        expired
    });
    let waited = wait_for(pid);
    let wall_s = started.elapsed().as_secs_f64();
    done.send(()).ok();
    let timed_out = watchdog.join().unwrap_or(false);
    let (status, usage) = waited?;
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Ok(Finished {
        sample: Sample {
            wall_s,
            user_s: seconds(usage.ru_utime),
            sys_s: seconds(usage.ru_stime),
            // Linux reports ru_maxrss in KiB.
            max_rss_kib: u64::try_from(usage.ru_maxrss).unwrap_or(0),
            rss_floor_kib,
        },
        status,
        timed_out,
        stdout: tail(&out_path)?,
        stderr: tail(&err_path)?,
    })
}

/// Resets this process's recorded peak RSS to its current RSS ("5" to `/proc/self/clear_refs`,
/// Linux ≥ 4.0) and returns it in KiB (`VmHWM`): the floor of the next child's `ru_maxrss`.
fn lower_own_peak_rss_kib() -> Option<u64> {
    std::fs::write("/proc/self/clear_refs", "5").ok();
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Reaps the child `pid` with `wait4`, which, unlike `Child::wait`, also returns its resource
/// usage.
#[expect(
    unsafe_code,
    reason = "wait4(2) is the only way to get one child's rusage (CPU time, peak RSS); std has no wrapper"
)]
fn wait_for(pid: u32) -> Result<(ExitStatus, libc::rusage)> {
    let pid = libc::pid_t::try_from(pid).context("pid out of range")?;
    loop {
        // SAFETY: `rusage` is plain old data, so all-zero bytes are a valid value; `status` and
        // `usage` are live, writable locals for the whole call; `pid` is our own unreaped child
        // (std reaps only in `wait`/`try_wait`, which are never called on it).
        let (ret, status, usage) = unsafe {
            let mut status: libc::c_int = 0;
            let mut usage: libc::rusage = std::mem::zeroed();
            let ret = libc::wait4(pid, &raw mut status, 0, &raw mut usage);
            (ret, status, usage)
        };
        if ret == pid {
            return Ok((ExitStatus::from_raw(status), usage));
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != ErrorKind::Interrupted {
            bail!("wait4({pid}) failed: {err}");
        }
    }
}

/// The last 64 KiB of a log file, as text.
fn tail(path: &Path) -> Result<String> {
    const KEEP: u64 = 64 * 1024;
    let mut file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let len = file.metadata()?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(KEEP)))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Per-metric median of `samples` (each column on its own; mean of the middle two for an even
/// count). `None` for no samples.
pub fn median(samples: &[Sample]) -> Option<Sample> {
    fn mid(mut values: Vec<f64>) -> f64 {
        values.sort_by(f64::total_cmp);
        let n = values.len();
        if n % 2 == 1 { values[n / 2] } else { (values[n / 2 - 1] + values[n / 2]) / 2.0 }
    }
    if samples.is_empty() {
        return None;
    }
    let column = |f: fn(&Sample) -> f64| mid(samples.iter().map(f).collect());
    Some(Sample {
        wall_s: column(|s| s.wall_s),
        user_s: column(|s| s.user_s),
        sys_s: column(|s| s.sys_s),
        max_rss_kib: column(|s| s.max_rss_kib as f64).round() as u64,
        rss_floor_kib: column(|s| s.rss_floor_kib as f64).round() as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(wall_s: f64, max_rss_kib: u64) -> Sample {
        Sample { wall_s, user_s: wall_s, sys_s: 0.0, max_rss_kib, rss_floor_kib: 0 }
    }

    #[test]
    fn median_takes_each_column_on_its_own() {
        let m = median(&[sample(3.0, 10), sample(1.0, 30), sample(2.0, 20)]).expect("samples");
        assert_eq!((m.wall_s, m.max_rss_kib), (2.0, 20));
        let m = median(&[sample(1.0, 10), sample(2.0, 20)]).expect("samples");
        assert_eq!((m.wall_s, m.max_rss_kib), (1.5, 15));
    }

    #[test]
    fn measures_a_child_cpu_time_and_exit_status() {
        let dir = std::env::temp_dir().join(format!("xtask-measure-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let busy_loop = "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; echo done; exit 3";
        let limit = Duration::from_secs(60);
        let done = measure(Command::new("sh").args(["-c", busy_loop]), &dir, "sh", limit).expect("sh runs");
        std::fs::remove_dir_all(&dir).expect("temp dir removed");
        assert_eq!(done.status.code(), Some(3));
        assert_eq!(done.stdout, "done\n");
        assert!(done.sample.cpu_s() > 0.0 && done.sample.wall_s >= done.sample.cpu_s() * 0.5);
        assert!(done.sample.max_rss_kib > 0);
        assert!(!done.timed_out);
    }

    #[test]
    fn kills_a_child_that_outlives_its_limit() {
        let dir = std::env::temp_dir().join(format!("xtask-timeout-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let done = measure(Command::new("sleep").arg("30"), &dir, "sleep", Duration::from_millis(200))
            .expect("sleep runs");
        std::fs::remove_dir_all(&dir).expect("temp dir removed");
        assert!(done.timed_out);
        assert!(!done.status.success());
        assert!(done.sample.wall_s < 10.0);
    }
}
