//! `/v1/attachments`: tus uploads (creation, offsets, checksums, resumption), tiers gated
//! by trust level and priced once, quotas and rates, downloads with `Range` for members
//! only, and the sweep that deletes what is done with — on the filesystem blob store and
//! on a real S3-protocol server (moto, started by scripts/test).

use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};
use sha2::Digest as _;
use uuid::Uuid;

use crate::backend_tests;
use crate::helpers::{Backend, TestApp, assert_problem, spawn_app, spawn_app_with};
use crate::identity_helpers::TestDevice;

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Deterministic bytes that are not all alike.
pub fn bytes(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

impl TestApp {
    pub async fn tus_create(
        &self,
        device: &TestDevice,
        conv: Uuid,
        size: u64,
    ) -> reqwest::Response {
        self.client
            .post(self.url("/v1/attachments"))
            .bearer_auth(&device.token)
            .header("Tus-Resumable", "1.0.0")
            .header("Upload-Length", size.to_string())
            .header(
                "Upload-Metadata",
                format!("conversation_id {}", b64(conv.to_string().as_bytes())),
            )
            .send()
            .await
            .unwrap()
    }

    /// Creates an upload; returns its id.
    pub async fn upload_id(&self, device: &TestDevice, conv: Uuid, size: u64) -> Uuid {
        let resp = self.tus_create(device, conv, size).await;
        assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
        let body: Value = resp.json().await.unwrap();
        body["id"].as_str().unwrap().parse().unwrap()
    }

    pub async fn tus_patch(
        &self,
        device: &TestDevice,
        id: Uuid,
        offset: usize,
        body: &[u8],
    ) -> reqwest::Response {
        self.client
            .patch(self.url(&format!("/v1/attachments/{id}")))
            .bearer_auth(&device.token)
            .header("Tus-Resumable", "1.0.0")
            .header("Content-Type", "application/offset+octet-stream")
            .header("Upload-Offset", offset.to_string())
            .header(
                "Upload-Checksum",
                format!("sha256 {}", b64(&sha2::Sha256::digest(body))),
            )
            .body(body.to_vec())
            .send()
            .await
            .unwrap()
    }

    pub async fn tus_offset(&self, device: &TestDevice, id: Uuid) -> reqwest::Response {
        self.client
            .head(self.url(&format!("/v1/attachments/{id}")))
            .bearer_auth(&device.token)
            .header("Tus-Resumable", "1.0.0")
            .send()
            .await
            .unwrap()
    }

    pub async fn download(
        &self,
        device: &TestDevice,
        id: Uuid,
        range: Option<&str>,
    ) -> reqwest::Response {
        let mut req = self
            .client
            .get(self.url(&format!("/v1/attachments/{id}")))
            .bearer_auth(&device.token);
        if let Some(r) = range {
            req = req.header("Range", r);
        }
        req.send().await.unwrap()
    }

    /// Uploads `data` in `parts` PATCHes; returns the id.
    pub async fn upload(&self, device: &TestDevice, conv: Uuid, data: &[u8], parts: usize) -> Uuid {
        let id = self.upload_id(device, conv, data.len() as u64).await;
        let step = data.len().div_ceil(parts);
        for (i, chunk) in data.chunks(step).enumerate() {
            let resp = self.tus_patch(device, id, i * step, chunk).await;
            assert_eq!(resp.status(), 204, "{}", resp.text().await.unwrap());
        }
        id
    }
}

fn header(resp: &reqwest::Response, name: &str) -> String {
    resp.headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
        .to_owned()
}

/// Files the blob store holds (the filesystem backend) under `dir`.
pub fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let path = e.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out
}

