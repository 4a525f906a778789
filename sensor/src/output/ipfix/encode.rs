//! Flow records → IPFIX (RFC 7011) or NetFlow v9 (RFC 3954) messages.
//!
//! The encoder owns the message being filled; it never does
//! I/O and never reads a clock: the caller passes [`ExportClock`] when a message is closed.
//!
//! - IPFIX: 16-octet header (version 10, length, export time, sequence number, observation
//!   domain); template set id 2; data sets id = template id; no padding.
//! - NetFlow v9: 20-octet header (version 9, count = records in the packet, sysUptime, unix
//!   seconds, sequence number, source id); template flowset id 0; flowsets padded to four
//!   octets.
//!
//! Sequence numbers belong to the transport session, not to the message: [`Sequence`] writes
//! them when a message is sent.
//!
//! A message is closed when the next record would pass `max_bytes` (so a UDP datagram never
//! needs IP fragmentation at the default 1400) or when the caller flushes.

use std::net::IpAddr;

use super::ie::{self, Field, Protocol, RecordMode, TEMPLATE_V4, TEMPLATE_V6};
use crate::flow::FlowRecord;
use crate::flow::community_id::community_id_v1;
use crate::flow::record::DirectionCounters;

/// The exporter's clock at the moment a message is closed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExportClock {
    /// Wall-clock seconds since the epoch (IPFIX export time, v9 unix_secs).
    pub unix_s: u32,
    /// Milliseconds since the exporter started (v9 sysUptime).
    pub uptime_ms: u32,
}

/// Smallest `max_bytes`: a header, a set header and the largest data record fit.
pub const MIN_MESSAGE_BYTES: usize = 512;

const IPFIX_HEADER: usize = 16;
const V9_HEADER: usize = 20;
const SET_HEADER: usize = 4;

/// One message ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The encoded message.
    pub bytes: Vec<u8>,
    /// Flow records whose last data record is in this message (for the counters).
    pub flow_records: u64,
    /// Data records in it.
    pub data_records: u64,
}

/// Builds messages of one stream (one collector, one observation domain).
#[derive(Debug)]
pub struct Encoder {
    protocol: Protocol,
    mode: RecordMode,
    domain: u32,
    max_bytes: usize,
    templates: [(u16, Vec<Field>); 2],
    buf: Vec<u8>,
    /// The open set: its template id and where its header starts.
    set: Option<(u16, usize)>,
    data_records: u32,
    flow_records: u64,
}

/// One data record before encoding: a direction (unidirectional) or a biflow.
struct DataRecord<'a> {
    src: IpAddr,
    dst: IpAddr,
    sport: u16,
    dport: u16,
    r: &'a FlowRecord,
    fwd: DirectionCounters,
    rev: DirectionCounters,
    /// biflowDirection: 1 initiator, 2 reverse initiator.
    direction: u8,
    community_id: &'a str,
}

impl Encoder {
    /// A stream to `domain`. `max_bytes` is at least [`MIN_MESSAGE_BYTES`] (validated).
    #[must_use]
    pub fn new(protocol: Protocol, mode: RecordMode, domain: u32, max_bytes: usize) -> Self {
        let mut e = Self {
            protocol,
            mode,
            domain,
            max_bytes: max_bytes.max(MIN_MESSAGE_BYTES),
            templates: [
                (TEMPLATE_V4, ie::fields(protocol, mode, false)),
                (TEMPLATE_V6, ie::fields(protocol, mode, true)),
            ],
            buf: Vec::with_capacity(max_bytes),
            set: None,
            data_records: 0,
            flow_records: 0,
        };
        e.begin();
        e
    }

    fn header_len(&self) -> usize {
        match self.protocol {
            Protocol::Ipfix => IPFIX_HEADER,
            Protocol::NetflowV9 => V9_HEADER,
        }
    }

    fn begin(&mut self) {
        self.buf.clear();
        self.buf.resize(self.header_len(), 0);
        self.set = None;
        self.data_records = 0;
        self.flow_records = 0;
    }

    /// Data records waiting in the open message.
    #[must_use]
    pub fn pending(&self) -> u32 {
        self.data_records
    }

