//! Moving sealed attachments: tus uploads that resume where the server's offset says after
//! an interruption, and downloads that resume with `Range` and open the blob as it
//! streams (see [`super::seal`]).

use std::time::Duration;

use base64::Engine as _;
use cloak_proto::attachments::{
    AttachmentUpload, METADATA_CONVERSATION, OFFSET_OCTET_STREAM, TUS_RESUMABLE,
};
use reqwest::Method;
use sha2::{Digest as _, Sha256};
use tokio::io::{
    AsyncRead, AsyncReadExt as _, AsyncSeek, AsyncSeekExt as _, AsyncWrite, AsyncWriteExt as _,
};
use uuid::Uuid;

use super::Progress;
use super::seal::{self, CHUNK, HEADER, SEALED_CHUNK, Sealer};
use crate::Error;
use crate::client::{DeviceClient, read_json};
use crate::clock::Clock;
use crate::payload::{Attachment, AttachmentKey, MAX_FILE_NAME_BYTES, MAX_MIME_BYTES};

/// Sealed chunks per `PATCH` (about 4 MiB): what an interruption can cost.
pub const CHUNKS_PER_PATCH: u64 = 64;
/// Failed requests in a row before a transfer gives up.
const MAX_RETRIES: u32 = 6;

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Worth retrying: the request may not have arrived, or the server is briefly away.
fn retryable(e: &Error) -> bool {
    match e {
        Error::Transport(_) => true,
        Error::Problem(p) => matches!(p.status, 502..=504),
        _ => false,
    }
}

async fn backoff(attempt: u32) {
    tokio::time::sleep(Duration::from_millis(200u64 << attempt.min(5))).await;
}

fn header_u64(resp: &reqwest::Response, name: &str) -> Result<u64, Error> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| Error::Protocol(format!("the server sent no {name}")))
}

/// The four requests a transfer makes. [`DeviceClient`] makes them directly; the
/// [`crate::Cloak`] client takes its lock for each one only, so a long transfer never
/// holds up receiving.
pub trait Transport: Sync {
    /// `POST /v1/attachments` for a blob of `total` bytes.
    fn create_upload(
        &self,
        conversation_id: Uuid,
        total: u64,
    ) -> impl Future<Output = Result<AttachmentUpload, Error>> + Send;
    /// `PATCH` of `body` at `offset`.
    fn patch(
        &self,
        path: &str,
        offset: u64,
        body: &[u8],
    ) -> impl Future<Output = Result<(), Error>> + Send;
    /// `HEAD`: the server's offset.
    fn upload_offset(&self, path: &str) -> impl Future<Output = Result<u64, Error>> + Send;
    /// `GET` from byte `from` on.
    fn get_from(
        &self,
        path: &str,
        from: u64,
    ) -> impl Future<Output = Result<reqwest::Response, Error>> + Send;
}

impl<C: Clock> Transport for DeviceClient<C> {
    async fn create_upload(
        &self,
        conversation_id: Uuid,
        total: u64,
    ) -> Result<AttachmentUpload, Error> {
        let metadata = format!(
            "{METADATA_CONVERSATION} {}",
            b64(conversation_id.to_string().as_bytes())
        );
        let resp = self
            .authed_with(Method::POST, "/v1/attachments", |req| {
                req.header("Tus-Resumable", TUS_RESUMABLE)
                    .header("Upload-Length", total.to_string())
                    .header("Upload-Metadata", metadata.as_str())
            })
            .await?;
        read_json(resp).await
    }

    async fn patch(&self, path: &str, offset: u64, body: &[u8]) -> Result<(), Error> {
        let checksum = format!("sha256 {}", b64(&Sha256::digest(body)));
        self.authed_with(Method::PATCH, path, |req| {
            req.header("Tus-Resumable", TUS_RESUMABLE)
                .header("Content-Type", OFFSET_OCTET_STREAM)
                .header("Upload-Offset", offset.to_string())
                .header("Upload-Checksum", checksum.as_str())
                .body(body.to_vec())
        })
        .await?;
        Ok(())
    }

