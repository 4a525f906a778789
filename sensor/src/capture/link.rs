//! Link types the decoder reads, and the mapping from pcap's LINKTYPE_ values.

use crate::capture::CaptureError;

/// The link-layer framing a captured frame starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkType {
    /// Ethernet II (LINKTYPE_ETHERNET, 1).
    Ethernet,
    /// BSD loopback: a 4-byte address family in the writer's byte order
    /// (LINKTYPE_NULL, 0).
    Null,
    /// OpenBSD loopback: a 4-byte address family in network byte order
    /// (LINKTYPE_LOOP, 108).
    Loop,
    /// Raw IPv4 or IPv6, version taken from the first nibble
    /// (LINKTYPE_RAW 101, DLT_RAW 12 and 14, LINKTYPE_IPV4 228, LINKTYPE_IPV6 229).
    Raw,
    /// Linux cooked capture v1 (LINKTYPE_LINUX_SLL, 113).
    LinuxSll,
    /// Linux cooked capture v2 (LINKTYPE_LINUX_SLL2, 276).
    LinuxSll2,
}

/// The supported link types, for error messages.
pub const SUPPORTED: &str = "ETHERNET (1), NULL (0), LOOP (108), RAW (101, 12, 14), IPV4 (228), \
                             IPV6 (229), LINUX_SLL (113), LINUX_SLL2 (276)";

impl LinkType {
    /// Maps a LINKTYPE_ number to a link type, or an error naming it.
    pub fn from_linktype(value: i32, origin: &str) -> Result<Self, CaptureError> {
        Ok(match value {
            1 => Self::Ethernet,
            0 => Self::Null,
            108 => Self::Loop,
            101 | 12 | 14 | 228 | 229 => Self::Raw,
            113 => Self::LinuxSll,
            276 => Self::LinuxSll2,
            other => {
                return Err(CaptureError::UnsupportedLinkType {
                    path: origin.to_owned(),
                    linktype: other,
                    name: linktype_name(other),
                    supported: SUPPORTED,
                });
            }
        })
    }
}

/// Names of common link types that the sensor does not read, so that the
/// error says what the file is rather than only a number.
fn linktype_name(value: i32) -> &'static str {
    match value {
        6 => "IEEE802_5 token ring",
        9 => "PPP",
        10 => "FDDI",
        50 => "PPP_HDLC",
        104 => "C_HDLC",
        105 => "IEEE802_11",
        119 => "PRISM_HEADER",
        127 => "IEEE802_11_RADIOTAP",
        147..=162 => "USER",
        163 => "IEEE802_11_AVS",
        187 => "BLUETOOTH_HCI_H4",
        189 => "USB_LINUX",
        192 => "PPI",
        195 => "IEEE802_15_4",
        201 => "BLUETOOTH_HCI_H4_WITH_PHDR",
        220 => "USB_LINUX_MMAPPED",
        239 => "NFLOG",
        249 => "USBPCAP",
        _ => "unknown",
    }
}
