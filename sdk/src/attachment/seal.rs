//! Attachment encryption: a fresh 256-bit key per file and the STREAM construction
//! (Hoang, Reyhanitabar, Rogaway, Vizár) over XChaCha20-Poly1305, from RustCrypto's `aead`
//! crate, in fixed-size chunks. Sans-IO: bytes in, bytes out.
//!
//! A blob is a 24-byte header — `CLKA`, format version 1, a random 19-byte STREAM nonce
//! prefix — and then one sealed chunk per [`CHUNK`] plaintext bytes (the last may be
//! shorter, and an empty file is one empty last chunk). Each chunk's nonce carries its
//! position and a last-chunk flag, and the header is every chunk's associated data, so a
//! flipped byte, a reordered or dropped chunk and a truncated blob each fail to open.
//! The SHA-256 of the whole blob travels in the MLS message beside the key.

use chacha20poly1305::XChaCha20Poly1305;
use chacha20poly1305::aead::stream::{NewStream as _, StreamBE32, StreamPrimitive as _};
use chacha20poly1305::aead::{Buffer, KeyInit as _};
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

use crate::Error;

/// Plaintext bytes per chunk.
pub const CHUNK: usize = 64 * 1024;
/// Poly1305 tag bytes per chunk.
pub const TAG: usize = 16;
/// Bytes of the blob header.
pub const HEADER: usize = 24;
const MAGIC: &[u8; 4] = b"CLKA";
const FORMAT: u8 = 1;

/// Sealed bytes per full chunk.
pub const SEALED_CHUNK: usize = CHUNK + TAG;

/// How many chunks a file of `plain_len` bytes is sealed in.
pub fn chunks(plain_len: u64) -> u64 {
    plain_len.div_ceil(CHUNK as u64).max(1)
}

/// The blob size of a file of `plain_len` bytes.
pub fn sealed_len(plain_len: u64) -> u64 {
    HEADER as u64 + plain_len + chunks(plain_len) * TAG as u64
}

fn stream(key: &[u8; 32], header: &[u8; HEADER]) -> StreamBE32<XChaCha20Poly1305> {
    let aead = XChaCha20Poly1305::new(&(*key).into());
    let mut prefix = [0u8; HEADER - 5];
    prefix.copy_from_slice(&header[5..]);
    StreamBE32::from_aead(aead, &prefix.into())
}

/// Seals one file, chunk by chunk, at any chunk position (so an upload can resume).
pub struct Sealer {
    header: [u8; HEADER],
    stream: StreamBE32<XChaCha20Poly1305>,
    chunks: u64,
}

impl Sealer {
    /// A sealer for a file of `plain_len` bytes with a fresh random key; returns it and
    /// the key.
    pub fn new(
        plain_len: u64,
        rng: &mut (impl rand::RngCore + rand::CryptoRng),
    ) -> (Self, Zeroizing<[u8; 32]>) {
        let mut key = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(key.as_mut());
        let mut header = [0u8; HEADER];
        header[..4].copy_from_slice(MAGIC);
        header[4] = FORMAT;
        rng.fill_bytes(&mut header[5..]);
        let stream = stream(&key, &header);
        (
            Self {
                header,
                stream,
                chunks: chunks(plain_len),
            },
            key,
        )
    }

    /// The blob's first bytes.
    pub fn header(&self) -> &[u8; HEADER] {
        &self.header
    }

    /// Seals chunk `index` (its plaintext: [`CHUNK`] bytes, fewer only for the last).
    pub fn seal(&self, index: u64, plaintext: &[u8]) -> Result<Vec<u8>, Error> {
        let mut out = Vec::with_capacity(plaintext.len() + TAG);
        self.seal_into(index, plaintext, &mut out)?;
        Ok(out)
    }

    /// Seals chunk `index` onto the end of `out`, encrypting in place there (no buffer of
    /// its own). On an error `out` is as it was.
    pub fn seal_into(&self, index: u64, plaintext: &[u8], out: &mut Vec<u8>) -> Result<(), Error> {
        let last = index + 1 == self.chunks;
        let position =
            u32::try_from(index).map_err(|_| Error::Crypto("attachment too large".into()))?;
        if index >= self.chunks || (!last && plaintext.len() != CHUNK) || plaintext.len() > CHUNK {
            return Err(Error::InvalidState("attachment chunk out of place"));
        }
        let start = out.len();
        out.extend_from_slice(plaintext);
        let mut tail = Tail { vec: out, start };
        self.stream
            .encrypt_in_place(position, last, &self.header, &mut tail)
            .map_err(|_| {
                out.truncate(start);
                Error::Crypto("attachment encryption failed".into())
            })
    }
}

