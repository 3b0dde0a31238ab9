//! The parts of an MLS message (RFC 9420 §6) that anyone can read without keys: protocol
//! version, wire format, group id, epoch and content type of a handshake or application
//! message, and the shape of a Welcome. The server checks them, so a member cannot advance
//! a conversation's epoch with bytes that are no MLS commit for that group and epoch; the
//! cryptography is the members' business.
//!
//! A small reader of its own rather than `tls_codec`'s: `tls_codec` 0.5 `debug_assert`s on
//! a truncated vector, which would be a panic on untrusted input in debug builds.

/// `mls10`.
pub const PROTOCOL_VERSION: u16 = 1;
/// The one ciphersuite Cloak uses (`MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519`).
pub const CIPHERSUITE: u16 = 1;

/// `WireFormat` values.
pub mod wire_format {
    pub const PUBLIC_MESSAGE: u16 = 1;
    pub const PRIVATE_MESSAGE: u16 = 2;
    pub const WELCOME: u16 = 3;
}

/// `ContentType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentType {
    Application,
    Proposal,
    Commit,
}

impl ContentType {
    fn from_u8(v: u8) -> Option<Self> {
        match v {
            1 => Some(Self::Application),
            2 => Some(Self::Proposal),
            3 => Some(Self::Commit),
            _ => None,
        }
    }

    fn to_u8(self) -> u8 {
        match self {
            Self::Application => 1,
            Self::Proposal => 2,
            Self::Commit => 3,
        }
    }
}

/// What the framing of a public or private message says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Framing<'a> {
    /// `PUBLIC_MESSAGE` or `PRIVATE_MESSAGE`.
    pub wire_format: u16,
    pub group_id: &'a [u8],
    pub epoch: u64,
    pub content_type: ContentType,
}

/// What a Welcome's cleartext says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WelcomeShape {
    pub cipher_suite: u16,
    /// How many new members it has secrets for (one per KeyPackage).
    pub recipients: usize,
}

/// Why bytes are not the MLS message expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// The input ends early or a length is impossible.
    Truncated,
    /// A version, wire format, sender or content type that is not allowed here.
    Unexpected(&'static str),
    /// Bytes after a complete message.
    TrailingBytes,
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Truncated => f.write_str("the MLS message is truncated"),
            Self::Unexpected(what) => write!(f, "unexpected {what}"),
            Self::TrailingBytes => f.write_str("trailing bytes after the MLS message"),
        }
    }
}

impl std::error::Error for FrameError {}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], FrameError> {
        if self.0.len() < n {
            return Err(FrameError::Truncated);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, FrameError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, FrameError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, FrameError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64, FrameError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }

    /// A variable-length vector (RFC 9420 §2.1.2): a 1-, 2- or 4-byte length whose top
    /// two bits give its size, minimal encoding required.
    fn vector(&mut self) -> Result<&'a [u8], FrameError> {
        let first = self.u8()?;
        let len = match first >> 6 {
            0 => usize::from(first),
            1 => {
                let v = (usize::from(first & 0x3f) << 8) | usize::from(self.u8()?);
                if v < 64 {
                    return Err(FrameError::Unexpected("non-minimal length"));
                }
                v
            }
            2 => {
                let rest = self.take(3)?;
                let v = (usize::from(first & 0x3f) << 24)
                    | (usize::from(rest[0]) << 16)
                    | (usize::from(rest[1]) << 8)
                    | usize::from(rest[2]);
                if v < 16384 {
                    return Err(FrameError::Unexpected("non-minimal length"));
                }
                v
            }
            _ => return Err(FrameError::Unexpected("length prefix")),
        };
        self.take(len)
    }

    fn end(&self) -> Result<(), FrameError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(FrameError::TrailingBytes)
        }
    }
}

fn write_vector(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = bytes.len();
    if len < 64 {
        out.push(len as u8);
    } else if len < 16384 {
        out.extend_from_slice(&((len as u16) | 0x4000).to_be_bytes());
    } else {
        out.extend_from_slice(&((len as u32 & 0x3fff_ffff) | 0x8000_0000).to_be_bytes());
    }
    out.extend_from_slice(bytes);
}

/// Reads the framing of an `MLSMessage` holding a `PublicMessage` (from a member) or a
/// `PrivateMessage`. A private message is read to its end (no trailing bytes); a public
/// message's body after the content type is left to the members.
pub fn parse_framing(bytes: &[u8]) -> Result<Framing<'_>, FrameError> {
    let mut r = Reader(bytes);
    if r.u16()? != PROTOCOL_VERSION {
        return Err(FrameError::Unexpected("protocol version"));
    }
    let wire_format = r.u16()?;
    match wire_format {
        wire_format::PUBLIC_MESSAGE => {
            let group_id = r.vector()?;
            let epoch = r.u64()?;
            // Sender: only a member (leaf index) may send a handshake message here.
            if r.u8()? != 1 {
                return Err(FrameError::Unexpected("sender type"));
            }
            r.u32()?;
            r.vector()?; // authenticated_data
            let content_type =
                ContentType::from_u8(r.u8()?).ok_or(FrameError::Unexpected("content type"))?;
            if r.0.is_empty() {
                return Err(FrameError::Truncated);
            }
            Ok(Framing {
                wire_format,
                group_id,
                epoch,
                content_type,
            })
        }
        wire_format::PRIVATE_MESSAGE => {
            let group_id = r.vector()?;
            let epoch = r.u64()?;
            let content_type =
                ContentType::from_u8(r.u8()?).ok_or(FrameError::Unexpected("content type"))?;
            r.vector()?; // authenticated_data
            if r.vector()?.is_empty() {
                return Err(FrameError::Unexpected("empty encrypted sender data"));
            }
            if r.vector()?.is_empty() {
                return Err(FrameError::Unexpected("empty ciphertext"));
            }
            r.end()?;
            Ok(Framing {
                wire_format,
                group_id,
                epoch,
                content_type,
            })
        }
        _ => Err(FrameError::Unexpected("wire format")),
    }
}

