//! The timeline and the event queue in the encrypted store.
//!
//! Both are written in the transaction that also stores the MLS state and the mailbox
//! cursor, before the mailbox entry is acknowledged, so nothing acknowledged is ever
//! missing from them. Rows are sealed like every other value; their lookup columns are
//! keyed MACs of the conversation and message ids, so the file shows neither. A
//! timeline row is bound (as associated data) to its conversation and message, an
//! event row to its queue position.

use serde::{Deserialize, Serialize};
use sqlx::Row as _;
use sqlx::sqlite::SqlitePool;

use super::{Keys, storage_error};
use crate::Error;
use crate::event::Event;
use crate::history::{Op, TimelineMessage, apply, apply_receipt};
use crate::ids::{ConversationId, MessageId};

pub(crate) const SCHEMA: [&str; 3] = [
    "CREATE TABLE IF NOT EXISTS timeline (pos INTEGER PRIMARY KEY AUTOINCREMENT, conv BLOB NOT NULL, msg BLOB NOT NULL UNIQUE, sealed BLOB NOT NULL)",
    "CREATE INDEX IF NOT EXISTS timeline_by_conversation ON timeline (conv, pos)",
    "CREATE TABLE IF NOT EXISTS events (pos INTEGER PRIMARY KEY NOT NULL, sealed BLOB NOT NULL)",
];

/// A position in the event queue. Events are numbered from 1, in the order they happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct EventId(pub u64);

/// An event and its place in the queue. Ephemeral events (typing) are not queued and
/// carry [`EventId(0)`](EventId).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update {
    /// Its place in the queue.
    pub id: EventId,
    /// What happened.
    pub event: Event,
}

/// A place in a conversation's timeline, for paging backwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cursor(pub i64);

/// One page of a timeline, oldest first.
#[derive(Debug, Clone)]
pub struct Page {
    /// The messages.
    pub messages: Vec<TimelineMessage>,
    /// Pass it as `before` for the page of older messages; `None` at the beginning.
    pub older: Option<Cursor>,
}

/// What one received or sent thing leaves in the store: an event for the queue (unless
/// ephemeral), a timeline change, or both.
pub(crate) struct Record {
    pub event: Option<Event>,
    pub ephemeral: bool,
    pub op: Option<Op>,
}

fn conv_tag(keys: &Keys, id: ConversationId) -> Vec<u8> {
    let mut name = b"timeline conversation\0".to_vec();
    name.extend_from_slice(id.0.as_bytes());
    keys.row_id(&name)
}

fn msg_tag(keys: &Keys, conversation: ConversationId, id: MessageId) -> Vec<u8> {
    let mut name = b"timeline message\0".to_vec();
    name.extend_from_slice(conversation.0.as_bytes());
    name.extend_from_slice(id.0.as_bytes());
    keys.row_id(&name)
}

fn timeline_aad(conv: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut aad = b"timeline\0".to_vec();
    aad.extend_from_slice(conv);
    aad.extend_from_slice(msg);
    aad
}

fn event_aad(pos: i64) -> Vec<u8> {
    let mut aad = b"event\0".to_vec();
    aad.extend_from_slice(&pos.to_be_bytes());
    aad
}

fn seal_json<T: Serialize>(keys: &Keys, aad: &[u8], value: &T) -> Result<Vec<u8>, Error> {
    let plain = zeroize::Zeroizing::new(serde_json::to_vec(value).map_err(storage_error)?);
    keys.seal(aad, &plain)
}

fn open_json<T: for<'de> Deserialize<'de>>(
    keys: &Keys,
    aad: &[u8],
    sealed: &[u8],
) -> Result<T, Error> {
    let plain = keys.open_sealed(aad, sealed)?;
    serde_json::from_slice(&plain).map_err(storage_error)
}

/// The position the next queued event gets.
pub(crate) async fn next_event(pool: &SqlitePool) -> Result<i64, Error> {
    let row = sqlx::query("SELECT COALESCE(MAX(pos), 0) + 1 AS next FROM events")
        .fetch_one(pool)
        .await
        .map_err(storage_error)?;
    row.try_get("next").map_err(storage_error)
}

/// Writes records inside the caller's transaction; returns the queued updates (and the
/// ephemeral ones, with id 0) and the next queue position.
pub(crate) async fn record(
    tx: &mut sqlx::SqliteConnection,
    keys: &Keys,
    mut next: i64,
    records: Vec<Record>,
) -> Result<(Vec<Update>, i64), Error> {
    let mut updates = Vec::with_capacity(records.len());
    for record in records {
        if let Some(op) = record.op {
            apply_op(tx, keys, op).await?;
        }
        let Some(event) = record.event else { continue };
        if record.ephemeral {
            updates.push(Update {
                id: EventId(0),
                event,
            });
            continue;
        }
        let sealed = seal_json(keys, &event_aad(next), &event)?;
        sqlx::query("INSERT INTO events (pos, sealed) VALUES ($1, $2)")
            .bind(next)
            .bind(sealed)
            .execute(&mut *tx)
            .await
            .map_err(storage_error)?;
        updates.push(Update {
            id: EventId(u64::try_from(next).unwrap_or(0)),
            event,
        });
        next += 1;
    }
    Ok((updates, next))
}

