//! `attachments`: one large (already encrypted, as the SDK makes it) file uploaded through
//! Cloak's tus endpoints in the SDK's 4 MiB parts, with their SHA-256 checksums, and
//! downloaded by the conversation's other device; beside it, when an S3 endpoint is named,
//! a raw `curl` PUT and GET of the same bytes to the same store.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context as _, Result, bail};
use base64::Engine as _;
use rand::RngCore as _;
use sha2::Digest as _;

use super::Env;
use crate::report::{Table, result_line};

/// The SDK's part: 64 sealed 64 KiB chunks.
const PART: usize = 64 * (64 * 1024 + 16);

fn mb_per_s(bytes: usize, seconds: f64) -> f64 {
    bytes as f64 / 1e6 / seconds.max(1e-9)
}

/// Runs `curl` with `args`; returns the wall time.
fn curl(args: &[&str]) -> Result<f64> {
    let started = Instant::now();
    let out = std::process::Command::new("curl")
        .args(["-sS", "--fail"])
        .args(args)
        .output()
        .context("curl is needed for the raw comparison")?;
    if !out.status.success() {
        bail!("curl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(started.elapsed().as_secs_f64())
}

/// The S3 store the raw `curl` comparison talks to, with the signature it needs.
pub struct RawS3<'a> {
    pub bucket_url: &'a str,
    pub credentials: &'a str,
    pub region: &'a str,
}

pub async fn run(env: &Env, size_mb: usize, s3: Option<RawS3<'_>>) -> Result<()> {
    let (node, api) = env.start("node").await?;
    let pair = api.pair(0).await?;
    let size = size_mb << 20;
    let mut data = vec![0u8; size];
    rand::rngs::OsRng.fill_bytes(&mut data);
    let http = reqwest::Client::new();
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let watched = env.watched(vec![node.process.pid()]);

    let before = watched.snapshot()?;
    let started = Instant::now();
    let created: serde_json::Value = http
        .post(format!("{}/v1/attachments", node.base_url))
        .bearer_auth(&pair.sender.token)
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Length", size.to_string())
        .header(
            "Upload-Metadata",
            format!(
                "conversation_id {}",
                b64(pair.conversation.to_string().as_bytes())
            ),
        )
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let id = created["id"].as_str().context("no upload id")?.to_owned();
    let url = format!("{}/v1/attachments/{id}", node.base_url);
    for (i, part) in data.chunks(PART).enumerate() {
        http.patch(&url)
            .bearer_auth(&pair.sender.token)
            .header("Tus-Resumable", "1.0.0")
            .header("Content-Type", "application/offset+octet-stream")
            .header("Upload-Offset", (i * PART).to_string())
            .header(
                "Upload-Checksum",
                format!("sha256 {}", b64(&sha2::Sha256::digest(part))),
            )
            .body(part.to_vec())
            .send()
            .await?
            .error_for_status()?;
    }
    let upload_s = started.elapsed().as_secs_f64();
    let upload_cpu = before.usage_until(&watched.snapshot()?);

    let before = watched.snapshot()?;
    let started = Instant::now();
    let mut resp = http
        .get(&url)
        .bearer_auth(&pair.receiver.token)
        .send()
        .await?
        .error_for_status()?;
    // Kept and checked after the clock stops, as `curl -o /dev/null` checks nothing.
    let mut got = Vec::with_capacity(size);
    while let Some(chunk) = resp.chunk().await? {
        got.extend_from_slice(&chunk);
    }
    let download_s = started.elapsed().as_secs_f64();
    let download_cpu = before.usage_until(&watched.snapshot()?);
    if got != data {
        bail!("the download did not match the upload");
    }
    drop(got);

    let mut t = Table::new(format!(
        "attachments: one {size_mb} MiB file, {} parts of {:.1} MB, blob store {}",
        size.div_ceil(PART),
        PART as f64 / 1e6,
        if s3.is_some() { "S3" } else { "filesystem" }
    ));
    t.row(
        "Cloak upload (tus, checksummed parts)",
        format!("{:.0} MB/s ({upload_s:.2} s)", mb_per_s(size, upload_s)),
    );
    t.row(
        "Cloak download (GET)",
        format!("{:.0} MB/s ({download_s:.2} s)", mb_per_s(size, download_s)),
    );
    t.row(
        "server CPU, upload / download",
        format!(
            "{:.2} s / {:.2} s",
            upload_cpu.server_seconds, download_cpu.server_seconds
        ),
    );
    let mut fields = vec![
        ("phase", "attachments".to_owned()),
        ("size_mib", size_mb.to_string()),
        ("upload_mb_s", format!("{:.1}", mb_per_s(size, upload_s))),
        (
            "download_mb_s",
            format!("{:.1}", mb_per_s(size, download_s)),
        ),
    ];
    if let Some(raw) = s3 {
        let file = env.server.log_dir.join("raw-upload.bin");
        std::fs::write(&file, &data)?;
        let object = format!(
            "{}/raw-{}",
            raw.bucket_url.trim_end_matches('/'),
            uuid::Uuid::new_v4().simple()
        );
        let sigv4 = format!("aws:amz:{}:s3", raw.region);
        let signed = ["--aws-sigv4", sigv4.as_str(), "--user", raw.credentials];
        let put = curl(&[&signed[..], &["-T", path(&file)?, &object]].concat())?;
        let get = curl(&[&signed[..], &["-o", "/dev/null", &object]].concat())?;
        std::fs::remove_file(&file)?;
        t.row(
            "raw curl PUT to the same store",
            format!("{:.0} MB/s ({put:.2} s)", mb_per_s(size, put)),
        );
        t.row(
            "raw curl GET from the same store",
            format!("{:.0} MB/s ({get:.2} s)", mb_per_s(size, get)),
        );
        t.row(
            "Cloak / raw time",
            format!(
                "upload {:.2}×, download {:.2}×",
                upload_s / put,
                download_s / get
            ),
        );
        fields.push(("raw_put_mb_s", format!("{:.1}", mb_per_s(size, put))));
        fields.push(("raw_get_mb_s", format!("{:.1}", mb_per_s(size, get))));
        fields.push(("upload_ratio", format!("{:.2}", upload_s / put)));
        fields.push(("download_ratio", format!("{:.2}", download_s / get)));
    }
    println!("{}", t.render());
    println!("{}", result_line(&fields));
    Ok(())
}

fn path(p: &Path) -> Result<&str> {
    p.to_str().context("a non-UTF-8 path")
}
