//! Trust levels and rate limits. A user's level (set by the tenant, or raised by automatic
//! promotion) sets how many messages they may send per window, their largest attachment,
//! and their invites and new contacts per day. Limits are GCRA through the broker: exact
//! across every node sharing Redis, in-process without it.

use cloak_proto::Code;
use cloak_proto::abuse::{AttachmentSize, TrustLevel, TrustLevels};
use cloak_proto::delivery::MessageClass;
use uuid::Uuid;

use super::ServiceError;
use crate::broker::{Broker, Rate, RateDecision};
use crate::store::{Store, UserPatch};

/// Control messages (receipts, typing) per user per minute, at any level.
pub const CONTROL_PER_MINUTE: u32 = 120;

const DAY_SECS: u32 = 86_400;

fn level(
    name: &str,
    messages: u32,
    window_secs: u32,
    max_attachment: AttachmentSize,
    invites: u32,
    contacts: u32,
    calls: u32,
) -> TrustLevel {
    TrustLevel {
        name: name.into(),
        messages_per_window: messages,
        window_secs,
        max_attachment,
        invites_per_day: invites,
        new_contacts_per_day: contacts,
        calls_per_hour: calls,
        promote_after_secs: None,
    }
}

/// The levels a tenant starts with.
pub fn default_levels() -> Vec<TrustLevel> {
    vec![
        level("new", 1, 10, AttachmentSize::Small, 5, 10, 6),
        level("basic", 30, 60, AttachmentSize::Small, 20, 50, 20),
        level("trusted", 120, 60, AttachmentSize::Large, 100, 200, 60),
        level("verified", 600, 60, AttachmentSize::Large, 1000, 1000, 240),
    ]
}

/// The tenant's levels, lowest first.
pub async fn levels(store: &dyn Store, tenant_id: Uuid) -> Result<Vec<TrustLevel>, ServiceError> {
    Ok(match store.get_trust_levels(tenant_id).await? {
        Some(json) => serde_json::from_str::<TrustLevels>(&json)
            .map(|l| l.levels)
            .unwrap_or_else(|_| default_levels()),
        None => default_levels(),
    })
}

/// Replaces the tenant's levels after checking names.
pub async fn put_levels(
    store: &dyn Store,
    tenant_id: Uuid,
    levels: &TrustLevels,
    now_ms: i64,
) -> Result<(), ServiceError> {
    let mut seen = std::collections::HashSet::new();
    for l in &levels.levels {
        let ok = l
            .name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if !ok || !seen.insert(l.name.as_str()) {
            return Err(ServiceError::invalid(
                Code::InvalidTrustLevel,
                format!(
                    "level {:?}: names are unique, lowercase letters, digits, _ and -",
                    l.name
                ),
            ));
        }
    }
    let json = serde_json::to_string(levels)
        .map_err(|e| ServiceError::invalid(Code::InvalidTrustLevel, e.to_string()))?;
    Ok(store.put_trust_levels(tenant_id, &json, now_ms).await?)
}

/// Checks a level name for `PATCH /v1/users/{id}`.
pub async fn check_level_name(
    store: &dyn Store,
    tenant_id: Uuid,
    name: &str,
) -> Result<(), ServiceError> {
    if levels(store, tenant_id)
        .await?
        .iter()
        .any(|l| l.name == name)
    {
        Ok(())
    } else {
        Err(ServiceError::invalid(
            Code::UnknownTrustLevel,
            format!("the tenant has no trust level {name:?}"),
        ))
    }
}

/// The user's effective level. A level with `promote_after_secs` promotes a user whose
/// account is that old and has no upheld reports to the next level (stored).
pub async fn standing(
    store: &dyn Store,
    tenant_id: Uuid,
    user_id: Uuid,
    now_ms: i64,
) -> Result<TrustLevel, ServiceError> {
    let user = store
        .get_user(tenant_id, user_id)
        .await?
        .ok_or(ServiceError::NotFound("user"))?;
    let levels = levels(store, tenant_id).await?;
    let start = levels
        .iter()
        .position(|l| l.name == user.trust_level)
        .unwrap_or(0);
    let age_secs = u64::try_from((now_ms - user.created_at_ms) / 1000).unwrap_or(0);
    let mut at = start;
    let mut clean: Option<bool> = None;
    while let Some(after) = levels.get(at).and_then(|l| l.promote_after_secs) {
        if at + 1 >= levels.len() || age_secs < after {
            break;
        }
        let is_clean = match clean {
            Some(c) => c,
            None => *clean.insert(store.upheld_reports(tenant_id, user_id).await? == 0),
        };
        if !is_clean {
            break;
        }
        at += 1;
    }
    let Some(level) = levels.get(at).cloned() else {
        return Ok(default_levels().remove(0));
    };
    if at != start {
        let patch = UserPatch {
            trust_level: Some(level.name.clone()),
            ..UserPatch::default()
        };
        store.update_user(tenant_id, user_id, &patch).await?;
    }
    Ok(level)
}

