//! Request extraction: JSON, path and query errors become problem JSON, and
//! [`ValidatedJson`] runs the `validator` rules before a handler sees the body.

use actix_web::dev::Payload;
use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::{FromRequest, HttpRequest, web};
use cloak_proto::Code;
use cloak_proto::json_body::{BodyError, from_body};
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;
use validator::Validate;

use super::problem::ApiError;

/// A JSON body that deserialised and passed validation.
pub struct ValidatedJson<T>(pub T);

impl<T: DeserializeOwned + Validate + 'static> FromRequest for ValidatedJson<T> {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        // Read as raw JSON first (actix checks the content type and size), then as the
        // body's type (`cloak_proto::json_body`: an object, integral floats as integers).
        let json = web::Json::<Box<serde_json::value::RawValue>>::from_request(req, payload);
        Box::pin(async move {
            let web::Json(raw) = json.await?;
            let value: T = from_body(raw.get()).map_err(|e| match e {
                BodyError::NotAnObject => ApiError::new(Code::InvalidJson, "Invalid JSON body")
                    .with_detail("the body must be a JSON object"),
                BodyError::Json(e) => {
                    let code = if e.is_data() {
                        Code::InvalidJson
                    } else {
                        Code::MalformedJson
                    };
                    ApiError::new(code, "Invalid JSON body").with_detail(e.to_string())
                }
            })?;
            value.validate().map_err(|e| ApiError::validation(&e))?;
            Ok(ValidatedJson(value))
        })
    }
}

/// A query string that deserialised and passed validation.
pub struct ValidatedQuery<T>(pub T);

impl<T: DeserializeOwned + Validate + 'static> FromRequest for ValidatedQuery<T> {
    type Error = actix_web::Error;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        std::future::ready(
            web::Query::<T>::from_query(req.query_string())
                .map_err(|e| query_error(e, req))
                .and_then(|web::Query(value)| {
                    value
                        .validate()
                        .map_err(|e| actix_web::Error::from(ApiError::validation(&e)))?;
                    Ok(ValidatedQuery(value))
                }),
        )
    }
}

/// Maps JSON body failures: too large 413, wrong content type 415, anything else 400.
pub fn json_error(err: JsonPayloadError, _req: &HttpRequest) -> actix_web::Error {
    let api = match &err {
        JsonPayloadError::OverflowKnownLength { limit, .. }
        | JsonPayloadError::Overflow { limit } => {
            ApiError::new(Code::PayloadTooLarge, "Payload too large")
                .with_detail(format!("the body is larger than {limit} bytes"))
        }
        JsonPayloadError::ContentType => {
            ApiError::new(Code::UnsupportedMediaType, "Unsupported media type")
                .with_detail("send Content-Type: application/json")
        }
        JsonPayloadError::Deserialize(e) if e.is_data() => {
            ApiError::new(Code::InvalidJson, "Invalid JSON body").with_detail(e.to_string())
        }
        JsonPayloadError::Deserialize(e) => {
            ApiError::new(Code::MalformedJson, "Malformed JSON").with_detail(e.to_string())
        }
        _ => ApiError::new(Code::MalformedJson, "Malformed JSON")
            .with_detail("the body could not be read as JSON"),
    };
    api.into()
}

/// Maps path parameter failures (e.g. a malformed UUID) to 404: no such resource exists.
pub fn path_error(err: PathError, _req: &HttpRequest) -> actix_web::Error {
    ApiError::new(Code::NotFound, "Not found")
        .with_detail(format!("no resource at this path ({err})"))
        .into()
}

/// Maps query string failures to 400.
pub fn query_error(err: QueryPayloadError, _req: &HttpRequest) -> actix_web::Error {
    ApiError::new(Code::InvalidQuery, "Invalid query string")
        .with_detail(err.to_string())
        .into()
}

/// JSON extractor settings: body limit and problem JSON errors.
pub fn json_config(max_body_bytes: usize) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(max_body_bytes)
        .error_handler(json_error)
}

/// Path extractor settings.
pub fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(path_error)
}

/// Query extractor settings.
pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(query_error)
}
