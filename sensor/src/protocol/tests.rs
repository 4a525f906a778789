//! `identify` and `l4_payload` on real bytes from the shared corpus.
//!
//! Each fixture names its capture (under `shared/corpus`, never committed) and
//! frame number, and holds that frame's TCP or UDP payload, or its first bytes
//! where the fixture says "first N bytes" (a sampled payload is cut the same
//! way). Many come from `proto_nonstandard_port`: the protocol is on a port
//! that belongs to another, and must be named all the same.

use etherparse::{PacketBuilder, VlanId};

use super::*;
use crate::capture::LinkType;

/// Bytes from a hex string; whitespace is ignored.
pub(crate) fn hex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    digits
        .chunks(2)
        .map(|pair| {
            u8::from_str_radix(std::str::from_utf8(pair).expect("ascii"), 16).expect("hex digit pair")
        })
        .collect()
}

/// benign_mixed/ndpi__teams.pcap, frame 37 (to 443): a whole ClientHello, SNI second.
const TEAMS_CLIENT_HELLO: &str = "
    16030100a9010000a5030360b1cff355f9377c96a878656306f72f5c72727716b59b00c45c52265db40aff00001ec02f
    c02bc030c02ccca9cca8c009c013c00ac014009c009d002f0035000a0100005eff0100010000000023002100001e6d6f
    62696c652e706970652e617269612e6d6963726f736f66742e636f6d0017000000230000000d00140012040308040401
    050308050501080606010201000b00020100000a00080006001d00170018";

/// benign_mixed/ndpi__443-firefox.pcap, frame 4 (to 443): the first 256 of the
/// ClientHello's 517 bytes; the record and the handshake claim 512 and 508.
const FIREFOX_CLIENT_HELLO_256: &str = "
    1603010200010001fc0303946bf125d520b848e57d09c375afa7295beb220cd1470e0e81d09c77a6ebb61c20ee594a6f
    44641c6449c6cf9207b65d86e1cceefacb12202eaf7f1b923823d9f50024130113031302c02bc02fcca9cca8c02cc030
    c00ac009c013c01400330039002f0035000a0100018f00000011000f00000c7777772e6e746f702e6f726700170000ff
    01000100000a000e000c001d00170018001901000101000b00020100002300000010000e000c02683208687474702f31
    2e310005000501000000000033006b0069001d002011edefe3e699ce3aaf8ca89fc09be7532014ef953df40763060d94
    0a582ea04b0017004104d38e567337fe";

/// proto_nonstandard_port/zeek__ssl-to-http-server.pcap, frame 3: a ClientHello
/// to an HTTP server's port 80.
const CLIENT_HELLO_TO_PORT_80: &str = "
    16030100720100006e030163f6315dfd0bf853f1ff54a5c4d5bddce5245f8f00121ca6f818e49ab6dca3eb000014002f
    0035000ac013c014c009c00a00320038001301000031ff010001000000000b0009000006766b2e636f6d000500050100
    000000000a0006000400170018000b0002010000230000";

/// proto_nonstandard_port/ndpi__tls_port_80.pcapng, frame 13 (from port 80):
/// the first 96 bytes of a ServerHello.
const SERVER_HELLO_FROM_PORT_80: &str = "
    1603030057020000530303607c1539686a7d7a91e67601b571b75ae362136205b445da444493b213f93cd32092074167
    4bd61abb4b8cdbc50dbe05290ffd38d3d8ea92e52a37b3310210aaf4c02c00000b000b00020100ff0100010016030308";

/// benign_mixed/ndpi__dns.pcap, frame 2: query for AAAA www.example.com.
const DNS_QUERY: &str = "bc1f0100000100000000000003777777076578616d706c6503636f6d00001c0001";

/// benign_mixed/ndpi__dns.pcap, frame 5: response for A e7.whatsapp.net, eight answers.
const DNS_RESPONSE: &str = "
    784381800001000800000000026537087768617473617070036e65740000010001c00c00010001000001eb0004a92ddb
    ebc00c00010001000001eb0004a92f288ec00c00010001000001eb0004a92df879c00c00010001000001eb00046ca8b0
    eac00c00010001000001eb0004a92df8bdc00c00010001000001eb0004a92df8b4c00c00010001000001eb0004a93551
    4fc00c00010001000001eb0004a92ddbe8";

