//! NTP (RFC 5905): a 48-byte header, maybe followed by extension fields or
//! a MAC.
//!
//! Matched by hand: the first byte's version 1 to 4 and mode 1 to 5
//! (symmetric active and passive, client, server, broadcast); stratum at
//! most 16; poll from −6 to 17 (as a signed byte); precision from −32 to 0;
//! the root delay's and root dispersion's whole seconds under 256 (their
//! first byte zero); a length of 48, 68 or 72 (key id and MD5 or SHA-1 MAC),
//! or 48 and whole extension fields (a multiple of four). Control (mode 6)
//! and private (mode 7, monlist) messages have other formats and are not
//! taken.
//!
//! Role: mode 3 (client) and 1 (symmetric active) are the client's; mode 4
//! (server) and 5 (broadcast) the server's; mode 2 either.

use super::Protocol;
use super::model::{App, Role};

/// The header's size.
pub const HEADER_LEN: usize = 48;

/// [`App::Ntp`] for an NTP packet.
pub(super) fn identify(payload: &[u8]) -> Option<Protocol> {
    let header = payload.get(..HEADER_LEN)?;
    let version = (header[0] >> 3) & 0x07;
    let mode = header[0] & 0x07;
    let poll = i8::from_ne_bytes([header[2]]);
    let precision = i8::from_ne_bytes([header[3]]);
    let len = payload.len();
    let length_ok = matches!(len, 48 | 68 | 72) || (len > 48 && len.is_multiple_of(4) && len <= 1024);
    let plausible = (1..=4).contains(&version)
        && (1..=5).contains(&mode)
        && header[1] <= 16
        && (-6..=17).contains(&poll)
        && (-32..=0).contains(&precision)
        && header[4] == 0
        && header[8] == 0
        && length_ok;
    if !plausible {
        return None;
    }
    let role = match mode {
        1 | 3 => Role::Client,
        4 | 5 => Role::Server,
        _ => Role::Either,
    };
    Some(Protocol::new(App::Ntp { version, mode }, role))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_and_server_packets() {
        // An NTPv4 client request (benign_mixed/ndpi__NTPv4.pcap's shape).
        let mut request = [0u8; 48];
        request[..4].copy_from_slice(&[0x23, 0x00, 0x06, 0xec]);
        request[40..48].copy_from_slice(&[0xe8, 0x3b, 0x0d, 0x7a, 0x12, 0x34, 0x56, 0x78]);
        assert_eq!(identify(&request), Some(Protocol::new(App::Ntp { version: 4, mode: 3 }, Role::Client)));
        let mut reply = request;
        reply[..4].copy_from_slice(&[0x24, 0x02, 0x06, 0xe9]);
        reply[12..16].copy_from_slice(b"GPS\0");
        assert_eq!(identify(&reply), Some(Protocol::new(App::Ntp { version: 4, mode: 4 }, Role::Server)));
        // SNTP's minimal request: only the first byte set.
        let mut sntp = [0u8; 48];
        sntp[0] = 0x1b;
        assert_eq!(identify(&sntp).map(|p| p.role), Some(Role::Client));
    }

    #[test]
    fn implausible_headers_are_not_ntp() {
        let mut p = [0u8; 48];
        p[0] = 0x17; // mode 7 (private)
        assert_eq!(identify(&p), None);
        p[0] = 0x3b; // version 7
        assert_eq!(identify(&p), None);
        p[0] = 0x1b;
        p[1] = 17;
        assert_eq!(identify(&p), None, "stratum 17");
        p[1] = 2;
        p[4] = 1;
        assert_eq!(identify(&p), None, "root delay of minutes");
        assert_eq!(identify(&[0x1b; 47]), None, "short");
        let mut long = vec![0u8; 49];
        long[0] = 0x1b;
        assert_eq!(identify(&long), None, "49 bytes");
    }
}