async fn an_upload_resumes_at_its_offset_and_members_download_ranges(app: &TestApp) {
    let (a, b, conv) = app.pair().await;
    // Discovery.
    let resp = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/v1/attachments"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(header(&resp, "tus-version"), "1.0.0");
    assert!(header(&resp, "tus-extension").contains("checksum"));
    assert!(header(&resp, "tus-checksum-algorithm").contains("sha256"));

    let data = bytes(300_000, 7);
    let resp = app.tus_create(&a, conv, data.len() as u64).await;
    assert_eq!(resp.status(), 201);
    assert_eq!(header(&resp, "upload-offset"), "0");
    let location = header(&resp, "location");
    let created: Value = resp.json().await.unwrap();
    assert_eq!(created["tier"], "small");
    assert_eq!(created["complete"], false);
    let id: Uuid = created["id"].as_str().unwrap().parse().unwrap();
    assert!(
        location.ends_with(&format!("/v1/attachments/{id}")),
        "{location}"
    );

    // 60% arrives, then the connection "drops": HEAD tells where to resume.
    let cut = 180_000;
    assert_eq!(app.tus_patch(&a, id, 0, &data[..cut]).await.status(), 204);
    let head = app.tus_offset(&a, id).await;
    assert_eq!(head.status(), 200);
    assert_eq!(header(&head, "upload-offset"), cut.to_string());
    assert_eq!(header(&head, "upload-length"), data.len().to_string());
    assert_eq!(header(&head, "cache-control"), "no-store");
    // A PATCH at a stale offset, or with a wrong checksum, stores nothing.
    assert_problem(
        app.tus_patch(&a, id, 0, &data[..10]).await,
        409,
        "upload_offset_mismatch",
    )
    .await;
    let bad = app
        .client
        .patch(app.url(&format!("/v1/attachments/{id}")))
        .bearer_auth(&a.token)
        .header("Tus-Resumable", "1.0.0")
        .header("Content-Type", "application/offset+octet-stream")
        .header("Upload-Offset", cut.to_string())
        .header("Upload-Checksum", format!("sha256 {}", b64(&[0u8; 32])))
        .body(data[cut..].to_vec())
        .send()
        .await
        .unwrap();
    assert_problem(bad, 460, "checksum_mismatch").await;
    assert_eq!(
        header(&app.tus_offset(&a, id).await, "upload-offset"),
        cut.to_string()
    );
    // The rest of the bytes; a member of the conversation may not download before.
    assert_eq!(app.download(&b, id, None).await.status(), 404);
    assert_eq!(app.tus_patch(&a, id, cut, &data[cut..]).await.status(), 204);

    let resp = app.download(&b, id, None).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "accept-ranges"), "bytes");
    assert_eq!(header(&resp, "content-length"), data.len().to_string());
    assert_eq!(resp.bytes().await.unwrap().as_ref(), &data[..]);
    // A range across the boundary of the two stored parts.
    let resp = app.download(&b, id, Some("bytes=179990-180009")).await;
    assert_eq!(resp.status(), 206);
    assert_eq!(
        header(&resp, "content-range"),
        format!("bytes 179990-180009/{}", data.len())
    );
    assert_eq!(
        resp.bytes().await.unwrap().as_ref(),
        &data[179_990..180_010]
    );
    let resp = app.download(&b, id, Some("bytes=-5")).await;
    assert_eq!(
        resp.bytes().await.unwrap().as_ref(),
        &data[data.len() - 5..]
    );
    let resp = app.download(&b, id, Some("bytes=999999-")).await;
    assert_eq!(resp.status(), 416);
    assert_eq!(
        header(&resp, "content-range"),
        format!("bytes */{}", data.len())
    );

    // Someone outside the conversation gets what an unknown id gets.
    let carol = app.create_user("carol").await;
    let c = app.new_device(carol).await;
    let outsider = assert_problem(app.download(&c, id, None).await, 404, "not_found").await;
    let unknown = assert_problem(
        app.download(&c, Uuid::new_v4(), None).await,
        404,
        "not_found",
    )
    .await;
    assert_eq!(outsider["detail"], unknown["detail"]);
    assert_eq!(app.tus_offset(&c, id).await.status(), 404);
    // Nor may it upload into that conversation.
    assert_problem(app.tus_create(&c, conv, 10).await, 404, "not_found").await;
}

async fn uploads_resume_and_download(backend: Backend) {
    let app = spawn_app(backend).await;
    an_upload_resumes_at_its_offset_and_members_download_ranges(&app).await;
}

async fn uploads_resume_and_download_on_s3(backend: Backend) {
    let endpoint = std::env::var("CLOAK_TEST_S3_ENDPOINT")
        .expect("CLOAK_TEST_S3_ENDPOINT is not set: run the suite with scripts/test, which starts an S3 server");
    let url = format!("s3://cloak-test/{}", Uuid::new_v4().simple());
    let app = spawn_app_with(
        backend,
        &[
            ("CLOAK_BLOB_URL", &url),
            ("CLOAK_BLOB_ENDPOINT", &endpoint),
            ("CLOAK_BLOB_REGION", "us-east-1"),
            ("CLOAK_BLOB_ACCESS_KEY_ID", "test"),
            ("CLOAK_BLOB_SECRET_ACCESS_KEY", "test"),
        ],
    )
    .await;
    an_upload_resumes_at_its_offset_and_members_download_ranges(&app).await;
    // Nothing of it went to the local directory.
    assert!(files_under(&app.db.blob_dir()).is_empty());
}

