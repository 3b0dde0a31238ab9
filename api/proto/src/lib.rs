//! Wire types shared by the Cloak server (`cloak-api`) and the client SDK (`cloak-sdk`).
//!
//! Only data shapes live here: serde and OpenAPI (`utoipa::ToSchema`) derives, input
//! validation rules (`validator`), and no I/O. Because both sides compile against the same
//! types, the server and the SDK cannot drift apart.

pub mod abuse;
pub mod ack_batch;
pub mod api_keys;
pub mod attachments;
pub mod billing;
pub mod bytes;
pub mod calls;
pub mod code;
pub mod console;
pub mod delivery;
pub mod devices;
pub mod events;
pub mod health;
pub mod invites;
pub mod json_body;
pub mod key_packages;
pub mod mls_frame;
pub mod paging;
pub mod problem;
pub mod signing;
pub mod stripe_webhook;
pub mod tenants;
pub mod users;

pub use code::Code;
pub use problem::{FieldError, Problem};