/// proto_nonstandard_port/zeek__quic-custom-port-4433.pcap, frame 1 (to 4433):
/// the first 64 bytes of a QUIC v1 Initial.
const QUIC_INITIAL_64: &str = "
    c0000000010895412c47018cdfe8004046006e2385e694b43534cc4506131c629fc029f854dad8927dbf2545a59d323e
    2d507b2bad115094ecccaa094e76cb07";

/// proto_nonstandard_port/zeek__http-nonstandard-port.pcap, frame 4 (to 1234):
/// the first 256 bytes of a GET.
const GET_TO_PORT_1234_256: &str = concat!(
    "GET /index.html HTTP/1.1\r\nHost: 146.190.62.39\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64; ",
    "rv:128.0) Gecko/20100101 Firefox/128.0\r\nAccept: text/html,application/xhtml+xml,application/",
    "xml;q=0.9,image/avif,image/webp,image/png,image/svg+xml,*/*;q=0.8\r\nAccept",
);

/// proto_nonstandard_port/zeek__http-to-ssh.pcap, frame 4: a whole Ethernet frame
/// carrying curl's GET to port 22 (its TCP payload is the last 75 bytes).
const GET_TO_PORT_22_FRAME: &str = "
    00000000000000000000000008004500007f4b2640004006f1507f0000017f0000019fc00016a7192a12908f07718018
    0200e46100000101080a97669d8b97669d8b474554202f20485454502f312e310d0a486f73743a203132372e302e302e
    313a32320d0a557365722d4167656e743a206375726c2f382e352e300d0a4163636570743a202a2f2a0d0a0d0a";

/// The frames of a classic (microsecond or nanosecond, either byte order) pcap file.
pub(crate) fn pcap_frames(file: &[u8]) -> Vec<&[u8]> {
    let Some(magic) = file.first_chunk::<4>() else { return Vec::new() };
    let little = matches!(magic, [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1]);
    let read = |at: usize| {
        file.get(at..at + 4).map(|b| {
            let b = [b[0], b[1], b[2], b[3]];
            usize::try_from(if little { u32::from_le_bytes(b) } else { u32::from_be_bytes(b) }).unwrap_or(0)
        })
    };
    let mut frames = Vec::new();
    let mut at = 24;
    while let Some(len) = read(at + 8) {
        let Some(frame) = file.get(at + 16..at + 16 + len) else { break };
        frames.push(frame);
        at += 16 + len;
    }
    frames
}

/// The TCP source and destination ports of an Ethernet frame.
pub(crate) fn tcp_ports(frame: &[u8]) -> Option<(u16, u16)> {
    match etherparse::SlicedPacket::from_ethernet(frame).ok()?.transport? {
        TransportSlice::Tcp(tcp) => Some((tcp.source_port(), tcp.destination_port())),
        _ => None,
    }
}

/// The SNI, JA4 and role of a TLS ClientHello identification.
fn hello(found: &Protocol) -> (Option<&str>, Option<&str>, Role) {
    let Some(tls::TlsInfo { message: tls::TlsMessage::ClientHello(h), .. }) = found.tls() else {
        panic!("not a ClientHello: {found:?}");
    };
    (h.sni.as_deref(), h.ja4.as_deref(), found.role)
}

fn dns(query: bool, qname: &str, qtype: u16) -> Protocol {
    let info = DnsInfo { query, opcode: 0, rcode: 0, qname: Some(qname.into()), qtype: Some(qtype) };
    Protocol::new(App::Dns(info), if query { Role::Client } else { Role::Server })
}

fn http_request(found: &Protocol) -> (&str, Option<&str>) {
    let Some(http::HttpInfo::Request(r)) = found.http() else { panic!("not a request: {found:?}") };
    (&r.method, r.host.as_deref())
}

#[test]
fn tls_client_hello_gives_its_sni() {
    let got = identify(Transport::Tcp, &hex(TEAMS_CLIENT_HELLO));
    let (sni, ja4, role) = hello(&got);
    assert_eq!((sni, role), (Some("mobile.pipe.aria.microsoft.com"), Role::Client));
    // nDPI's expected output for this capture gives this flow JA4 t12d150700_0707305c9f76_0f3b2bcde21d.
    assert_eq!(ja4, Some("t12d150700_0707305c9f76_0f3b2bcde21d"));
}