    async fn upload_offset(&self, path: &str) -> Result<u64, Error> {
        let resp = self
            .authed_with(Method::HEAD, path, |req| {
                req.header("Tus-Resumable", TUS_RESUMABLE)
            })
            .await?;
        header_u64(&resp, "upload-offset")
    }

    async fn get_from(&self, path: &str, from: u64) -> Result<reqwest::Response, Error> {
        let range = format!("bytes={from}-");
        self.authed_with(Method::GET, path, |req| req.header("Range", range.as_str()))
            .await
    }
}

impl<C: Clock> DeviceClient<C> {
    /// See [`upload`].
    pub async fn upload_attachment<R>(
        &self,
        conversation_id: Uuid,
        reader: &mut R,
        name: &str,
        mime: &str,
        progress: &(dyn Fn(Progress) + Send + Sync),
    ) -> Result<Attachment, Error>
    where
        R: AsyncRead + AsyncSeek + Unpin + Send,
    {
        upload(self, conversation_id, reader, name, mime, progress).await
    }

    /// See [`download`].
    pub async fn download_attachment<W>(
        &self,
        attachment: &Attachment,
        out: &mut W,
        progress: &(dyn Fn(Progress) + Send + Sync),
    ) -> Result<(), Error>
    where
        W: AsyncWrite + Unpin + Send,
    {
        download(self, attachment, out, progress).await
    }
}

