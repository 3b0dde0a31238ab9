//! Memory-only mailboxes: offline entries of tenants with `mailbox_storage = memory` live in
//! Redis (a sorted set per tenant and device, scored by sequence number), never in the database.
//!
//! The SQL stores keep everything else of such a tenant, the mailbox counters included:
//! a device's sequence numbers come from its database counter under the same row lock
//! as for durable entries, so the two kinds interleave in one order (a tenant may switch
//! modes with entries waiting in the other place) and a batch decides every message in
//! one transaction. Its memory entries are written to Redis just before that transaction
//! commits: a Redis failure rolls the batch back (nothing acknowledged, the sender
//! retries); a database failure after the Redis write leaves entries whose sequence
//! numbers are handed out again, and the next write at those numbers replaces them.
//! Depth (for the mailbox quota) is the set's size; the retention is the key's TTL and
//! each entry's own expiry, checked on every read.

use async_trait::async_trait;
use cloak_proto::delivery::EnvelopeKind;
use cloak_proto::tenants::MailboxStorage;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{MailboxEntry, StoreError};

/// One entry to queue: the device's set gets `member` at score `seq`.
#[derive(Clone)]
pub struct Queued {
    pub tenant_id: Uuid,
    pub device_id: Uuid,
    pub seq: i64,
    /// How long the entry is kept from now, ms (the set lives as long as its newest entry).
    pub ttl_ms: i64,
    /// The entry, from [`encode`].
    pub member: Vec<u8>,
}

/// What an entry holds, borrowed, for [`encode`].
#[derive(Clone, Copy)]
pub struct EntryParts<'a> {
    pub tenant_id: Uuid,
    pub seq: i64,
    pub conversation_id: Uuid,
    pub sender_device_id: Uuid,
    pub kind: EnvelopeKind,
    pub epoch: i64,
    pub body: &'a [u8],
    pub sent_at_ms: i64,
    pub expires_at_ms: i64,
    pub franking: Option<(&'a [u8], &'a [u8])>,
    pub viewable: bool,
}

/// Offline mailboxes held in memory (Redis), for tenants that want nothing on disk.
#[async_trait]
pub trait MemoryMailbox: Send + Sync {
    /// Queues entries atomically (all or none), replacing any entry at the same sequence
    /// number of the same device.
    async fn put(&self, entries: &[Queued]) -> Result<(), StoreError>;
    /// How many entries each (tenant, device) holds, in `devices` order.
    async fn depths(&self, devices: &[(Uuid, Uuid)]) -> Result<Vec<i64>, StoreError>;
    /// Unexpired entries after `after`, in order, at most `limit`, bounded in bytes as
    /// [`super::DeliveryStore::fetch_mailbox_page`] is; expired ones met on the way go.
    async fn page(
        &self,
        tenant_id: Uuid,
        device_id: Uuid,
        after: i64,
        limit: i64,
        max_bytes: i64,
        now_ms: i64,
    ) -> Result<Vec<MailboxEntry>, StoreError>;
    /// Deletes each (tenant, device)'s entries up to and including its sequence number;
    /// how many.
    async fn ack(&self, acks: &[(Uuid, Uuid, i64)]) -> Result<Vec<u64>, StoreError>;
    /// Deletes every entry of a device.
    async fn clear(&self, tenant_id: Uuid, device_id: Uuid) -> Result<(), StoreError>;
    /// For push coalescing: how many entries the device holds, and whether one at or
    /// before `up_to` is still unexpired.
    async fn waiting(
        &self,
        tenant_id: Uuid,
        device_id: Uuid,
        up_to: i64,
        now_ms: i64,
    ) -> Result<(i64, bool), StoreError>;
}

/// The column value as a [`MailboxStorage`].
pub(crate) fn storage_from(name: &str) -> Result<MailboxStorage, StoreError> {
    MailboxStorage::parse(name)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown mailbox storage {name:?}")))
}

/// The memory mailbox to use for a tenant stored as `storage`: `None` for durable ones;
/// an error when the tenant wants memory and this node has none (its entries never fall
/// back to the database).
pub(crate) fn for_storage<'m>(
    memory: Option<&'m dyn MemoryMailbox>,
    storage: &str,
) -> Result<Option<&'m dyn MemoryMailbox>, StoreError> {
    match storage_from(storage)? {
        MailboxStorage::Durable => Ok(None),
        MailboxStorage::Memory => memory.map(Some).ok_or_else(|| {
            StoreError::Unavailable(
                "the tenant's mailboxes are memory-only and this node has no Redis".into(),
            )
        }),
    }
}