#[test]
fn tls_client_hello_cut_at_256_bytes_still_gives_its_sni() {
    let payload = hex(FIREFOX_CLIENT_HELLO_256);
    assert_eq!(payload.len(), 256);
    let got = identify(Transport::Tcp, &payload);
    assert_eq!(hello(&got), (Some("www.ntop.org"), None, Role::Client), "cut: no JA4");
    // Cut before the SNI extension ends: still a ClientHello, no name.
    let got = identify(Transport::Tcp, &payload[..130]);
    assert_eq!(hello(&got), (None, None, Role::Client));
}

#[test]
fn tls_to_an_http_port_is_tls() {
    let got = identify(Transport::Tcp, &hex(CLIENT_HELLO_TO_PORT_80));
    assert_eq!(hello(&got).0, Some("vk.com"));
}

#[test]
fn tls_server_hello_is_the_server_and_gives_its_cipher() {
    let got = identify(Transport::Tcp, &hex(SERVER_HELLO_FROM_PORT_80));
    assert_eq!((got.name(), got.role), ("tls", Role::Server));
    let Some(tls::TlsInfo { message: tls::TlsMessage::ServerHello(h), .. }) = got.tls() else {
        panic!("not a ServerHello: {got:?}");
    };
    assert_eq!((h.version, h.cipher_suite), (0x0303, 0xc02c));
}

#[test]
fn ssh_banners_on_any_port() {
    // proto_nonstandard_port/zeek__ssh-on-port-80.pcap, frame 4 (from port 80).
    let got = identify(Transport::Tcp, b"SSH-2.0-OpenSSH_5.8p1 Debian-1ubuntu3\r\n");
    let banner = |b: &str| Protocol::new(App::Ssh { banner: b.into() }, Role::Either);
    assert_eq!(got, banner("SSH-2.0-OpenSSH_5.8p1 Debian-1ubuntu3"));
    // proto_nonstandard_port/zeek__http-to-ssh.pcap, frame 6 (from port 22).
    let got = identify(Transport::Tcp, b"SSH-2.0-OpenSSH_9.6p1 Ubuntu-3ubuntu13.8\r\n");
    assert_eq!(got, banner("SSH-2.0-OpenSSH_9.6p1 Ubuntu-3ubuntu13.8"));
}

#[test]
fn http_get_with_host_on_an_ssh_port() {
    let frame = hex(GET_TO_PORT_22_FRAME);
    let payload = &frame[frame.len() - 75..];
    let got = identify(Transport::Tcp, payload);
    assert_eq!(http_request(&got), ("GET", Some("127.0.0.1:22")));
}

#[test]
fn http_get_cut_at_256_bytes_keeps_its_host() {
    let payload = GET_TO_PORT_1234_256.as_bytes();
    assert_eq!(payload.len(), 256);
    let got = identify(Transport::Tcp, payload);
    assert_eq!(http_request(&got), ("GET", Some("146.190.62.39")));
}

#[test]
fn http_get_with_host_after_a_long_url_on_a_sip_port() {
    // proto_nonstandard_port/ndpi__http_on_sip_port.pcap, frame 3 (from port 5060).
    let payload = concat!(
        "GET /star-123456/index.m3u8?token=89b198b8844824ca15b8b379c26fc1b7dfcba368-5KUJTJ5Y73AGIAOV-",
        "1618753174-1618742374 HTTP/1.1\r\nUser-Agent: exoplayer-codelab\r\nHost: 45.58.148.2\r\n",
        "Connection: Keep-Alive\r\nAccept-Encoding: gzip\r\n\r\n",
    );
    let got = identify(Transport::Tcp, payload.as_bytes());
    assert_eq!(http_request(&got), ("GET", Some("45.58.148.2")));
}

#[test]
fn http_responses_give_their_status() {
    // proto_nonstandard_port/ndpi__http_on_sip_port.pcap, frame 4 (to port 5060): first 96 bytes.
    let payload = b"HTTP/1.1 403 Forbidden\r\nConnection: keep-alive\r\nDate: Sun, 18 Apr 2021 11:04:40 GMT\r\nContent-Len";
    let status = |p: &Protocol| match p.http() {
        Some(http::HttpInfo::Response(r)) => Some(r.status),
        _ => None,
    };
    assert_eq!(status(&identify(Transport::Tcp, payload)), Some(403));
    // proto_nonstandard_port/zeek__http-nonstandard-port.pcap, frame 6 (from 1234): first 64 bytes.
    let payload = b"http/1.1 200 OK\r\nServer: nginx/1.18.0 (Ubuntu)\r\nDate: Sat, 12 Ap";
    let got = identify(Transport::Tcp, payload);
    assert_eq!((status(&got), got.role), (Some(200), Role::Server));
}