/// Whether a level may send a message of this class.
pub fn allows_class(level: &TrustLevel, class: MessageClass) -> Result<(), ServiceError> {
    let needed = match class {
        MessageClass::AttachmentSmall => AttachmentSize::Small,
        MessageClass::AttachmentMedium => AttachmentSize::Medium,
        MessageClass::AttachmentLarge => AttachmentSize::Large,
        _ => return Ok(()),
    };
    if needed > level.max_attachment {
        return Err(ServiceError::forbidden(
            Code::AttachmentNotAllowed,
            format!(
                "trust level {:?} cannot send attachments this large",
                level.name
            ),
        ));
    }
    Ok(())
}

/// A limit's identity on the wire (`RateLimit-Policy`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub name: &'static str,
    pub rate: Rate,
}

impl Policy {
    pub fn messages(level: &TrustLevel) -> Self {
        Self {
            name: "messages",
            rate: Rate {
                limit: level.messages_per_window,
                window_ms: i64::from(level.window_secs) * 1000,
            },
        }
    }

    pub fn control() -> Self {
        Self {
            name: "control",
            rate: Rate {
                limit: CONTROL_PER_MINUTE,
                window_ms: 60_000,
            },
        }
    }

    /// MLS commits one device submits.
    pub fn commits(per_minute: u32) -> Self {
        Self {
            name: "commits",
            rate: Rate {
                limit: per_minute,
                window_ms: 60_000,
            },
        }
    }

    /// MLS commits one conversation takes, from all its members.
    pub fn conversation_commits(per_minute: u32) -> Self {
        Self {
            name: "conversation_commits",
            rate: Rate {
                limit: per_minute,
                window_ms: 60_000,
            },
        }
    }

    /// KeyPackages one device claims.
    pub fn key_package_claims(per_minute: u32) -> Self {
        Self {
            name: "key_package_claims",
            rate: Rate {
                limit: per_minute,
                window_ms: 60_000,
            },
        }
    }

    pub fn invites(level: &TrustLevel) -> Self {
        Self {
            name: "invites",
            rate: Rate {
                limit: level.invites_per_day.max(1),
                window_ms: i64::from(DAY_SECS) * 1000,
            },
        }
    }

    /// TURN credential grants one user takes per hour.
    pub fn calls(level: &TrustLevel) -> Self {
        Self {
            name: "calls",
            rate: Rate {
                limit: level.calls_per_hour.max(1),
                window_ms: 3_600_000,
            },
        }
    }

    /// Attachment uploads one user may start per hour (a server setting).
    pub fn uploads(per_hour: u32) -> Self {
        Self {
            name: "uploads",
            rate: Rate {
                limit: per_hour.max(1),
                window_ms: 3_600_000,
            },
        }
    }

    pub fn contacts(level: &TrustLevel) -> Self {
        Self {
            name: "contacts",
            rate: Rate {
                limit: level.new_contacts_per_day.max(1),
                window_ms: i64::from(DAY_SECS) * 1000,
            },
        }
    }
}

/// Counts one event against `policy` for `subject`; a refusal is a 429 with the wait.
pub async fn hit(
    broker: &dyn Broker,
    subject: &str,
    policy: &Policy,
    now_ms: i64,
) -> Result<RateDecision, ServiceError> {
    // The limit is part of the key: a changed limit starts afresh, and servers configured
    // differently but sharing Redis do not disturb each other.
    let key = format!(
        "{}:{}/{}:{subject}",
        policy.name, policy.rate.limit, policy.rate.window_ms
    );
    let decision = broker
        .rate_limit(&key, now_ms, policy.rate)
        .await
        .map_err(|e| ServiceError::Unavailable {
            code: Code::LimiterUnavailable,
            detail: e.to_string(),
        })?;
    if decision.allowed {
        return Ok(decision);
    }
    metrics::counter!("rate_limited_total", "policy" => policy.name).increment(1);
    Err(ServiceError::RateLimited {
        code: Code::RateLimited,
        detail: format!(
            "the {} limit ({} per {} s) is reached; retry in {} ms",
            policy.name,
            policy.rate.limit,
            policy.rate.window_ms / 1000,
            decision.retry_after_ms
        ),
        policy: policy.name,
        limit: policy.rate.limit,
        window_secs: policy.rate.window_ms / 1000,
        retry_after_ms: decision.retry_after_ms,
    })
}

/// Counts a zero-allowance limit (0 per day) as always refused.
pub fn zero_allowed(count: u32, policy: &'static str) -> Result<(), ServiceError> {
    if count == 0 {
        return Err(ServiceError::forbidden(
            Code::NotAllowedAtTrustLevel,
            format!("the user's trust level allows no {policy}"),
        ));
    }
    Ok(())
}