async fn malformed_tus_requests_are_refused_with_problems(backend: Backend) {
    let app = spawn_app(backend).await;
    let (a, _b, conv) = app.pair().await;
    let post = |headers: Vec<(&'static str, String)>| {
        let mut req = app
            .client
            .post(app.url("/v1/attachments"))
            .bearer_auth(&a.token);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        req.send()
    };
    let meta = format!("conversation_id {}", b64(conv.to_string().as_bytes()));
    let r = post(vec![
        ("Upload-Length", "10".into()),
        ("Upload-Metadata", meta.clone()),
    ])
    .await
    .unwrap();
    assert_problem(r, 400, "invalid_upload").await;
    let r = post(vec![
        ("Tus-Resumable", "0.2.2".into()),
        ("Upload-Length", "10".into()),
        ("Upload-Metadata", meta.clone()),
    ])
    .await
    .unwrap();
    assert_problem(r, 412, "tus_version_unsupported").await;
    let r = post(vec![
        ("Tus-Resumable", "1.0.0".into()),
        ("Upload-Metadata", meta.clone()),
    ])
    .await
    .unwrap();
    assert_problem(r, 400, "invalid_upload").await;
    let r = post(vec![
        ("Tus-Resumable", "1.0.0".into()),
        ("Upload-Length", "-1".into()),
        ("Upload-Metadata", meta.clone()),
    ])
    .await
    .unwrap();
    assert_problem(r, 400, "invalid_upload").await;
    let r = post(vec![
        ("Tus-Resumable", "1.0.0".into()),
        ("Upload-Length", "10".into()),
    ])
    .await
    .unwrap();
    assert_problem(r, 400, "invalid_upload").await;
    let r = post(vec![
        ("Tus-Resumable", "1.0.0".into()),
        ("Upload-Length", "10".into()),
        ("Upload-Metadata", "conversation_id !!!".into()),
    ])
    .await
    .unwrap();
    assert_problem(r, 400, "invalid_upload").await;
    let r = post(vec![
        ("Tus-Resumable", "1.0.0".into()),
        ("Upload-Length", (3u64 << 30).to_string()),
        ("Upload-Metadata", meta),
    ])
    .await
    .unwrap();
    assert_problem(r, 400, "attachment_too_large").await;
    // A PATCH with another media type, past the length, or empty.
    let id = app.upload_id(&a, conv, 10).await;
    let r = app
        .client
        .patch(app.url(&format!("/v1/attachments/{id}")))
        .bearer_auth(&a.token)
        .header("Tus-Resumable", "1.0.0")
        .header("Content-Type", "application/json")
        .header("Upload-Offset", "0")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_problem(r, 415, "unsupported_media_type").await;
    assert_problem(
        app.tus_patch(&a, id, 0, &[1; 11]).await,
        400,
        "invalid_upload",
    )
    .await;
    assert_problem(app.tus_patch(&a, id, 0, &[]).await, 400, "invalid_upload").await;
    // Termination.
    let r = app
        .client
        .delete(app.url(&format!("/v1/attachments/{id}")))
        .bearer_auth(&a.token)
        .header("Tus-Resumable", "1.0.0")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(app.tus_offset(&a, id).await.status(), 404);
}

