//! The ClientHello inside a client's QUIC Initial packet (RFC 9001 5).
//!
//! A client's first Initial is encrypted with keys anyone can derive from its
//! destination connection id (HKDF over a published salt), so its TLS
//! ClientHello, and with it the SNI and the JA4 fingerprint (`q`), can be
//! read. ring, already in the tree through rustls, does the HKDF, the
//! AES-128 header protection and the AES-128-GCM opening:
//!
//! 1. parse the long header by hand: version 1 or 2, packet type Initial,
//!    connection ids, token, length;
//! 2. derive the client's key, IV and header-protection key
//!    (`client in`, then `quic key`/`quic iv`/`quic hp`, or `quicv2 ...` for v2);
//! 3. remove header protection (the 16-byte sample after the packet number's
//!    first four possible bytes), read the packet number, open the payload;
//! 4. read its frames (PADDING, PING, CRYPTO; anything else stops the walk)
//!    and join the CRYPTO data contiguous from offset 0 (Chrome sends it in
//!    several frames out of order), at most [`MAX_CRYPTO`] bytes;
//! 5. read that as a ClientHello handshake message (`super::tls::client_hello`).
//!
//! It needs the whole packet (the AEAD tag comes last), so a sampled payload
//! cut at 256 bytes gives no hello; nor does a server's Initial (its keys come
//! from the client's original connection id, which the server's packet does
//! not carry). A ClientHello spread over two Initial packets (Chrome's with a
//! post-quantum key share) gives the fields of its first part, and no JA4.
//!
//! This runs only after [`super::quic`] has matched a long header of a known
//! version, so its allocations (the packet copy) do not touch other traffic.

use ring::aead::quic::{AES_128, HeaderProtectionKey};
use ring::aead::{AES_128_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::hkdf::{HKDF_SHA256, KeyType, Prk, Salt};

use super::ja4;
use super::quic::{VERSION_1, VERSION_2};
use super::tls::{CLIENT_HELLO, ClientHello, client_hello};

/// CRYPTO bytes joined at most.
pub const MAX_CRYPTO: usize = 4096;
/// Frames read at most.
const MAX_FRAMES: usize = 64;

/// RFC 9001 5.2's initial salt for version 1.
const SALT_V1: [u8; 20] = [
    0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34, 0xb3, 0x4d, 0x17, 0x9a, 0xe6, 0xa4, 0xc8, 0x0c, 0xad, 0xcc,
    0xbb, 0x7f, 0x0a,
];
/// RFC 9369 3.3.1's initial salt for version 2.
const SALT_V2: [u8; 20] = [
    0x0d, 0xed, 0xe3, 0xde, 0xf7, 0x00, 0xa6, 0xdb, 0x81, 0x93, 0x81, 0xbe, 0x6e, 0x26, 0x9d, 0xcb, 0xf9,
    0xbd, 0x2e, 0xd9,
];

/// The keys protecting a client's Initial packets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct InitialKeys {
    pub key: [u8; 16],
    pub iv: [u8; 12],
    pub hp: [u8; 16],
}

/// A length for ring's HKDF expansion.
struct Len(usize);

impl KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

/// HKDF-Expand-Label (RFC 8446 7.1) with an empty context, into `out`.
fn expand_label(prk: &Prk, label: &[u8], out: &mut [u8]) -> Option<()> {
    let len = u16::try_from(out.len()).ok()?.to_be_bytes();
    let full_len = [u8::try_from(6 + label.len()).ok()?];
    let info: [&[u8]; 5] = [&len, &full_len, b"tls13 ", label, &[0]];
    prk.expand(&info, Len(out.len())).ok()?.fill(out).ok()
}

/// The client's Initial keys for a destination connection id.
pub(super) fn client_keys(version: u32, dcid: &[u8]) -> Option<InitialKeys> {
    let (salt, key_label, iv_label, hp_label): (&[u8], &[u8], &[u8], &[u8]) = match version {
        VERSION_1 => (&SALT_V1, b"quic key", b"quic iv", b"quic hp"),
        VERSION_2 => (&SALT_V2, b"quicv2 key", b"quicv2 iv", b"quicv2 hp"),
        _ => return None,
    };
    let initial = Salt::new(HKDF_SHA256, salt).extract(dcid);
    let mut client_secret = [0u8; 32];
    expand_label(&initial, b"client in", &mut client_secret)?;
    let client = Prk::new_less_safe(HKDF_SHA256, &client_secret);
    let mut keys = InitialKeys { key: [0; 16], iv: [0; 12], hp: [0; 16] };
    expand_label(&client, key_label, &mut keys.key)?;
    expand_label(&client, iv_label, &mut keys.iv)?;
    expand_label(&client, hp_label, &mut keys.hp)?;
    Some(keys)
}

/// A QUIC variable-length integer at the start of `bytes`, and the bytes after it.
fn varint(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let first = *bytes.first()?;
    let len = 1usize << (first >> 6);
    let raw = bytes.get(..len)?;
    let value = raw[1..].iter().fold(u64::from(first & 0x3f), |acc, &b| (acc << 8) | u64::from(b));
    Some((value, &bytes[len..]))
}

