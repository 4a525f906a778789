//! Live capture with libpcap: interface, promiscuous mode (SPAN ports),
//! snaplen, BPF filter, kernel buffer size, and the kernel's drop counters.
//!
//! With `capture.threads = N` above one, [`LiveSource::open_all`] opens N handles on the
//! interface, each with the full configuration (its own kernel buffer of `capture.buffer_bytes`,
//! so the kernel memory is N times that), and joins every one to this process's
//! `PACKET_FANOUT` group ([`super::fanout`]) right after activation. All are opened before
//! the caller drops the capture capabilities.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pcap::{Active, Capture};

use crate::capture::fanout::FanoutGroup;
use crate::capture::{CaptureError, LinkType, Next, PacketSource, RawPacket, SourceStats};
use crate::config::CaptureSettings;

/// A libpcap capture on one interface.
pub struct LiveSource {
    interface: String,
    capture: Capture<Active>,
    link: LinkType,
    idle_sleep: Duration,
}

impl std::fmt::Debug for LiveSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveSource").field("interface", &self.interface).finish_non_exhaustive()
    }
}

impl LiveSource {
    /// Opens `capture.threads` handles on `interface`: one handle as [`LiveSource::open`]
    /// when it is one, else that many, each joined to `group` right after activation, so that
    /// the kernel shares the interface's traffic among them by flow.
    ///
    /// # Errors
    /// As [`LiveSource::open`], for any handle; or the kernel refused a fanout join
    /// ([`CaptureError::Fanout`]). Handles opened before the failure are closed.
    pub fn open_all(
        interface: &str,
        settings: &CaptureSettings,
        group: FanoutGroup,
    ) -> Result<Vec<Self>, CaptureError> {
        let threads = settings.threads.max(1);
        if threads == 1 {
            return Ok(vec![Self::open(interface, settings)?]);
        }
        (0..threads)
            .map(|member| {
                let source = Self::open(interface, settings)?;
                group.join(&source.capture).map_err(|reason| CaptureError::Fanout {
                    interface: interface.to_owned(),
                    group: group.id(),
                    member,
                    reason,
                })?;
                Ok(source)
            })
            .collect()
    }

    /// Opens `interface` as configured. Errors name the interface and the
    /// step that failed (open, filter, ...), with libpcap's reason.
    pub fn open(interface: &str, settings: &CaptureSettings) -> Result<Self, CaptureError> {
        let live = |action, reason| CaptureError::Live { interface: interface.to_owned(), action, reason };
        let inactive = Capture::from_device(interface)
            .map_err(|e| live("looking up the interface", e))?
            .promisc(settings.promiscuous)
            .snaplen(i32::try_from(settings.snaplen).unwrap_or(i32::MAX))
            .buffer_size(i32::try_from(settings.buffer_bytes).unwrap_or(i32::MAX))
            .timeout(i32::try_from(settings.read_timeout.as_millis()).unwrap_or(100))
            .immediate_mode(false);
        let mut capture = inactive.open().map_err(|e| live("opening the capture", e))?;
        if !settings.filter.is_empty() {
            capture.filter(&settings.filter, true).map_err(|e| live("compiling the BPF filter", e))?;
        }
        let link = LinkType::from_linktype(capture.get_datalink().0, interface)?;
        // libpcap's TPACKET_V3 reader blocks without end on a quiet link
        // whatever the read timeout, which would leave signals and periodic
        // statistics unserved. Non-blocking reads plus a short sleep when the
        // ring is empty keep the loop responsive; packets wait in the kernel
        // ring meanwhile, so nothing is lost.
        let capture = capture.setnonblock().map_err(|e| live("switching to non-blocking reads", e))?;
        let idle_sleep = settings.read_timeout.min(Duration::from_millis(10));
        Ok(Self { interface: interface.to_owned(), capture, link, idle_sleep })
    }
}

impl PacketSource for LiveSource {
    fn next_packet(&mut self) -> Result<Next<'_>, CaptureError> {
        match self.capture.next_packet() {
            Ok(packet) => {
                let ts = packet.header.ts;
                let ts_ns = u64::try_from(ts.tv_sec).unwrap_or(0) * 1_000_000_000
                    + u64::try_from(ts.tv_usec).unwrap_or(0) * 1_000;
                Ok(Next::Packet(RawPacket {
                    ts_ns,
                    wire_len: packet.header.len,
                    link: self.link,
                    data: packet.data,
                }))
            }
            Err(pcap::Error::TimeoutExpired) => {
                std::thread::sleep(self.idle_sleep);
                Ok(Next::Idle)
            }
            Err(e) => Err(CaptureError::Live {
                interface: self.interface.clone(),
                action: "reading a packet",
                reason: e,
            }),
        }
    }

    fn source_stats(&mut self) -> SourceStats {
        self.capture.stats().map_or_else(
            |_| SourceStats::default(),
            |s| SourceStats {
                kernel_dropped: u64::from(s.dropped),
                interface_dropped: u64::from(s.if_dropped),
                truncated_files: 0,
                extra: Vec::new(),
            },
        )
    }

    fn idle_clock_ns(&self) -> Option<u64> {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .ok()
            .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
    }
}

/// Holds an interface in promiscuous mode for as long as it lives, without
/// capturing anything: the XDP path sees only the frames the NIC accepts, and
/// on a SPAN or tap port those are mostly not addressed to this host. The
/// kernel keeps the interface promiscuous while this membership is held and
/// drops it when the handle closes, so a crash leaves nothing behind.
pub struct PromiscuousGuard {
    _capture: Capture<Active>,
}

impl std::fmt::Debug for PromiscuousGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PromiscuousGuard").finish_non_exhaustive()
    }
}

impl PromiscuousGuard {
    /// Puts `interface` in promiscuous mode until the guard is dropped.
    pub fn hold(interface: &str) -> Result<Self, CaptureError> {
        let live = |action, reason| CaptureError::Live { interface: interface.to_owned(), action, reason };
        let mut capture = Capture::from_device(interface)
            .map_err(|e| live("looking up the interface", e))?
            .promisc(true)
            .snaplen(64)
            .buffer_size(1 << 20)
            .open()
            .map_err(|e| live("enabling promiscuous mode", e))?;
        // A filter no frame passes: the handle exists for its membership only.
        capture.filter("less 1", true).map_err(|e| live("installing the empty filter", e))?;
        Ok(Self { _capture: capture })
    }
}
