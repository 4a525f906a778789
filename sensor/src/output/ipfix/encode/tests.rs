//! The encoder read back by a small decoder written from the RFCs (the integration tests read
//! the same messages back with nfdump, pmacct and Wireshark).

use std::collections::HashMap;

use nbad_common::{FlowKey, IP_V4, IP_V6};

use super::*;
use crate::flow::EndReason;

fn v4(a: [u8; 4]) -> [u8; 16] {
    std::net::Ipv4Addr::from(a).to_ipv6_mapped().octets()
}

fn record(v6: bool, client: (u64, u64), server: (u64, u64)) -> FlowRecord {
    let (lo, hi) = if v6 {
        (
            "2001:db8::1".parse::<std::net::Ipv6Addr>().expect("address").octets(),
            "2001:db8::2".parse::<std::net::Ipv6Addr>().expect("address").octets(),
        )
    } else {
        (v4([192, 0, 2, 1]), v4([198, 51, 100, 7]))
    };
    let dir = |(packets, bytes): (u64, u64), first_ns| DirectionCounters {
        packets,
        bytes,
        tcp_flags: 0x12,
        first_ns,
        last_ns: first_ns + 5_000_000,
    };
    FlowRecord {
        key: FlowKey {
            addr_lo: lo,
            addr_hi: hi,
            port_lo: 40000,
            port_hi: 443,
            vlan_outer: 10,
            vlan_inner: 20,
            proto: 6,
            ip_version: if v6 { IP_V6 } else { IP_V4 },
            pad: [0; 2],
        },
        client_is_lo: true,
        reason: EndReason::ActiveTimeout,
        start_ns: 1_700_000_000_000_000_000,
        end_ns: 1_700_000_000_010_000_000,
        client: dir(client, 1_700_000_000_000_000_000),
        server: dir(server, 1_700_000_000_001_000_000),
        tcp_state: 0,
        continued: false,
    }
}

/// One data record: (element id, PEN) → value bytes.
type Record = HashMap<(u16, Option<u32>), Vec<u8>>;