#[test]
fn dns_query_and_response_over_udp() {
    let query = dns(true, "www.example.com", 28);
    assert_eq!(identify(Transport::Udp, &hex(DNS_QUERY)), query);
    let response = dns(false, "e7.whatsapp.net", 1);
    let payload = hex(DNS_RESPONSE);
    assert_eq!(identify(Transport::Udp, &payload), response);
    // Cut in the middle of the first answer: the question is all there.
    assert_eq!(identify(Transport::Udp, &payload[..40]), response);
}

#[test]
fn dns_over_tcp_after_its_length_prefix() {
    // The corpus has no DNS over TCP: DNS_QUERY framed as RFC 7766 frames it.
    let query = hex(DNS_QUERY);
    let mut framed = u16::try_from(query.len()).expect("short").to_be_bytes().to_vec();
    framed.extend_from_slice(&query);
    let got = identify(Transport::Tcp, &framed);
    assert_eq!(got, dns(true, "www.example.com", 28));
    assert_eq!(identify(Transport::Tcp, &query), Protocol::UNKNOWN, "no length prefix");
}

#[test]
fn smtp_greeting_and_ehlo_on_port_2525() {
    // exfil_bulk_upload/sv__smtp2525-bulk-upload.pcap, frames 4 and 5.
    let got = identify(Transport::Tcp, b"220 johnny5 ESMTP Postfix (Ubuntu)\r\n");
    assert_eq!(got, Protocol::new(App::Smtp, Role::Server));
    let got = identify(Transport::Tcp, b"EHLO [173.66.146.112]\r\n");
    assert_eq!(got, Protocol::new(App::Smtp, Role::Client));
}

#[test]
fn ftp_greeting_and_user() {
    // scan/zeek__ftp-bruteforce.pcap, frames 4 and 6.
    let greeting = b"220 redmint FTP server (Version 6.4/OpenBSD/Linux-ftpd-0.17) ready.\r\n";
    assert_eq!(identify(Transport::Tcp, greeting), Protocol::new(App::Ftp, Role::Server));
    assert_eq!(identify(Transport::Tcp, b"USER bro\r\n"), Protocol::new(App::Ftp, Role::Client));
}

#[test]
fn quic_initial_on_a_custom_port() {
    let got = identify(Transport::Udp, &hex(QUIC_INITIAL_64));
    assert_eq!(got, Protocol::new(App::Quic { version: 1, hello: None }, Role::Either), "cut: not decrypted");
    assert_eq!(identify(Transport::Tcp, &hex(QUIC_INITIAL_64)), Protocol::UNKNOWN, "QUIC is UDP only");
}

#[test]
fn executable_over_tcp_port_53_is_not_dns() {
    // proto_nonstandard_port/ndpi__portable_executable.pcap, frames 18 and 19 (first 32 bytes), from 53.
    assert_eq!(identify(Transport::Tcp, &hex("43b00200")), Protocol::UNKNOWN);
    let pe = hex("4d5ae8000000005b52455589e581c3d6420000ffd381c323690200893b536a04");
    assert_eq!(identify(Transport::Tcp, &pe), Protocol::UNKNOWN);
}

#[test]
fn dns_looking_udp_with_a_bad_question_is_not_dns() {
    // DNS_QUERY's header followed by bytes that are no question.
    let mut payload = hex(DNS_QUERY);
    payload.truncate(12);
    payload.extend_from_slice(&[0xd7, 0x3c, 0x91, 0x07, 0x55, 0xe2, 0x4a, 0x10, 0x8b, 0x3f]);
    assert_eq!(identify(Transport::Udp, &payload), Protocol::UNKNOWN, "label length 0xd7");
    // DNS_QUERY with its class changed from IN to 0x3a7f.
    let mut payload = hex(DNS_QUERY);
    let last = payload.len() - 2;
    payload[last..].copy_from_slice(&[0x3a, 0x7f]);
    assert_eq!(identify(Transport::Udp, &payload), Protocol::UNKNOWN, "class 0x3a7f");
}

