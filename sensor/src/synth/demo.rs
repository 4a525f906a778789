//! The demo scenario: ten minutes of a small office network, generated from a
//! seed. Inside hosts 10.0.0.10–29 browse (TLS on 443), resolve names against
//! the office resolver 10.0.0.53, sync time, and ping. Along the way: one
//! host uploads for several minutes (interim records), a connection is reset,
//! a flow runs on VLAN 100 and one in a QinQ frame, one inside GRE, one inside
//! VXLAN, an IPv6 flow, a fragmented datagram, an ARP frame and two malformed
//! frames, so the demo shows every part of the flow pipeline at work.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::synth::{Rng, Timeline, dns_query, echo, ethernet, gre, ipv4_fragment, udp, vxlan};

/// 2026-01-01T00:00:00Z, ns since the epoch.
pub const START_NS: u64 = 1_767_225_600_000_000_000;
/// Length of the scenario.
pub const DURATION_NS: u64 = 600_000_000_000;

const SEC: u64 = 1_000_000_000;

fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

/// Builds the demo timeline from `seed`.
pub fn timeline(seed: u64) -> Timeline {
    let mut rng = Rng::new(seed);
    let mut tl = Timeline::default();
    let resolver = v4(10, 0, 0, 53);
    let web: Vec<IpAddr> = (1..=8).map(|i| v4(198, 51, 100, i * 10)).collect();
    let names = ["intranet.example", "mail.example.org", "cdn.example.net", "updates.example.com"];

    for host in 10..30u8 {
        let client = v4(10, 0, 0, host);
        let mut t = START_NS + rng.below(20 * SEC);
        while t < START_NS + DURATION_NS - 30 * SEC {
            // A name lookup, then a short TLS session to a web server.
            let id = rng.below(65_536) as u16;
            let sport = 30_000 + rng.below(30_000) as u16;
            let name = names[rng.below(names.len() as u64) as usize];
            tl.push(t, ethernet(&[], &udp((client, sport), (resolver, 53), &dns_query(id, name))));
            let mut answer = dns_query(id, name);
            answer[2] = 0x81;
            answer[3] = 0x80;
            answer.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0x0e, 0x10, 0, 4, 198, 51, 100, 10]);
            tl.push(t + 3_000_000, ethernet(&[], &udp((resolver, 53), (client, sport), &answer)));
            let server = web[rng.below(web.len() as u64) as usize];
            let cport = 40_000 + rng.below(20_000) as u16;
            let exchanges: Vec<(usize, usize)> = (0..1 + rng.below(4))
                .map(|_| (300 + rng.below(900) as usize, 2_000 + rng.below(40_000) as usize))
                .collect();
            let end = tl.tcp_session(
                &[],
                (client, cport),
                (server, 443),
                t + 5_000_000,
                &exchanges,
                200_000_000,
                false,
            );
            t = end + (5 + rng.below(40)) * SEC;
        }
        // Time sync every 64 s.
        let ntp = v4(192, 0, 2, 123);
        let mut t = START_NS + u64::from(host) * SEC;
        while t < START_NS + DURATION_NS {
            tl.push(t, ethernet(&[], &udp((client, 123), (ntp, 123), &[0x23; 48])));
            tl.push(t + 20_000_000, ethernet(&[], &udp((ntp, 123), (client, 123), &[0x24; 48])));
            t += 64 * SEC;
        }
    }

    // Pings: 10.0.0.11 checks the gateway once a second for a minute.
    for seq in 0..60u16 {
        let t = START_NS + 30 * SEC + u64::from(seq) * SEC;
        let (a, b) = (v4(10, 0, 0, 11), v4(10, 0, 0, 1));
        tl.push(t, ethernet(&[], &echo(a, b, true, 0x1234, seq, &[0x61; 56])));
        tl.push(t + 400_000, ethernet(&[], &echo(b, a, false, 0x1234, seq, &[0x61; 56])));
    }

    // A long upload: 10.0.0.66 sends ~40 MB to 203.0.113.50:443 over 200 s.
    let uploads: Vec<(usize, usize)> = (0..200).map(|_| (200_000, 1_400)).collect();
    tl.tcp_session(
        &[],
        (v4(10, 0, 0, 66), 51_000),
        (v4(203, 0, 113, 50), 443),
        START_NS + 120 * SEC,
        &uploads,
        SEC,
        false,
    );

    // A refused-then-reset connection, a flow on VLAN 100 and one in QinQ.
    tl.tcp_session(
        &[],
        (v4(10, 0, 0, 12), 52_000),
        (v4(198, 51, 100, 99), 8443),
        START_NS + 60 * SEC,
        &[(100, 0)],
        SEC,
        true,
    );
    tl.tcp_session(
        &[100],
        (v4(10, 0, 1, 20), 53_000),
        (v4(10, 0, 2, 30), 445),
        START_NS + 90 * SEC,
        &[(4_000, 60_000)],
        SEC,
        false,
    );
    tl.tcp_session(
        &[200, 300],
        (v4(10, 0, 3, 20), 53_001),
        (v4(198, 51, 100, 7), 80),
        START_NS + 95 * SEC,
        &[(500, 9_000)],
        SEC,
        false,
    );

    // IPv6: an inside host talks TLS to a documentation-range server.
    let (c6, s6) = (
        IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0x10)),
        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x80)),
    );
    tl.tcp_session(
        &[],
        (c6, 54_000),
        (s6, 443),
        START_NS + 150 * SEC,
        &[(700, 15_000), (300, 2_000)],
        SEC,
        false,
    );

    // Tunnels: a DNS exchange inside GRE, and one inside VXLAN.
    let (g1, g2) = (v4(10, 0, 0, 250), v4(192, 0, 2, 250));
    let inner_q = udp((v4(172, 16, 0, 5), 33_333), (v4(172, 16, 9, 9), 53), &dns_query(7, "tunnel.example"));
    tl.push(START_NS + 200 * SEC, ethernet(&[], &gre(g1, g2, &inner_q)));
    let inner_frame = ethernet(
        &[],
        &udp((v4(172, 17, 0, 5), 44_444), (v4(172, 17, 9, 9), 53), &dns_query(8, "overlay.example")),
    );
    tl.push(START_NS + 201 * SEC, ethernet(&[], &vxlan(g1, g2, 42, &inner_frame)));

    // A UDP datagram in two IPv4 fragments (first carries the UDP header).
    let mut first = vec![0x9c, 0x40, 0x13, 0x89, 0x05, 0xdc, 0, 0];
    first.extend_from_slice(&[0x66; 1472]);
    tl.push(
        START_NS + 210 * SEC,
        ethernet(&[], &ipv4_fragment([10, 0, 0, 14], [198, 51, 100, 30], 17, 0x4242, 0, true, &first)),
    );
    tl.push(
        START_NS + 210 * SEC + 10_000,
        ethernet(
            &[],
            &ipv4_fragment([10, 0, 0, 14], [198, 51, 100, 30], 17, 0x4242, 185, false, &[0x66; 20]),
        ),
    );

    // Not IP: an ARP request.
    let mut arp = vec![0xff; 6];
    arp.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x01, 0x08, 0x06]);
    arp.extend_from_slice(&[
        0, 1, 8, 0, 6, 4, 0, 1, 2, 0, 0, 0, 0, 1, 10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 10, 0, 0, 2,
    ]);
    tl.push(START_NS + 5 * SEC, arp);
    // Malformed: an IPv4 header cut after 10 bytes, and a TCP header whose
    // data offset is 2 words.
    let mut cut = ethernet(&[], &udp((v4(10, 0, 0, 15), 1), (v4(10, 0, 0, 16), 2), &[]));
    cut.truncate(24);
    tl.push(START_NS + 6 * SEC, cut);
    let mut bad =
        ethernet(&[], &crate::synth::tcp((v4(10, 0, 0, 15), 1), (v4(10, 0, 0, 16), 2), 0x02, 1, 0, &[]));
    bad[14 + 20 + 12] = 0x20;
    tl.push(START_NS + 7 * SEC, bad);
    tl
}