async fn set_max_attachment(app: &TestApp, max: &str) {
    let mut levels = json!({"levels": cloak_api::services::limits::default_levels()});
    for l in levels["levels"].as_array_mut().unwrap() {
        l["max_attachment"] = json!(max);
    }
    let resp = app
        .client
        .put(app.url("/v1/trust-levels"))
        .bearer_auth(&app.api_key)
        .json(&levels)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

async fn the_tier_follows_the_size_and_is_gated_and_charged_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let (a, b, conv) = app.pair().await;
    set_max_attachment(&app, "small").await;
    // 2 MiB is medium whatever the client would call it: refused before any byte.
    let problem = assert_problem(
        app.tus_create(&a, conv, 2 << 20).await,
        403,
        "attachment_not_allowed",
    )
    .await;
    assert!(
        problem["detail"].as_str().unwrap().contains("medium"),
        "{problem}"
    );
    set_max_attachment(&app, "large").await;
    app.price_only(&[("attachment_medium", 5), ("attachment_small", 1)])
        .await;
    let problem = assert_problem(
        app.tus_create(&a, conv, 2 << 20).await,
        402,
        "insufficient_credits",
    )
    .await;
    assert!(
        problem["detail"].as_str().unwrap().contains("attachment"),
        "{problem}"
    );
    app.grant("tenant", 7).await;
    let data = bytes(2 << 20, 3);
    let id = app.upload_id(&a, conv, data.len() as u64).await;
    // Creating charges nothing; the last byte charges the medium price, once.
    assert_eq!(
        app.tus_patch(&a, id, 0, &data[..1 << 20]).await.status(),
        204
    );
    assert_eq!(app.balance("tenant").await, 7);
    assert_eq!(
        app.tus_patch(&a, id, 1 << 20, &data[1 << 20..])
            .await
            .status(),
        204
    );
    assert_eq!(app.balance("tenant").await, 2);
    // The completing PATCH retried (its answer was lost): refused, not charged again.
    assert_problem(
        app.tus_patch(&a, id, 1 << 20, &data[1 << 20..]).await,
        409,
        "upload_offset_mismatch",
    )
    .await;
    assert_eq!(app.balance("tenant").await, 2);
    let debits: Vec<Value> = app
        .ledger("tenant")
        .await
        .into_iter()
        .filter(|e| e["kind"] == "attachment")
        .collect();
    assert_eq!(debits.len(), 1, "{debits:?}");
    assert_eq!(debits[0]["delta"], -5);
    assert_eq!(
        app.download(&b, id, None)
            .await
            .bytes()
            .await
            .unwrap()
            .len(),
        data.len()
    );
}

async fn quota_and_upload_rate_are_enforced(backend: Backend) {
    let app = spawn_app_with(
        backend,
        &[
            ("CLOAK_ATTACHMENT_TENANT_QUOTA_BYTES", "1000"),
            ("CLOAK_ATTACHMENT_UPLOADS_PER_HOUR", "3"),
        ],
    )
    .await;
    let (a, _b, conv) = app.pair().await;
    app.upload_id(&a, conv, 600).await;
    assert_problem(
        app.tus_create(&a, conv, 600).await,
        409,
        "storage_quota_exceeded",
    )
    .await;
    app.upload_id(&a, conv, 400).await;
    let resp = app.tus_create(&a, conv, 1).await;
    assert!(resp.headers().get("retry-after").is_some());
    assert_problem(resp, 429, "rate_limited").await;
}

async fn wait_until(what: &str, mut done: impl AsyncFnMut() -> bool) {
    for _ in 0..100 {
        if done().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting until {what}");
}

async fn attachments_are_deleted_when_done_with(backend: Backend) {
    let app = spawn_app(backend).await;
    let (mut a, b, conv) = app.pair().await;
    let blob_dir = app.db.blob_dir();
    let data = bytes(5000, 1);
    let downloaded = app.upload(&a, conv, &data, 2).await;
    let abandoned = app.upload_id(&a, conv, 5000).await;
    assert_eq!(
        app.tus_patch(&a, abandoned, 0, &data[..100]).await.status(),
        204
    );
    let has_files = |id: Uuid| {
        let name = id.simple().to_string();
        files_under(&blob_dir)
            .iter()
            .any(|p| p.to_string_lossy().contains(&name))
    };
    assert!(has_files(downloaded) && has_files(abandoned));
    // A partial download does not count; reaching the last byte does.
    app.download(&b, downloaded, Some("bytes=0-99"))
        .await
        .bytes()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(has_files(downloaded));
    app.download(&b, downloaded, None)
        .await
        .bytes()
        .await
        .unwrap();
    wait_until("the downloaded attachment's blob is gone", async || {
        !has_files(downloaded)
    })
    .await;
    assert_eq!(app.download(&b, downloaded, None).await.status(), 404);
    // The unfinished upload goes after 24 h.
    assert!(has_files(abandoned));
    app.clock.advance_ms(24 * 3600 * 1000 + 1);
    wait_until("the abandoned upload's blob is gone", async || {
        !has_files(abandoned)
    })
    .await;
    a.token = app.login(&a).await;
    assert_problem(
        app.tus_patch(&a, abandoned, 100, &data[100..]).await,
        404,
        "not_found",
    )
    .await;
    assert!(
        files_under(&blob_dir).is_empty(),
        "{:?}",
        files_under(&blob_dir)
    );
}

backend_tests!(
    uploads_resume_and_download,
    uploads_resume_and_download_on_s3,
    malformed_tus_requests_are_refused_with_problems,
    the_tier_follows_the_size_and_is_gated_and_charged_once,
    quota_and_upload_rate_are_enforced,
    attachments_are_deleted_when_done_with,
);
