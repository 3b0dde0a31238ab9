//! Stripe's webhook wire format, as the server receives it from the network: the
//! `Stripe-Signature` header and the event envelope. Parsing only; the server checks the
//! signature (`services::stripe_signature`) and applies the event. Here, without I/O, so
//! the fuzz target `stripe_webhook` reads exactly what the server reads.

use serde::Deserialize;

/// A parsed `Stripe-Signature` header: `t={unix seconds},v1={hex},v1={hex},…`. Several
/// `v1` come while a secret is being rolled; other schemes (`v0`) and parts that are not
/// `key=value` are ignored, as Stripe's own libraries do, and so is a `v1` that is not hex
/// (it can match nothing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureHeader {
    /// When Stripe signed (Unix seconds).
    pub timestamp: i64,
    /// The candidate HMAC-SHA256 signatures.
    pub v1: Vec<Vec<u8>>,
}

/// Why a signature header is unusable (the text is the problem's detail).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderError(pub &'static str);

impl std::fmt::Display for HeaderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for HeaderError {}

/// Reads a `Stripe-Signature` header: exactly one numeric `t` and at least one hex `v1`.
pub fn parse_signature_header(header: &str) -> Result<SignatureHeader, HeaderError> {
    let mut timestamp: Option<i64> = None;
    let mut v1 = Vec::new();
    for part in header.split(',') {
        let Some((key, value)) = part.trim().split_once('=') else {
            continue;
        };
        match key {
            "t" => {
                if timestamp.is_some() {
                    return Err(HeaderError("the signature header has two timestamps"));
                }
                timestamp = Some(
                    value
                        .parse()
                        .map_err(|_| HeaderError("the signature timestamp is not a number"))?,
                );
            }
            "v1" => {
                if let Ok(bytes) = hex::decode(value) {
                    v1.push(bytes);
                }
            }
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(HeaderError("the signature header has no timestamp"))?;
    if v1.is_empty() {
        return Err(HeaderError("the signature header has no v1 signature"));
    }
    Ok(SignatureHeader { timestamp, v1 })
}

/// A Stripe event: its id, its type and the object it is about (read field by field, as
/// Stripe adds fields to objects without notice).
#[derive(Debug, Clone, Deserialize)]
pub struct Event {
    /// `evt_…`.
    pub id: String,
    /// Such as `checkout.session.completed`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// The event's payload.
    pub data: EventData,
}

/// `data` of an event.
#[derive(Debug, Clone, Deserialize)]
pub struct EventData {
    /// The API object the event is about.
    pub object: serde_json::Value,
}

impl Event {
    /// Parses a webhook body.
    pub fn parse(payload: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(payload)
    }

    /// A string field of the object.
    pub fn str_field(&self, name: &str) -> Option<&str> {
        self.data
            .object
            .get(name)
            .and_then(serde_json::Value::as_str)
    }

    /// An integer field of the object.
    pub fn int_field(&self, name: &str) -> Option<i64> {
        self.data
            .object
            .get(name)
            .and_then(serde_json::Value::as_i64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_timestamp_and_every_hex_v1() {
        let h = parse_signature_header("t=1000, v1=00ff,v1=zz,v0=abc,junk,v1=0A").unwrap();
        assert_eq!(h.timestamp, 1000);
        assert_eq!(h.v1, vec![vec![0x00, 0xff], vec![0x0a]]);
    }

    #[test]
    fn refuses_headers_without_one_timestamp_or_any_v1() {
        for junk in [
            "",
            "t=1000",
            "v1=00",
            "t=x,v1=00",
            "t=1,t=1,v1=00",
            "t=1,v1=0",
        ] {
            assert!(parse_signature_header(junk).is_err(), "{junk}");
        }
    }

    #[test]
    fn an_event_reads_its_object_fields() {
        let e = Event::parse(
            br#"{"id":"evt_1","type":"charge.refunded","data":{"object":{"payment_intent":"pi_1","amount":900,"x":[1]}}}"#,
        )
        .unwrap();
        assert_eq!(
            (e.id.as_str(), e.event_type.as_str()),
            ("evt_1", "charge.refunded")
        );
        assert_eq!(e.str_field("payment_intent"), Some("pi_1"));
        assert_eq!(e.int_field("amount"), Some(900));
        assert_eq!(e.int_field("payment_intent"), None);
        assert!(Event::parse(br#"{"id":"evt_1","type":"x"}"#).is_err());
    }
}
