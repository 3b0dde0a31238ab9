//! The Stripe client (async-stripe over hyper + rustls) pointed at a configurable base URL,
//! and how its errors map onto ours.

use cloak_proto::Code;
use secrecy::{ExposeSecret as _, SecretString};
use stripe::StripeError;

use super::ServiceError;

/// A configured Stripe client.
pub struct StripeApi {
    pub(crate) client: stripe::Client,
}

impl StripeApi {
    /// A client for `base_url` (`https://api.stripe.com`, or a fake in tests).
    pub fn new(secret_key: &SecretString, base_url: &str) -> Result<Self, String> {
        let client = stripe::ClientBuilder::new(secret_key.expose_secret())
            .url(format!("{}/", base_url.trim_end_matches('/')))
            .timeout(std::time::Duration::from_secs(20))
            .app_info(
                "cloak-api",
                Some(env!("CARGO_PKG_VERSION").to_owned()),
                None,
            )
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self { client })
    }
}

/// Whether a failed call is worth retrying: rate limits, Stripe's own errors, network.
pub fn retryable(e: &StripeError) -> bool {
    match e {
        StripeError::Stripe(_, status) => *status == 429 || *status >= 500,
        // An error answer without Stripe's JSON (a proxy, an outage page) loses its status
        // in async-stripe: worth another try, within the attempt limit.
        StripeError::ClientError(_) | StripeError::Timeout | StripeError::JSONDeserialize(_) => {
            true
        }
        StripeError::ConfigError(_) => false,
    }
}

/// The HTTP status Stripe answered, if it answered.
pub fn status(e: &StripeError) -> Option<u16> {
    match e {
        StripeError::Stripe(_, status) => Some(*status),
        _ => None,
    }
}

/// Stripe's message for a refusal, without anything secret.
pub fn message(e: &StripeError) -> String {
    match e {
        StripeError::Stripe(api, status) => format!(
            "Stripe answered {status}: {}",
            api.message.as_deref().unwrap_or("no message")
        ),
        StripeError::ClientError(m) => format!("cannot reach Stripe: {m}"),
        StripeError::Timeout => "Stripe did not answer in time".into(),
        StripeError::JSONDeserialize(m) => format!("unexpected answer from Stripe: {m}"),
        StripeError::ConfigError(m) => format!("Stripe client configuration: {m}"),
    }
}

/// A failed call as a 502 problem.
pub fn upstream(e: &StripeError) -> ServiceError {
    tracing::warn!(error = %message(e), "Stripe call failed");
    ServiceError::Unavailable {
        code: Code::StripeError,
        detail: message(e),
    }
}
