//! TCP flag bits, as on the wire (the 14th byte of the TCP header): the one
//! definition the decoder, the flow table, the observer, capture-loss tracking
//! and the traffic generator share.

/// FIN.
pub const FIN: u8 = 0x01;
/// SYN.
pub const SYN: u8 = 0x02;
/// RST.
pub const RST: u8 = 0x04;
/// PSH.
pub const PSH: u8 = 0x08;
/// ACK.
pub const ACK: u8 = 0x10;
/// URG.
pub const URG: u8 = 0x20;
