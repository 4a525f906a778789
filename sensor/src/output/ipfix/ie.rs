//! The information elements the exporter sends, and the templates built from them.
//!
//! Standard elements are IANA's "IPFIX Information Elements" registry (RFC 7012); NetFlow v9
//! field types 1–127 are the same numbers (RFC 3954 §8). Reverse elements of a biflow are the
//! forward element's number with the enterprise bit set under PEN 29305 (RFC 5103 §6.1).
//!
//! Sensor-specific elements live under [`NBAD_PEN`] = 32473, the private enterprise number that
//! RFC 5612 reserves for documentation and examples. It is a placeholder: a deployment that
//! keeps these elements in a flow store for long should have a PEN registered and set here.
//! They are sent in IPFIX only (NetFlow v9 has no enterprise elements).
//!
//! | element | number | PEN | length | filled from |
//! |---|---:|---:|---:|---|
//! | octetDeltaCount | 1 | – | 8 | client (biflow) or this direction's IP bytes |
//! | packetDeltaCount | 2 | – | 8 | client (biflow) or this direction's packets |
//! | protocolIdentifier | 4 | – | 1 | key |
//! | tcpControlBits | 6 | – | 2 (v9: 1) | union of this direction's flags |
//! | sourceTransportPort | 7 | – | 2 | key (0 without ports) |
//! | sourceIPv4Address / sourceIPv6Address | 8 / 27 | – | 4 / 16 | key |
//! | destinationTransportPort | 11 | – | 2 | key (0 without ports) |
//! | destinationIPv4Address / destinationIPv6Address | 12 / 28 | – | 4 / 16 | key |
//! | vlanId | 58 | – | 2 | outer 802.1Q tag (0: none) |
//! | flowEndReason | 136 | – | 1 | [`end_reason`] |
//! | flowStartMilliseconds / flowEndMilliseconds | 152 / 153 | – | 8 | record times |
//! | biflowDirection | 239 | – | 1 | 1 initiator (client → server), 2 reverse initiator |
//! | dot1qCustomerVlanId | 245 | – | 2 | inner (QinQ) tag (0: none) |
//! | reverseOctetDeltaCount | 1 | 29305 | 8 | server's IP bytes (biflow) |
//! | reversePacketDeltaCount | 2 | 29305 | 8 | server's packets (biflow) |
//! | reverseTcpControlBits | 6 | 29305 | 2 | server's flags (biflow) |
//! | nbadCommunityId | 1 | 32473 | 30 | Community ID v1, seed 0 (always 30 characters) |
//! | nbadTlsSni | 2 | 32473 | variable | defined, not sent: flow records do not carry SNI yet |
//! | nbadJa4 | 3 | 32473 | 36 | defined, not sent: flow records do not carry JA4 yet |
//! | nbadRiskScore | 4 | 32473 | 1 | defined, not sent: alerts are raised after the record leaves |
//! | applicationName | 96 | – | variable | defined, not sent: flow records do not carry the application yet |

use crate::flow::EndReason;

/// RFC 5103's PEN for reverse information elements.
pub const REVERSE_PEN: u32 = 29305;
/// The PEN of the sensor's own elements: RFC 5612's documentation PEN, a placeholder.
pub const NBAD_PEN: u32 = 32473;

/// Element numbers of the sensor's own elements under [`NBAD_PEN`].
pub mod nbad {
    /// Community ID v1 string (30 octets).
    pub const COMMUNITY_ID: u16 = 1;
    /// TLS server name (variable length). Reserved until flow records carry it.
    pub const TLS_SNI: u16 = 2;
    /// JA4 client fingerprint (36 octets). Reserved until flow records carry it.
    pub const JA4: u16 = 3;
    /// Risk score 0–100 of an alert raised on the flow. Reserved.
    pub const RISK_SCORE: u16 = 4;
}

/// IANA element numbers used here.
pub mod iana {
    pub const OCTET_DELTA_COUNT: u16 = 1;
    pub const PACKET_DELTA_COUNT: u16 = 2;
    pub const PROTOCOL_IDENTIFIER: u16 = 4;
    pub const TCP_CONTROL_BITS: u16 = 6;
    pub const SOURCE_TRANSPORT_PORT: u16 = 7;
    pub const SOURCE_IPV4_ADDRESS: u16 = 8;
    pub const DESTINATION_TRANSPORT_PORT: u16 = 11;
    pub const DESTINATION_IPV4_ADDRESS: u16 = 12;
    pub const SOURCE_IPV6_ADDRESS: u16 = 27;
    pub const DESTINATION_IPV6_ADDRESS: u16 = 28;
    pub const VLAN_ID: u16 = 58;
    pub const APPLICATION_NAME: u16 = 96;
    pub const FLOW_END_REASON: u16 = 136;
    pub const FLOW_START_MILLISECONDS: u16 = 152;
    pub const FLOW_END_MILLISECONDS: u16 = 153;
    pub const BIFLOW_DIRECTION: u16 = 239;
    pub const DOT1Q_CUSTOMER_VLAN_ID: u16 = 245;
}

