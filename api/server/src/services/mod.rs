//! The domain. Functions here take the store, the current time and a random source as
//! parameters, so they are deterministic under test and know nothing of HTTP.

pub mod abuse;
pub mod api_keys;
pub mod attachments;
pub mod batcher;
pub mod billing;
pub mod calls;
pub mod checkout;
pub mod commit_rules;
pub mod console;
pub mod delivery;
pub mod devices;
pub mod egress;
pub mod error;
pub mod external_sender;
pub mod hot;
pub mod ids;
pub mod insights;
pub mod invites;
pub mod key_packages;
pub mod limits;
pub mod meter;
pub mod outbound;
pub mod paging;
pub mod pipeline;
pub mod principals;
pub mod push;
pub mod push_tokens;
pub mod qr;
pub mod removals;
pub mod socket_limits;
pub mod stripe_api;
pub mod stripe_events;
pub mod stripe_signature;
pub mod tenants;
pub mod tokens;
pub mod users;
pub mod webhooks;

pub use error::ServiceError;
