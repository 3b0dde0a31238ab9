//! [`MemoryMailbox`] on Redis: one sorted set per device (`cloak:mbx:<tenant>:<device>`:
//! another tenant's calls never reach it), scored by sequence number, whose TTL follows
//! its newest entry.

use async_trait::async_trait;
use deadpool_redis::Pool;
use deadpool_redis::redis::{self, AsyncCommands};
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

use super::memory_mailbox::{MemoryMailbox, Queued, bounded, decode};
use super::{MailboxEntry, StoreError};

/// Memory mailboxes in Redis.
pub struct RedisMailbox {
    pool: Pool,
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("memory mailbox: {e}"))
}

fn key(tenant_id: Uuid, device_id: Uuid) -> String {
    format!("cloak:mbx:{tenant_id}:{device_id}")
}

/// Most entries read per round trip while skipping expired ones.
const SCAN: i64 = 256;

impl RedisMailbox {
    /// A pool on `url`; checks that Redis answers.
    pub async fn connect(url: &SecretString) -> Result<Self, StoreError> {
        let pool = crate::redis_pool::open(url.expose_secret()).map_err(unavailable)?;
        let mailbox = Self { pool };
        let mut conn = mailbox.conn().await?;
        let _: String = redis::cmd("PING")
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(mailbox)
    }

    async fn conn(&self) -> Result<deadpool_redis::Connection, StoreError> {
        self.pool.get().await.map_err(unavailable)
    }
}

#[async_trait]
impl MemoryMailbox for RedisMailbox {
    async fn put(&self, entries: &[Queued]) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        pipe.atomic();
        let mut ttl: std::collections::BTreeMap<(Uuid, Uuid), i64> =
            std::collections::BTreeMap::new();
        for q in entries {
            let k = key(q.tenant_id, q.device_id);
            // An entry at this number is left from a batch whose transaction failed after
            // it was written: the number was handed out again.
            pipe.cmd("ZREMRANGEBYSCORE")
                .arg(&k)
                .arg(q.seq)
                .arg(q.seq)
                .ignore();
            pipe.cmd("ZADD").arg(&k).arg(q.seq).arg(&q.member).ignore();
            let t = ttl.entry((q.tenant_id, q.device_id)).or_insert(q.ttl_ms);
            *t = (*t).max(q.ttl_ms);
        }
        for ((tenant, device), ms) in ttl {
            pipe.cmd("PEXPIRE")
                .arg(key(tenant, device))
                .arg(ms.max(1))
                .ignore();
        }
        let mut conn = self.conn().await?;
        pipe.query_async::<()>(&mut conn).await.map_err(unavailable)
    }

    async fn depths(&self, devices: &[(Uuid, Uuid)]) -> Result<Vec<i64>, StoreError> {
        if devices.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for (tenant, device) in devices {
            pipe.zcard(key(*tenant, *device));
        }
        let mut conn = self.conn().await?;
        pipe.query_async(&mut conn).await.map_err(unavailable)
    }

    async fn page(
        &self,
        tenant_id: Uuid,
        device_id: Uuid,
        after: i64,
        limit: i64,
        max_bytes: i64,
        now_ms: i64,
    ) -> Result<Vec<MailboxEntry>, StoreError> {
        let k = key(tenant_id, device_id);
        let mut conn = self.conn().await?;
        let mut live = Vec::new();
        let mut cursor = after;
        let want = limit.max(0);
        loop {
            let raw: Vec<Vec<u8>> = conn
                .zrangebyscore_limit(
                    &k,
                    format!("({cursor}"),
                    "+inf",
                    0,
                    isize::try_from(want.clamp(1, SCAN)).unwrap_or(1),
                )
                .await
                .map_err(unavailable)?;
            let read = i64::try_from(raw.len()).unwrap_or(i64::MAX);
            let mut expired: Vec<Vec<u8>> = Vec::new();
            for member in raw {
                let (tenant, expires_at, entry) = decode(&member)?;
                cursor = cursor.max(entry.seq);
                if tenant != tenant_id {
                    continue;
                }
                if expires_at <= now_ms {
                    expired.push(member);
                } else {
                    live.push(entry);
                }
            }
            if !expired.is_empty() {
                let _: i64 = conn.zrem(&k, expired).await.map_err(unavailable)?;
            }
            let enough = i64::try_from(live.len()).unwrap_or(i64::MAX) >= want;
            if enough || read < want.clamp(1, SCAN) {
                break;
            }
        }
        Ok(bounded(live, limit, max_bytes))
    }

    async fn ack(&self, acks: &[(Uuid, Uuid, i64)]) -> Result<Vec<u64>, StoreError> {
        if acks.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for (tenant, device, up_to) in acks {
            pipe.cmd("ZREMRANGEBYSCORE")
                .arg(key(*tenant, *device))
                .arg("-inf")
                .arg(*up_to);
        }
        let mut conn = self.conn().await?;
        pipe.query_async(&mut conn).await.map_err(unavailable)
    }

    async fn clear(&self, tenant_id: Uuid, device_id: Uuid) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        conn.del::<_, ()>(key(tenant_id, device_id))
            .await
            .map_err(unavailable)
    }

    async fn waiting(
        &self,
        tenant_id: Uuid,
        device_id: Uuid,
        up_to: i64,
        now_ms: i64,
    ) -> Result<(i64, bool), StoreError> {
        let k = key(tenant_id, device_id);
        let mut conn = self.conn().await?;
        let (count, first): (i64, Vec<Vec<u8>>) = redis::pipe()
            .zcard(&k)
            .cmd("ZRANGEBYSCORE")
            .arg(&k)
            .arg("-inf")
            .arg(up_to)
            .arg("LIMIT")
            .arg(0)
            .arg(1)
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        let stale = match first.first() {
            Some(member) => decode(member)?.1 > now_ms,
            None => false,
        };
        Ok((count, stale))
    }
}
