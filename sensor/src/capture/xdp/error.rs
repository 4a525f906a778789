//! Why XDP capture could not start or read, each in words an operator can act on.
//!
//! aya reports failures as nested library errors (`EbpfError` → `MapError` → `io::Error`, a
//! `ProgramError` carrying a verifier log, a syscall's errno). [`classify_load`],
//! [`classify_program_load`] and [`classify_attach`] are the one place that turns those into
//! [`XdpError`] variants: missing privileges, a verifier rejection with the tail of its log, a
//! missing interface, a driver without native XDP, an interface that already has a program.

use std::io;

use aya::EbpfError;
use aya::maps::MapError;
use aya::programs::ProgramError;

// errno values the classification looks for (Linux, every architecture aya supports).
const EPERM: i32 = 1;
const EBUSY: i32 = 16;
const EEXIST: i32 = 17;
const EOPNOTSUPP: i32 = 95;

/// Lines of the verifier log kept in [`XdpError::Verifier`]: the verdict and the instructions
/// leading to it are at the end; the whole log can run to megabytes.
pub const VERIFIER_LOG_TAIL_LINES: usize = 20;

/// Errors of XDP capture. Each names what it concerns.
#[derive(Debug, thiserror::Error)]
pub enum XdpError {
    /// The sensor was built with `AYA_BUILD_SKIP`, so it holds no XDP program.
    #[error(
        "this nbad-sensor was built without its XDP program (AYA_BUILD_SKIP was set); rebuild it \
         with the nightly toolchain and bpf-linker to use XDP capture, or use libpcap capture"
    )]
    NoProgram,
    /// A setting is out of range.
    #[error("xdp setting {key} = {value} is invalid: {valid}")]
    InvalidSetting {
        /// The setting's name.
        key: &'static str,
        /// The rejected value.
        value: String,
        /// What would be valid.
        valid: &'static str,
    },
    /// The interface does not exist (in this network namespace).
    #[error("{interface}: no such network interface (in the sensor's network namespace)")]
    InterfaceNotFound {
        /// The interface name as given.
        interface: String,
    },
    /// The kernel refused for lack of privileges.
    #[error("{action}: permission denied ({source}); XDP capture needs CAP_BPF and CAP_NET_ADMIN (or root)")]
    Permission {
        /// What the sensor tried to do.
        action: String,
        /// The kernel's answer.
        source: io::Error,
    },
    /// The verifier rejected a program; the log's last lines say where and why.
    #[error(
        "the kernel verifier rejected XDP program {program} ({source}); last lines of its log:\n{log_tail}"
    )]
    Verifier {
        /// The program.
        program: &'static str,
        /// The errno of `BPF_PROG_LOAD`.
        source: io::Error,
        /// The last [`VERIFIER_LOG_TAIL_LINES`] lines of the verifier log.
        log_tail: String,
    },
    /// Native mode was asked for and the interface's driver has no native XDP.
    #[error(
        "{interface}: the driver does not support native (driver-mode) XDP ({source}); \
         use mode \"skb\" (generic XDP, slower) or \"auto\", which falls back to it"
    )]
    NativeUnsupported {
        /// The interface.
        interface: String,
        /// The kernel's answer.
        source: io::Error,
    },
    /// Another XDP program is already attached to the interface.
    #[error(
        "{interface}: another XDP program is attached, or one in a different mode ({source}); \
         see `ip link show dev {interface}` and detach it first"
    )]
    AlreadyAttached {
        /// The interface.
        interface: String,
        /// The kernel's answer.
        source: io::Error,
    },
    /// Attaching failed for another reason.
    #[error("{interface}: attaching XDP in {mode} mode failed: {source}")]
    Attach {
        /// The interface.
        interface: String,
        /// The mode tried.
        mode: &'static str,
        /// aya's error.
        source: ProgramError,
    },
    /// Loading the object failed for a reason other than privileges.
    #[error("loading the XDP object failed: {source}")]
    Load {
        /// aya's error.
        source: EbpfError,
    },
    /// The embedded object lacks a map or program the sensor needs, or has it with another type.
    #[error("the embedded eBPF object has no usable {name}: {detail}")]
    Object {
        /// The map or program name.
        name: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// A map operation failed while running.
    #[error("map {map}: {action} failed: {source}")]
    Map {
        /// The map.
        map: &'static str,
        /// The operation.
        action: &'static str,
        /// aya's error.
        source: MapError,
    },
    /// Running the clock program to calibrate kernel timestamps failed.
    #[error("measuring the kernel's monotonic clock (BPF_PROG_TEST_RUN of nbad_clock) failed: {source}")]
    Clock {
        /// aya's error.
        source: ProgramError,
    },
    /// Running the collector program to read the active flows failed.
    #[error("reading the active flows (BPF_PROG_TEST_RUN of nbad_collect) failed: {source}")]
    Collect {
        /// aya's error.
        source: ProgramError,
    },
}