/// The end of a vector from `start` on, as the buffer the AEAD seals in place (it appends
/// the tag).
struct Tail<'a> {
    vec: &'a mut Vec<u8>,
    start: usize,
}

impl AsRef<[u8]> for Tail<'_> {
    fn as_ref(&self) -> &[u8] {
        &self.vec[self.start..]
    }
}

impl AsMut<[u8]> for Tail<'_> {
    fn as_mut(&mut self) -> &mut [u8] {
        &mut self.vec[self.start..]
    }
}

impl Buffer for Tail<'_> {
    fn extend_from_slice(&mut self, other: &[u8]) -> chacha20poly1305::aead::Result<()> {
        self.vec.extend_from_slice(other);
        Ok(())
    }

    fn truncate(&mut self, len: usize) {
        self.vec.truncate(self.start + len);
    }
}

/// Opens a blob as it streams in, checking each chunk, the length and the digest.
pub struct Opener {
    key: Zeroizing<[u8; 32]>,
    digest: [u8; 32],
    expected_len: u64,
    chunks: u64,
    header: Option<[u8; HEADER]>,
    stream: Option<StreamBE32<XChaCha20Poly1305>>,
    pending: Vec<u8>,
    next: u64,
    seen: u64,
    hasher: Sha256,
}

impl Opener {
    /// An opener for a file of `plain_len` bytes sealed with `key`, whose blob hashes to
    /// `digest`.
    pub fn new(key: &[u8; 32], digest: [u8; 32], plain_len: u64) -> Self {
        Self {
            key: Zeroizing::new(*key),
            digest,
            expected_len: sealed_len(plain_len),
            chunks: chunks(plain_len),
            header: None,
            stream: None,
            pending: Vec::with_capacity(SEALED_CHUNK),
            next: 0,
            seen: 0,
            hasher: Sha256::new(),
        }
    }

    /// Feeds the next blob bytes; returns the plaintext they complete (every chunk was
    /// authenticated before it is returned).
    pub fn push(&mut self, mut bytes: &[u8]) -> Result<Vec<u8>, Error> {
        self.seen += bytes.len() as u64;
        if self.seen > self.expected_len {
            return Err(tampered("the blob is longer than the file"));
        }
        self.hasher.update(bytes);
        let mut out = Vec::new();
        if self.header.is_none() {
            let need = HEADER - self.pending.len();
            let take = need.min(bytes.len());
            self.pending.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.pending.len() < HEADER {
                return Ok(out);
            }
            let mut header = [0u8; HEADER];
            header.copy_from_slice(&self.pending);
            if &header[..4] != MAGIC || header[4] != FORMAT {
                return Err(tampered("not an attachment blob of a known format"));
            }
            self.stream = Some(stream(&self.key, &header));
            self.header = Some(header);
            self.pending.clear();
        }
        while !bytes.is_empty() {
            let need = SEALED_CHUNK - self.pending.len();
            let take = need.min(bytes.len());
            self.pending.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            // A full sealed chunk that is not the last one: open it now.
            if self.pending.len() == SEALED_CHUNK && self.next + 1 < self.chunks {
                self.open_pending(false, &mut out)?;
            }
        }
        Ok(out)
    }

    /// Ends the blob: opens the last chunk and checks the length and digest.
    pub fn finish(mut self) -> Result<Vec<u8>, Error> {
        if self.seen != self.expected_len || self.next + 1 != self.chunks {
            return Err(tampered("the blob is truncated"));
        }
        let mut last = Vec::new();
        self.open_pending(true, &mut last)?;
        let digest: [u8; 32] = std::mem::take(&mut self.hasher).finalize().into();
        if digest != self.digest {
            return Err(tampered("the blob does not match its digest"));
        }
        Ok(last)
    }

    /// Opens the pending chunk in place and appends its plaintext to `out`.
    fn open_pending(&mut self, last: bool, out: &mut Vec<u8>) -> Result<(), Error> {
        let (Some(stream), Some(header)) = (&self.stream, &self.header) else {
            return Err(tampered("the blob is truncated"));
        };
        let position = u32::try_from(self.next).map_err(|_| tampered("too many chunks"))?;
        stream
            .decrypt_in_place(position, last, header, &mut self.pending)
            .map_err(|_| tampered("a chunk failed to authenticate"))?;
        out.extend_from_slice(&self.pending);
        self.pending.clear();
        self.next += 1;
        Ok(())
    }
}

