//! Settings: defaults, then an optional TOML file, then `CLOAK_*` environment variables.
//!
//! With nothing configured the server runs the embedded default: SQLite under
//! `./cloak-data/`, the in-process broker, listening on 127.0.0.1:8080.
//! Secrets (database and Redis URLs may hold passwords) are [`SecretString`]s and never print.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use secrecy::SecretString;
use serde::Deserialize;

mod attachments;
mod guards;
pub use attachments::AttachmentSettings;
pub use guards::Guards;

/// Default listen address.
pub const DEFAULT_BIND: &str = "127.0.0.1:8080";
/// Default SQLite database (relative to the working directory).
pub const DEFAULT_DATABASE_URL: &str = "sqlite://cloak-data/cloak.db";

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Resolved server settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Listen address (`CLOAK_BIND`). Port 0 picks a free port.
    pub bind: SocketAddr,
    /// The externally visible base URL (`CLOAK_PUBLIC_URL`), used in links such as invites.
    /// Defaults to `http://{bind}`, with the real port once bound when the bind port is 0.
    pub public_url: String,
    /// True when `public_url` was derived from `bind` rather than configured.
    pub public_url_from_bind: bool,
    /// `postgres://…` or `sqlite:…` (`CLOAK_DATABASE_URL`).
    pub database_url: SecretString,
    /// Redis for several nodes (`CLOAK_REDIS_URL`); none means the in-process broker.
    pub redis_url: Option<SecretString>,
    /// Maximum database connections (`CLOAK_DB_MAX_CONNECTIONS`).
    pub db_max_connections: u32,
    /// How long a request waits for a database connection before answering 503
    /// (`CLOAK_DB_ACQUIRE_TIMEOUT_MS`): also how fast sends fail while the database is down.
    pub db_acquire_timeout_ms: u64,
    /// Largest accepted request body in bytes (`CLOAK_MAX_BODY_BYTES`).
    pub max_body_bytes: usize,
    /// HTTP worker threads (`CLOAK_WORKERS`); 0 means one per core.
    pub workers: usize,
    /// Seconds to drain connections on shutdown (`CLOAK_SHUTDOWN_TIMEOUT_SECS`).
    pub shutdown_timeout_secs: u64,
    /// `text` or `json` (`CLOAK_LOG_FORMAT`).
    pub log_format: LogFormat,
    /// Most entries one device's mailbox may hold (`CLOAK_MAILBOX_QUOTA`).
    pub mailbox_quota: i64,
    /// Stripe's API base URL (`CLOAK_STRIPE_API_BASE`, default `https://api.stripe.com`).
    pub stripe_api_base: String,
    /// Stripe secret key (`CLOAK_STRIPE_SECRET_KEY`); without it Checkout and meter events
    /// are unavailable.
    pub stripe_secret_key: Option<SecretString>,
    /// Stripe webhook signing secret (`CLOAK_STRIPE_WEBHOOK_SECRET`, `whsec_…`).
    pub stripe_webhook_secret: Option<SecretString>,
    /// How often background workers (webhooks, meter events) look for work, in ms
    /// (`CLOAK_WORKER_POLL_MS`).
    pub worker_poll_ms: u64,
    /// At most one `device.pending` push webhook per device per this many seconds, sent
    /// when the device has not taken an entry within it (`CLOAK_PUSH_COALESCE_SECS`).
    pub push_coalesce_secs: u64,
    /// Requests per second one tenant (its backend and its devices together) may make
    /// (`CLOAK_TENANT_REQUESTS_PER_SEC`).
    pub tenant_requests_per_sec: u32,
    /// Login attempts per client IP per minute (`CLOAK_LOGIN_PER_IP_PER_MINUTE`; 0 turns
    /// the limit off).
    pub login_per_ip_per_minute: u32,
    /// Most messages one transaction stores (`CLOAK_BATCH_MAX`).
    pub batch_max: usize,
    /// Microseconds a small batch waits for more messages while they arrive together
    /// (`CLOAK_BATCH_LINGER_US`; 0: a batch goes as soon as the previous one is written).
    pub batch_linger_us: u64,
    /// A batch with fewer messages than this lingers (`CLOAK_BATCH_LINGER_FILL`).
    pub batch_linger_fill: usize,
    /// Batches written at once (`CLOAK_BATCH_SHARDS`; 0: 1 on SQLite, which has one
    /// writer, 2 on PostgreSQL).
    pub batch_shards: usize,
    /// Serve HTTPS with this certificate chain and key (PEM files, `CLOAK_TLS_CERT` and
    /// `CLOAK_TLS_KEY`, both or neither), for deployments without a TLS proxy.
    pub tls: Option<TlsFiles>,
    /// The TURN relay whose credentials devices are issued (`CLOAK_TURN_URIS`,
    /// `CLOAK_TURN_SECRET`, both or neither; `CLOAK_TURN_TTL_SECS`).
    pub turn: Option<TurnSettings>,
    /// Sizes, stocks, rates and connection caps.
    pub guards: Guards,
    /// Where attachment blobs live and the bounds on uploads.
    pub attachments: AttachmentSettings,
}