#[derive(Serialize)]
struct WireRef<'a> {
    v: u8,
    t: Uuid,
    s: i64,
    c: Uuid,
    d: Uuid,
    k: &'a str,
    e: i64,
    #[serde(with = "serde_bytes")]
    b: &'a [u8],
    at: i64,
    x: i64,
    f: Option<(&'a serde_bytes::Bytes, &'a serde_bytes::Bytes)>,
    w: bool,
}

#[derive(Deserialize)]
struct Wire {
    v: u8,
    t: Uuid,
    s: i64,
    c: Uuid,
    d: Uuid,
    k: String,
    e: i64,
    #[serde(with = "serde_bytes")]
    b: Vec<u8>,
    at: i64,
    x: i64,
    f: Option<(serde_bytes::ByteBuf, serde_bytes::ByteBuf)>,
    w: bool,
}

const VERSION: u8 = 1;

/// An entry as a set member (CBOR).
pub fn encode(parts: &EntryParts<'_>) -> Vec<u8> {
    let wire = WireRef {
        v: VERSION,
        t: parts.tenant_id,
        s: parts.seq,
        c: parts.conversation_id,
        d: parts.sender_device_id,
        k: parts.kind.as_str(),
        e: parts.epoch,
        b: parts.body,
        at: parts.sent_at_ms,
        x: parts.expires_at_ms,
        f: parts
            .franking
            .map(|(t, s)| (serde_bytes::Bytes::new(t), serde_bytes::Bytes::new(s))),
        w: parts.viewable,
    };
    let mut out = Vec::with_capacity(parts.body.len() + 128);
    // Writing to a Vec cannot fail, and every field serializes.
    if ciborium::into_writer(&wire, &mut out).is_err() {
        out.clear();
    }
    out
}

/// A decoded member: (tenant, expiry, entry).
pub fn decode(member: &[u8]) -> Result<(Uuid, i64, MailboxEntry), StoreError> {
    let wire: Wire = ciborium::from_reader(member)
        .map_err(|e| StoreError::Corrupt(format!("memory mailbox entry: {e}")))?;
    if wire.v != VERSION {
        return Err(StoreError::Corrupt(format!(
            "memory mailbox entry version {}",
            wire.v
        )));
    }
    let kind = super::sql_delivery::parse_kind(&wire.k)?;
    let (franking_tag, franking_stamp) = match wire.f {
        Some((t, s)) => (Some(t.into_vec()), Some(s.into_vec())),
        None => (None, None),
    };
    Ok((
        wire.t,
        wire.x,
        MailboxEntry {
            seq: wire.s,
            conversation_id: wire.c,
            sender_device_id: wire.d,
            kind,
            epoch: wire.e,
            body: wire.b,
            sent_at_ms: wire.at,
            franking_tag,
            franking_stamp,
            viewable: wire.w,
        },
    ))
}

/// Merges two pages of one mailbox (each in sequence order, each bounded as a page is)
/// into one page: at most `limit` entries, those whose predecessors' bodies total at
/// most `max_bytes`.
pub(crate) fn merge_pages(
    a: Vec<MailboxEntry>,
    b: Vec<MailboxEntry>,
    limit: i64,
    max_bytes: i64,
) -> Vec<MailboxEntry> {
    if b.is_empty() {
        return a;
    }
    if a.is_empty() {
        return b;
    }
    let mut all: Vec<MailboxEntry> = a.into_iter().chain(b).collect();
    all.sort_by_key(|e| e.seq);
    all.dedup_by_key(|e| e.seq);
    bounded(all, limit, max_bytes)
}

