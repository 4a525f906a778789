//! Sending messages to a collector over UDP or TCP, with errors sorted into retriable and
//! permanent ones.
//!
//! - UDP: one message per datagram on a connected socket. There is no acknowledgement: a
//!   completed `send` is all the exporter knows. An ICMP port unreachable from an earlier
//!   datagram surfaces as `ECONNREFUSED` on a later send; it is retriable (the collector may be
//!   restarting), and the message in hand is sent again after the backoff.
//! - TCP (IPFIX only): messages back to back on one connection (RFC 7011 §10.4). Any write
//!   error drops the connection; the next send reconnects, which starts a new transport
//!   session: templates go first again and sequence numbers restart.
//!   IPFIX has no acknowledgement: a message the kernel took just before the collector closed
//!   the connection is counted as sent and lost with it (the collector's sequence check sees
//!   the gap only within a session).
//!
//! Permanent errors are the ones no retry can fix: a message larger than a datagram can be
//! (`EMSGSIZE`), or an address the socket cannot send to (`EACCES`, `EAFNOSUPPORT`,
//! `EADDRNOTAVAIL`). The message is then dropped and counted.

use std::io::{self, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

/// What went wrong with a send.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// The collector may take it later (refused, reset, timed out, unreachable).
    #[error("{0}")]
    Retriable(String),
    /// No retry can deliver this message.
    #[error("{0}")]
    Permanent(String),
}

/// How messages reach the collector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportKind {
    /// One message per datagram.
    Udp,
    /// A stream of messages on one connection.
    Tcp,
}

impl TransportKind {
    /// The name in the configuration file.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Udp => "udp",
            Self::Tcp => "tcp",
        }
    }
}

/// A connection (or connected socket) to one collector; opened lazily.
#[derive(Debug)]
pub struct Transport {
    kind: TransportKind,
    collector: SocketAddr,
    timeout: Duration,
    udp: Option<UdpSocket>,
    tcp: Option<TcpStream>,
}

fn classify(what: &str, collector: SocketAddr, e: &io::Error) -> TransportError {
    let text = format!("{what} {collector}: {e}");
    match e.raw_os_error() {
        Some(
            libc_errno::EMSGSIZE | libc_errno::EACCES | libc_errno::EAFNOSUPPORT | libc_errno::EADDRNOTAVAIL,
        ) => TransportError::Permanent(text),
        _ => TransportError::Retriable(text),
    }
}

/// The errno values classified as permanent (Linux numbers; the sensor runs on Linux only).
mod libc_errno {
    pub const EACCES: i32 = 13;
    pub const EMSGSIZE: i32 = 90;
    pub const EAFNOSUPPORT: i32 = 97;
    pub const EADDRNOTAVAIL: i32 = 99;
}

impl Transport {
    /// A transport to `collector`; nothing is opened yet.
    #[must_use]
    pub fn new(kind: TransportKind, collector: SocketAddr, timeout: Duration) -> Self {
        Self { kind, collector, timeout, udp: None, tcp: None }
    }

    /// Whether the next send opens a new transport session (so templates must go first).
    #[must_use]
    pub fn needs_session(&self) -> bool {
        match self.kind {
            TransportKind::Udp => self.udp.is_none(),
            TransportKind::Tcp => self.tcp.is_none(),
        }
    }

    /// Opens the socket or connection.
    pub fn open(&mut self) -> Result<(), TransportError> {
        match self.kind {
            TransportKind::Udp => {
                let bind: SocketAddr = if self.collector.is_ipv4() {
                    ([0, 0, 0, 0], 0).into()
                } else {
                    (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
                };
                let s = UdpSocket::bind(bind).map_err(|e| classify("bind for", self.collector, &e))?;
                s.connect(self.collector).map_err(|e| classify("connect to", self.collector, &e))?;
                self.udp = Some(s);
            }
            TransportKind::Tcp => {
                let s = TcpStream::connect_timeout(&self.collector, self.timeout)
                    .map_err(|e| classify("connect to", self.collector, &e))?;
                s.set_write_timeout(Some(self.timeout))
                    .map_err(|e| classify("set a timeout on", self.collector, &e))?;
                let _ = s.set_nodelay(true);
                self.tcp = Some(s);
            }
        }
        Ok(())
    }

    /// Sends one message (the socket must be open).
    pub fn send(&mut self, message: &[u8]) -> Result<(), TransportError> {
        let collector = self.collector;
        let result = match (self.kind, self.udp.as_ref(), self.tcp.as_mut()) {
            (TransportKind::Udp, Some(s), _) => s.send(message).map(drop),
            (TransportKind::Tcp, _, Some(s)) => s.write_all(message),
            _ => return Err(TransportError::Retriable(format!("not connected to {collector}"))),
        };
        result.map_err(|e| {
            // A stream with a failed write is in an unknown state: start over.
            self.tcp = None;
            classify("send to", collector, &e)
        })
    }

    /// Forgets the connection; the next send reconnects.
    pub fn reset(&mut self) {
        self.tcp = None;
    }
}
