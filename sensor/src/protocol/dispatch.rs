//! Which identifiers a payload is offered to, and in what order: the
//! switchboard of [`super::identify`], and its cost.
//!
//! Most protocols fix their first byte (a TLS content type, a SOCKS version,
//! an ASN.1 tag, a letter), so the first byte and the transport pick a short
//! list of candidates, each of which rejects a stranger within a few byte
//! compares. Protocols whose first byte can be anything (a length or an id:
//! MySQL, MongoDB and DNS over TCP; IKE, NetBIOS, DNS and NTP over UDP) are
//! asked after the first-byte candidates, strictest first, so the more
//! specific checks get the first word. Nothing is allocated until a
//! candidate has matched.
//!
//! Order matters where two formats can read the same bytes: SIP and RTSP
//! before HTTP (a cut `OPTIONS` line), NetBIOS name service before DNS
//! (same header), DNS before NTP (a 48-byte DNS message can look like an NTP
//! header; no NTP header reads as DNS), SMTP and FTP before POP3, IMAP, IRC
//! and Redis.

use super::model::Protocol;
use super::{
    amqp, banner, bittorrent, dhcp, dns, http, ike, irc, kerberos, ldap, mailbox, mongodb, mqtt, mssql,
    mysql, netbios, ntp, openvpn, postgres, quic, rdp, redis, shell, sip_rtsp, smb, snmp, socks, stun,
    syslog, telnet, tftp, tls, vnc, wireguard, xmpp,
};

/// A TCP payload's protocol.
pub(super) fn tcp(payload: &[u8]) -> Option<Protocol> {
    let first = *payload.first()?;
    let by_first = match first {
        0x00 => smb::identify(payload)
            .or_else(|| postgres::identify(payload))
            .or_else(|| kerberos::identify_tcp(payload))
            .or_else(|| openvpn::identify_tcp(payload))
            .or_else(|| socks::identify(payload)),
        0x01 => amqp::identify(payload),
        0x03 => rdp::identify(payload),
        0x04 => socks::identify(payload).or_else(|| mssql::identify(payload)),
        0x05 => socks::identify(payload),
        0x10 | 0x20 => mqtt::identify(payload),
        0x12 => mssql::identify(payload),
        0x13 => bittorrent::identify_tcp(payload),
        0x14..=0x17 => tls::identify(payload),
        // 0x30 is also the digit 0.
        0x30 => ldap::identify(payload).or_else(|| digits(payload)),
        0x81..=0x83 => netbios::identify_tcp(payload),
        0xff => telnet::identify(payload),
        b'*' => mailbox::identify(payload).or_else(|| redis::identify(payload)),
        b'+' => mailbox::identify(payload).or_else(|| redis::identify(payload)),
        b'-' | b'%' => redis::identify(payload),
        b':' => irc::identify(payload),
        b'<' => syslog::identify(payload, true).or_else(|| xmpp::identify(payload)),
        b'1'..=b'9' => digits(payload),
        b'A'..=b'Z' | b'a'..=b'z' => letters(payload),
        b'/' | b'\r' | b'\n' => shell::identify(payload),
        _ => None,
    };
    by_first
        .or_else(|| mysql::identify(payload))
        .or_else(|| mongodb::identify(payload))
        .or_else(|| dns::identify_tcp(payload))
}

/// Text protocols over TCP that start with a digit: greetings, octet-counted
/// syslog, IMAP commands with a numeric tag.
fn digits(payload: &[u8]) -> Option<Protocol> {
    banner::smtp_or_ftp(payload)
        .or_else(|| syslog::identify(payload, true))
        .or_else(|| mailbox::identify(payload))
}

/// Text protocols over TCP, by their first letter's candidates.
fn letters(payload: &[u8]) -> Option<Protocol> {
    banner::ssh(payload)
        .or_else(|| vnc::identify(payload))
        .or_else(|| amqp::identify(payload))
        .or_else(|| sip_rtsp::identify(payload))
        .or_else(|| http::identify(payload))
        .or_else(|| banner::smtp_or_ftp(payload))
        .or_else(|| mailbox::identify(payload))
        .or_else(|| irc::identify(payload))
        .or_else(|| redis::identify(payload))
        .or_else(|| postgres::identify(payload))
        .or_else(|| shell::identify(payload))
}

/// A UDP payload's protocol.
pub(super) fn udp(payload: &[u8]) -> Option<Protocol> {
    let first = *payload.first()?;
    let by_first = match first {
        0x00 => tftp::identify(payload).or_else(|| stun::identify(payload)),
        0x01 | 0x02 => dhcp::identify(payload)
            .or_else(|| stun::identify(payload))
            .or_else(|| wireguard::identify(payload)),
        0x03 | 0x04 => wireguard::identify(payload),
        0x08 | 0x10 | 0x38 | 0x40 | 0x50 => openvpn::identify_udp(payload),
        0x30 => snmp::identify(payload).or_else(|| ldap::identify(payload)),
        0x6a..=0x6d | 0x7e => kerberos::identify_udp(payload),
        0x80..=0xff => quic::identify(payload),
        b'<' => syslog::identify(payload, false),
        b'd' => bittorrent::identify_udp(payload),
        b'A'..=b'Z' | b'a'..=b'z' => sip_rtsp::identify(payload).or_else(|| http::identify(payload)),
        _ => None,
    };
    by_first
        .or_else(|| quic::identify_google(payload))
        .or_else(|| ike::identify(payload))
        .or_else(|| netbios::identify_udp(payload))
        .or_else(|| dns::identify_udp(payload))
        .or_else(|| ntp::identify(payload))
}