/// HEAD, retried while the server is briefly away.
async fn offset_now(t: &impl Transport, path: &str) -> Result<u64, Error> {
    let mut failures = 0;
    loop {
        match t.upload_offset(path).await {
            Ok(offset) => return Ok(offset),
            Err(e) if retryable(&e) && failures < MAX_RETRIES => {
                failures += 1;
                backoff(failures).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Encrypts `reader` (a file of any size: it is read once per chunk, never held whole)
/// with a fresh key and uploads it for the members of `conversation_id`; after an
/// interruption it asks the server for the offset and resumes there. Returns the
/// reference to send inside an MLS message.
pub async fn upload<R>(
    t: &impl Transport,
    conversation_id: Uuid,
    reader: &mut R,
    name: &str,
    mime: &str,
    progress: &(dyn Fn(Progress) + Send + Sync),
) -> Result<Attachment, Error>
where
    R: AsyncRead + AsyncSeek + Unpin + Send,
{
    if name.len() > MAX_FILE_NAME_BYTES || mime.len() > MAX_MIME_BYTES {
        return Err(Error::Malformed("file name or MIME type too long".into()));
    }
    let io = |e: std::io::Error| Error::Storage(format!("reading the file: {e}"));
    let plain_len = reader.seek(std::io::SeekFrom::End(0)).await.map_err(io)?;
    let (sealer, key) = Sealer::new(plain_len, &mut rand::rngs::OsRng);
    let total = seal::sealed_len(plain_len);
    let upload = t.create_upload(conversation_id, total).await?;
    let path = format!("/v1/attachments/{}", upload.id);
    let chunks = seal::chunks(plain_len);
    let patches = chunks.div_ceil(CHUNKS_PER_PATCH);
    let mut hasher = Sha256::new();
    let mut patch = 0;
    let mut failures = 0;
    progress(Progress { done: 0, total });
    while patch < patches {
        let body = sealed_patch(&sealer, reader, patch, chunks, plain_len).await?;
        let offset = patch_offset(patch);
        match t.patch(&path, offset, &body).await {
            Ok(()) => {}
            Err(e) if retryable(&e) && failures < MAX_RETRIES => {
                failures += 1;
                backoff(failures).await;
                // Stored whole or not at all: the offset is where this PATCH began or
                // where it ended (its answer was lost).
                let now = offset_now(t, &path).await?;
                if now == offset {
                    continue;
                }
                if now != offset + body.len() as u64 {
                    return Err(Error::Protocol(format!(
                        "the server's offset {now} is neither {offset} nor the end of the part"
                    )));
                }
            }
            Err(e) => return Err(e),
        }
        failures = 0;
        hasher.update(&body);
        patch += 1;
        progress(Progress {
            done: (offset + body.len() as u64).min(total),
            total,
        });
    }
    Ok(Attachment {
        id: upload.id,
        size: plain_len,
        name: name.to_owned(),
        mime: mime.to_owned(),
        key: AttachmentKey(*key),
        digest: hasher.finalize().into(),
        chunk_size: CHUNK as u32,
    })
}

/// The sealed bytes of `PATCH` number `patch` (the first one starts with the header).
async fn sealed_patch<R>(
    sealer: &Sealer,
    reader: &mut R,
    patch: u64,
    chunks: u64,
    plain_len: u64,
) -> Result<Vec<u8>, Error>
where
    R: AsyncRead + AsyncSeek + Unpin + Send,
{
    let io = |e: std::io::Error| Error::Storage(format!("reading the file: {e}"));
    let first = patch * CHUNKS_PER_PATCH;
    let last = (first + CHUNKS_PER_PATCH).min(chunks);
    let mut body = Vec::with_capacity(((last - first) as usize) * SEALED_CHUNK + HEADER);
    if patch == 0 {
        body.extend_from_slice(sealer.header());
    }
    reader
        .seek(std::io::SeekFrom::Start(first * CHUNK as u64))
        .await
        .map_err(io)?;
    let mut plain = vec![0u8; CHUNK];
    for index in first..last {
        let want = (plain_len - index * CHUNK as u64).min(CHUNK as u64) as usize;
        reader.read_exact(&mut plain[..want]).await.map_err(io)?;
        sealer.seal_into(index, &plain[..want], &mut body)?;
    }
    Ok(body)
}

/// Downloads `attachment` into `out`, opening it as it arrives: every chunk is
/// authenticated before its plaintext is written, and truncation, reordering, tampering
/// or a wrong digest end the download with [`Error::Verification`] (the caller discards
/// what was written). A dropped connection resumes with `Range`.
pub async fn download<W>(
    t: &impl Transport,
    attachment: &Attachment,
    out: &mut W,
    progress: &(dyn Fn(Progress) + Send + Sync),
) -> Result<(), Error>
where
    W: AsyncWrite + Unpin + Send,
{
    if attachment.chunk_size as usize != CHUNK {
        return Err(Error::Malformed("unsupported attachment chunk size".into()));
    }
    let path = format!("/v1/attachments/{}", attachment.id);
    let total = seal::sealed_len(attachment.size);
    let mut opener = seal::Opener::new(&attachment.key.0, attachment.digest, attachment.size);
    let io = |e: std::io::Error| Error::Storage(format!("writing the file: {e}"));
    let mut received = 0u64;
    let mut failures = 0;
    progress(Progress { done: 0, total });
    while received < total {
        let mut resp = match t.get_from(&path, received).await {
            Ok(resp) => resp,
            Err(e) if retryable(&e) && failures < MAX_RETRIES => {
                failures += 1;
                backoff(failures).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        if resp.status() != reqwest::StatusCode::PARTIAL_CONTENT && received > 0 {
            return Err(Error::Protocol("the server ignored the Range".into()));
        }
        let dropped = loop {
            match resp.chunk().await {
                Ok(Some(bytes)) => {
                    received += bytes.len() as u64;
                    let plain = opener.push(&bytes)?;
                    out.write_all(&plain).await.map_err(io)?;
                    progress(Progress {
                        done: received.min(total),
                        total,
                    });
                }
                Ok(None) => break false,
                Err(_) => break true,
            }
        };
        if !dropped {
            // The body ended: complete, or a truncated blob (`finish` tells).
            break;
        }
        failures += 1;
        if failures > MAX_RETRIES {
            return Err(Error::Transport("the download kept failing".into()));
        }
        backoff(failures).await;
    }
    let last = opener.finish()?;
    out.write_all(&last).await.map_err(io)?;
    out.flush().await.map_err(io)?;
    Ok(())
}

/// Where `PATCH` number `patch` starts in the blob.
fn patch_offset(patch: u64) -> u64 {
    if patch == 0 {
        0
    } else {
        HEADER as u64 + patch * CHUNKS_PER_PATCH * SEALED_CHUNK as u64
    }
}
