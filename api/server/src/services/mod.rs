//! The domain. Functions here take the store, the current time and a random source as
//! parameters, so they are deterministic under test and know nothing of HTTP.

pub mod api_keys;
pub mod delivery;
pub mod devices;
pub mod error;
pub mod ids;
pub mod invites;
pub mod key_packages;
pub mod principals;
pub mod qr;
pub mod tenants;
pub mod tokens;
pub mod users;

pub use error::ServiceError;
