//! The blob store for attachment ciphertext, on the `object_store` crate: a directory of the
//! local filesystem (the embedded default) or an S3-compatible bucket (`s3://bucket/prefix`).
//! The server stores and serves bytes it cannot read; keys name tenants and attachments,
//! never anything about a file.

use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::stream::{BoxStream, StreamExt as _, TryStreamExt as _};
use object_store::path::Path;
use object_store::{
    GetOptions, GetRange, GetResultPayload, ObjectStore, ObjectStoreExt as _, PutPayload,
};

/// A blob store failure (the cause is logged by the caller, never sent to clients).
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("blob store: {0}")]
    Store(#[from] object_store::Error),
    #[error("blob store configuration: {0}")]
    Config(String),
    #[error("blob file read: {0}")]
    Read(#[from] std::io::Error),
}

/// Where attachment blobs live.
#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Stores `bytes` under `key` (replacing what was there).
    async fn put(&self, key: &str, bytes: Bytes) -> Result<(), BlobError>;
    /// Streams the bytes `range` of the blob under `key`.
    async fn get(
        &self,
        key: &str,
        range: Range<u64>,
    ) -> Result<BoxStream<'static, Result<Bytes, BlobError>>, BlobError>;
    /// The keys under `prefix`.
    async fn list(&self, prefix: &str) -> Result<Vec<String>, BlobError>;
    /// Deletes the blob under `key` (nothing when there is none).
    async fn delete(&self, key: &str) -> Result<(), BlobError>;
    /// Deletes every blob under `prefix`; returns how many.
    async fn delete_prefix(&self, prefix: &str) -> Result<u64, BlobError>;
    /// `file` or `s3`.
    fn kind(&self) -> &'static str;
}

/// S3 settings beside the URL (each falls back to the usual `AWS_*` variable).
#[derive(Clone, Default)]
pub struct S3Options {
    /// e.g. `http://127.0.0.1:9000` for a local S3-compatible server.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<secrecy::SecretString>,
}

impl std::fmt::Debug for S3Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Options")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

/// A [`BlobStore`] over any `object_store` backend.
#[derive(Debug, Clone)]
pub struct ObjectBlobs {
    inner: Arc<dyn ObjectStore>,
    kind: &'static str,
}

impl ObjectBlobs {
    /// Opens `url`: `s3://bucket[/prefix]`, `file:///dir` or a directory path (created).
    pub fn open(url: &str, s3: &S3Options) -> Result<Self, BlobError> {
        if let Some(rest) = url.strip_prefix("s3://") {
            return Self::s3(rest, s3);
        }
        let dir = url.strip_prefix("file://").unwrap_or(url);
        std::fs::create_dir_all(dir)
            .map_err(|e| BlobError::Config(format!("cannot create {dir}: {e}")))?;
        // Empty directories of deleted attachments go with their last file.
        let local = object_store::local::LocalFileSystem::new_with_prefix(dir)?
            .with_automatic_cleanup(true);
        Ok(Self {
            inner: Arc::new(local),
            kind: "file",
        })
    }

    fn s3(rest: &str, s3: &S3Options) -> Result<Self, BlobError> {
        use secrecy::ExposeSecret as _;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(BlobError::Config("s3:// URL without a bucket".into()));
        }
        // reqwest is built without a provider of its own: S3 over https uses ring.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = object_store::aws::AmazonS3Builder::from_env().with_bucket_name(bucket);
        if let Some(endpoint) = &s3.endpoint {
            builder = builder
                .with_endpoint(endpoint)
                .with_allow_http(endpoint.starts_with("http://"));
        }
        if let Some(region) = &s3.region {
            builder = builder.with_region(region);
        }
        if let Some(id) = &s3.access_key_id {
            builder = builder.with_access_key_id(id);
        }
        if let Some(secret) = &s3.secret_access_key {
            builder = builder.with_secret_access_key(secret.expose_secret());
        }
        let store = builder.build()?;
        let prefix = prefix.trim_matches('/');
        let inner: Arc<dyn ObjectStore> = if prefix.is_empty() {
            Arc::new(store)
        } else {
            Arc::new(object_store::prefix::PrefixStore::new(store, prefix))
        };
        Ok(Self { inner, kind: "s3" })
    }
}

/// Bytes read from a local file per blocking call. `object_store` streams files in 8 KiB
/// reads, one blocking-pool hop each, which held a download to about a third of what the
/// disk gives; 1 MiB reads cost one hop per MiB and bound the memory per download.
const FILE_READ: u64 = 1 << 20;

/// Streams `range` of a local file in [`FILE_READ`] pieces on the blocking pool.
fn file_stream(
    file: std::fs::File,
    range: Range<u64>,
) -> BoxStream<'static, Result<Bytes, BlobError>> {
    futures_util::stream::try_unfold(
        (file, range.start, range.end),
        |(mut file, at, end)| async move {
            if at >= end {
                return Ok(None);
            }
            // At most FILE_READ, so it fits.
            let want = (end - at).min(FILE_READ) as usize;
            let (file, buf) = tokio::task::spawn_blocking(move || {
                use std::io::{Read as _, Seek as _};
                file.seek(std::io::SeekFrom::Start(at))?;
                let mut buf = vec![0; want];
                file.read_exact(&mut buf)?;
                Ok::<_, std::io::Error>((file, buf))
            })
            .await
            .map_err(std::io::Error::other)??;
            Ok(Some((Bytes::from(buf), (file, at + want as u64, end))))
        },
    )
    .boxed()
}

#[async_trait]
impl BlobStore for ObjectBlobs {
    async fn put(&self, key: &str, bytes: Bytes) -> Result<(), BlobError> {
        self.inner
            .put(&Path::from(key), PutPayload::from_bytes(bytes))
            .await?;
        Ok(())
    }

    async fn get(
        &self,
        key: &str,
        range: Range<u64>,
    ) -> Result<BoxStream<'static, Result<Bytes, BlobError>>, BlobError> {
        let options = GetOptions {
            range: Some(GetRange::Bounded(range)),
            ..GetOptions::default()
        };
        let got = self.inner.get_opts(&Path::from(key), options).await?;
        Ok(match got.payload {
            GetResultPayload::File(file, _) => file_stream(file, got.range),
            GetResultPayload::Stream(s) => s.map_err(BlobError::from).boxed(),
        })
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, BlobError> {
        let prefix = Path::from(prefix);
        let metas: Vec<_> = self.inner.list(Some(&prefix)).try_collect().await?;
        Ok(metas.into_iter().map(|m| m.location.to_string()).collect())
    }

    async fn delete(&self, key: &str) -> Result<(), BlobError> {
        match self.inner.delete(&Path::from(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<u64, BlobError> {
        let keys = self.list(prefix).await?;
        for key in &keys {
            self.delete(key).await?;
        }
        Ok(keys.len() as u64)
    }

    fn kind(&self) -> &'static str {
        self.kind
    }
}

/// The key prefix of one attachment's parts.
pub fn attachment_prefix(tenant_id: uuid::Uuid, id: uuid::Uuid) -> String {
    format!("t/{}/a/{}", tenant_id.simple(), id.simple())
}

/// A fresh key for the part that starts at `offset` (zero-padded, so keys sort by offset;
/// `nonce` keeps a racing retry of the same offset from overwriting a recorded part).
pub fn part_key(tenant_id: uuid::Uuid, id: uuid::Uuid, offset: i64, nonce: uuid::Uuid) -> String {
    format!(
        "{}/{offset:020}-{}",
        attachment_prefix(tenant_id, id),
        nonce.simple()
    )
}
