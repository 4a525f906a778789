//! RFC 5424 syslog over UDP (one message per datagram), TCP (octet counting, RFC 6587) and TLS
//! (RFC 5425), with the message body as ECS JSON, OCSF JSON, CEF or LEEF 2.0.
//!
//! **Best effort.** Syslog has no application acknowledgement: a batch counts as delivered
//! once the kernel took the bytes. Over TCP and TLS a connection the receiver closed is noticed
//! before the next batch (a zero-byte read) and re-opened, which narrows but does not close the
//! window in which a receiver that dies loses what was in flight; over UDP a receiver that is
//! down loses the datagrams (only an ICMP "port unreachable" on the next send is seen). Use an
//! acknowledged sink (HTTP, HEC, `_bulk`, Redis, JetStream) where no alert may be lost.

use std::sync::Arc;

use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::io::AsyncWriteExt as _;
use tokio::net::{TcpStream, UdpSocket};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::tls::client_config;
use crate::alert::Alert;
use crate::deliver::config::{Format, SinkKind, SinkSettings, SyslogProtocol};
use crate::deliver::format::{self, rfc5424};
use crate::deliver::retry::{SendError, SendResult};

#[derive(Debug)]
enum Conn {
    Udp(UdpSocket),
    Tcp(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// The syslog sink.
#[derive(Debug)]
pub(crate) struct SyslogSink {
    protocol: SyslogProtocol,
    address: String,
    server_name: String,
    facility: u8,
    app_name: String,
    format: Format,
    tls: Option<Arc<ClientConfig>>,
    conn: Option<Conn>,
}

/// True when the peer has closed the stream (a read returns 0 bytes without blocking).
fn peer_closed(stream: &TcpStream) -> bool {
    let mut byte = [0u8; 1];
    matches!(stream.try_read(&mut byte), Ok(0))
}

impl SyslogSink {
    pub(crate) fn new(s: &SinkSettings) -> Result<Self, String> {
        let SinkKind::Syslog { protocol, address, server_name, facility, app_name, tls } = &s.kind else {
            return Err("not a syslog sink".into());
        };
        let tls = if *protocol == SyslogProtocol::Tls { Some(client_config(tls)?) } else { None };
        ServerName::try_from(server_name.clone()).map_err(|e| format!("server_name {server_name:?}: {e}"))?;
        Ok(Self {
            protocol: *protocol,
            address: address.clone(),
            server_name: server_name.clone(),
            facility: *facility,
            app_name: app_name.clone(),
            format: s.format,
            tls,
            conn: None,
        })
    }

    async fn connect(&self) -> Result<Conn, SendError> {
        let fail = |what: &str, e: &dyn std::fmt::Display| {
            SendError::retry(format!("syslog {} {what}: {e}", self.address))
        };
        match self.protocol {
            SyslogProtocol::Udp => {
                let bind = if self.address.starts_with('[') { "[::]:0" } else { "0.0.0.0:0" };
                let sock = UdpSocket::bind(bind).await.map_err(|e| fail("bind", &e))?;
                sock.connect(&self.address).await.map_err(|e| fail("connect", &e))?;
                Ok(Conn::Udp(sock))
            }
            SyslogProtocol::Tcp => {
                Ok(Conn::Tcp(TcpStream::connect(&self.address).await.map_err(|e| fail("connect", &e))?))
            }
            SyslogProtocol::Tls => {
                let tcp = TcpStream::connect(&self.address).await.map_err(|e| fail("connect", &e))?;
                let config = self.tls.clone().ok_or_else(|| SendError::retry("TLS is not configured"))?;
                let name =
                    ServerName::try_from(self.server_name.clone()).map_err(|e| fail("server name", &e))?;
                let tls = TlsConnector::from(config)
                    .connect(name, tcp)
                    .await
                    .map_err(|e| fail("TLS handshake", &e))?;
                Ok(Conn::Tls(Box::new(tls)))
            }
        }
    }

    fn message(&self, a: &Alert) -> String {
        rfc5424::message(a, self.facility, &self.app_name, &format::text(a, self.format))
    }

    pub(crate) async fn send(&mut self, batch: &[Alert]) -> SendResult {
        let stale = match &self.conn {
            Some(Conn::Tcp(s)) => peer_closed(s),
            Some(Conn::Tls(s)) => peer_closed(s.get_ref().0),
            _ => false,
        };
        if stale {
            self.conn = None;
        }
        if self.conn.is_none() {
            self.conn = Some(self.connect().await?);
        }
        let messages: Vec<String> = batch.iter().map(|a| self.message(a)).collect();
        let framed = || {
            let mut buf = Vec::with_capacity(messages.iter().map(|m| m.len() + 8).sum());
            messages.iter().for_each(|m| buf.extend(rfc5424::octet_counted(m)));
            buf
        };
        let result = match self.conn.as_mut() {
            Some(Conn::Udp(sock)) => {
                let mut r = Ok(());
                for m in &messages {
                    if let Err(e) = sock.send(m.as_bytes()).await {
                        r = Err(e);
                        break;
                    }
                }
                r
            }
            Some(Conn::Tcp(s)) => s.write_all(&framed()).await.and(s.flush().await),
            Some(Conn::Tls(s)) => s.write_all(&framed()).await.and(s.flush().await),
            None => Err(std::io::Error::other("not connected")),
        };
        result.map(|()| Vec::new()).map_err(|e| {
            self.conn = None;
            SendError::retry(format!("syslog {}: write: {e}", self.address))
        })
    }
}