#[test]
fn random_and_empty_payloads_are_unknown() {
    assert_eq!(identify(Transport::Tcp, &[]), Protocol::UNKNOWN);
    assert_eq!(identify(Transport::Udp, &[]), Protocol::UNKNOWN);
    // xorshift64: the same "random" payloads every run.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for round in 0..2000 {
        let len = usize::try_from(next() % 300).expect("small");
        let payload: Vec<u8> = (0..len).map(|_| next().to_le_bytes()[0]).collect();
        for transport in [Transport::Tcp, Transport::Udp] {
            assert_eq!(identify(transport, &payload), Protocol::UNKNOWN, "round {round}: {payload:02x?}");
        }
    }
}

#[test]
fn names_are_stable_and_listed() {
    let cases = [
        (Protocol::UNKNOWN, "unknown"),
        (Protocol::new(App::Http2, Role::Client), "http2"),
        (Protocol::new(App::Smtp, Role::Server), "smtp"),
        (Protocol::new(App::Quic { version: 1, hello: None }, Role::Either), "quic"),
        (Protocol::new(App::Socks5 { target: None }, Role::Client), "socks5"),
        // Found by the identify fuzz target: the shell was named but missing from the list.
        (identify(Transport::Tcp, b"Microsoft Windows [Version 10.0.19045.3803]\r\n"), "shell"),
    ];
    for (protocol, name) in cases {
        assert_eq!(protocol.name(), name);
        assert!(model::NAMES.contains(&name));
    }
}

#[test]
fn protocol_is_cheap_to_move() {
    let size = size_of::<Protocol>();
    assert!(size <= 40, "{size} bytes");
}

#[test]
fn l4_payload_of_a_real_frame_and_of_a_cut_one() {
    let frame = hex(GET_TO_PORT_22_FRAME);
    let (transport, payload) = l4_payload(LinkType::Ethernet, &frame).expect("TCP frame");
    assert_eq!(transport, Transport::Tcp);
    assert_eq!(payload, &frame[frame.len() - 75..]);
    // Cut by a snaplen 20 bytes into the payload: the 20 bytes that are there.
    let cut = &frame[..frame.len() - 55];
    assert_eq!(l4_payload(LinkType::Ethernet, cut), Some((Transport::Tcp, &frame[frame.len() - 75..][..20])));
    // Cut inside the TCP header: no payload to speak of.
    assert_eq!(l4_payload(LinkType::Ethernet, &frame[..40]), None);
}

#[test]
fn l4_payload_under_vlan_tags() {
    let query = hex(DNS_QUERY);
    let builder = PacketBuilder::ethernet2([2; 6], [4; 6])
        .double_vlan(VlanId::try_new(100).expect("valid id"), VlanId::try_new(7).expect("valid id"))
        .ipv6([1; 16], [2; 16], 64)
        .udp(40000, 5353);
    let mut frame = Vec::new();
    builder.write(&mut frame, &query).expect("write to a Vec");
    assert_eq!(l4_payload(LinkType::Ethernet, &frame), Some((Transport::Udp, &query[..])));
}

#[test]
fn l4_payload_leaves_out_ethernet_padding_and_non_ip() {
    let builder = PacketBuilder::ethernet2([2; 6], [4; 6])
        .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .tcp(443, 50000, 1, 1024);
    let mut frame = Vec::new();
    builder.write(&mut frame, &[]).expect("write to a Vec");
    frame.resize(60, 0); // padded to Ethernet's minimum
    assert_eq!(l4_payload(LinkType::Ethernet, &frame), Some((Transport::Tcp, &[][..])));
    let mut arp = frame.clone();
    arp[12..14].copy_from_slice(&[0x08, 0x06]);
    assert_eq!(l4_payload(LinkType::Ethernet, &arp), None);
    assert_eq!(l4_payload(LinkType::Ethernet, &[]), None);
}

#[test]
fn l4_payload_skips_ip_fragments() {
    let mut frame = hex(GET_TO_PORT_22_FRAME);
    // Set the IPv4 more-fragments flag (the checksum is not checked).
    frame[20] = 0x20;
    assert_eq!(l4_payload(LinkType::Ethernet, &frame), None);
}
