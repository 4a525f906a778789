//! `server_flight` on certificates made for these tests (with openssl, not
//! taken from anywhere) and, where the shared corpus is present, on a real
//! server flight.

use super::*;
use crate::protocol::tests::hex;

/// A self-signed P-256 certificate: `CN=self.example.test, O=nbad test`,
/// valid 2026-12-07 14:01:59 to 2036-12-04 14:01:59 UTC, SKI = AKI.
const SELF_SIGNED: &str = "
    308201a330820148a003020102020101300a06082a8648ce3d0403023030311a301806035504030c1173656c662e6578
    616d706c652e7465737431123010060355040a0c096e6261642074657374301e170d3236313230373134303135395a17
    0d3336313230343134303135395a3030311a301806035504030c1173656c662e6578616d706c652e7465737431123010
    060355040a0c096e62616420746573743059301306072a8648ce3d020106082a8648ce3d03010703420004c018aa4ffb
    29df7b1db4411219c80fce0496478f956e3a4759323c93ebb7cd8526383a99cbacb9b6aae1f3044bc70d817dec262b0e
    7da9db7d7f83c7ee9a94fda3533051301d0603551d0e041604146e91bb07aade592dce4405edb800cd9215f7c655301f
    0603551d230418301680146e91bb07aade592dce4405edb800cd9215f7c655300f0603551d130101ff040530030101ff
    300a06082a8648ce3d0403020349003046022100d2fdf6567a9680ad19f9a8c9e8cec0316d69364bcd92a67ca10be1ff
    53f6d8aa022100947deb41b03280bb8d3d50e768ebc6d03e84ddcc300948d0982f3a95704edf43";

/// A P-256 certificate for `CN=www.example.test` issued by `CN=nbad test CA`,
/// valid 2026-12-07 14:01:59 UTC for 365 days.
const CA_SIGNED: &str = "
    308201193081c0020102300a06082a8648ce3d04030230173115301306035504030c0c6e626164207465737420434130
    1e170d3236313230373134303135395a170d3237313230373134303135395a301b3119301706035504030c107777772e
    6578616d706c652e746573743059301306072a8648ce3d020106082a8648ce3d0301070342000449894deac482507a6a
    56575648abab35585730445036135feae7d664b8f7d12adbd14b64d02300361a44ba0e6856c71b1c43aed68c834590c9
    25fd08da70d89d300a06082a8648ce3d0403020348003045022100d6b41f35be2afdd2328edaa67bea791db840d20a12
    c1c7c75c0b7f0e9e4a5264022077071882550dbc8500bff6b204bd3f6d946a8c19dee875896d1f27ef83c3617e";

/// A TLS 1.2 ServerHello (cipher 0xc02f, no extensions) as a handshake message.
fn server_hello_message() -> Vec<u8> {
    let mut body = vec![0x03, 0x03];
    body.extend_from_slice(&[0x44; 32]);
    body.push(0);
    body.extend_from_slice(&[0xc0, 0x2f, 0x00]);
    let mut message = vec![2, 0, 0, u8::try_from(body.len()).expect("short")];
    message.extend_from_slice(&body);
    message
}

/// A Certificate handshake message holding `certs`.
fn certificate_message(certs: &[&[u8]]) -> Vec<u8> {
    let mut list = Vec::new();
    for cert in certs {
        list.extend_from_slice(&u32::try_from(cert.len()).expect("short").to_be_bytes()[1..]);
        list.extend_from_slice(cert);
    }
    let mut body = u32::try_from(list.len()).expect("short").to_be_bytes()[1..].to_vec();
    body.extend_from_slice(&list);
    let mut message = vec![11];
    message.extend_from_slice(&u32::try_from(body.len()).expect("short").to_be_bytes()[1..]);
    message.extend_from_slice(&body);
    message
}

/// `handshake` in records of at most `size` bytes each.
fn records(handshake: &[u8], size: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in handshake.chunks(size) {
        out.extend_from_slice(&[22, 3, 3]);
        out.extend_from_slice(&u16::try_from(chunk.len()).expect("short").to_be_bytes());
        out.extend_from_slice(chunk);
    }
    out
}

fn flight(certs: &[&[u8]], record_size: usize) -> Vec<u8> {
    let mut handshake = server_hello_message();
    handshake.extend_from_slice(&certificate_message(certs));
    handshake.extend_from_slice(&[14, 0, 0, 0]); // ServerHelloDone
    records(&handshake, record_size)
}

const TLS12_HELLO: ServerHello =
    ServerHello { legacy_version: 0x0303, version: 0x0303, cipher_suite: 0xc02f };

#[test]
fn leaf_certificate_of_a_ca_signed_chain() {
    let (leaf, ca) = (hex(CA_SIGNED), hex(SELF_SIGNED));
    let got = server_flight(&flight(&[&leaf, &ca], 16_384)).expect("a flight");
    assert_eq!(got.hello, Some(TLS12_HELLO));
    let cert = got.certificate.expect("leaf");
    assert_eq!(&*cert.subject, "CN=www.example.test");
    assert_eq!(&*cert.issuer, "CN=nbad test CA");
    assert_eq!((cert.not_before, cert.not_after), (1_796_652_119, 1_828_188_119));
    assert!(!cert.self_signed);
    assert_eq!(cert.signature_verified, None);
}