/// A TURN relay using coturn's `use-auth-secret` (TURN REST API) credentials.
#[derive(Clone)]
pub struct TurnSettings {
    /// TURN and STUN URIs handed to clients, e.g. `turn:turn.example.com:3478?transport=udp`.
    pub uris: Vec<String>,
    /// The secret shared with the relay (`static-auth-secret`).
    pub secret: SecretString,
    /// How long issued credentials are valid, in seconds (charged per started minute).
    pub ttl_secs: u64,
}

impl std::fmt::Debug for TurnSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TurnSettings")
            .field("uris", &self.uris)
            .field("ttl_secs", &self.ttl_secs)
            .finish_non_exhaustive()
    }
}

/// The PEM files the server serves TLS with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// The TOML file's shape: every key optional, same names as the variables without `CLOAK_`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    bind: Option<String>,
    public_url: Option<String>,
    database_url: Option<String>,
    redis_url: Option<String>,
    db_max_connections: Option<u32>,
    db_acquire_timeout_ms: Option<u64>,
    max_body_bytes: Option<usize>,
    workers: Option<usize>,
    shutdown_timeout_secs: Option<u64>,
    log_format: Option<LogFormat>,
    mailbox_quota: Option<i64>,
    stripe_api_base: Option<String>,
    stripe_secret_key: Option<String>,
    stripe_webhook_secret: Option<String>,
    worker_poll_ms: Option<u64>,
    push_coalesce_secs: Option<u64>,
    tenant_requests_per_sec: Option<u32>,
    login_per_ip_per_minute: Option<u32>,
    batch_max: Option<usize>,
    batch_linger_us: Option<u64>,
    batch_linger_fill: Option<usize>,
    batch_shards: Option<usize>,
    tls_cert: Option<String>,
    tls_key: Option<String>,
    turn_uris: Option<String>,
    turn_secret: Option<String>,
    turn_ttl_secs: Option<u64>,
    #[serde(default)]
    guards: guards::FileGuards,
}

/// Why settings could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The TOML file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The TOML file is malformed.
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// A value is invalid.
    #[error("invalid value for {key}: {message}")]
    Invalid {
        /// The setting (environment variable name).
        key: &'static str,
        /// What is wrong.
        message: String,
    },
}

