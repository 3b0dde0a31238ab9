//! Request extraction: JSON, path and query errors become problem JSON, and
//! [`ValidatedJson`] runs the `validator` rules before a handler sees the body.

use actix_web::dev::Payload;
use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::{FromRequest, HttpRequest, web};
use cloak_proto::Code;
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
        // Read as raw JSON first: serde would also take a struct from an array
        // (`[null, null]`), and every body here is an object.
        let json = web::Json::<Box<serde_json::value::RawValue>>::from_request(req, payload);
        Box::pin(async move {
            let web::Json(raw) = json.await?;
            if !raw.get().trim_start().starts_with('{') {
                return Err(ApiError::new(Code::InvalidJson, "Invalid JSON body")
                    .with_detail("the body must be a JSON object")
                    .into());
            }
            let value: T = deserialize(raw.get()).map_err(|e| {
                let code = if e.is_data() {
                    Code::InvalidJson
                } else {
                    Code::MalformedJson
                };
                ApiError::new(code, "Invalid JSON body").with_detail(e.to_string())
            })?;
            value.validate().map_err(|e| ApiError::validation(&e))?;
            Ok(ValidatedJson(value))
        })
    }
}

/// Deserializes a JSON object. JSON has one number type and JSON Schema counts `468.0`
/// as an integer, but serde refuses it for an integer field: when a body does not
/// deserialize, its integral floats are read as integers and it is tried once more (only
/// on that error path, so a well-formed body is parsed once).
fn deserialize<T: DeserializeOwned>(raw: &str) -> Result<T, serde_json::Error> {
    serde_json::from_str(raw).or_else(|first| {
        let Ok(mut value) = serde_json::from_str::<serde_json::Value>(raw) else {
            return Err(first);
        };
        if integral_floats_as_integers(&mut value) {
            serde_json::from_value(value).map_err(|_| first)
        } else {
            Err(first)
        }
    })
}

/// Rewrites every float that is exactly an integer (within ±2^53, where a float holds
/// every integer) as that integer; true when it changed any.
fn integral_floats_as_integers(value: &mut serde_json::Value) -> bool {
    use serde_json::Value;
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    match value {
        Value::Number(n) if n.is_f64() => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() <= EXACT => {
                // In range and integral, so the cast is exact.
                let i = f as i64;
                *value = Value::from(i);
                true
            }
            _ => false,
        },
        Value::Array(items) => items
            .iter_mut()
            .fold(false, |changed, v| integral_floats_as_integers(v) | changed),
        Value::Object(fields) => fields
            .values_mut()
            .fold(false, |changed, v| integral_floats_as_integers(v) | changed),
        _ => false,
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

#[cfg(test)]
mod tests {
    use super::deserialize;

    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct Body {
        n: u32,
        list: Vec<i64>,
    }

    #[test]
    fn integral_floats_are_integers() {
        let body: Body = deserialize(r#"{"n": 480.0, "list": [1, -2.0, 3e2]}"#).unwrap();
        assert_eq!(
            body,
            Body {
                n: 480,
                list: vec![1, -2, 300]
            }
        );
    }

    #[test]
    fn fractions_and_inexact_floats_are_refused_with_the_first_error() {
        let err = deserialize::<Body>(r#"{"n": 480.5, "list": []}"#).unwrap_err();
        assert!(err.to_string().contains("480.5"), "{err}");
        assert!(deserialize::<Body>(r#"{"n": 1, "list": [1e300]}"#).is_err());
        assert!(deserialize::<Body>(r#"{"n": 1, "list": [9007199254740994.0]}"#).is_err());
        // Out of the field's range stays an error.
        assert!(deserialize::<Body>(r#"{"n": -1.0, "list": []}"#).is_err());
    }
}
