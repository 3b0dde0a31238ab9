//! [`Cloak`]: the client an app holds. One value, `Clone + Send + Sync`, every method
//! `&self`: any task may send while others listen. A background task keeps the real-time
//! connection (WebSocket, REST catch-up, resume, backoff with jitter, token refresh) and
//! writes every received message to the encrypted store before acknowledging it.
//!
//! ```no_run
//! use cloak_sdk::{Cloak, Event, PayloadKind, StoreKey};
//! use futures_util::StreamExt as _;
//!
//! # async fn run(bob: uuid::Uuid) -> Result<(), cloak_sdk::Error> {
//! let cloak = Cloak::builder("https://chat.example")
//!     .store("alice.db", StoreKey::from_passphrase("passphrase", &[7; 16])?)
//!     // Called to register this device: the tenant's backend mints user tokens.
//!     .user_token(|| async { Ok(std::env::var("CLOAK_USER_TOKEN").unwrap_or_default()) })
//!     .device_name("Alice's phone")
//!     .build()
//!     .await?;
//! let mut updates = cloak.subscribe();
//! let chat = cloak.conversation_with(bob).await?;
//! chat.send_text("hello").await?;
//! while let Some(update) = updates.next().await {
//!     if let Event::Message { payload, .. } = &update.event
//!         && let PayloadKind::Text { text } = &payload.kind
//!     {
//!         println!("{text}");
//!     }
//!     cloak.mark_handled(update.id).await?;
//! }
//! # Ok(())
//! # }
//! ```

use std::sync::Arc;

use tokio::sync::{Mutex, broadcast, watch};
use uuid::Uuid;

use crate::ids::{ConversationId, DeviceIds, MessageId};
use crate::messenger::Messenger;
use crate::store::history::{EventId, HistoryReader, Update};
use crate::{Error, SafetyNumber};

mod attachments;
mod builder;
mod call;
mod conversation;
mod devices;
mod realtime;
mod subscribe;

pub use builder::CloakBuilder;
pub use call::Call;
pub use conversation::ConversationHandle;
pub use devices::Devices;
pub use realtime::ConnectionState;
pub use subscribe::Updates;

/// How many live updates a slow subscriber may fall behind before it re-reads the queue.
const UPDATE_BUFFER: usize = 1024;

/// The state the client and its background task share.
pub(crate) struct Shared {
    pub messenger: Mutex<Messenger>,
    pub reader: HistoryReader,
    pub updates: broadcast::Sender<Update>,
    pub ids: DeviceIds,
    pub connection: watch::Sender<ConnectionState>,
    /// Woken when a call may be ringing, so the ring timer sleeps while none does.
    pub ringing: Arc<tokio::sync::Notify>,
}

impl Shared {
    /// Wakes the ring timer if a call rings (after anything that may start one).
    pub(crate) fn note_calls(&self, m: &Messenger) {
        if m.calls_ringing() {
            self.ringing.notify_one();
        }
    }
}

/// Stops the background task when the last clone of the client is dropped.
struct TaskGuard {
    stop: watch::Sender<bool>,
    task: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Drop for TaskGuard {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// The Cloak client (see the module documentation).
#[derive(Clone)]
pub struct Cloak {
    shared: Arc<Shared>,
    _guard: Arc<TaskGuard>,
}

const _: () = {
    const fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<Cloak>();
};

impl std::fmt::Debug for Cloak {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cloak")
            .field("ids", &self.shared.ids)
            .finish_non_exhaustive()
    }
}

/// What [`Cloak::join_invite`] did.
#[derive(Debug, Clone)]
pub struct Joined {
    /// The inviter, now a contact (verified when the link carried a fingerprint).
    pub inviter: Uuid,
    /// The one-to-one conversation with the inviter.
    pub conversation: ConversationHandle,
}

impl Cloak {
    /// Starts configuring a client for the server at `server_url` (`https://…`).
    pub fn builder(server_url: impl Into<String>) -> CloakBuilder {
        CloakBuilder::new(server_url.into())
    }

