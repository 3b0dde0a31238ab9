//! Stripe webhook signatures, checked exactly as Stripe signs: the `Stripe-Signature`
//! header (read by `cloak_proto::stripe_webhook`) carries a timestamp `t` and one or more
//! `v1` signatures, each an HMAC-SHA256 under the endpoint secret of `"{t}.{raw body}"`. One matching `v1` (compared in constant time) and
//! a timestamp within 5 minutes of now are required. The time is a parameter.

use cloak_proto::Code;
use cloak_proto::stripe_webhook::parse_signature_header;
use subtle::ConstantTimeEq as _;

use super::ServiceError;
use super::webhooks::mac;

/// Stripe's default tolerance.
pub const TOLERANCE_S: i64 = 300;

/// A verified signature's timestamp (Unix seconds).
pub fn verify(secret: &str, header: &str, payload: &[u8], now_s: i64) -> Result<i64, ServiceError> {
    let header = parse_signature_header(header)
        .map_err(|e| ServiceError::invalid(Code::InvalidSignature, e.0))?;
    let expected = mac(secret, header.timestamp, payload);
    let matched = header.v1.iter().fold(false, |any, c| {
        any | bool::from(c.as_slice().ct_eq(&expected))
    });
    if !matched {
        return Err(ServiceError::invalid(
            Code::InvalidSignature,
            "no signature matches the payload",
        ));
    }
    if (now_s - header.timestamp).abs() > TOLERANCE_S {
        return Err(ServiceError::invalid(
            Code::StaleSignature,
            "the signature's timestamp is more than 5 minutes from now",
        ));
    }
    Ok(header.timestamp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::webhooks::signature_header;

    const SECRET: &str = "whsec_test";

    #[test]
    fn accepts_a_fresh_signature_among_several() {
        let body = br#"{"id":"evt_1"}"#;
        let good = signature_header(SECRET, 1_000, body);
        let v1 = good.split_once(",v1=").map(|(_, v)| v).unwrap();
        let header = format!("t=1000,v1={},v1={v1},v0=abc", "00".repeat(32));
        assert_eq!(verify(SECRET, &header, body, 1_100).ok(), Some(1_000));
    }

    #[test]
    fn refuses_forged_stale_and_malformed() {
        let body = br#"{"id":"evt_1"}"#;
        let header = signature_header(SECRET, 1_000, body);
        let code = |r: Result<i64, ServiceError>| match r {
            Err(ServiceError::Invalid { code, .. }) => code,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            code(verify(SECRET, &header, b"{\"id\":\"evt_2\"}", 1_000)),
            Code::InvalidSignature
        );
        assert_eq!(
            code(verify("whsec_other", &header, body, 1_000)),
            Code::InvalidSignature
        );
        assert_eq!(
            code(verify(SECRET, &header, body, 1_301)),
            Code::StaleSignature
        );
        assert_eq!(
            code(verify(SECRET, &header, body, 699)),
            Code::StaleSignature
        );
        for junk in ["", "t=1000", "v1=00", "t=x,v1=00", "t=1000,t=1000,v1=00"] {
            assert_eq!(
                code(verify(SECRET, junk, body, 1_000)),
                Code::InvalidSignature,
                "{junk}"
            );
        }
    }
}
