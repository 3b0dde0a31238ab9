//! Reading a JSON request body into its type, as the server does for every REST body:
//! the body must be a JSON object (serde would also take a struct from an array such as
//! `[null, null]`), and an integral float (`468.0`, an integer to JSON Schema) is read as
//! an integer. Validation (`validator`) is the caller's next step. Without I/O here, so the
//! fuzz target `request_bodies` reads bodies exactly as the server does.

use serde::de::DeserializeOwned;

/// Why a body was refused.
#[derive(Debug)]
pub enum BodyError {
    /// Valid JSON, but not an object.
    NotAnObject,
    /// Not JSON, or JSON of the wrong shape ([`serde_json::Error::is_data`] tells which).
    Json(serde_json::Error),
}

/// Deserializes a request body (already known to be JSON text) into `T`.
pub fn from_body<T: DeserializeOwned>(raw: &str) -> Result<T, BodyError> {
    if !raw.trim_start().starts_with('{') {
        return Err(BodyError::NotAnObject);
    }
    deserialize(raw).map_err(BodyError::Json)
}

/// JSON has one number type, but serde refuses `468.0` for an integer field: when a body
/// does not deserialize, its integral floats are read as integers and it is tried once
/// more (only on that error path, so a well-formed body is parsed once).
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

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct Body {
        n: u32,
        list: Vec<i64>,
    }

    #[test]
    fn integral_floats_are_integers() {
        let body: Body = from_body(r#"{"n": 480.0, "list": [1, -2.0, 3e2]}"#).unwrap();
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
        let Err(BodyError::Json(err)) = from_body::<Body>(r#"{"n": 480.5, "list": []}"#) else {
            panic!("480.5 is not a u32");
        };
        assert!(err.is_data() && err.to_string().contains("480.5"), "{err}");
        assert!(from_body::<Body>(r#"{"n": 1, "list": [1e300]}"#).is_err());
        assert!(from_body::<Body>(r#"{"n": 1, "list": [9007199254740994.0]}"#).is_err());
        // Out of the field's range stays an error.
        assert!(from_body::<Body>(r#"{"n": -1.0, "list": []}"#).is_err());
        assert!(matches!(from_body::<Body>(r#"{"n": "#), Err(BodyError::Json(e)) if e.is_eof()));
    }

    #[test]
    fn only_objects_are_bodies() {
        assert!(matches!(
            from_body::<Body>("[480, []]"),
            Err(BodyError::NotAnObject)
        ));
        assert!(matches!(
            from_body::<Body>("  null"),
            Err(BodyError::NotAnObject)
        ));
        assert!(from_body::<Body>(" \n{\"n\": 1, \"list\": []}").is_ok());
    }
}