async fn apply_op(tx: &mut sqlx::SqliteConnection, keys: &Keys, op: Op) -> Result<(), Error> {
    match op {
        Op::Insert(message) => {
            let conv = conv_tag(keys, message.conversation_id);
            let msg = msg_tag(keys, message.conversation_id, message.id);
            let sealed = seal_json(keys, &timeline_aad(&conv, &msg), &*message)?;
            sqlx::query(
                "INSERT INTO timeline (conv, msg, sealed) VALUES ($1, $2, $3) ON CONFLICT (msg) DO NOTHING",
            )
            .bind(conv)
            .bind(msg)
            .bind(sealed)
            .execute(&mut *tx)
            .await
            .map_err(storage_error)?;
        }
        Op::Change {
            conversation_id,
            target,
            by_user,
            change,
        } => {
            update(tx, keys, conversation_id, target, |m| {
                apply(m, by_user, &change)
            })
            .await?;
        }
        Op::Receipts {
            conversation_id,
            targets,
            by_user,
            read,
        } => {
            for target in targets {
                update(tx, keys, conversation_id, target, |m| {
                    apply_receipt(m, by_user, read)
                })
                .await?;
            }
        }
    }
    Ok(())
}

/// Reads, changes and rewrites one timeline message (nothing when it is not there: a
/// change for a message this device never had).
async fn update(
    tx: &mut sqlx::SqliteConnection,
    keys: &Keys,
    conversation: ConversationId,
    target: MessageId,
    change: impl FnOnce(&mut TimelineMessage) -> bool,
) -> Result<(), Error> {
    let conv = conv_tag(keys, conversation);
    let msg = msg_tag(keys, conversation, target);
    let aad = timeline_aad(&conv, &msg);
    let row = sqlx::query("SELECT sealed FROM timeline WHERE msg = $1 AND conv = $2")
        .bind(&msg)
        .bind(&conv)
        .fetch_optional(&mut *tx)
        .await
        .map_err(storage_error)?;
    let Some(row) = row else { return Ok(()) };
    let sealed: Vec<u8> = row.try_get("sealed").map_err(storage_error)?;
    let mut message: TimelineMessage = open_json(keys, &aad, &sealed)?;
    if !change(&mut message) {
        return Ok(());
    }
    let sealed = seal_json(keys, &aad, &message)?;
    sqlx::query("UPDATE timeline SET sealed = $1 WHERE msg = $2")
        .bind(sealed)
        .bind(&msg)
        .execute(&mut *tx)
        .await
        .map_err(storage_error)?;
    Ok(())
}

/// Reads the timeline and the event queue, sharing the store's connection (so a read
/// waits for a write in progress and sees only committed state).
#[derive(Clone)]
pub struct HistoryReader {
    pool: SqlitePool,
    keys: Keys,
}

impl HistoryReader {
    pub(crate) fn new(pool: SqlitePool, keys: Keys) -> Self {
        Self { pool, keys }
    }

    /// Up to `limit` messages of a conversation before `before` (the newest when `None`),
    /// oldest first.
    pub async fn messages(
        &self,
        conversation: ConversationId,
        before: Option<Cursor>,
        limit: u32,
    ) -> Result<Page, Error> {
        let conv = conv_tag(&self.keys, conversation);
        let rows = sqlx::query(
            "SELECT pos, msg, sealed FROM timeline WHERE conv = $1 AND pos < $2 ORDER BY pos DESC LIMIT $3",
        )
        .bind(&conv)
        .bind(before.map_or(i64::MAX, |c| c.0))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(storage_error)?;
        let mut messages = Vec::with_capacity(rows.len());
        let mut oldest = None;
        for row in rows.iter().rev() {
            let pos: i64 = row.try_get("pos").map_err(storage_error)?;
            let msg: Vec<u8> = row.try_get("msg").map_err(storage_error)?;
            let sealed: Vec<u8> = row.try_get("sealed").map_err(storage_error)?;
            oldest = oldest.or(Some(pos));
            messages.push(open_json(&self.keys, &timeline_aad(&conv, &msg), &sealed)?);
        }
        let older = match (oldest, rows.len() == limit as usize) {
            (Some(pos), true) => Some(Cursor(pos)),
            _ => None,
        };
        Ok(Page { messages, older })
    }

    /// One message of a conversation's timeline.
    pub async fn message(
        &self,
        conversation: ConversationId,
        id: MessageId,
    ) -> Result<Option<TimelineMessage>, Error> {
        let conv = conv_tag(&self.keys, conversation);
        let msg = msg_tag(&self.keys, conversation, id);
        let row = sqlx::query("SELECT sealed FROM timeline WHERE msg = $1 AND conv = $2")
            .bind(&msg)
            .bind(&conv)
            .fetch_optional(&self.pool)
            .await
            .map_err(storage_error)?;
        row.map(|row| {
            let sealed: Vec<u8> = row.try_get("sealed").map_err(storage_error)?;
            open_json(&self.keys, &timeline_aad(&conv, &msg), &sealed)
        })
        .transpose()
    }

    /// Queued events after `after`, oldest first, at most `limit`.
    pub async fn events(&self, after: EventId, limit: u32) -> Result<Vec<Update>, Error> {
        let rows =
            sqlx::query("SELECT pos, sealed FROM events WHERE pos > $1 ORDER BY pos LIMIT $2")
                .bind(i64::try_from(after.0).unwrap_or(i64::MAX))
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await
                .map_err(storage_error)?;
        rows.iter()
            .map(|row| {
                let pos: i64 = row.try_get("pos").map_err(storage_error)?;
                let sealed: Vec<u8> = row.try_get("sealed").map_err(storage_error)?;
                Ok(Update {
                    id: EventId(u64::try_from(pos).unwrap_or(0)),
                    event: open_json(&self.keys, &event_aad(pos), &sealed)?,
                })
            })
            .collect()
    }

    /// Drops queued events up to and including `up_to`: the app has handled them.
    pub async fn drop_events(&self, up_to: EventId) -> Result<(), Error> {
        sqlx::query("DELETE FROM events WHERE pos <= $1")
            .bind(i64::try_from(up_to.0).unwrap_or(i64::MAX))
            .execute(&self.pool)
            .await
            .map_err(storage_error)?;
        Ok(())
    }
}
