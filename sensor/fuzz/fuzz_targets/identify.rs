//! Identifies the protocol of one payload. The first byte picks what the rest
//! is (`byte % 3`): 0 a TCP payload, 1 a UDP payload, 2 an Ethernet frame whose
//! TCP or UDP payload `l4_payload` finds. Identification must never panic, must
//! give the same answer twice, must not panic on the payload cut to 256 bytes
//! either (as a sampler cuts it), and what it returns must keep the module's
//! promises: strings without control characters and within their limits, QUIC
//! only over UDP with a known version, SMTP, FTP, SSH and TLS only over TCP.

#![no_main]

use libfuzzer_sys::fuzz_target;
use nbad_sensor::capture::LinkType;
use nbad_sensor::protocol::{self, MAX_TEXT, Protocol, Transport, quic};

/// What a sampler keeps of a payload.
const SAMPLE: usize = 256;

/// A host name as the module reports it: 1 to 255 printable ASCII characters, no spaces.
fn host_like(name: &str) {
    assert!(!name.is_empty() && name.len() <= MAX_TEXT, "length {}: {name:?}", name.len());
    assert!(name.bytes().all(|b| b.is_ascii_graphic()), "not a host name: {name:?}");
}

fn check(found: &Protocol, transport: Transport) {
    let tcp = transport == Transport::Tcp;
    match found {
        Protocol::Tls { sni, .. } => {
            assert!(tcp, "TLS over UDP");
            if let Some(sni) = sni {
                host_like(sni);
            }
        }
        Protocol::Ssh { banner } => {
            assert!(tcp, "SSH over UDP");
            assert!(banner.starts_with("SSH-") && banner.len() <= MAX_TEXT, "banner {banner:?}");
            assert!(banner.bytes().all(|b| b == b' ' || b.is_ascii_graphic()), "banner {banner:?}");
        }
        Protocol::HttpRequest { method, host } => {
            assert!(!method.is_empty() && method.len() <= protocol::http::MAX_METHOD, "method {method:?}");
            assert!(method.bytes().all(|b| b.is_ascii_graphic()), "method {method:?}");
            if let Some(host) = host {
                host_like(host);
            }
        }
        Protocol::HttpResponse { status } => assert!((100..=599).contains(status), "status {status}"),
        Protocol::Dns { qname, qtype, .. } => {
            assert_eq!(qname.is_some(), qtype.is_some(), "name and type come together");
            if let Some(name) = qname {
                assert!(!name.is_empty() && !name.chars().any(char::is_control), "qname {name:?}");
            }
        }
        Protocol::Smtp | Protocol::Ftp => assert!(tcp, "SMTP or FTP over UDP"),
        Protocol::Quic { version } => {
            assert!(!tcp, "QUIC over TCP");
            assert!(quic::known_version(*version), "version {version:#x}");
        }
        Protocol::Unknown => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let (transport, payload) = match selector % 3 {
        0 => (Transport::Tcp, rest),
        1 => (Transport::Udp, rest),
        _ => {
            let Some((transport, payload)) = protocol::l4_payload(LinkType::Ethernet, rest) else {
                return;
            };
            let (frame, found) = (rest.as_ptr_range(), payload.as_ptr_range());
            assert!(frame.start <= found.start && found.end <= frame.end, "payload outside the frame");
            (transport, payload)
        }
    };
    let found = protocol::identify(transport, payload);
    check(&found, transport);
    assert_eq!(found, protocol::identify(transport, payload), "not deterministic");
    let sampled = protocol::identify(transport, &payload[..payload.len().min(SAMPLE)]);
    check(&sampled, transport);
    if payload.len() <= SAMPLE {
        assert_eq!(found, sampled);
    }
});