/// A page read from the database alone while the memory mailbox (Redis) does not answer,
/// with `error` what it said. A memory-only tenant gets that error: its entries are not in
/// the database. A durable tenant gets its entries up to the first hole in their sequence:
/// a hole is an entry kept in memory before the tenant switched modes, and a device must
/// never be handed the entries after one it has not seen.
pub(crate) fn without_memory(
    entries: Vec<MailboxEntry>,
    storage: &str,
    error: StoreError,
) -> Result<Vec<MailboxEntry>, StoreError> {
    match storage_from(storage)? {
        MailboxStorage::Memory => Err(error),
        MailboxStorage::Durable => {
            let mut out: Vec<MailboxEntry> = Vec::with_capacity(entries.len());
            for e in entries {
                if out.last().is_some_and(|last| e.seq != last.seq + 1) {
                    break;
                }
                out.push(e);
            }
            Ok(out)
        }
    }
}

/// The first entries of `entries` that fit `limit` and the byte rule.
pub(crate) fn bounded(entries: Vec<MailboxEntry>, limit: i64, max_bytes: i64) -> Vec<MailboxEntry> {
    let limit = usize::try_from(limit).unwrap_or(0);
    let mut before: i64 = 0;
    let mut out = Vec::with_capacity(entries.len().min(limit));
    for e in entries {
        if out.len() >= limit || before > max_bytes {
            break;
        }
        before = before.saturating_add(i64::try_from(e.body.len()).unwrap_or(i64::MAX));
        out.push(e);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(seq: i64, body: &[u8]) -> EntryParts<'_> {
        EntryParts {
            tenant_id: Uuid::from_u128(1),
            seq,
            conversation_id: Uuid::from_u128(2),
            sender_device_id: Uuid::from_u128(3),
            kind: EnvelopeKind::Application,
            epoch: 4,
            body,
            sent_at_ms: 5,
            expires_at_ms: 6,
            franking: Some((b"tag", b"stamp")),
            viewable: true,
        }
    }

    #[test]
    fn entries_round_trip() {
        let (tenant, expires, e) = decode(&encode(&parts(7, b"cipher"))).unwrap();
        assert_eq!((tenant, expires), (Uuid::from_u128(1), 6));
        assert_eq!(e.seq, 7);
        assert_eq!(e.body, b"cipher");
        assert_eq!(e.kind, EnvelopeKind::Application);
        assert_eq!(e.franking_tag.as_deref(), Some(&b"tag"[..]));
        assert_eq!(e.franking_stamp.as_deref(), Some(&b"stamp"[..]));
        assert!(e.viewable);
        assert!(decode(b"\xff\x00garbage").is_err());
        assert!(decode(&[]).is_err());
    }

    #[test]
    fn without_redis_a_durable_page_stops_at_a_hole_and_a_memory_one_fails() {
        let entry = |seq: i64| decode(&encode(&parts(seq, b"x"))).unwrap().2;
        let seqs = |v: Vec<MailboxEntry>| v.iter().map(|e| e.seq).collect::<Vec<_>>();
        let down = || StoreError::Unavailable("redis".into());
        let page = vec![entry(5), entry(6), entry(8), entry(9)];
        assert_eq!(
            seqs(without_memory(page, "durable", down()).unwrap()),
            vec![5, 6]
        );
        assert_eq!(
            seqs(without_memory(vec![entry(3)], "durable", down()).unwrap()),
            vec![3]
        );
        assert!(
            without_memory(Vec::new(), "durable", down())
                .unwrap()
                .is_empty()
        );
        assert!(matches!(
            without_memory(vec![entry(1)], "memory", down()),
            Err(StoreError::Unavailable(_))
        ));
    }

    #[test]
    fn pages_merge_in_order_within_their_bounds() {
        let entry = |seq: i64, len: usize| decode(&encode(&parts(seq, &vec![0; len]))).unwrap().2;
        let a = vec![entry(1, 10), entry(4, 10)];
        let b = vec![entry(2, 10), entry(3, 10)];
        let seqs = |v: &[MailboxEntry]| v.iter().map(|e| e.seq).collect::<Vec<_>>();
        assert_eq!(
            seqs(&merge_pages(a.clone(), b.clone(), 10, i64::MAX)),
            [1, 2, 3, 4]
        );
        assert_eq!(
            seqs(&merge_pages(a.clone(), b.clone(), 3, i64::MAX)),
            [1, 2, 3]
        );
        // Predecessors total at most 15 bytes: the second entry crosses, the third does not come.
        assert_eq!(seqs(&merge_pages(a, b, 10, 15)), [1, 2]);
    }
}
