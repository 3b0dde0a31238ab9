//! Structured logs via `tracing`. Logs name ids and routes, never tokens, keys, message
//! bodies or personal data. Filter with `CLOAK_LOG` (e.g. `debug`, `cloak_api=debug`).

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber, writing to stderr (stdout stays free for CLI output).
/// Does nothing if one is already installed.
pub fn init(format: LogFormat) {
    let filter =
        EnvFilter::try_from_env("CLOAK_LOG").unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