    /// A message holding both templates (sent first on every connection, and again every
    /// `template_refresh` over UDP). Does not touch the open data message.
    pub fn template_message(&mut self, clock: ExportClock) -> Vec<u8> {
        let mut m = vec![0; self.header_len()];
        let set_start = m.len();
        let set_id: u16 = if self.protocol == Protocol::Ipfix { 2 } else { 0 };
        put16(&mut m, set_id);
        put16(&mut m, 0);
        for (id, fields) in &self.templates {
            put16(&mut m, *id);
            put16(&mut m, u16::try_from(fields.len()).unwrap_or(u16::MAX));
            for f in fields {
                match f.pen {
                    Some(pen) => {
                        put16(&mut m, f.id | 0x8000);
                        put16(&mut m, f.len);
                        m.extend_from_slice(&pen.to_be_bytes());
                    }
                    None => {
                        put16(&mut m, f.id);
                        put16(&mut m, f.len);
                    }
                }
            }
        }
        self.close_set(&mut m, set_start);
        let count = self.templates.len() as u16;
        self.write_header(&mut m, clock, count);
        m
    }

    /// Adds `r` as one biflow record or up to two unidirectional ones; a message that fills
    /// up is closed and pushed to `out`.
    pub fn push(&mut self, r: &FlowRecord, clock: ExportClock, out: &mut Vec<Message>) {
        let (cip, cport) = r.client_endpoint();
        let (sip, sport) = r.server_endpoint();
        let ports = has_ports(r.key.proto);
        let (cport, sport) = if ports { (cport, sport) } else { (0, 0) };
        let community_id = if self.protocol == Protocol::Ipfix {
            community_id_v1(0, cip, cport, sip, sport, r.key.proto)
        } else {
            String::new()
        };
        let c2s = DataRecord {
            src: cip,
            dst: sip,
            sport: cport,
            dport: sport,
            r,
            fwd: r.client,
            rev: r.server,
            direction: 1,
            community_id: &community_id,
        };
        match self.mode {
            RecordMode::Biflow => self.add(&c2s, clock, out),
            RecordMode::Unidirectional => {
                let s2c = DataRecord {
                    src: sip,
                    dst: cip,
                    sport,
                    dport: cport,
                    r,
                    fwd: r.server,
                    rev: DirectionCounters::default(),
                    direction: 2,
                    community_id: &community_id,
                };
                let c = r.client.packets > 0;
                let s = r.server.packets > 0;
                if c || !s {
                    self.add(&c2s, clock, out);
                }
                if s {
                    self.add(&s2c, clock, out);
                }
            }
        }
        self.flow_records += 1;
    }

    fn add(&mut self, d: &DataRecord<'_>, clock: ExportClock, out: &mut Vec<Message>) {
        let v6 = d.src.is_ipv6();
        let slot = usize::from(v6);
        let template = self.templates[slot].0;
        let len = ie::record_len(&self.templates[slot].1);
        let need = len + if self.set.is_some_and(|(t, _)| t == template) { 0 } else { SET_HEADER + 3 };
        if self.data_records > 0
            && self.buf.len() + need > self.max_bytes
            && let Some(m) = self.finish(clock)
        {
            out.push(m);
        }
        if self.set.is_none_or(|(t, _)| t != template) {
            if let Some((_, start)) = self.set.take() {
                let mut buf = std::mem::take(&mut self.buf);
                self.close_set(&mut buf, start);
                self.buf = buf;
            }
            let start = self.buf.len();
            put16(&mut self.buf, template);
            put16(&mut self.buf, 0);
            self.set = Some((template, start));
        }
        self.encode(d);
        self.data_records += 1;
    }

    /// Writes one data record in the field order of [`ie::fields`].
    fn encode(&mut self, d: &DataRecord<'_>) {
        let ipfix = self.protocol == Protocol::Ipfix;
        let b = &mut self.buf;
        put_addr(b, d.src);
        put_addr(b, d.dst);
        put16(b, d.sport);
        put16(b, d.dport);
        b.push(d.r.key.proto);
        put16(b, d.r.key.vlan_outer);
        put64(b, d.fwd.bytes);
        put64(b, d.fwd.packets);
        // A direction's own first and last packets; a biflow's (and an empty direction's)
        // are the record's.
        let (start, end) = if self.mode == RecordMode::Unidirectional && d.fwd.packets > 0 {
            (d.fwd.first_ns, d.fwd.last_ns)
        } else {
            (d.r.start_ns, d.r.end_ns)
        };
        put64(b, start / 1_000_000);
        put64(b, end / 1_000_000);
        if ipfix {
            put16(b, u16::from(d.fwd.tcp_flags));
        } else {
            b.push(d.fwd.tcp_flags);
        }
        b.push(ie::end_reason(d.r.reason));
        if ipfix {
            put16(b, d.r.key.vlan_inner);
            b.push(d.direction);
            if self.mode == RecordMode::Biflow {
                put64(b, d.rev.bytes);
                put64(b, d.rev.packets);
                put16(b, u16::from(d.rev.tcp_flags));
            }
            let mut id = [b' '; ie::COMMUNITY_ID_LEN as usize];
            let n = d.community_id.len().min(id.len());
            id[..n].copy_from_slice(&d.community_id.as_bytes()[..n]);
            b.extend_from_slice(&id);
        }
    }