/// Reads an `MLSMessage` holding a `Welcome` to its end.
pub fn parse_welcome(bytes: &[u8]) -> Result<WelcomeShape, FrameError> {
    let mut r = Reader(bytes);
    if r.u16()? != PROTOCOL_VERSION {
        return Err(FrameError::Unexpected("protocol version"));
    }
    if r.u16()? != wire_format::WELCOME {
        return Err(FrameError::Unexpected("wire format"));
    }
    let cipher_suite = r.u16()?;
    let mut secrets = Reader(r.vector()?);
    let mut recipients = 0;
    while !secrets.0.is_empty() {
        // EncryptedGroupSecrets: KeyPackageRef new_member<V>, HPKECiphertext {kem_output<V>,
        // ciphertext<V>}.
        secrets.vector()?;
        secrets.vector()?;
        secrets.vector()?;
        recipients += 1;
    }
    if r.vector()?.is_empty() {
        return Err(FrameError::Unexpected("empty group info"));
    }
    r.end()?;
    Ok(WelcomeShape {
        cipher_suite,
        recipients,
    })
}

/// A `PrivateMessage` frame around opaque bytes, for load tools and tests that stand in for
/// MLS clients (no member could decrypt it).
pub fn private_message(
    group_id: &[u8],
    epoch: u64,
    content: ContentType,
    opaque: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(opaque.len() + group_id.len() + 32);
    out.extend_from_slice(&PROTOCOL_VERSION.to_be_bytes());
    out.extend_from_slice(&wire_format::PRIVATE_MESSAGE.to_be_bytes());
    write_vector(&mut out, group_id);
    out.extend_from_slice(&epoch.to_be_bytes());
    out.push(content.to_u8());
    write_vector(&mut out, b"");
    write_vector(&mut out, &[0u8; 16]);
    write_vector(&mut out, if opaque.is_empty() { b"-" } else { opaque });
    out
}

/// A `Welcome` frame with `recipients` opaque secrets, for load tools and tests.
pub fn welcome(recipients: usize, opaque: &[u8]) -> Vec<u8> {
    let mut secrets = Vec::new();
    for i in 0..recipients {
        write_vector(&mut secrets, &(i as u64).to_be_bytes());
        write_vector(&mut secrets, &[1u8; 32]);
        write_vector(&mut secrets, &[2u8; 48]);
    }
    let mut out = Vec::new();
    out.extend_from_slice(&PROTOCOL_VERSION.to_be_bytes());
    out.extend_from_slice(&wire_format::WELCOME.to_be_bytes());
    out.extend_from_slice(&CIPHERSUITE.to_be_bytes());
    write_vector(&mut out, &secrets);
    write_vector(&mut out, if opaque.is_empty() { b"-" } else { opaque });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_private_commit_frame_reads_back() {
        let id = [7u8; 16];
        let big = vec![9u8; 20_000];
        for body in [&b"x"[..], &[3u8; 100][..], &big[..]] {
            let frame = private_message(&id, 42, ContentType::Commit, body);
            let f = parse_framing(&frame).unwrap();
            assert_eq!(
                (f.wire_format, f.group_id, f.epoch, f.content_type),
                (
                    wire_format::PRIVATE_MESSAGE,
                    &id[..],
                    42,
                    ContentType::Commit
                )
            );
        }
    }

    #[test]
    fn garbage_truncation_and_trailing_bytes_are_refused() {
        let frame = private_message(&[1; 16], 3, ContentType::Application, b"hello");
        for cut in 0..frame.len() {
            assert!(parse_framing(&frame[..cut]).is_err(), "cut at {cut}");
        }
        let mut long = frame.clone();
        long.push(0);
        assert_eq!(parse_framing(&long), Err(FrameError::TrailingBytes));
        assert!(parse_framing(b"commit@1").is_err());
        let mut v2 = frame;
        v2[1] = 2;
        assert_eq!(
            parse_framing(&v2),
            Err(FrameError::Unexpected("protocol version"))
        );
    }

    #[test]
    fn a_welcome_counts_its_recipients() {
        let w = welcome(3, b"group info");
        assert_eq!(
            parse_welcome(&w),
            Ok(WelcomeShape {
                cipher_suite: CIPHERSUITE,
                recipients: 3
            })
        );
        for cut in 0..w.len() {
            assert!(parse_welcome(&w[..cut]).is_err(), "cut at {cut}");
        }
        assert!(parse_welcome(b"welcome").is_err());
    }

    #[test]
    fn non_minimal_lengths_are_refused() {
        let mut frame = Vec::new();
        frame.extend_from_slice(&[0, 1, 0, 2]);
        frame.extend_from_slice(&[0x40, 0x01, 0xaa]); // one byte encoded in two
        assert_eq!(
            parse_framing(&frame),
            Err(FrameError::Unexpected("non-minimal length"))
        );
    }
}