/// The ClientHello in a client's Initial packet at the start of `payload`.
pub(super) fn client_hello_of(payload: &[u8]) -> Option<ClientHello> {
    let crypto = decrypt_crypto(payload)?;
    if crypto.first() != Some(&CLIENT_HELLO) {
        return None;
    }
    client_hello(&crypto, ja4::Transport::Quic)
}

/// The CRYPTO data, contiguous from offset 0, of a client Initial packet.
fn decrypt_crypto(payload: &[u8]) -> Option<Vec<u8>> {
    let first = *payload.first()?;
    let version = u32::from_be_bytes(*payload.get(1..5)?.first_chunk()?);
    let kind = (first >> 4) & 0x03;
    let initial = match version {
        VERSION_1 => kind == 0,
        VERSION_2 => kind == 1,
        _ => false,
    };
    if !initial {
        return None;
    }
    let dcid_len = usize::from(*payload.get(5)?);
    let dcid = payload.get(6..6 + dcid_len)?;
    let scid_len = usize::from(*payload.get(6 + dcid_len)?);
    let after_scid = payload.get(7 + dcid_len + scid_len..)?;
    let (token_len, rest) = varint(after_scid)?;
    let rest = rest.get(usize::try_from(token_len).ok()?..)?;
    let (length, rest) = varint(rest)?;
    let pn_offset = payload.len() - rest.len();
    let end = pn_offset.checked_add(usize::try_from(length).ok()?)?;
    let packet = payload.get(..end)?;
    let keys = client_keys(version, dcid)?;
    // Header protection: the sample starts four bytes after the packet number's start.
    let sample = packet.get(pn_offset + 4..pn_offset + 20)?;
    let mask = HeaderProtectionKey::new(&AES_128, &keys.hp).ok()?.new_mask(sample).ok()?;
    let mut header = packet[..pn_offset + 4].to_vec();
    header[0] ^= mask[0] & 0x0f;
    let pn_len = usize::from(header[0] & 0x03) + 1;
    header.truncate(pn_offset + pn_len);
    let mut pn = [0u8; 8];
    for i in 0..pn_len {
        header[pn_offset + i] ^= mask[1 + i];
        pn[8 - pn_len + i] = header[pn_offset + i];
    }
    let mut nonce = keys.iv;
    for (n, p) in nonce[4..].iter_mut().zip(pn) {
        *n ^= p;
    }
    let key = LessSafeKey::new(UnboundKey::new(&AES_128_GCM, &keys.key).ok()?);
    let mut body = packet.get(pn_offset + pn_len..)?.to_vec();
    let plain =
        key.open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(&header[..]), &mut body).ok()?;
    Some(crypto_frames(plain))
}

