//! Integration tests of `cloak-api`: the real application on port 0 with a fresh database
//! per test. Every test runs twice, on SQLite with the in-process broker and on PostgreSQL
//! with Redis (servers started by `scripts/test`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod billing_helpers;
mod console_helpers;
mod cut_proxy;
mod delivery_helpers;
mod helpers;
mod identity_conformance;
mod identity_helpers;

mod abuse;
mod api_keys;
mod attachments;
mod billing;
mod blob_conformance;
mod broker_conformance;
mod calls;
mod console;
mod delivery;
mod delivery_conformance;
mod devices;
mod errors;
mod hardening;
mod health;
mod insights_conformance;
mod invites;
mod isolation;
mod key_packages;
mod ledger_properties;
mod limits;
mod mailbox_properties;
mod memory_mailbox;
mod openapi;
mod outages;
mod pipeline;
mod push;
mod removal_conformance;
mod removals;
mod store_conformance;
mod stripe;
mod users;
mod view_price;