    pub(crate) fn start(messenger: Messenger, reader: HistoryReader) -> Result<Self, Error> {
        let ids = messenger
            .client()
            .ids()
            .ok_or(Error::InvalidState("the device is not registered"))?;
        let (updates, _) = broadcast::channel(UPDATE_BUFFER);
        let mut messenger = messenger;
        messenger.set_updates(updates.clone());
        let (connection, _) = watch::channel(ConnectionState::Connecting);
        let shared = Arc::new(Shared {
            messenger: Mutex::new(messenger),
            reader,
            updates,
            ids,
            connection,
            ringing: Arc::new(tokio::sync::Notify::new()),
        });
        let (stop, stopped) = watch::channel(false);
        tokio::spawn(call::ring_timer(
            Arc::downgrade(&shared),
            shared.ringing.clone(),
            stopped.clone(),
        ));
        let task = tokio::spawn(realtime::run(shared.clone(), stopped));
        Ok(Self {
            shared,
            _guard: Arc::new(TaskGuard {
                stop,
                task: std::sync::Mutex::new(Some(task)),
            }),
        })
    }

    /// Stops the real-time connection and waits until the background task has ended
    /// (what it was storing is stored or rolled back). The client still answers calls
    /// over REST afterwards.
    pub async fn shutdown(&self) {
        let _ = self._guard.stop.send(true);
        let task = self._guard.task.lock().ok().and_then(|mut t| t.take());
        if let Some(task) = task {
            let _ = task.await;
        }
    }

    /// This device's ids.
    pub fn ids(&self) -> DeviceIds {
        self.shared.ids
    }

    /// This device as the server has it now (its status: approved, pending, revoked).
    pub async fn this_device(&self) -> Result<cloak_proto::devices::Device, Error> {
        self.shared.messenger.lock().await.client().login().await
    }

    /// This device's key fingerprint (show it when another device approves this one).
    pub async fn fingerprint(&self) -> String {
        self.shared
            .messenger
            .lock()
            .await
            .client()
            .identity()
            .fingerprint()
    }

    /// The real-time connection's state, as it changes.
    pub fn connection(&self) -> watch::Receiver<ConnectionState> {
        self.shared.connection.subscribe()
    }

    /// Every event, oldest first: first those still queued in the store (not yet marked
    /// handled), then live ones as they are stored. Several subscribers may listen at
    /// once; each sees every event.
    ///
    /// The stream is cancel-safe: a task may `select!` on its `next()` and drop it.
    pub fn subscribe(&self) -> Updates {
        subscribe::forwarded(self.shared.reader.clone(), self.shared.updates.subscribe())
    }

    /// Drops queued events up to `id`: the app has handled them (shown, notified).
    pub async fn mark_handled(&self, id: EventId) -> Result<(), Error> {
        self.shared.reader.drop_events(id).await
    }

    /// A conversation this device is in.
    pub async fn conversation(&self, id: ConversationId) -> Result<ConversationHandle, Error> {
        let m = self.shared.messenger.lock().await;
        if !m.conversation_ids().contains(&id.0) {
            return Err(Error::InvalidState("unknown conversation"));
        }
        Ok(self.handle(id))
    }

    /// The conversations this device is in.
    pub async fn conversations(&self) -> Vec<ConversationHandle> {
        let mut ids = self.shared.messenger.lock().await.conversation_ids();
        ids.sort();
        ids.into_iter()
            .map(|id| self.handle(ConversationId(id)))
            .collect()
    }

    /// The one-to-one conversation with `user`: the existing one, or a new one.
    pub async fn conversation_with(&self, user: Uuid) -> Result<ConversationHandle, Error> {
        let mut m = self.shared.messenger.lock().await;
        let id = match m.conversation_with(user) {
            Some(id) => id,
            None => m.create_conversation(&[user]).await?,
        };
        Ok(self.handle(ConversationId(id)))
    }

    /// A group with every approved device of `members` (and of this user), named `name`.
    pub async fn create_group(
        &self,
        members: &[Uuid],
        name: &str,
    ) -> Result<ConversationHandle, Error> {
        let mut m = self.shared.messenger.lock().await;
        let id = m.create_conversation(members).await?;
        m.set_topic(id, name).await?;
        Ok(self.handle(ConversationId(id)))
    }

    fn handle(&self, id: ConversationId) -> ConversationHandle {
        ConversationHandle::new(self.clone(), id)
    }

    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
    }

    /// This user's devices.
    pub fn devices(&self) -> Devices {
        Devices::new(self.clone())
    }

    /// Mints an invite link (`…/i/{code}#fp={fingerprint}`, with this user's root key as
    /// this device knows it) to show as a QR code.
    pub async fn create_invite(
        &self,
        max_uses: u32,
        expires_in_secs: u32,
    ) -> Result<String, Error> {
        let m = self.shared.messenger.lock().await;
        m.create_invite(max_uses, expires_in_secs).await
    }