/// The CRYPTO frames' data among `frames`, joined from offset 0 as far as it is contiguous.
fn crypto_frames(mut frames: &[u8]) -> Vec<u8> {
    let mut pieces: Vec<(usize, &[u8])> = Vec::new();
    for _ in 0..MAX_FRAMES {
        match frames.first() {
            Some(0x00 | 0x01) => frames = &frames[1..],
            Some(0x06) => {
                let Some((offset, rest)) = varint(&frames[1..]) else { break };
                let Some((len, rest)) = varint(rest) else { break };
                let (Ok(offset), Ok(len)) = (usize::try_from(offset), usize::try_from(len)) else { break };
                let Some(data) = rest.get(..len) else { break };
                if offset < MAX_CRYPTO {
                    pieces.push((offset, data));
                }
                frames = &rest[len..];
            }
            _ => break,
        }
    }
    pieces.sort_by_key(|&(offset, _)| offset);
    let mut out = Vec::new();
    for (offset, data) in pieces {
        if offset > out.len() {
            break;
        }
        let skip = out.len() - offset;
        let room = MAX_CRYPTO - out.len();
        if let Some(new) = data.get(skip..) {
            out.extend_from_slice(&new[..new.len().min(room)]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(text: &str) -> Vec<u8> {
        crate::protocol::tests::hex(text)
    }

    /// RFC 9001 A.1: the client's keys for destination connection id 8394c8f03e515708.
    #[test]
    fn rfc9001_client_initial_keys() {
        let keys = client_keys(VERSION_1, &hex("8394c8f03e515708")).expect("keys");
        assert_eq!(keys.key.to_vec(), hex("1f369613dd76d5467730efcbe3b1a22d"));
        assert_eq!(keys.iv.to_vec(), hex("fa044b2f42a3fd3b46fb255c"));
        assert_eq!(keys.hp.to_vec(), hex("9f50449e04a0e810283a1e9933adedd2"));
    }

    /// RFC 9369 A.1: the same for QUIC version 2.
    #[test]
    fn rfc9369_client_initial_keys() {
        let keys = client_keys(VERSION_2, &hex("8394c8f03e515708")).expect("keys");
        assert_eq!(keys.key.to_vec(), hex("8b1a0bc121284290a29e0971b5cd045d"));
        assert_eq!(keys.iv.to_vec(), hex("91f73e2351d8fa91660e909f"));
        assert_eq!(keys.hp.to_vec(), hex("45b95e15235d6f45a6b19cbcb0294ba9"));
    }

    #[test]
    fn crypto_frames_are_joined_in_offset_order() {
        // PADDING, CRYPTO at 3 "def", PING, CRYPTO at 0 "abc", CRYPTO at 10 (a gap).
        let frames = b"\x00\x06\x03\x03def\x01\x06\x00\x03abc\x06\x0a\x01z\x00\x00";
        assert_eq!(crypto_frames(frames), b"abcdef");
        assert_eq!(crypto_frames(b"\x06\x00\x05ab"), b"", "frame cut short");
    }

    #[test]
    fn garbage_after_a_long_header_is_no_hello() {
        let mut p = vec![0xc3, 0, 0, 0, 1, 8, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0x44, 0xd0];
        p.resize(1200, 0x5a);
        assert_eq!(client_hello_of(&p), None);
        assert_eq!(client_hello_of(&p[..40]), None);
    }

    /// A client Initial (v1, 1-byte packet number 2) for `dcid` carrying `frames`,
    /// padded, sealed and header-protected as a client would.
    fn seal_initial(dcid: &[u8], frames: &[u8]) -> Vec<u8> {
        let keys = client_keys(VERSION_1, dcid).expect("keys");
        let mut plain = frames.to_vec();
        plain.resize(1100, 0);
        let mut header = vec![0xc0, 0, 0, 0, 1, u8::try_from(dcid.len()).expect("short")];
        header.extend_from_slice(dcid);
        header.extend_from_slice(&[0, 0]); // no source id, no token
        let length = u16::try_from(1 + plain.len() + 16).expect("short") | 0x4000;
        header.extend_from_slice(&length.to_be_bytes());
        let pn_offset = header.len();
        header.push(2);
        let mut nonce = keys.iv;
        nonce[11] ^= 2;
        let key = LessSafeKey::new(UnboundKey::new(&AES_128_GCM, &keys.key).expect("key"));
        key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(&header[..]), &mut plain)
            .expect("seal");
        let mut packet = header;
        packet.extend_from_slice(&plain);
        let sample = packet[pn_offset + 4..pn_offset + 20].to_vec();
        let mask = HeaderProtectionKey::new(&AES_128, &keys.hp).expect("hp").new_mask(&sample).expect("mask");
        packet[0] ^= mask[0] & 0x0f;
        packet[pn_offset] ^= mask[1];
        packet
    }

    #[test]
    fn whole_client_hello_in_an_initial_gives_a_q_ja4() {
        let record = crate::protocol::tls::tests::client_hello_record(
            b"\x00\x00\x00\x0e\x00\x0c\x00\x00\x09localhost",
        );
        let message = &record[5..];
        // Two CRYPTO frames, second part first.
        let (a, b) = message.split_at(20);
        let mut frames = vec![0x06, 20, u8::try_from(b.len()).expect("short")];
        frames.extend_from_slice(b);
        frames.extend_from_slice(&[0x01, 0x06, 0x00, 20]);
        frames.extend_from_slice(a);
        let packet = seal_initial(&hex("8394c8f03e515708"), &frames);
        let hello = client_hello_of(&packet).expect("a ClientHello");
        assert_eq!(hello.sni.as_deref(), Some("localhost"));
        assert!(hello.ja4.as_deref().is_some_and(|j| j.starts_with("q12d")), "{:?}", hello.ja4);
        let found = crate::protocol::identify(crate::protocol::Transport::Udp, &packet);
        assert_eq!(found.role, crate::protocol::Role::Client);
        let mut tampered = packet.clone();
        tampered[100] ^= 1;
        assert_eq!(client_hello_of(&tampered), None, "the AEAD tag fails");
    }

    /// proto_nonstandard_port/zeek__quic-custom-port-4433.pcap, frame 1: a
    /// client Initial to port 4433; tshark reads its SNI as api.cirrus-ci.com.
    /// Its ClientHello (570 bytes) is split over this Initial and the next
    /// (CRYPTO ranges 0-277, 330-535 and 549-566 here), so it has no JA4.
    #[test]
    fn corpus_client_initial_gives_sni_but_no_ja4_for_a_split_hello() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/corpus/proto_nonstandard_port/zeek__quic-custom-port-4433.pcap");
        let Ok(file) = std::fs::read(&path) else {
            eprintln!("skipped: {} is absent", path.display());
            return;
        };
        let frames = crate::protocol::tests::pcap_frames(&file);
        let (_, payload) =
            crate::protocol::l4_payload(crate::capture::LinkType::Ethernet, frames[0]).expect("a UDP frame");
        let hello = client_hello_of(payload).expect("a ClientHello");
        assert_eq!(hello.sni.as_deref(), Some("api.cirrus-ci.com"));
        assert_eq!(hello.ja4, None);
    }
}