    fn close_set(&self, m: &mut Vec<u8>, start: usize) {
        if self.protocol == Protocol::NetflowV9 {
            while !(m.len() - start).is_multiple_of(4) {
                m.push(0);
            }
        }
        let len = u16::try_from(m.len() - start).unwrap_or(u16::MAX);
        m[start + 2..start + 4].copy_from_slice(&len.to_be_bytes());
    }

    fn write_header(&self, m: &mut [u8], clock: ExportClock, records: u16) {
        match self.protocol {
            Protocol::Ipfix => {
                m[0..2].copy_from_slice(&10u16.to_be_bytes());
                let len = u16::try_from(m.len()).unwrap_or(u16::MAX);
                m[2..4].copy_from_slice(&len.to_be_bytes());
                m[4..8].copy_from_slice(&clock.unix_s.to_be_bytes());
                m[12..16].copy_from_slice(&self.domain.to_be_bytes());
            }
            Protocol::NetflowV9 => {
                m[0..2].copy_from_slice(&9u16.to_be_bytes());
                m[2..4].copy_from_slice(&records.to_be_bytes());
                m[4..8].copy_from_slice(&clock.uptime_ms.to_be_bytes());
                m[8..12].copy_from_slice(&clock.unix_s.to_be_bytes());
                m[16..20].copy_from_slice(&self.domain.to_be_bytes());
            }
        }
    }

    /// Closes the open message; `None` when it holds no data record.
    pub fn finish(&mut self, clock: ExportClock) -> Option<Message> {
        if self.data_records == 0 {
            return None;
        }
        let mut buf = std::mem::take(&mut self.buf);
        if let Some((_, start)) = self.set.take() {
            self.close_set(&mut buf, start);
        }
        let records = u16::try_from(self.data_records).unwrap_or(u16::MAX);
        self.write_header(&mut buf, clock, records);
        let m = Message {
            bytes: buf,
            flow_records: self.flow_records,
            data_records: u64::from(self.data_records),
        };
        self.buf = Vec::with_capacity(self.max_bytes);
        self.begin();
        Some(m)
    }
}

/// The sequence numbers of one transport session, written into each message as it is sent
/// (a TCP reconnect is a new session, whose numbers start again at 0; RFC 7011 §3.1).
///
/// IPFIX counts data records sent before the message; NetFlow v9 counts packets sent before it.
#[derive(Debug, Clone, Copy)]
pub struct Sequence {
    protocol: Protocol,
    next: u32,
}

impl Sequence {
    /// A session's first number.
    #[must_use]
    pub fn new(protocol: Protocol) -> Self {
        Self { protocol, next: 0 }
    }

    /// Writes the session's current number into `message`.
    pub fn stamp(&self, message: &mut [u8]) {
        let at = match self.protocol {
            Protocol::Ipfix => 8,
            Protocol::NetflowV9 => 12,
        };
        if let Some(slot) = message.get_mut(at..at + 4) {
            slot.copy_from_slice(&self.next.to_be_bytes());
        }
    }

    /// Advances past a message that was sent, holding `data_records`.
    pub fn sent(&mut self, data_records: u64) {
        let step = match self.protocol {
            Protocol::Ipfix => u32::try_from(data_records).unwrap_or(u32::MAX),
            Protocol::NetflowV9 => 1,
        };
        self.next = self.next.wrapping_add(step);
    }
}

fn has_ports(proto: u8) -> bool {
    matches!(proto, 6 | 17 | 132 | 136)
}

fn put16(b: &mut Vec<u8>, v: u16) {
    b.extend_from_slice(&v.to_be_bytes());
}

fn put64(b: &mut Vec<u8>, v: u64) {
    b.extend_from_slice(&v.to_be_bytes());
}

fn put_addr(b: &mut Vec<u8>, a: IpAddr) {
    match a {
        IpAddr::V4(a) => b.extend_from_slice(&a.octets()),
        IpAddr::V6(a) => b.extend_from_slice(&a.octets()),
    }
}

#[cfg(test)]
mod tests;
