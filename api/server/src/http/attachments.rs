//! `/v1/attachments`: encrypted attachments over the tus 1.0 resumable-upload protocol
//! (core, creation, checksum, expiration, termination), and downloads with `Range` for the
//! conversation's member devices. Every byte here is ciphertext the SDK made.

use crate::http::documented::problems;
use actix_web::http::header::{self, ByteRangeSpec, Header as _, HeaderMap};
use actix_web::{HttpRequest, HttpResponse, delete, get, head, options, patch, post, web};
use bytes::{Bytes, BytesMut};
use cloak_proto::Code;
use cloak_proto::attachments::{
    AttachmentUpload, ChecksumAlgorithm, OFFSET_OCTET_STREAM, TUS_CHECKSUM_ALGORITHMS,
    TUS_EXTENSIONS, TUS_RESUMABLE,
};
use futures_util::StreamExt as _;
use sha2::Digest as _;
use uuid::Uuid;

use super::auth::DeviceAuth;
use super::problem::ApiError;
use crate::services::attachments::{self, Ctx};
use crate::state::AppState;
use crate::store::AttachmentRecord;

fn ctx(state: &AppState) -> Ctx<'_> {
    Ctx {
        store: state.store.as_ref(),
        broker: state.broker.as_ref(),
        blobs: state.blobs.as_ref(),
        settings: &state.settings.attachments,
    }
}

fn invalid(detail: impl Into<String>) -> ApiError {
    ApiError::new(Code::InvalidUpload, "Invalid upload request").with_detail(detail)
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Requests must speak tus 1.0.0: without `Tus-Resumable` 400 `invalid_upload`, with
/// another version 412 (tus's answer, with the versions this server speaks).
fn require_tus(req: &HttpRequest) -> Option<ApiError> {
    match header_str(req.headers(), "tus-resumable") {
        Some(TUS_RESUMABLE) => None,
        None => Some(invalid(format!(
            "Tus-Resumable is required: send Tus-Resumable: {TUS_RESUMABLE}"
        ))),
        Some(_) => Some(
            ApiError::new(Code::TusVersionUnsupported, "Unsupported tus version")
                .with_detail(format!("send Tus-Resumable: {TUS_RESUMABLE}")),
        ),
    }
}

/// A tus number header; `Err` holds what is wrong.
fn number_header(headers: &HeaderMap, name: &str) -> Result<i64, String> {
    let text = header_str(headers, name).ok_or_else(|| format!("{name} is required"))?;
    cloak_proto::attachments::tus_number(text).map_err(|e| format!("{name} {}", e.0))
}

/// The conversation named in `Upload-Metadata` (`conversation_id <base64 of the id>`).
fn metadata_conversation(headers: &HeaderMap) -> Result<Uuid, String> {
    let metadata = header_str(headers, "upload-metadata").unwrap_or("");
    cloak_proto::attachments::metadata_conversation(metadata).map_err(|e| e.0.to_owned())
}

fn http_date(ms: i64) -> String {
    let t = crate::clock::to_datetime(ms);
    httpdate::fmt_http_date(std::time::SystemTime::from(t))
}

fn tus_headers(response: &mut actix_web::HttpResponseBuilder, record: &AttachmentRecord) {
    response
        .insert_header(("Tus-Resumable", TUS_RESUMABLE))
        .insert_header(("Upload-Offset", record.received.to_string()))
        .insert_header(("Upload-Length", record.size.to_string()))
        .insert_header((header::CACHE_CONTROL, "no-store"));
    if record.completed_at_ms.is_none() {
        response.insert_header(("Upload-Expires", http_date(record.expires_at_ms)));
    }
}

/// tus discovery: the protocol version, extensions, largest upload and checksum
/// algorithms this server supports.
#[utoipa::path(
    tag = "attachments",
    security(()),
    responses(
        (status = 204, description = "What this server supports", headers(
            ("Tus-Resumable" = String, description = "`1.0.0`"),
            ("Tus-Version" = String, description = "`1.0.0`"),
            ("Tus-Extension" = String, description = "`creation,checksum,expiration,termination`"),
            ("Tus-Max-Size" = i64, description = "Largest attachment, in bytes"),
            ("Tus-Checksum-Algorithm" = String, description = "`sha1,sha256`"),
        )),
    )
)]
#[options("/v1/attachments")]
pub async fn tus_options(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::NoContent()
        .insert_header(("Tus-Resumable", TUS_RESUMABLE))
        .insert_header(("Tus-Version", TUS_RESUMABLE))
        .insert_header(("Tus-Extension", TUS_EXTENSIONS))
        .insert_header((
            "Tus-Max-Size",
            state.settings.attachments.max_bytes.to_string(),
        ))
        .insert_header(("Tus-Checksum-Algorithm", TUS_CHECKSUM_ALGORITHMS))
        .finish()
}

