//! The feature vector of one host in one bucket: what `host_outlier` compares with the host's
//! own distribution and its peer group's.
//!
//! Every feature is a non-negative count or byte total of the bucket, taken from the host's
//! accumulators ([`HostBucket`], its inside part [`super::super::fanout::InsideAcc`]). The
//! models work on `ln(1 + x)`, so a host that moves kilobytes and one that moves gigabytes are
//! judged on the same scale.

use crate::detect::host::HostBucket;

/// Number of features.
pub const F: usize = 18;

/// The features, in vector order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum Feature {
    /// Bytes sent to outside peers.
    BytesOut,
    /// Bytes received from outside peers.
    BytesIn,
    /// Distinct outside peers.
    OutsidePeers,
    /// Outside peers the host had never talked to.
    NewOutsidePeers,
    /// Distinct destination ports of the connections it opened.
    DstPorts,
    /// Connections it opened (inside and outside).
    Connections,
    /// Of those, failed ones.
    FailedConnections,
    /// DNS queries.
    DnsQueries,
    /// Distinct names queried.
    DnsUniqueNames,
    /// Bytes sent to outside peers over UDP (the protocol mix).
    BytesOutUdp,
    /// Bytes sent to outside services on registered and dynamic ports (the port mix).
    BytesOutUnusualPorts,
    /// ICMP echo payload bytes.
    IcmpBytes,
    /// Distinct inside hosts it opened connections to (inside fan-out).
    InsidePeers,
    /// Connections it opened to inside hosts.
    InsideConnections,
    /// Bytes it sent to inside hosts.
    InsideBytesOut,
    /// Connections to inside hosts on administrative services (SMB, RDP, WinRM, SSH, DCE-RPC).
    AdminConnections,
    /// Inside hosts it used an administrative service with for the first time.
    NewAdminPeers,
    /// Distinct clients it answered (how much of a server it is).
    ServedClients,
}

impl Feature {
    /// Every feature, in vector order.
    pub const ALL: [Self; F] = [
        Self::BytesOut,
        Self::BytesIn,
        Self::OutsidePeers,
        Self::NewOutsidePeers,
        Self::DstPorts,
        Self::Connections,
        Self::FailedConnections,
        Self::DnsQueries,
        Self::DnsUniqueNames,
        Self::BytesOutUdp,
        Self::BytesOutUnusualPorts,
        Self::IcmpBytes,
        Self::InsidePeers,
        Self::InsideConnections,
        Self::InsideBytesOut,
        Self::AdminConnections,
        Self::NewAdminPeers,
        Self::ServedClients,
    ];

    /// The name alerts give it.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::BytesOut => "bytes_out",
            Self::BytesIn => "bytes_in",
            Self::OutsidePeers => "outside_peers",
            Self::NewOutsidePeers => "new_outside_peers",
            Self::DstPorts => "dst_ports",
            Self::Connections => "connections",
            Self::FailedConnections => "failed_connections",
            Self::DnsQueries => "dns_queries",
            Self::DnsUniqueNames => "dns_unique_names",
            Self::BytesOutUdp => "bytes_out_udp",
            Self::BytesOutUnusualPorts => "bytes_out_unusual_ports",
            Self::IcmpBytes => "icmp_bytes",
            Self::InsidePeers => "inside_peers",
            Self::InsideConnections => "inside_connections",
            Self::InsideBytesOut => "inside_bytes_out",
            Self::AdminConnections => "admin_connections",
            Self::NewAdminPeers => "new_admin_peers",
            Self::ServedClients => "served_clients",
        }
    }

    /// Whether the feature counts bytes (alerts print those with units).
    #[must_use]
    pub fn is_bytes(self) -> bool {
        matches!(
            self,
            Self::BytesOut
                | Self::BytesIn
                | Self::BytesOutUdp
                | Self::BytesOutUnusualPorts
                | Self::IcmpBytes
                | Self::InsideBytesOut
        )
    }
}

/// The bucket's raw feature values.
#[must_use]
pub fn raw(b: &HostBucket) -> [f64; F] {
    let i = &b.inside;
    let mut v = [0.0; F];
    for f in Feature::ALL {
        v[f as usize] = match f {
            Feature::BytesOut => b.bytes_out as f64,
            Feature::BytesIn => b.bytes_in as f64,
            Feature::OutsidePeers => b.peers.len() as f64,
            Feature::NewOutsidePeers => b.new_peers as f64,
            Feature::DstPorts => b.dst_ports.len() as f64,
            Feature::Connections => b.connections as f64,
            Feature::FailedConnections => b.failed as f64,
            Feature::DnsQueries => b.dns_queries as f64,
            Feature::DnsUniqueNames => b.dns_names.len() as f64,
            Feature::BytesOutUdp => b.out_by_transport[1] as f64,
            Feature::BytesOutUnusualPorts => (b.out_by_port_class[1] + b.out_by_port_class[2]) as f64,
            Feature::IcmpBytes => b.icmp_bytes as f64,
            Feature::InsidePeers => i.peers.len() as f64,
            Feature::InsideConnections => i.connections as f64,
            Feature::InsideBytesOut => i.bytes_out as f64,
            Feature::AdminConnections => i.admin_connections as f64,
            Feature::NewAdminPeers => i.new_admin_peers.len() as f64,
            Feature::ServedClients => i.served.len() as f64,
        };
    }
    v
}

/// `ln(1 + x)` of every value.
#[must_use]
pub fn logs(x: &[f64; F]) -> [f64; F] {
    let mut y = [0.0; F];
    for (o, v) in y.iter_mut().zip(x) {
        *o = v.max(0.0).ln_1p();
    }
    y
}

/// A value for messages: bytes with a unit, counts as integers.
#[must_use]
pub fn show(f: Feature, x: f64) -> String {
    if !f.is_bytes() {
        return format!("{}", x.round());
    }
    match x {
        x if x >= 1e9 => format!("{:.1} GB", x / 1e9),
        x if x >= 1e6 => format!("{:.1} MB", x / 1e6),
        x if x >= 1e3 => format!("{:.0} kB", x / 1e3),
        x => format!("{x:.0} B"),
    }
}
