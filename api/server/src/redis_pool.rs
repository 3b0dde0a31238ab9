//! Redis connection pools, opened one way for the broker and the memory mailbox.
//!
//! Every wait is bounded: taking a connection, opening one and checking an idle one each
//! give up after [`TIMEOUT`], and redis-rs bounds each command's answer itself. So an
//! unreachable or paused Redis costs a caller about a second, never a hang.

use std::time::Duration;

use deadpool_redis::{Config, CreatePoolError, Pool, PoolConfig, Runtime, Timeouts};

/// Longest wait for a pooled Redis connection (taken, opened or checked).
pub const TIMEOUT: Duration = Duration::from_secs(1);

/// A pool on `url` with bounded waits.
pub fn open(url: &str) -> Result<Pool, CreatePoolError> {
    let mut config = Config::from_url(url);
    config.pool = Some(PoolConfig {
        timeouts: Timeouts {
            wait: Some(TIMEOUT),
            create: Some(TIMEOUT),
            recycle: Some(TIMEOUT),
        },
        ..PoolConfig::default()
    });
    config.create_pool(Some(Runtime::Tokio1))
}