problems!(CreateUploadProblems: InvalidUpload, AttachmentTooLarge, InsufficientCredits, AttachmentNotAllowed, DevicePending, UserSuspended, NotFound, StorageQuotaExceeded, TusVersionUnsupported, RateLimited);

/// Declares an upload (tus creation): `Upload-Length` is the ciphertext's total size and
/// `Upload-Metadata` names the conversation (`conversation_id <base64>`). Refused before
/// any byte when the size's tier is above the sender's trust level (403 naming the tier),
/// the payer cannot afford the tier's price (402), the tenant's storage quota is used up
/// (409) or the user starts uploads too fast (429). The price is charged once, when the
/// last byte arrives.
#[utoipa::path(
    tag = "attachments",
    security(("device_token" = [])),
    params(
        ("Tus-Resumable" = String, Header, description = "`1.0.0`"),
        ("Upload-Length" = i64, Header, description = "Total bytes of the (encrypted) attachment"),
        ("Upload-Metadata" = String, Header, description = "`conversation_id <base64 of the conversation id>`"),
    ),
    responses(
        CreateUploadProblems,
        (status = 201, description = "Created; send the bytes with PATCH to `Location`", body = AttachmentUpload, headers(
            ("Location" = String, description = "The upload's URL"),
            ("Tus-Resumable" = String, description = "`1.0.0`"),
            ("Upload-Offset" = i64, description = "`0`"),
            ("Upload-Expires" = String, description = "When the unfinished upload is discarded (24 h)"),
        )),
    )
)]
#[post("/v1/attachments")]
pub async fn create_upload(
    req: HttpRequest,
    auth: DeviceAuth,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    if let Some(e) = require_tus(&req) {
        return Err(e);
    }
    let size = number_header(req.headers(), "upload-length").map_err(invalid)?;
    let conversation_id = metadata_conversation(req.headers()).map_err(invalid)?;
    let now = state.clock.now_ms();
    let upload = attachments::create(
        &ctx(&state),
        &auth.0,
        conversation_id,
        size,
        Uuid::new_v4(),
        now,
    )
    .await?;
    let location = format!("{}/v1/attachments/{}", state.settings.public_url, upload.id);
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, location))
        .insert_header(("Tus-Resumable", TUS_RESUMABLE))
        .insert_header(("Upload-Offset", "0"))
        .insert_header((
            "Upload-Expires",
            http_date(now.saturating_add(attachments::UNFINISHED_TTL_MS)),
        ))
        .json(upload))
}

problems!(UploadOffsetProblems: NotFound);

/// The upload's offset (tus): for its uploader while it is unfinished, and for any member
/// device once it is complete (with its length, for downloads).
#[utoipa::path(
    tag = "attachments",
    security(("device_token" = [])),
    params(("id" = Uuid, Path, description = "The attachment")),
    responses(
        UploadOffsetProblems,
        (status = 200, description = "The offset", headers(
            ("Tus-Resumable" = String, description = "`1.0.0`"),
            ("Upload-Offset" = i64, description = "Bytes stored so far"),
            ("Upload-Length" = i64, description = "Total bytes"),
            ("Upload-Expires" = String, description = "When the unfinished upload is discarded"),
        )),
    )
)]
#[head("/v1/attachments/{id}")]
pub async fn upload_offset(
    auth: DeviceAuth,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let store = state.store.as_ref();
    let record = match attachments::own_upload(store, &auth.0, *id).await {
        Ok(record) => record,
        Err(_) => attachments::open_download(store, &auth.0, *id).await?.0,
    };
    let mut response = HttpResponse::Ok();
    tus_headers(&mut response, &record);
    response.insert_header((header::ACCEPT_RANGES, "bytes"));
    Ok(response.finish())
}