impl Settings {
    /// Loads settings from an optional TOML file and the process environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::from_sources(file, |key| std::env::var(key).ok())
    }

    /// Loads settings from an optional file and an environment lookup (tests pass a map).
    pub fn from_sources(
        file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let file_settings = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                toml::from_str::<FileSettings>(&text).map_err(|e| ConfigError::Parse {
                    path: path.to_owned(),
                    message: e.message().to_owned(),
                })?
            }
            None => FileSettings::default(),
        };
        let pick = |key: &str, from_file: Option<String>| env(key).or(from_file);

        let bind_text =
            pick("CLOAK_BIND", file_settings.bind).unwrap_or_else(|| DEFAULT_BIND.to_owned());
        let bind: SocketAddr = bind_text.parse().map_err(|e| ConfigError::Invalid {
            key: "CLOAK_BIND",
            message: format!("{e} (expected host:port, e.g. {DEFAULT_BIND})"),
        })?;
        let configured_public_url = pick("CLOAK_PUBLIC_URL", file_settings.public_url);
        let public_url_from_bind = configured_public_url.is_none();
        let public_url = configured_public_url.unwrap_or_else(|| format!("http://{bind}"));
        let public_url = public_url.trim_end_matches('/').to_owned();
        if !(public_url.starts_with("http://") || public_url.starts_with("https://")) {
            return Err(ConfigError::Invalid {
                key: "CLOAK_PUBLIC_URL",
                message: "must start with http:// or https://".to_owned(),
            });
        }
        let database_url = pick("CLOAK_DATABASE_URL", file_settings.database_url)
            .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned());
        let redis_url = pick("CLOAK_REDIS_URL", file_settings.redis_url).filter(|s| !s.is_empty());
        let log_format = match env("CLOAK_LOG_FORMAT") {
            Some(v) => match v.as_str() {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                _ => {
                    return Err(ConfigError::Invalid {
                        key: "CLOAK_LOG_FORMAT",
                        message: "expected text or json".to_owned(),
                    });
                }
            },
            None => file_settings.log_format.unwrap_or(LogFormat::Text),
        };

        let attachments = AttachmentSettings::resolve(&env, &database_url)?;
        Ok(Self {
            bind,
            public_url,
            public_url_from_bind,
            database_url: SecretString::from(database_url),
            redis_url: redis_url.map(SecretString::from),
            db_max_connections: number(
                &env,
                "CLOAK_DB_MAX_CONNECTIONS",
                file_settings.db_max_connections,
                10,
            )?,
            db_acquire_timeout_ms: number(
                &env,
                "CLOAK_DB_ACQUIRE_TIMEOUT_MS",
                file_settings.db_acquire_timeout_ms,
                2_000,
            )?,
            max_body_bytes: number(
                &env,
                "CLOAK_MAX_BODY_BYTES",
                file_settings.max_body_bytes,
                1024 * 1024,
            )?,
            workers: number(&env, "CLOAK_WORKERS", file_settings.workers, 0)?,
            shutdown_timeout_secs: number(
                &env,
                "CLOAK_SHUTDOWN_TIMEOUT_SECS",
                file_settings.shutdown_timeout_secs,
                30,
            )?,
            log_format,
            mailbox_quota: number(
                &env,
                "CLOAK_MAILBOX_QUOTA",
                file_settings.mailbox_quota,
                10_000,
            )?,
            stripe_api_base: pick("CLOAK_STRIPE_API_BASE", file_settings.stripe_api_base)
                .unwrap_or_else(|| "https://api.stripe.com".to_owned())
                .trim_end_matches('/')
                .to_owned(),
            stripe_secret_key: pick("CLOAK_STRIPE_SECRET_KEY", file_settings.stripe_secret_key)
                .filter(|s| !s.is_empty())
                .map(SecretString::from),
            stripe_webhook_secret: pick(
                "CLOAK_STRIPE_WEBHOOK_SECRET",
                file_settings.stripe_webhook_secret,
            )
            .filter(|s| !s.is_empty())
            .map(SecretString::from),
            worker_poll_ms: number(
                &env,
                "CLOAK_WORKER_POLL_MS",
                file_settings.worker_poll_ms,
                1000,
            )?,
            push_coalesce_secs: number(
                &env,
                "CLOAK_PUSH_COALESCE_SECS",
                file_settings.push_coalesce_secs,
                30,
            )?
            .max(1),
            tenant_requests_per_sec: number(
                &env,
                "CLOAK_TENANT_REQUESTS_PER_SEC",
                file_settings.tenant_requests_per_sec,
                2000,
            )?,
            login_per_ip_per_minute: number(
                &env,
                "CLOAK_LOGIN_PER_IP_PER_MINUTE",
                file_settings.login_per_ip_per_minute,
                300,
            )?,
            batch_max: number(&env, "CLOAK_BATCH_MAX", file_settings.batch_max, 512)?.max(1),
            batch_linger_us: number(
                &env,
                "CLOAK_BATCH_LINGER_US",
                file_settings.batch_linger_us,
                2_000,
            )?,
            batch_linger_fill: number(
                &env,
                "CLOAK_BATCH_LINGER_FILL",
                file_settings.batch_linger_fill,
                4,
            )?
            .max(1),
            batch_shards: number(&env, "CLOAK_BATCH_SHARDS", file_settings.batch_shards, 0)?,
            tls: match (
                pick("CLOAK_TLS_CERT", file_settings.tls_cert).filter(|s| !s.is_empty()),
                pick("CLOAK_TLS_KEY", file_settings.tls_key).filter(|s| !s.is_empty()),
            ) {
                (Some(cert), Some(key)) => Some(TlsFiles {
                    cert: cert.into(),
                    key: key.into(),
                }),
                (None, None) => None,
                (Some(_), None) => {
                    return Err(ConfigError::Invalid {
                        key: "CLOAK_TLS_KEY",
                        message: "CLOAK_TLS_CERT is set; set the key file too".into(),
                    });
                }
                (None, Some(_)) => {
                    return Err(ConfigError::Invalid {
                        key: "CLOAK_TLS_CERT",
                        message: "CLOAK_TLS_KEY is set; set the certificate file too".into(),
                    });
                }
            },
            turn: match (
                pick("CLOAK_TURN_URIS", file_settings.turn_uris).filter(|s| !s.trim().is_empty()),
                pick("CLOAK_TURN_SECRET", file_settings.turn_secret).filter(|s| !s.is_empty()),
            ) {
                (Some(uris), Some(secret)) => Some(TurnSettings {
                    uris: uris
                        .split(',')
                        .map(|u| u.trim().to_owned())
                        .filter(|u| !u.is_empty())
                        .collect(),
                    secret: SecretString::from(secret),
                    ttl_secs: number(
                        &env,
                        "CLOAK_TURN_TTL_SECS",
                        file_settings.turn_ttl_secs,
                        600,
                    )?
                    .clamp(60, 86_400),
                }),
                (None, None) => None,
                (Some(_), None) => {
                    return Err(ConfigError::Invalid {
                        key: "CLOAK_TURN_SECRET",
                        message: "CLOAK_TURN_URIS is set; set the relay's shared secret too".into(),
                    });
                }
                (None, Some(_)) => {
                    return Err(ConfigError::Invalid {
                        key: "CLOAK_TURN_URIS",
                        message: "CLOAK_TURN_SECRET is set; set the relay's URIs too".into(),
                    });
                }
            },
            guards: Guards::resolve(&env, file_settings.guards)?,
            attachments,
        })
    }
}

