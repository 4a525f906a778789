//! Why a packet could not be decoded: a small `Copy` enum, one counter each.

/// The reason a frame was counted as malformed instead of being accounted to
/// a flow. The decoder never panics on wire bytes; every failure is one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Malformed {
    /// A frame with no bytes at all.
    Empty,
    /// Shorter than its link-layer header (Ethernet, cooked, loopback).
    TruncatedLink,
    /// An 802.1Q/802.1ad tag cut short.
    TruncatedVlan,
    /// A BSD loopback header with an address family that is not IP.
    BadLoopbackFamily,
    /// The IP header is cut short.
    TruncatedIp,
    /// The IP version nibble is neither 4 nor 6.
    BadIpVersion,
    /// The IPv4 header is inconsistent (IHL below 5, total length below the header).
    BadIpHeader,
    /// An IPv6 extension header (or IPv4 authentication header) is cut or bogus.
    BadIpExtension,
    /// The transport header is too short to hold ports (or ICMP type/code).
    TruncatedTransport,
    /// A TCP header whose data offset is below 5 words.
    BadTcpHeader,
    /// A GRE, ERSPAN or VXLAN header that is cut short or of an unknown version.
    BadTunnel,
    /// Tunnels nested deeper than the decoder follows.
    TunnelTooDeep,
}

impl Malformed {
    /// Every reason, in counter order.
    pub const ALL: [Self; 12] = [
        Self::Empty,
        Self::TruncatedLink,
        Self::TruncatedVlan,
        Self::BadLoopbackFamily,
        Self::TruncatedIp,
        Self::BadIpVersion,
        Self::BadIpHeader,
        Self::BadIpExtension,
        Self::TruncatedTransport,
        Self::BadTcpHeader,
        Self::BadTunnel,
        Self::TunnelTooDeep,
    ];

    /// Number of reasons.
    pub const COUNT: usize = Self::ALL.len();

    /// The reason's name in statistics and logs.
    pub fn name(self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::TruncatedLink => "truncated_link",
            Self::TruncatedVlan => "truncated_vlan",
            Self::BadLoopbackFamily => "bad_loopback_family",
            Self::TruncatedIp => "truncated_ip",
            Self::BadIpVersion => "bad_ip_version",
            Self::BadIpHeader => "bad_ip_header",
            Self::BadIpExtension => "bad_ip_extension",
            Self::TruncatedTransport => "truncated_transport",
            Self::BadTcpHeader => "bad_tcp_header",
            Self::BadTunnel => "bad_tunnel",
            Self::TunnelTooDeep => "tunnel_too_deep",
        }
    }

    /// Index into a counter array of [`Self::COUNT`] slots.
    pub fn index(self) -> usize {
        self as usize
    }
}