#[test]
fn self_signed_certificate_is_flagged_and_verified() {
    let cert = hex(SELF_SIGNED);
    let got = server_flight(&flight(&[&cert], 16_384)).expect("a flight");
    let leaf = got.certificate.expect("leaf");
    assert_eq!(&*leaf.subject, "CN=self.example.test, O=nbad test");
    assert_eq!(leaf.subject, leaf.issuer);
    assert_eq!((leaf.not_before, leaf.not_after), (1_796_652_119, 2_112_012_119));
    assert!(leaf.self_signed);
    assert_eq!(leaf.signature_verified, Some(true));
}

#[test]
fn self_signed_certificate_with_a_broken_signature_does_not_verify() {
    let mut cert = hex(SELF_SIGNED);
    let last = cert.len() - 1;
    cert[last] ^= 0x01; // the signature's last byte: still DER, no longer valid
    let leaf = server_flight(&flight(&[&cert], 16_384)).and_then(|f| f.certificate).expect("leaf");
    assert!(leaf.self_signed);
    assert_eq!(leaf.signature_verified, Some(false));
}

#[test]
fn messages_split_across_small_records_are_joined() {
    let (leaf, ca) = (hex(CA_SIGNED), hex(SELF_SIGNED));
    let got = server_flight(&flight(&[&leaf, &ca], 100)).expect("a flight");
    assert_eq!(got.hello, Some(TLS12_HELLO));
    assert_eq!(got.certificate.map(|c| c.subject), Some("CN=www.example.test".into()));
}

#[test]
fn flight_cut_inside_the_certificate_gives_the_hello_only() {
    let leaf = hex(CA_SIGNED);
    let whole = flight(&[&leaf], 16_384);
    for cut in 1..whole.len() - 4 {
        let Some(got) = server_flight(&whole[..cut]) else { continue };
        assert_eq!(got.certificate, None, "cut at {cut}");
        if cut >= 5 + server_hello_message().len() {
            assert_eq!(got.hello, Some(TLS12_HELLO), "cut at {cut}");
        }
    }
}

#[test]
fn tls13_flight_has_no_certificate_in_the_clear() {
    let mut handshake = server_hello_message();
    handshake[4..6].copy_from_slice(&[3, 3]);
    let mut bytes = records(&handshake, 16_384);
    bytes.extend_from_slice(&[0x14, 3, 3, 0, 1, 1]); // change_cipher_spec
    bytes.extend_from_slice(&[0x17, 3, 3, 0, 4, 9, 9, 9, 9]); // encrypted extensions and the rest
    let got = server_flight(&bytes).expect("a flight");
    assert!(got.hello.is_some());
    assert_eq!(got.certificate, None);
}

#[test]
fn non_handshake_bytes_are_no_flight() {
    assert_eq!(server_flight(&[]), None);
    assert_eq!(server_flight(&[0x17, 3, 3, 0, 1, 0]), None);
    assert_eq!(server_flight(b"HTTP/1.1 200 OK\r\n"), None);
}

/// benign_mixed/ndpi__teams.pcap: the server's side of the flow nDPI lists
/// first (52.114.77.33:443 to 192.168.1.6:60543); nDPI reports its leaf as
/// `CN=*.events.data.microsoft.com`, issued by Microsoft IT TLS CA 4, valid
/// 2019-10-10 21:55:38 to 2021-10-10 21:55:38.
#[test]
fn corpus_teams_server_flight_gives_ndpi_certificate() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/corpus/benign_mixed/ndpi__teams.pcap");
    let Ok(file) = std::fs::read(&path) else {
        eprintln!("skipped: {} is absent", path.display());
        return;
    };
    let mut stream = Vec::new();
    for frame in crate::protocol::tests::pcap_frames(&file) {
        let Some((crate::protocol::Transport::Tcp, payload)) =
            crate::protocol::l4_payload(crate::capture::LinkType::Ethernet, frame)
        else {
            continue;
        };
        // The TCP ports sit right before the payload's header; match on the frame's ports.
        let Some(ports) = crate::protocol::tests::tcp_ports(frame) else { continue };
        if ports == (443, 60543) && !payload.is_empty() && stream.len() < 16_384 {
            stream.extend_from_slice(payload);
        }
    }
    let got = server_flight(&stream).expect("a flight");
    let hello = got.hello.expect("ServerHello");
    assert_eq!(hello.cipher_suite, 0xc030, "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384");
    let cert = got.certificate.expect("leaf");
    assert_eq!(&*cert.subject, "CN=*.events.data.microsoft.com");
    assert!(cert.issuer.contains("CN=Microsoft IT TLS CA 4"), "{}", cert.issuer);
    assert_eq!((cert.not_before, cert.not_after), (1_570_744_538, 1_633_902_938));
    assert!(!cert.self_signed);
}
