//! End-to-end tests over real `cloak-api` processes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod delivery;
mod foundation;
mod identity;
mod messaging;