fn tampered(what: &str) -> Error {
    Error::Verification(format!("attachment: {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seal_all(data: &[u8]) -> (Vec<u8>, Zeroizing<[u8; 32]>, [u8; 32]) {
        let (sealer, key) = Sealer::new(data.len() as u64, &mut rand::rngs::OsRng);
        let mut blob = sealer.header().to_vec();
        let n = chunks(data.len() as u64);
        for i in 0..n {
            let start = (i as usize) * CHUNK;
            let end = (start + CHUNK).min(data.len());
            blob.extend(sealer.seal(i, &data[start..end]).unwrap());
        }
        assert_eq!(blob.len() as u64, sealed_len(data.len() as u64));
        let digest = Sha256::digest(&blob).into();
        (blob, key, digest)
    }

    fn open_all(
        blob: &[u8],
        key: &[u8; 32],
        digest: [u8; 32],
        len: u64,
        step: usize,
    ) -> Result<Vec<u8>, Error> {
        let mut opener = Opener::new(key, digest, len);
        let mut out = Vec::new();
        for piece in blob.chunks(step.max(1)) {
            out.extend(opener.push(piece)?);
        }
        out.extend(opener.finish()?);
        Ok(out)
    }

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 % 251) as u8).collect()
    }

    #[test]
    fn files_of_any_size_round_trip_in_any_pieces() {
        for n in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 17] {
            let d = data(n);
            let (blob, key, digest) = seal_all(&d);
            for step in [1, 1000, SEALED_CHUNK, blob.len()] {
                if n > CHUNK && step == 1 {
                    continue; // slow in debug builds; 1000 covers unaligned pieces
                }
                assert_eq!(
                    open_all(&blob, &key, digest, n as u64, step).unwrap(),
                    d,
                    "n={n} step={step}"
                );
            }
        }
    }

    #[test]
    fn a_flipped_byte_a_dropped_or_swapped_chunk_and_truncation_are_detected() {
        let d = data(3 * CHUNK + 5);
        let (blob, key, digest) = seal_all(&d);
        let n = d.len() as u64;
        let mut flipped = blob.clone();
        flipped[HEADER + CHUNK + 3] ^= 1;
        assert!(matches!(
            open_all(&flipped, &key, digest, n, 4096),
            Err(Error::Verification(_))
        ));
        let mut dropped = blob[..HEADER + SEALED_CHUNK].to_vec();
        dropped.extend_from_slice(&blob[HEADER + 2 * SEALED_CHUNK..]);
        assert!(matches!(
            open_all(&dropped, &key, digest, n, 4096),
            Err(Error::Verification(_))
        ));
        let mut swapped = blob[..HEADER].to_vec();
        swapped.extend_from_slice(&blob[HEADER + SEALED_CHUNK..HEADER + 2 * SEALED_CHUNK]);
        swapped.extend_from_slice(&blob[HEADER..HEADER + SEALED_CHUNK]);
        swapped.extend_from_slice(&blob[HEADER + 2 * SEALED_CHUNK..]);
        assert!(matches!(
            open_all(&swapped, &key, digest, n, 4096),
            Err(Error::Verification(_))
        ));
        // Cut at a chunk boundary: every chunk left authenticates, but none is the last.
        let cut = &blob[..HEADER + 3 * SEALED_CHUNK];
        assert!(matches!(
            open_all(cut, &key, digest, n, 4096),
            Err(Error::Verification(_))
        ));
        let mut longer = blob.clone();
        longer.push(0);
        assert!(matches!(
            open_all(&longer, &key, digest, n, 4096),
            Err(Error::Verification(_))
        ));
        let wrong_key = [9u8; 32];
        assert!(open_all(&blob, &wrong_key, digest, n, 4096).is_err());
        assert!(open_all(&blob, &key, [0; 32], n, 4096).is_err());
    }

    #[test]
    fn chunks_seal_the_same_at_any_position_so_uploads_resume() {
        let d = data(2 * CHUNK + 1);
        let (sealer, _key) = Sealer::new(d.len() as u64, &mut rand::rngs::OsRng);
        let a = sealer.seal(1, &d[CHUNK..2 * CHUNK]).unwrap();
        let b = sealer.seal(1, &d[CHUNK..2 * CHUNK]).unwrap();
        assert_eq!(a, b);
        assert!(
            sealer.seal(0, &d[..10]).is_err(),
            "a short chunk that is not the last"
        );
        assert!(sealer.seal(3, &d[..1]).is_err(), "past the last chunk");
    }
}
