//! SMB 1, 2 and 3 after the 4-byte NetBIOS session (or direct TCP) header.
//!
//! Matched by hand (MS-SMB2 2.2.1, MS-SMB 2.2.3.1): a session message
//! header (type 0, a 17-bit length from the header size to 2^17 − 1 that
//! covers the bytes), then one of:
//!
//! - `\xfeSMB` with structure size 64: SMB 2/3; the command (0 NEGOTIATE to
//!   18 OPLOCK_BREAK), the response flag, and for a NEGOTIATE response the
//!   dialect chosen;
//! - `\xffSMB`: SMB 1; the command byte and the reply flag;
//! - `\xfdSMB`: an SMB 3 transform header (encrypted message), version 3.
//!
//! Role: a response (SMB2 flag SERVER_TO_REDIR, SMB1 flag REPLY) is the
//! server's, a request the client's; an encrypted transform either side's.

use super::Protocol;
use super::model::{App, Role};
use super::text::le16;

/// SMB2 header size.
const SMB2_HEADER: usize = 64;
/// SMB2 NEGOTIATE command.
const NEGOTIATE: u16 = 0;
/// Largest SMB2 command number.
const MAX_COMMAND: u16 = 18;

/// [`App::Smb`] when `payload` starts a NetBIOS session message carrying SMB.
pub(super) fn identify(payload: &[u8]) -> Option<Protocol> {
    let header: &[u8; 4] = payload.first_chunk()?;
    if header[0] != 0 || header[1] & 0xfe != 0 {
        return None;
    }
    let len = usize::from(header[1] & 1) << 16 | usize::from(u16::from_be_bytes([header[2], header[3]]));
    let smb = &payload[4..];
    if len < 32 || smb.len() > len {
        return None;
    }
    let (app, role) = match smb.get(..4)? {
        b"\xfeSMB" => {
            if le16(smb, 4)? != 64 {
                return None;
            }
            let command = le16(smb, 12)?;
            let flags = *smb.get(16)?;
            if command > MAX_COMMAND {
                return None;
            }
            let response = flags & 0x01 != 0;
            let dialect = if response && command == NEGOTIATE { le16(smb, SMB2_HEADER + 4) } else { None };
            let role = if response { Role::Server } else { Role::Client };
            (App::Smb { version: 2, command, dialect }, role)
        }
        b"\xffSMB" => {
            let command = u16::from(*smb.get(4)?);
            let reply = smb.get(9)? & 0x80 != 0;
            let role = if reply { Role::Server } else { Role::Client };
            (App::Smb { version: 1, command, dialect: None }, role)
        }
        b"\xfdSMB" => (App::Smb { version: 3, command: 0, dialect: None }, Role::Either),
        _ => return None,
    };
    Some(Protocol::new(app, role))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An SMB2 header for `command`, response or not, then `body`, in a session message.
    pub(crate) fn smb2(command: u16, response: bool, body: &[u8]) -> Vec<u8> {
        let mut smb = b"\xfeSMB".to_vec();
        smb.extend_from_slice(&64u16.to_le_bytes());
        smb.resize(12, 0);
        smb.extend_from_slice(&command.to_le_bytes());
        smb.resize(16, 0);
        smb.push(u8::from(response));
        smb.resize(64, 0);
        smb.extend_from_slice(body);
        let mut p = vec![0];
        p.extend_from_slice(&u32::try_from(smb.len()).expect("short").to_be_bytes()[1..]);
        p.extend_from_slice(&smb);
        p
    }

    #[test]
    fn smb2_negotiate_request_and_response() {
        let request = smb2(0, false, &[0x24, 0, 2, 0, 1, 0, 0, 0, 0x7f, 0, 0, 0]);
        let got = identify(&request).expect("SMB");
        assert_eq!((got.app, got.role), (App::Smb { version: 2, command: 0, dialect: None }, Role::Client));
        let response = smb2(0, true, &[0x41, 0, 1, 0, 0x11, 0x03, 0, 0]);
        let got = identify(&response).expect("SMB");
        assert_eq!(
            (got.app, got.role),
            (App::Smb { version: 2, command: 0, dialect: Some(0x0311) }, Role::Server)
        );
    }

    #[test]
    fn smb1_negotiate_and_smb3_transform() {
        let mut smb1 = vec![0, 0, 0, 0x2f];
        smb1.extend_from_slice(b"\xffSMB\x72\x00\x00\x00\x00\x18");
        smb1.resize(4 + 0x2f, 0);
        let got = identify(&smb1).expect("SMB1");
        assert_eq!(
            (got.app, got.role),
            (App::Smb { version: 1, command: 0x72, dialect: None }, Role::Client)
        );
        let mut transform = vec![0, 0, 0, 0x60];
        transform.extend_from_slice(b"\xfdSMB");
        transform.resize(4 + 0x60, 0xaa);
        assert_eq!(identify(&transform).map(|p| p.role), Some(Role::Either));
    }

    #[test]
    fn near_misses_are_not_smb() {
        let mut p = smb2(0, false, &[]);
        p[8] = 0x41;
        assert_eq!(identify(&p), None, "structure size not 64");
        let mut p = smb2(0, false, &[]);
        p[3] = 0x10;
        assert_eq!(identify(&p), None, "length shorter than the bytes");
        assert_eq!(identify(&smb2(19, false, &[])), None, "command 19");
        let mut p = smb2(0, false, &[]);
        p[4] = 0xfc;
        assert_eq!(identify(&p), None);
    }
}