    /// Joins through a scanned invite link: verifies the inviter's key against the
    /// fingerprint in the link, and opens the one-to-one conversation.
    pub async fn join_invite(&self, link: &str) -> Result<Joined, Error> {
        let joined = self.shared.messenger.lock().await.join_invite(link).await?;
        Ok(Joined {
            inviter: joined.inviter,
            conversation: self.handle(ConversationId(joined.conversation_id)),
        })
    }

    /// The safety number with `user`, to compare in person.
    pub async fn safety_number(&self, user: Uuid) -> Result<SafetyNumber, Error> {
        self.shared.messenger.lock().await.safety_number(user).await
    }

    /// Records that the safety number with `user` matched: their key is pinned.
    pub async fn mark_verified(&self, user: Uuid) -> Result<(), Error> {
        self.shared.messenger.lock().await.mark_verified(user).await
    }

    /// Whether `user` is verified and still has the verified key.
    pub async fn is_verified(&self, user: Uuid) -> Result<bool, Error> {
        self.shared.messenger.lock().await.is_verified(user).await
    }

    /// This user's contacts.
    pub async fn contacts(&self) -> Result<Vec<cloak_proto::invites::Contact>, Error> {
        self.shared.messenger.lock().await.contacts().await
    }

    /// Blocks a user: their messages and invites stop reaching this user.
    pub async fn block(&self, user: Uuid) -> Result<(), Error> {
        self.shared.messenger.lock().await.block(user).await
    }

    /// Reports a received text to the tenant's moderators, with the franking evidence
    /// kept in the timeline (the server checks it before it records the report).
    pub async fn report(
        &self,
        conversation: ConversationId,
        message: MessageId,
        reason: Option<&str>,
    ) -> Result<cloak_proto::abuse::Report, Error> {
        let found = self.shared.reader.message(conversation, message).await?;
        let Some(found) = found else {
            return Err(Error::InvalidState("no such message"));
        };
        let Some(evidence) = found.evidence.clone() else {
            return Err(Error::InvalidState(
                "only received franked texts can be reported",
            ));
        };
        let request = cloak_proto::abuse::ReportRequest {
            conversation_id: conversation.0,
            message_id: message.0,
            sender_device_id: found.sender.device_id,
            sent_at_ms: evidence.sent_at_ms,
            text: evidence.original_text.clone(),
            franking_key: evidence.key.to_vec(),
            franking_tag: evidence.tag.clone(),
            franking_stamp: evidence.stamp.clone(),
            reason: reason.map(str::to_owned),
        };
        let m = self.shared.messenger.lock().await;
        m.client().report(&request).await
    }

    /// Registers the push token the platform gave this app install (`provider`: `apns`,
    /// `fcm`, or the tenant's own name). When messages wait for this device and it does
    /// not take them within the server's window, the tenant's backend gets a
    /// `device.pending` webhook with this token (and no content) and wakes the app; a
    /// notification extension then shows them with [`CloakBuilder::peek`](crate::CloakBuilder::peek).
    pub async fn set_push_token(&self, token: &str, provider: &str) -> Result<(), Error> {
        let m = self.shared.messenger.lock().await;
        m.client().set_push_token(token, provider).await
    }

    /// A call this device knows (one that rang here, or one it started), by id, to
    /// accept, decline, hang up or send SDP and ICE on.
    pub fn call(&self, conversation: ConversationId, call_id: Uuid) -> Call {
        Call::new(self.clone(), conversation, call_id)
    }

    /// Time-limited TURN relay credentials for this device's calls (may cost credits).
    pub async fn turn_credentials(&self) -> Result<cloak_proto::calls::TurnCredentials, Error> {
        let m = self.shared.messenger.lock().await;
        m.client().turn_credentials().await
    }

    /// Removes this device's push registration.
    pub async fn clear_push_token(&self) -> Result<(), Error> {
        let m = self.shared.messenger.lock().await;
        m.client().clear_push_token().await
    }

    /// Catches up over REST now (the background task also does, whenever it reconnects).
    pub async fn sync(&self) -> Result<(), Error> {
        let mut m = self.shared.messenger.lock().await;
        m.sync().await?;
        self.shared.note_calls(&m);
        m.remove_leavers().await.map(|_| ())
    }
}