/// Classifies a failure of `EbpfLoader::load` (map and BTF creation).
pub fn classify_load(err: EbpfError) -> XdpError {
    match err {
        EbpfError::MapError(MapError::CreateError { name, io_error }) if is_eperm(&io_error) => {
            XdpError::Permission { action: format!("creating BPF map {name}"), source: io_error }
        }
        EbpfError::BtfError(aya::BtfError::LoadError { io_error, .. }) if is_eperm(&io_error) => {
            XdpError::Permission { action: "loading the object's BTF".to_owned(), source: io_error }
        }
        source => XdpError::Load { source },
    }
}

/// Classifies a failure of `Xdp::load` for `program`.
pub fn classify_program_load(program: &'static str, err: ProgramError) -> XdpError {
    match err {
        ProgramError::LoadError { io_error, .. } if is_eperm(&io_error) => {
            XdpError::Permission { action: format!("loading XDP program {program}"), source: io_error }
        }
        ProgramError::LoadError { io_error, verifier_log } => {
            XdpError::Verifier { program, source: io_error, log_tail: log_tail(&verifier_log.to_string()) }
        }
        other => XdpError::Object { name: program, detail: other.to_string() },
    }
}

/// Classifies a failure of `Xdp::attach` on `interface` in `mode`.
pub fn classify_attach(interface: &str, mode: &'static str, err: ProgramError) -> XdpError {
    let errno = match &err {
        ProgramError::UnknownInterface { .. } => {
            return XdpError::InterfaceNotFound { interface: interface.to_owned() };
        }
        ProgramError::SyscallError(e) => e.io_error.raw_os_error(),
        ProgramError::XdpError(aya::programs::xdp::XdpError::NetlinkError(e)) => e.raw_os_error(),
        _ => None,
    };
    let source = || io::Error::from_raw_os_error(errno.unwrap_or_default());
    let interface = interface.to_owned();
    match errno {
        Some(EPERM) => {
            XdpError::Permission { action: format!("attaching XDP to {interface}"), source: source() }
        }
        Some(EOPNOTSUPP) if mode == "native" => XdpError::NativeUnsupported { interface, source: source() },
        Some(EBUSY | EEXIST) => XdpError::AlreadyAttached { interface, source: source() },
        _ => XdpError::Attach { interface, mode, source: err },
    }
}

/// The last [`VERIFIER_LOG_TAIL_LINES`] non-empty lines of a verifier log.
fn log_tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    let start = lines.len().saturating_sub(VERIFIER_LOG_TAIL_LINES);
    let tail = lines[start..].join("\n");
    if tail.is_empty() { "(the verifier left no log)".to_owned() } else { tail }
}

fn is_eperm(err: &io::Error) -> bool {
    err.raw_os_error() == Some(EPERM)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifier_log_tail_keeps_the_last_lines() {
        let log: String = (0..50).map(|i| format!("{i}: insn\n\n")).collect();
        let tail = log_tail(&log);
        assert_eq!(tail.lines().count(), VERIFIER_LOG_TAIL_LINES);
        assert!(tail.ends_with("49: insn"));
        assert_eq!(log_tail(""), "(the verifier left no log)");
    }

    #[test]
    fn attach_errors_name_the_cause() {
        let unknown = ProgramError::UnknownInterface { name: "nope0".to_owned() };
        assert!(matches!(classify_attach("nope0", "native", unknown), XdpError::InterfaceNotFound { .. }));
        let syscall = |errno| {
            ProgramError::SyscallError(aya::sys::SyscallError {
                call: "bpf_link_create",
                io_error: io::Error::from_raw_os_error(errno),
            })
        };
        assert!(matches!(
            classify_attach("d0", "native", syscall(EOPNOTSUPP)),
            XdpError::NativeUnsupported { .. }
        ));
        assert!(matches!(classify_attach("d0", "skb", syscall(EBUSY)), XdpError::AlreadyAttached { .. }));
        assert!(matches!(classify_attach("d0", "skb", syscall(EPERM)), XdpError::Permission { .. }));
        assert!(matches!(classify_attach("d0", "skb", syscall(22)), XdpError::Attach { .. }));
    }
}