/// What the decoder found in a stream of messages.
#[derive(Debug, Default)]
struct Decoded {
    /// The data records.
    records: Vec<Record>,
    /// Header sequence numbers.
    seqs: Vec<u32>,
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn be64(v: &[u8]) -> u64 {
    v.iter().fold(0, |a, b| (a << 8) | u64::from(*b))
}

fn decode(protocol: Protocol, messages: &[Vec<u8>]) -> Decoded {
    let mut templates: HashMap<u16, Vec<Field>> = HashMap::new();
    let mut out = Decoded::default();
    for m in messages {
        let (hdr, tset) = match protocol {
            Protocol::Ipfix => {
                assert_eq!(be16(m, 0), 10);
                assert_eq!(usize::from(be16(m, 2)), m.len(), "IPFIX length is the message's");
                assert_eq!(be32(m, 12), 7, "observation domain");
                out.seqs.push(be32(m, 8));
                (16, 2)
            }
            Protocol::NetflowV9 => {
                assert_eq!(be16(m, 0), 9);
                assert_eq!(be32(m, 16), 7, "source id");
                out.seqs.push(be32(m, 12));
                (20, 0)
            }
        };
        let mut at = hdr;
        let mut v9_count = 0;
        while at < m.len() {
            let id = be16(m, at);
            let len = usize::from(be16(m, at + 2));
            assert!(len >= 4 && at + len <= m.len(), "set length {len} at {at}");
            if protocol == Protocol::NetflowV9 {
                assert_eq!(len % 4, 0, "v9 flowsets are padded to four octets");
            }
            let body = &m[at + 4..at + len];
            if id == tset {
                let mut p = 0;
                while p + 4 <= body.len() {
                    let tid = be16(body, p);
                    let n = be16(body, p + 2);
                    p += 4;
                    let mut fields = Vec::new();
                    for _ in 0..n {
                        let fid = be16(body, p);
                        let flen = be16(body, p + 2);
                        p += 4;
                        let pen = if fid & 0x8000 != 0 {
                            p += 4;
                            Some(be32(body, p - 4))
                        } else {
                            None
                        };
                        fields.push(Field { id: fid & 0x7fff, len: flen, pen });
                    }
                    templates.insert(tid, fields);
                    v9_count += 1;
                }
            } else {
                let fields = templates.get(&id).expect("a data set follows its template");
                let rlen = ie::record_len(fields);
                let mut p = 0;
                while p + rlen <= body.len() {
                    let mut rec = HashMap::new();
                    for f in fields {
                        rec.insert((f.id, f.pen), body[p..p + usize::from(f.len)].to_vec());
                        p += usize::from(f.len);
                    }
                    out.records.push(rec);
                    v9_count += 1;
                }
                assert!(body.len() - p < 4, "only padding after the records");
            }
            at += len;
        }
        if protocol == Protocol::NetflowV9 {
            assert_eq!(be16(m, 2), v9_count, "v9 count is the records in the packet");
        }
    }
    out
}

fn run(
    protocol: Protocol,
    mode: RecordMode,
    records: &[FlowRecord],
    max: usize,
) -> (Vec<Vec<u8>>, Vec<Message>) {
    let mut e = Encoder::new(protocol, mode, 7, max);
    let clock = ExportClock { unix_s: 1_700_000_100, uptime_ms: 5 };
    let mut seq = Sequence::new(protocol);
    let mut t = e.template_message(clock);
    seq.stamp(&mut t);
    seq.sent(0);
    let mut all = vec![t];
    let mut data = Vec::new();
    for r in records {
        e.push(r, clock, &mut data);
    }
    data.extend(e.finish(clock));
    for m in &mut data {
        assert!(m.bytes.len() <= max, "message of {} bytes over {max}", m.bytes.len());
        seq.stamp(&mut m.bytes);
        seq.sent(m.data_records);
    }
    all.extend(data.iter().map(|m| m.bytes.clone()));
    (all, data)
}

#[test]
fn a_biflow_record_carries_client_counters_forward_and_server_counters_reversed() {
    let r = record(false, (3, 300), (2, 1200));
    let (msgs, _) = run(Protocol::Ipfix, RecordMode::Biflow, &[r], 1400);
    let d = decode(Protocol::Ipfix, &msgs);
    assert_eq!(d.records.len(), 1);
    let rec = &d.records[0];
    let get = |id, pen| be64(&rec[&(id, pen)]);
    assert_eq!(rec[&(8, None)], [192, 0, 2, 1]);
    assert_eq!(rec[&(12, None)], [198, 51, 100, 7]);
    assert_eq!(get(7, None), 40000);
    assert_eq!(get(11, None), 443);
    assert_eq!(get(1, None), 300);
    assert_eq!(get(2, None), 3);
    assert_eq!(get(1, Some(ie::REVERSE_PEN)), 1200);
    assert_eq!(get(2, Some(ie::REVERSE_PEN)), 2);
    assert_eq!(get(58, None), 10);
    assert_eq!(get(245, None), 20);
    assert_eq!(get(136, None), 2, "active timeout");
    assert_eq!(get(152, None), 1_700_000_000_000);
    assert_eq!(get(153, None), 1_700_000_000_010);
    let cid = String::from_utf8(rec[&(ie::nbad::COMMUNITY_ID, Some(ie::NBAD_PEN))].clone()).expect("UTF-8");
    assert!(cid.starts_with("1:") && cid.len() == 30, "{cid}");
}

#[test]
fn unidirectional_mode_sends_one_record_per_direction_with_its_own_times() {
    let r = record(true, (3, 300), (2, 1200));
    for protocol in [Protocol::Ipfix, Protocol::NetflowV9] {
        let (msgs, data) = run(protocol, RecordMode::Unidirectional, &[r], 1400);
        let d = decode(protocol, &msgs);
        assert_eq!(d.records.len(), 2, "{protocol:?}");
        assert_eq!(data[0].flow_records, 1);
        let (c2s, s2c) = (&d.records[0], &d.records[1]);
        assert_eq!(be64(&c2s[&(1, None)]), 300);
        assert_eq!(be64(&s2c[&(1, None)]), 1200);
        assert_eq!(s2c[&(27, None)], c2s[&(28, None)], "the reply's source is the client's destination");
        assert_eq!(be64(&s2c[&(7, None)]), 443);
        assert_eq!(be64(&s2c[&(152, None)]), 1_700_000_000_001);
        assert_eq!(be64(&s2c[&(153, None)]), 1_700_000_000_006);
    }
}

#[test]
fn a_direction_without_packets_sends_no_record() {
    let r = record(false, (1, 60), (0, 0));
    let (msgs, _) = run(Protocol::NetflowV9, RecordMode::Unidirectional, &[r], 1400);
    assert_eq!(decode(Protocol::NetflowV9, &msgs).records.len(), 1);
}

#[test]
fn messages_stay_under_the_size_limit_and_sequence_numbers_count_records_or_packets() {
    let records: Vec<FlowRecord> =
        (0..500).map(|i| record(i % 3 == 0, (i + 1, 100 * (i + 1)), (i, 90 * i))).collect();
    let (msgs, data) = run(Protocol::Ipfix, RecordMode::Biflow, &records, 600);
    let d = decode(Protocol::Ipfix, &msgs);
    assert_eq!(d.records.len(), 500);
    assert_eq!(data.iter().map(|m| m.flow_records).sum::<u64>(), 500);
    // IPFIX: data records sent before each message (the template message shares the first).
    let mut expect = 0u32;
    assert_eq!(d.seqs[0], 0);
    for (seq, m) in d.seqs[1..].iter().zip(&data) {
        assert_eq!(*seq, expect);
        expect += u32::try_from(m.data_records).expect("fits");
    }
    let total: u64 =
        d.records.iter().map(|r| be64(&r[&(1, None)]) + be64(&r[&(1, Some(ie::REVERSE_PEN))])).sum();
    let want: u64 = records.iter().map(FlowRecord::bytes).sum();
    assert_eq!(total, want);

    let (msgs, _) = run(Protocol::NetflowV9, RecordMode::Unidirectional, &records, 600);
    let d = decode(Protocol::NetflowV9, &msgs);
    // v9: packets sent before this one, the template packet included.
    assert_eq!(d.seqs, (0..u32::try_from(msgs.len()).expect("fits")).collect::<Vec<_>>());
}

#[test]
fn the_templates_list_every_field_the_data_records_carry() {
    for protocol in [Protocol::Ipfix, Protocol::NetflowV9] {
        for mode in [RecordMode::Biflow, RecordMode::Unidirectional] {
            if protocol == Protocol::NetflowV9 && mode == RecordMode::Biflow {
                continue;
            }
            for v6 in [false, true] {
                let fields = ie::fields(protocol, mode, v6);
                let mut e = Encoder::new(protocol, mode, 7, 1400);
                let mut out = Vec::new();
                e.push(&record(v6, (1, 40), (1, 40)), ExportClock::default(), &mut out);
                let m = e.finish(ExportClock::default()).expect("a message");
                let hdr = if protocol == Protocol::Ipfix { 16 } else { 20 };
                let per = ie::record_len(&fields);
                let body = m.bytes.len() - hdr - 4;
                let n = usize::try_from(m.data_records).expect("fits");
                assert!(body >= per * n && body < per * n + 4, "{protocol:?} {mode:?} v6={v6}");
            }
        }
    }
}
