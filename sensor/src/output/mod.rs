//! Where records go: JSON lines to files, standard output, or nowhere (`flow_json`), and flow
//! export to IPFIX / NetFlow v9 collectors and Kafka (`export`, `ipfix/`, `kafka`), configured
//! in `[output]` (`config`).

pub mod config;
pub mod export;
pub mod flow_json;
pub mod flow_meta;
pub mod ipfix;
pub mod kafka;

use std::fs::OpenOptions;
use std::io::Write;

use crate::config::OutputTarget;

/// Opens an output target for appending JSON lines. `None` means "write
/// nothing". Errors name the file.
pub fn open(target: &OutputTarget) -> anyhow::Result<Option<Box<dyn Write + Send>>> {
    use anyhow::Context as _;
    Ok(match target {
        OutputTarget::None => None,
        OutputTarget::Stdout => Some(Box::new(std::io::stdout())),
        OutputTarget::File(path) => {
            // Appended, never truncated: a restart (a service restart, an upgrade, a reload
            // that reopens the file) must not throw away the records already written.
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("{}: cannot open output file for writing", path.display()))?;
            Some(Box::new(file))
        }
    })
}

/// Parses a command-line output path: `-` is standard output, anything else a file.
pub fn target_from_arg(arg: &str) -> OutputTarget {
    match arg {
        "-" => OutputTarget::Stdout,
        "" => OutputTarget::None,
        path => OutputTarget::File(path.into()),
    }
}

/// A flow record for unit tests: a finished TCP flow, 3 packets each way.
#[cfg(test)]
pub(crate) fn test_record() -> crate::flow::FlowRecord {
    use crate::flow::record::DirectionCounters;
    let v4 = |a: [u8; 4]| std::net::Ipv4Addr::from(a).to_ipv6_mapped().octets();
    let dir = |bytes| DirectionCounters {
        packets: 3,
        bytes,
        tcp_flags: 0x1b,
        first_ns: 1_000_000_000,
        last_ns: 2_000_000_000,
    };
    crate::flow::FlowRecord {
        key: nbad_common::FlowKey {
            addr_lo: v4([10, 0, 0, 1]),
            addr_hi: v4([10, 0, 0, 2]),
            port_lo: 50000,
            port_hi: 80,
            vlan_outer: 0,
            vlan_inner: 0,
            proto: 6,
            ip_version: nbad_common::IP_V4,
            pad: [0; 2],
        },
        client_is_lo: true,
        reason: crate::flow::EndReason::TcpClose,
        start_ns: 1_000_000_000,
        end_ns: 2_000_000_000,
        client: dir(180),
        server: dir(4000),
        tcp_state: 0,
        continued: false,
    }
}