problems!(UploadBytesProblems: InvalidUpload, InsufficientCredits, NotFound, UploadOffsetMismatch, UploadExpired, TusVersionUnsupported, PayloadTooLarge, UnsupportedMediaType, ChecksumMismatch, BlobStoreUnavailable);

/// Appends bytes at `Upload-Offset` (tus core). A body may carry `Upload-Checksum`
/// (`sha1` or `sha256`, base64): a mismatch is refused with 460 and nothing is stored. A
/// body is stored whole or not at all; after an interruption `HEAD` tells where to resume.
/// The `PATCH` that brings the last byte charges the tier's price, once.
#[utoipa::path(
    tag = "attachments",
    security(("device_token" = [])),
    params(
        ("id" = Uuid, Path, description = "The attachment"),
        ("Tus-Resumable" = String, Header, description = "`1.0.0`"),
        ("Upload-Offset" = i64, Header, description = "Where these bytes start: the current offset"),
        ("Upload-Checksum" = Option<String>, Header, description = "`sha256 <base64 digest>` or `sha1 <base64 digest>` of this body"),
    ),
    request_body(content = Vec<u8>, content_type = "application/offset+octet-stream", description = "The next bytes"),
    responses(
        UploadBytesProblems,
        (status = 204, description = "Stored", headers(
            ("Tus-Resumable" = String, description = "`1.0.0`"),
            ("Upload-Offset" = i64, description = "The new offset"),
            ("Upload-Expires" = String, description = "When the unfinished upload is discarded"),
        )),
    )
)]
#[patch("/v1/attachments/{id}")]
pub async fn upload_bytes(
    req: HttpRequest,
    auth: DeviceAuth,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    mut payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    if let Some(e) = require_tus(&req) {
        return Err(e);
    }
    if header_str(req.headers(), "content-type") != Some(OFFSET_OCTET_STREAM) {
        return Err(
            ApiError::new(Code::UnsupportedMediaType, "Unsupported media type")
                .with_detail(format!("send Content-Type: {OFFSET_OCTET_STREAM}")),
        );
    }
    let offset = number_header(req.headers(), "upload-offset").map_err(invalid)?;
    let checksum = parse_checksum(req.headers()).map_err(invalid)?;
    let limit = state.settings.attachments.max_chunk_bytes;
    let mut body = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| invalid("the body ended early"))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::new(Code::PayloadTooLarge, "Payload too large")
                .with_detail(format!("one PATCH carries at most {limit} bytes")));
        }
        body.extend_from_slice(&chunk);
    }
    let body: Bytes = body.freeze();
    if let Some(expected) = checksum
        && !expected.matches(&body)
    {
        return Err(ApiError::new(Code::ChecksumMismatch, "Checksum mismatch")
            .with_detail("Upload-Checksum does not match the body; nothing was stored"));
    }
    let record = attachments::append(
        &ctx(&state),
        &auth.0,
        *id,
        offset,
        body,
        state.clock.now_ms(),
    )
    .await?;
    let mut response = HttpResponse::NoContent();
    tus_headers(&mut response, &record);
    Ok(response.finish())
}

/// `Upload-Checksum: <algorithm> <base64 digest>`.
struct Checksum(ChecksumAlgorithm, Vec<u8>);

impl Checksum {
    fn matches(&self, body: &[u8]) -> bool {
        use subtle::ConstantTimeEq as _;
        match self.0 {
            ChecksumAlgorithm::Sha1 => bool::from(sha1::Sha1::digest(body)[..].ct_eq(&self.1)),
            ChecksumAlgorithm::Sha256 => bool::from(sha2::Sha256::digest(body)[..].ct_eq(&self.1)),
        }
    }
}

fn parse_checksum(headers: &HeaderMap) -> Result<Option<Checksum>, String> {
    let Some(value) = header_str(headers, "upload-checksum") else {
        return Ok(None);
    };
    let (algorithm, digest) =
        cloak_proto::attachments::upload_checksum(value).map_err(|e| e.0.to_owned())?;
    Ok(Some(Checksum(algorithm, digest)))
}

problems!(DeleteUploadProblems: InvalidUpload, NotFound, TusVersionUnsupported, BlobStoreUnavailable);

