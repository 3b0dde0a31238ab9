//! Attachment settings: where blobs live and the bounds on uploads.

use secrecy::SecretString;

use super::{ConfigError, number};
use crate::blobs::S3Options;

/// Where attachment blobs live and how large uploads may be.
#[derive(Debug, Clone)]
pub struct AttachmentSettings {
    /// `s3://bucket/prefix`, `file:///dir` or a directory (`CLOAK_BLOB_URL`; default:
    /// `blobs/` beside the SQLite database, or `cloak-data/blobs`).
    pub blob_url: String,
    /// S3 endpoint, region and credentials (`CLOAK_BLOB_ENDPOINT`, `CLOAK_BLOB_REGION`,
    /// `CLOAK_BLOB_ACCESS_KEY_ID`, `CLOAK_BLOB_SECRET_ACCESS_KEY`; each falls back to the
    /// usual `AWS_*` variable).
    pub s3: S3Options,
    /// Largest attachment, in ciphertext bytes (`CLOAK_ATTACHMENT_MAX_BYTES`, 2 GiB): the
    /// tus `Tus-Max-Size`.
    pub max_bytes: i64,
    /// Largest body of one upload `PATCH` (`CLOAK_ATTACHMENT_MAX_CHUNK_BYTES`, 16 MiB).
    pub max_chunk_bytes: usize,
    /// Bytes of attachments one tenant may hold at once, finished or not
    /// (`CLOAK_ATTACHMENT_TENANT_QUOTA_BYTES`, 50 GiB).
    pub tenant_quota_bytes: i64,
    /// Uploads one user may start per hour (`CLOAK_ATTACHMENT_UPLOADS_PER_HOUR`, 120).
    pub uploads_per_hour: u32,
}

impl AttachmentSettings {
    pub(super) fn resolve(
        env: &impl Fn(&str) -> Option<String>,
        database_url: &str,
    ) -> Result<Self, ConfigError> {
        let blob_url = env("CLOAK_BLOB_URL")
            .filter(|s| !s.trim().is_empty())
            .unwrap_or_else(|| default_blob_dir(database_url));
        let max_bytes = number(env, "CLOAK_ATTACHMENT_MAX_BYTES", None, 2i64 << 30)?;
        if max_bytes < 1 {
            return Err(ConfigError::Invalid {
                key: "CLOAK_ATTACHMENT_MAX_BYTES",
                message: "must be at least 1".into(),
            });
        }
        let max_chunk_bytes = number(env, "CLOAK_ATTACHMENT_MAX_CHUNK_BYTES", None, 16 << 20)?;
        if max_chunk_bytes < 1024 {
            return Err(ConfigError::Invalid {
                key: "CLOAK_ATTACHMENT_MAX_CHUNK_BYTES",
                message: "must be at least 1024".into(),
            });
        }
        Ok(Self {
            blob_url,
            s3: S3Options {
                endpoint: env("CLOAK_BLOB_ENDPOINT").filter(|s| !s.is_empty()),
                region: env("CLOAK_BLOB_REGION").filter(|s| !s.is_empty()),
                access_key_id: env("CLOAK_BLOB_ACCESS_KEY_ID").filter(|s| !s.is_empty()),
                secret_access_key: env("CLOAK_BLOB_SECRET_ACCESS_KEY")
                    .filter(|s| !s.is_empty())
                    .map(SecretString::from),
            },
            max_bytes,
            max_chunk_bytes,
            tenant_quota_bytes: number(
                env,
                "CLOAK_ATTACHMENT_TENANT_QUOTA_BYTES",
                None,
                50i64 << 30,
            )?,
            uploads_per_hour: number(env, "CLOAK_ATTACHMENT_UPLOADS_PER_HOUR", None, 120)?,
        })
    }
}

/// `blobs/` beside a SQLite database file, else `cloak-data/blobs`.
fn default_blob_dir(database_url: &str) -> String {
    let path = database_url
        .strip_prefix("sqlite://")
        .or_else(|| database_url.strip_prefix("sqlite:"))
        .map(|p| p.split('?').next().unwrap_or(p));
    match path.and_then(|p| std::path::Path::new(p).parent()) {
        Some(dir) if !dir.as_os_str().is_empty() => dir.join("blobs").display().to_string(),
        _ => "cloak-data/blobs".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_default_beside_the_sqlite_file() {
        assert_eq!(
            default_blob_dir("sqlite://cloak-data/cloak.db"),
            "cloak-data/blobs"
        );
        assert_eq!(
            default_blob_dir("sqlite:///var/lib/cloak/c.db?mode=rwc"),
            "/var/lib/cloak/blobs"
        );
        assert_eq!(default_blob_dir("postgres://db/cloak"), "cloak-data/blobs");
    }
}
