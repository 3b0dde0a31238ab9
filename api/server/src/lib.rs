//! `cloak-api`: the Cloak multi-tenant HTTP + WebSocket service.
//!
//! Layers: [`http`] (thin handlers, problem JSON), [`services`] (the domain; time and
//! randomness are parameters), [`store`] (a trait per aggregate, PostgreSQL and SQLite),
//! [`broker`] (cross-node fan-out, Redis or in-process).

pub mod blobs;
pub mod broker;
pub mod cli;
pub mod clock;
pub mod config;
pub mod http;
pub mod redis_pool;
pub mod services;
pub mod startup;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod workers;