fn number<T: std::str::FromStr>(
    env: &impl Fn(&str) -> Option<String>,
    key: &'static str,
    from_file: Option<T>,
    default: T,
) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    match env(key) {
        Some(text) => text
            .trim()
            .parse()
            .map_err(|e: T::Err| ConfigError::Invalid {
                key,
                message: e.to_string(),
            }),
        None => Ok(from_file.unwrap_or(default)),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::io::Write as _;

    use secrecy::ExposeSecret;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn defaults_are_the_embedded_setup() {
        let s = Settings::from_sources(None, env(&[])).unwrap();
        assert_eq!(s.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(s.database_url.expose_secret(), DEFAULT_DATABASE_URL);
        assert!(s.redis_url.is_none());
        assert_eq!(s.public_url, "http://127.0.0.1:8080");
    }

    #[test]
    fn environment_overrides_file() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        writeln!(
            file,
            "bind = \"0.0.0.0:9000\"\npublic_url = \"https://chat.example/\"\nworkers = 3"
        )
        .unwrap();
        let s = Settings::from_sources(Some(file.path()), env(&[("CLOAK_BIND", "127.0.0.1:9100")]))
            .unwrap();
        assert_eq!(s.bind.to_string(), "127.0.0.1:9100");
        assert_eq!(s.public_url, "https://chat.example");
        assert_eq!(s.workers, 3);
    }

    #[test]
    fn unknown_file_keys_and_bad_values_are_errors() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        writeln!(file, "bnd = \"x\"").unwrap();
        assert!(matches!(
            Settings::from_sources(Some(file.path()), env(&[])),
            Err(ConfigError::Parse { .. })
        ));
        let err = Settings::from_sources(None, env(&[("CLOAK_BIND", "nope")])).unwrap_err();
        assert!(err.to_string().contains("CLOAK_BIND"), "{err}");
        let err = Settings::from_sources(None, env(&[("CLOAK_WORKERS", "-1")])).unwrap_err();
        assert!(err.to_string().contains("CLOAK_WORKERS"), "{err}");
    }

    #[test]
    fn secrets_do_not_print() {
        let s = Settings::from_sources(
            None,
            env(&[
                ("CLOAK_DATABASE_URL", "postgres://u:hunter2@db/x"),
                ("CLOAK_REDIS_URL", "redis://:hunter3@r"),
            ]),
        )
        .unwrap();
        let printed = format!("{s:?}");
        assert!(
            !printed.contains("hunter2") && !printed.contains("hunter3"),
            "{printed}"
        );
    }
}