/// Discards the caller's own upload, finished or not (tus termination).
#[utoipa::path(
    tag = "attachments",
    security(("device_token" = [])),
    params(
        ("id" = Uuid, Path, description = "The attachment"),
        ("Tus-Resumable" = String, Header, description = "`1.0.0`"),
    ),
    responses(
        DeleteUploadProblems,
        (status = 204, description = "Deleted"),
    )
)]
#[delete("/v1/attachments/{id}")]
pub async fn delete_upload(
    req: HttpRequest,
    auth: DeviceAuth,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    if let Some(e) = require_tus(&req) {
        return Err(e);
    }
    attachments::terminate(&ctx(&state), &auth.0, *id).await?;
    Ok(HttpResponse::NoContent()
        .insert_header(("Tus-Resumable", TUS_RESUMABLE))
        .finish())
}

problems!(DownloadProblems: DevicePending, NotFound, RangeNotSatisfiable);

/// Downloads a finished attachment's ciphertext, whole or one `Range` (`bytes=a-b`), for
/// an approved device that is a member of its conversation; 404 for anyone else, as for
/// an id that does not exist. A download that reaches the last byte counts the device as
/// served; the attachment is deleted once every recipient device was served (or at the
/// tenant's retention).
#[utoipa::path(
    tag = "attachments",
    security(("device_token" = [])),
    params(
        ("id" = Uuid, Path, description = "The attachment"),
        ("Range" = Option<String>, Header, description = "One byte range, e.g. `bytes=0-1048575`"),
    ),
    responses(
        DownloadProblems,
        (status = 200, description = "The whole ciphertext", content_type = "application/octet-stream", body = Vec<u8>, headers(
            ("Accept-Ranges" = String, description = "`bytes`"),
            ("Content-Length" = i64, description = "Bytes"),
        )),
        (status = 206, description = "The requested range", content_type = "application/octet-stream", body = Vec<u8>, headers(
            ("Content-Range" = String, description = "`bytes a-b/size`"),
        )),
    )
)]
#[get("/v1/attachments/{id}")]
pub async fn download(
    req: HttpRequest,
    auth: DeviceAuth,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let (record, parts) = attachments::open_download(state.store.as_ref(), &auth.0, *id).await?;
    let size = u64::try_from(record.size).unwrap_or(0);
    let range = match header::Range::parse(&req) {
        Ok(header::Range::Bytes(specs)) if specs.len() == 1 => {
            match specs
                .first()
                .and_then(|s: &ByteRangeSpec| s.to_satisfiable_range(size))
            {
                Some((from, to)) => Some(from..to + 1),
                None => {
                    return Ok(HttpResponse::RangeNotSatisfiable()
                        .insert_header((header::CONTENT_RANGE, format!("bytes */{size}")))
                        .insert_header((
                            header::CONTENT_TYPE,
                            cloak_proto::problem::PROBLEM_CONTENT_TYPE,
                        ))
                        .json(
                            ApiError::new(Code::RangeNotSatisfiable, "Range not satisfiable")
                                .problem(),
                        ));
                }
            }
        }
        _ => None,
    };
    let served = range.clone().unwrap_or(0..size);
    let len = served.end - served.start;
    let body = attachments::open_range(state.blobs.clone(), parts, served.clone()).await?;
    // Reaching the last byte marks this device served (after the body went out).
    let finished = served.end == size;
    let (store, device, now) = (state.store.clone(), auth.0, state.clock.now_ms());
    let mark = futures_util::stream::once(async move {
        if finished
            && let Err(e) = store
                .mark_downloaded(device.tenant_id, record.id, device.device_id, now)
                .await
        {
            tracing::warn!(error = %e, "could not record a download");
        }
    })
    .filter_map(|()| async { None::<Result<Bytes, crate::blobs::BlobError>> });
    let body = body.chain(mark).map(|r| {
        r.map_err(|e| {
            tracing::warn!(error = %e, "attachment download failed midway");
            actix_web::error::ErrorBadGateway("blob store")
        })
    });
    let mut response = match range {
        Some(r) => {
            let mut b = HttpResponse::PartialContent();
            b.insert_header((
                header::CONTENT_RANGE,
                format!("bytes {}-{}/{size}", r.start, r.end - 1),
            ));
            b
        }
        None => HttpResponse::Ok(),
    };
    Ok(response
        .insert_header((header::ACCEPT_RANGES, "bytes"))
        .insert_header((header::CONTENT_TYPE, "application/octet-stream"))
        .insert_header((header::CACHE_CONTROL, "private, no-store"))
        .no_chunking(len)
        .streaming(body))
}
