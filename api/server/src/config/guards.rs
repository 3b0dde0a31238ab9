//! The bounds that keep one misbehaving client from costing everyone else: sizes, stocks,
//! rates and connection caps (`CLOAK_*` variables, or the TOML file's `[guards]` table).

use serde::Deserialize;

use super::{ConfigError, number};

/// Resolved bounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guards {
    /// Largest MLS commit in bytes (`CLOAK_MAX_COMMIT_BYTES`).
    pub max_commit_bytes: usize,
    /// Largest MLS Welcome in bytes (`CLOAK_MAX_WELCOME_BYTES`).
    pub max_welcome_bytes: usize,
    /// Most bytes of Welcome copies one commit may store: its size times the devices it
    /// adds (`CLOAK_MAX_WELCOME_FANOUT_BYTES`).
    pub max_welcome_fanout_bytes: usize,
    /// Commits one device may submit per minute (`CLOAK_COMMITS_PER_DEVICE_PER_MINUTE`).
    pub commits_per_device_per_minute: u32,
    /// Commits one conversation may take per minute, from all its members
    /// (`CLOAK_COMMITS_PER_CONVERSATION_PER_MINUTE`).
    pub commits_per_conversation_per_minute: u32,
    /// Most unclaimed KeyPackages a device may hold in the directory
    /// (`CLOAK_KEY_PACKAGE_STOCK`).
    pub key_package_stock: i64,
    /// KeyPackage claims one device may make per minute (`CLOAK_KEY_PACKAGE_CLAIMS_PER_MINUTE`).
    pub key_package_claims_per_minute: u32,
    /// Open WebSockets per device (`CLOAK_WS_PER_DEVICE`); the oldest is closed for a new one.
    pub ws_per_device: usize,
    /// Frames per second one socket may send, bursts of one second allowed; beyond it
    /// the server reads the socket more slowly (`CLOAK_WS_FRAMES_PER_SEC`).
    pub ws_frames_per_sec: u32,
    /// Most body bytes in one mailbox page (`CLOAK_MAILBOX_PAGE_BYTES`); a page holds at least
    /// one entry.
    pub mailbox_page_bytes: usize,
    /// Whether tenant webhooks may target loopback, private, link-local and metadata
    /// addresses (`CLOAK_WEBHOOK_ALLOW_PRIVATE`, off by default).
    pub webhook_allow_private: bool,
}

impl Default for Guards {
    fn default() -> Self {
        Self {
            max_commit_bytes: 256 * 1024,
            max_welcome_bytes: 512 * 1024,
            max_welcome_fanout_bytes: 32 * 1024 * 1024,
            commits_per_device_per_minute: 60,
            commits_per_conversation_per_minute: 120,
            key_package_stock: 200,
            key_package_claims_per_minute: 120,
            ws_per_device: 4,
            ws_frames_per_sec: 1000,
            mailbox_page_bytes: 4 * 1024 * 1024,
            webhook_allow_private: false,
        }
    }
}

/// The `[guards]` table of the TOML file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileGuards {
    max_commit_bytes: Option<usize>,
    max_welcome_bytes: Option<usize>,
    max_welcome_fanout_bytes: Option<usize>,
    commits_per_device_per_minute: Option<u32>,
    commits_per_conversation_per_minute: Option<u32>,
    key_package_stock: Option<i64>,
    key_package_claims_per_minute: Option<u32>,
    ws_per_device: Option<usize>,
    ws_frames_per_sec: Option<u32>,
    mailbox_page_bytes: Option<usize>,
    webhook_allow_private: Option<bool>,
}

impl Guards {
    pub(super) fn resolve(
        env: &impl Fn(&str) -> Option<String>,
        file: FileGuards,
    ) -> Result<Self, ConfigError> {
        let d = Self::default();
        let at_least_one = |key: &'static str, v: u32| {
            if v == 0 {
                Err(ConfigError::Invalid {
                    key,
                    message: "must be at least 1".into(),
                })
            } else {
                Ok(v)
            }
        };
        Ok(Self {
            max_commit_bytes: number(
                env,
                "CLOAK_MAX_COMMIT_BYTES",
                file.max_commit_bytes,
                d.max_commit_bytes,
            )?,
            max_welcome_bytes: number(
                env,
                "CLOAK_MAX_WELCOME_BYTES",
                file.max_welcome_bytes,
                d.max_welcome_bytes,
            )?,
            max_welcome_fanout_bytes: number(
                env,
                "CLOAK_MAX_WELCOME_FANOUT_BYTES",
                file.max_welcome_fanout_bytes,
                d.max_welcome_fanout_bytes,
            )?,
            commits_per_device_per_minute: at_least_one(
                "CLOAK_COMMITS_PER_DEVICE_PER_MINUTE",
                number(
                    env,
                    "CLOAK_COMMITS_PER_DEVICE_PER_MINUTE",
                    file.commits_per_device_per_minute,
                    d.commits_per_device_per_minute,
                )?,
            )?,
            commits_per_conversation_per_minute: at_least_one(
                "CLOAK_COMMITS_PER_CONVERSATION_PER_MINUTE",
                number(
                    env,
                    "CLOAK_COMMITS_PER_CONVERSATION_PER_MINUTE",
                    file.commits_per_conversation_per_minute,
                    d.commits_per_conversation_per_minute,
                )?,
            )?,
            key_package_stock: number(
                env,
                "CLOAK_KEY_PACKAGE_STOCK",
                file.key_package_stock,
                d.key_package_stock,
            )?
            .max(1),
            key_package_claims_per_minute: at_least_one(
                "CLOAK_KEY_PACKAGE_CLAIMS_PER_MINUTE",
                number(
                    env,
                    "CLOAK_KEY_PACKAGE_CLAIMS_PER_MINUTE",
                    file.key_package_claims_per_minute,
                    d.key_package_claims_per_minute,
                )?,
            )?,
            ws_per_device: number(
                env,
                "CLOAK_WS_PER_DEVICE",
                file.ws_per_device,
                d.ws_per_device,
            )?
            .max(1),
            ws_frames_per_sec: at_least_one(
                "CLOAK_WS_FRAMES_PER_SEC",
                number(
                    env,
                    "CLOAK_WS_FRAMES_PER_SEC",
                    file.ws_frames_per_sec,
                    d.ws_frames_per_sec,
                )?,
            )?,
            mailbox_page_bytes: number(
                env,
                "CLOAK_MAILBOX_PAGE_BYTES",
                file.mailbox_page_bytes,
                d.mailbox_page_bytes,
            )?
            .max(1),
            webhook_allow_private: number(
                env,
                "CLOAK_WEBHOOK_ALLOW_PRIVATE",
                file.webhook_allow_private,
                d.webhook_allow_private,
            )?,
        })
    }
}
