//! End-to-end tests over real `cloak-api` processes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod abuse;
mod attachments;
mod billing;
mod calls;
mod chat_cli;
mod console;
mod delivery;
mod foundation;
mod identity;
mod landing;
mod lying_server;
mod messaging;
mod push;