/// The Community ID v1 string's length: `1:` and 28 base64 characters of a SHA-1.
pub const COMMUNITY_ID_LEN: u16 = 30;

/// Template ids: one per address family (a template fixes the address lengths).
pub const TEMPLATE_V4: u16 = 256;
/// See [`TEMPLATE_V4`].
pub const TEMPLATE_V6: u16 = 257;

/// Which wire format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// IPFIX, RFC 7011 (version 10).
    Ipfix,
    /// NetFlow version 9, RFC 3954.
    NetflowV9,
}

impl Protocol {
    /// The name in the configuration file.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Ipfix => "ipfix",
            Self::NetflowV9 => "netflow9",
        }
    }
}

/// How one flow record becomes data records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordMode {
    /// One record per flow record, client → server, with RFC 5103 reverse counters (IPFIX only).
    Biflow,
    /// One record per direction that sent packets.
    Unidirectional,
}

impl RecordMode {
    /// The name in the configuration file.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Biflow => "biflow",
            Self::Unidirectional => "unidirectional",
        }
    }
}

/// One field specifier of a template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    /// Element number (without the enterprise bit).
    pub id: u16,
    /// Encoded length in octets.
    pub len: u16,
    /// Private enterprise number, for enterprise-specific elements.
    pub pen: Option<u32>,
}

const fn std(id: u16, len: u16) -> Field {
    Field { id, len, pen: None }
}

const fn reverse(id: u16, len: u16) -> Field {
    Field { id, len, pen: Some(REVERSE_PEN) }
}

/// The fields of a template, in encoding order. The data encoder writes the same order.
#[must_use]
pub fn fields(protocol: Protocol, mode: RecordMode, v6: bool) -> Vec<Field> {
    use iana::*;
    let ipfix = protocol == Protocol::Ipfix;
    let (src, dst, alen) = if v6 {
        (SOURCE_IPV6_ADDRESS, DESTINATION_IPV6_ADDRESS, 16)
    } else {
        (SOURCE_IPV4_ADDRESS, DESTINATION_IPV4_ADDRESS, 4)
    };
    let mut f = vec![
        std(src, alen),
        std(dst, alen),
        std(SOURCE_TRANSPORT_PORT, 2),
        std(DESTINATION_TRANSPORT_PORT, 2),
        std(PROTOCOL_IDENTIFIER, 1),
        std(VLAN_ID, 2),
        std(OCTET_DELTA_COUNT, 8),
        std(PACKET_DELTA_COUNT, 8),
        std(FLOW_START_MILLISECONDS, 8),
        std(FLOW_END_MILLISECONDS, 8),
        // tcpControlBits is unsigned16 in IPFIX (RFC 7125); NetFlow v9 has one octet.
        std(TCP_CONTROL_BITS, if ipfix { 2 } else { 1 }),
        std(FLOW_END_REASON, 1),
    ];
    if ipfix {
        f.push(std(DOT1Q_CUSTOMER_VLAN_ID, 2));
        f.push(std(BIFLOW_DIRECTION, 1));
        if mode == RecordMode::Biflow {
            f.push(reverse(OCTET_DELTA_COUNT, 8));
            f.push(reverse(PACKET_DELTA_COUNT, 8));
            f.push(reverse(TCP_CONTROL_BITS, 2));
        }
        f.push(Field { id: nbad::COMMUNITY_ID, len: COMMUNITY_ID_LEN, pen: Some(NBAD_PEN) });
    }
    f
}

/// Encoded length of one data record of a template.
#[must_use]
pub fn record_len(fields: &[Field]) -> usize {
    fields.iter().map(|f| usize::from(f.len)).sum()
}

/// flowEndReason (IANA): 1 idle timeout, 2 active timeout, 3 end of flow detected, 4 forced
/// end, 5 lack of resources.
#[must_use]
pub fn end_reason(r: EndReason) -> u8 {
    match r {
        EndReason::IdleTimeout => 1,
        EndReason::ActiveTimeout => 2,
        EndReason::TcpClose | EndReason::TcpReset => 3,
        EndReason::EndOfCapture | EndReason::Shutdown => 4,
        EndReason::Evicted => 5,
    }
}
