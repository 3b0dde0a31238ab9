//! The domain. Functions here take the store, the current time and a random source as
//! parameters, so they are deterministic under test and know nothing of HTTP.

pub mod api_keys;
pub mod error;
pub mod tenants;

pub use error::ServiceError;
