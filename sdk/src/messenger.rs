//! [`Messenger`]: conversations end to end. It ties the sans-IO [`Conversation`] core to
//! the server through a [`DeviceClient`]: creating a conversation claims every device's
//! KeyPackage (checked against the verified device directory) and commits the adds; a
//! sync fetches the mailbox in order, joins from Welcomes, merges commits, decrypts
//! application messages, checks membership after every change, and acknowledges.
//!
//! ```no_run
//! use std::time::Duration;
//! use cloak_sdk::{DeviceClient, DeviceIdentity, Event, LocalStore, Messenger, PayloadKind, StoreKey, SystemClock};
//!
//! # async fn run(user_token: &str, bob: uuid::Uuid) -> Result<(), cloak_sdk::Error> {
//! // The tenant's backend minted `user_token` for this user.
//! let mut client = DeviceClient::new(
//!     cloak_sdk::Tls::new()?.http_client()?,
//!     "https://chat.example",
//!     DeviceIdentity::generate_os(),
//!     SystemClock,
//! );
//! client.register(user_token, Some("Alice's phone")).await?;
//! client.login().await?;
//! let store = LocalStore::open("alice.db".as_ref(), &StoreKey::from_passphrase("passphrase", &[7; 16])?).await?;
//! let mut messenger = Messenger::with_store(client, store).await?;
//! messenger.publish_key_packages(50).await?;
//!
//! let conversation = messenger.create_conversation(&[bob]).await?;
//! messenger.send_text(conversation, "hello").await?;
//! for event in messenger.next_events(Duration::from_secs(30)).await? {
//!     if let Event::Message { payload, .. } = event {
//!         if let PayloadKind::Text { text } = payload.kind {
//!             println!("{text}");
//!         }
//!     }
//! }
//! # Ok(())
//! # }
//! ```
//!
//! MLS state lives in the OpenMLS provider's storage; with a [`LocalStore`] it is written,
//! with the app state, to the encrypted local file before every send and every
//! acknowledgement. The server only ever sees ciphertext.

use std::collections::{HashMap, HashSet};

use cloak_proto::delivery::{CommitRequest, EnvelopeKind, SendMessageRequest};
use openmls::prelude::OpenMlsProvider;
use openmls_rust_crypto::OpenMlsRustCrypto;
use uuid::Uuid;

use crate::clock::{Clock, SystemClock};
use crate::conversation::{Conversation, Incoming};
use crate::history::{Change, Evidence, Op, SendState, op_for};
use crate::ids::ConversationId;
use crate::ids::DeviceIds;
use crate::payload::{Payload, PayloadKind};
use crate::realtime::Channel;
use crate::store::history::{Record, Update};
use crate::store::{AppState, LocalStore};
use crate::{DeviceClient, Error};
use cloak_proto::delivery::ClientFrame;
use futures_util::StreamExt as _;
use secrecy::ExposeSecret as _;

pub use crate::event::{Event, Franking};

mod calls;
mod contacts;
mod membership;
mod peek;
mod trust;

pub use contacts::{Joined, parse_invite_link};

/// Mailbox page size for a sync.
const PAGE: u32 = 100;
/// How often a commit or send is retried after `stale_epoch` (each time after a sync).
const STALE_RETRIES: usize = 3;

/// A copy of the MLS state to put back after a transient failure (zeroized when dropped).
type MlsSnapshot = Vec<(Vec<u8>, zeroize::Zeroizing<Vec<u8>>)>;

/// One device's conversations over a server.
pub struct Messenger<C: Clock = SystemClock> {
    client: DeviceClient<C>,
    provider: OpenMlsRustCrypto,
    conversations: HashMap<Uuid, Conversation>,
    cursor: u64,
    seen: HashSet<Uuid>,
    store: Option<LocalStore>,
    channel: Option<Channel>,
    reconnects: u32,
    verified: HashMap<Uuid, [u8; 32]>,
    /// Events and timeline changes not yet written (by the next persist).
    recorded: Vec<Record>,
    /// Where written events go live (the [`crate::Cloak`] client's subscribers).
    updates: Option<tokio::sync::broadcast::Sender<Update>>,
    /// Users who announced they leave a conversation, whose devices are to be removed.
    leavers: Vec<(Uuid, Uuid)>,
    /// Conversation names (from `Topic` messages).
    topics: HashMap<Uuid, String>,
    /// This device's own user's root key, once pinned (see [`trust`]).
    own_root: std::sync::Mutex<Option<[u8; 32]>>,
    /// Commits stored before they were sent and not answered yet, by conversation.
    pending_commits: HashMap<Uuid, CommitRequest>,
    /// The calls this device takes part in (created on first use).
    calls: Option<crate::calls::CallBook>,
    /// How long calls ring before they are given up.
    ring_timeout_ms: i64,
}

/// How long [`Messenger::events`] waits per round before asking again.
const EVENTS_POLL: std::time::Duration = std::time::Duration::from_secs(25);

/// Once events are ready, how long [`Messenger::next_events`] keeps taking frames.
const DRAIN_WINDOW: std::time::Duration = std::time::Duration::from_millis(50);

/// How many delivered message ids are remembered for deduplication.
const SEEN_LIMIT: usize = 10_000;

/// Retries a request that carries a client message id (so the server stores it once
/// however often it arrives) when the connection failed: up to three more attempts with
/// jittered backoff.
async fn retry_transport<T, F, Fut>(mut call: F) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, Error>>,
{
    let mut attempt = 0;
    loop {
        match call().await {
            Err(Error::Transport(_)) if attempt < 3 => {
                let delay = crate::realtime::backoff(attempt, &mut rand::thread_rng());
                tokio::time::sleep(delay).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// A franked message must carry the commitment its franking key opens: otherwise the
/// sender made it unreportable on purpose, and it is refused. Messages without a franking
/// key (control messages, older clients) have no evidence.
fn check_franking(
    envelope: &cloak_proto::delivery::Envelope,
    sender: &DeviceIds,
    payload: &Payload,
) -> Result<Option<Franking>, Error> {
    let Some(expected) = payload.franking_tag(envelope.conversation_id) else {
        return Ok(None);
    };
    let (Some(tag), Some(stamp)) = (&envelope.franking_tag, &envelope.franking_stamp) else {
        return Err(Error::Verification(
            "a franked message arrived without its commitment".into(),
        ));
    };
    if tag != &expected || envelope.sender_device_id != sender.device_id {
        return Err(Error::Verification(
            "the franking commitment does not match the message".into(),
        ));
    }
    Ok(Some(Franking {
        tag: tag.clone(),
        stamp: stamp.clone(),
        sent_at_ms: envelope.sent_at_ms,
    }))
}

fn is_stale(e: &Error) -> bool {
    matches!(e, Error::Problem(p) if p.code == cloak_proto::Code::StaleEpoch)
}

impl<C: Clock> Messenger<C> {
    /// A messenger for a registered, logged-in device, keeping its state in memory only.
    pub fn new(client: DeviceClient<C>) -> Self {
        let own_root = client.own_root();
        Self {
            client,
            provider: OpenMlsRustCrypto::default(),
            conversations: HashMap::new(),
            cursor: 0,
            seen: HashSet::new(),
            store: None,
            channel: None,
            reconnects: 0,
            verified: HashMap::new(),
            recorded: Vec::new(),
            updates: None,
            leavers: Vec::new(),
            topics: HashMap::new(),
            own_root: std::sync::Mutex::new(own_root),
            pending_commits: HashMap::new(),
            calls: None,
            ring_timeout_ms: crate::calls::RING_TIMEOUT_MS,
        }
    }

    /// A messenger for a newly registered device that keeps its identity, MLS state and
    /// progress in the encrypted `store` (written before every send and acknowledgement).
    pub async fn with_store(client: DeviceClient<C>, store: LocalStore) -> Result<Self, Error> {
        let mut m = Self::new(client);
        m.store = Some(store);
        m.persist().await?;
        Ok(m)
    }

    /// Reopens a device from its encrypted store; `None` when the store is empty.
    pub async fn restore(
        http: reqwest::Client,
        base_url: &str,
        clock: C,
        store: LocalStore,
    ) -> Result<Option<Self>, Error> {
        Self::restore_with(store, |identity| {
            Ok(DeviceClient::new(http, base_url, identity, clock))
        })
        .await
    }

    /// Like [`restore`](Self::restore), with the device client made by `client` from the
    /// stored identity (for TLS settings, say).
    pub async fn restore_with(
        mut store: LocalStore,
        client: impl FnOnce(crate::DeviceIdentity) -> Result<DeviceClient<C>, Error>,
    ) -> Result<Option<Self>, Error> {
        let (mls, app) = store.load().await?;
        let Some(app) = app else { return Ok(None) };
        let identity = crate::DeviceIdentity::from_secret_bytes(&app.identity_secret);
        let mut client = client(identity)?;
        let client_root = client.own_root();
        if let Some(ids) = app.ids {
            client = client.with_ids(ids);
        }
        let provider = OpenMlsRustCrypto::default();
        provider
            .storage()
            .values
            .write()
            .map_err(|_| Error::Storage("state lock poisoned".into()))?
            .extend(mls);
        let mut conversations = HashMap::new();
        let pending_commits: HashMap<Uuid, CommitRequest> =
            app.pending_commits.into_iter().collect();
        for id in app
            .conversations
            .into_iter()
            .chain(pending_commits.keys().copied())
        {
            if let Some(c) = Conversation::load(&provider, id)? {
                conversations.insert(id, c);
            }
        }
        Ok(Some(Self {
            client,
            provider,
            conversations,
            cursor: app.cursor,
            seen: app.seen.into_iter().collect(),
            store: Some(store),
            channel: None,
            reconnects: 0,
            verified: app.verified.into_iter().collect(),
            recorded: Vec::new(),
            updates: None,
            leavers: app.leavers,
            topics: app.topics.into_iter().collect(),
            own_root: std::sync::Mutex::new(app.own_root.or(client_root)),
            pending_commits,
            calls: None,
            ring_timeout_ms: crate::calls::RING_TIMEOUT_MS,
        }))
    }

    /// Writes MLS state and app state to the store (if any) in one transaction. Only the
    /// changed MLS entries are copied, while the state lock is held, into zeroizing buffers.
    async fn persist(&mut self) -> Result<(), Error> {
        let Some(store) = self.store.as_ref() else {
            // Without a store there is no queue or timeline to write them to.
            self.recorded.clear();
            return Ok(());
        };
        let mut conversations: Vec<Uuid> = self.conversations.keys().copied().collect();
        // A conversation whose creating commit is in flight is not in the map yet.
        conversations.extend(
            self.pending_commits
                .keys()
                .filter(|id| !self.conversations.contains_key(id)),
        );
        let app = AppState {
            identity_secret: self.client.identity().to_secret_bytes(),
            ids: self.client.ids(),
            cursor: self.cursor,
            conversations,
            seen: self.seen.iter().copied().collect(),
            verified: self.verified.iter().map(|(u, k)| (*u, *k)).collect(),
            own_root: *self
                .own_root
                .lock()
                .map_err(|_| Error::Storage("state lock poisoned".into()))?,
            pending_commits: self
                .pending_commits
                .iter()
                .map(|(id, c)| (*id, c.clone()))
                .collect(),
            leavers: self.leavers.clone(),
            topics: self.topics.iter().map(|(c, n)| (*c, n.clone())).collect(),
        };
        let changes = {
            let values = self
                .provider
                .storage()
                .values
                .read()
                .map_err(|_| Error::Storage("state lock poisoned".into()))?;
            store.stage(&values, &app)?
        };
        let changes = LocalStore::with_history(changes, std::mem::take(&mut self.recorded));
        let updates = match self.store.as_mut() {
            Some(store) => store.write(changes).await?,
            None => Vec::new(),
        };
        if let Some(tx) = &self.updates {
            for update in updates {
                // No subscriber right now is fine: queued events wait in the store.
                let _ = tx.send(update);
            }
        }
        Ok(())
    }

    /// A reader of the stored timeline and event queue (with a store).
    pub fn history(&self) -> Option<crate::HistoryReader> {
        self.store.as_ref().map(LocalStore::reader)
    }

    /// Sends every event written from now on to `tx` as well.
    pub fn set_updates(&mut self, tx: tokio::sync::broadcast::Sender<Update>) {
        self.updates = Some(tx);
    }

    /// Keeps an event (and the timeline change it makes) for the next persist.
    fn record(&mut self, event: &Event) {
        let Event::Message {
            conversation_id,
            sender,
            payload,
            franking,
        } = event
        else {
            self.recorded.push(Record {
                event: Some(event.clone()),
                ephemeral: false,
                op: None,
            });
            return;
        };
        let evidence = match (franking, &payload.kind, payload.franking_key) {
            (Some(f), PayloadKind::Text { text }, Some(key)) => Some(Evidence {
                key,
                tag: f.tag.clone(),
                stamp: f.stamp.clone(),
                sent_at_ms: f.sent_at_ms,
                original_text: text.clone(),
            }),
            _ => None,
        };
        let op = op_for(
            ConversationId(*conversation_id),
            *sender,
            payload,
            evidence,
            SendState::Received,
        );
        self.recorded.push(Record {
            event: Some(event.clone()),
            ephemeral: matches!(payload.kind, PayloadKind::Typing { .. }),
            op,
        });
    }

    /// The device client.
    pub fn client(&self) -> &DeviceClient<C> {
        &self.client
    }

    fn ids(&self) -> Result<DeviceIds, Error> {
        self.client
            .ids()
            .ok_or(Error::InvalidState("the device is not registered"))
    }

    /// The ids of the conversations this device is in.
    pub fn conversation_ids(&self) -> Vec<Uuid> {
        self.conversations.keys().copied().collect()
    }

    /// The members of a conversation.
    pub fn members(&self, conversation_id: Uuid) -> Result<Vec<DeviceIds>, Error> {
        Ok(self.conversation(conversation_id)?.members())
    }

    fn conversation(&self, id: Uuid) -> Result<&Conversation, Error> {
        self.conversations
            .get(&id)
            .ok_or(Error::InvalidState("unknown conversation"))
    }

    /// Encrypts and sends a text message; returns its message id. On `stale_epoch` it
    /// syncs (processing the commits it missed) and re-encrypts in the new epoch.
    pub async fn send_text(
        &mut self,
        conversation_id: Uuid,
        text: &str,
    ) -> Result<(Uuid, Vec<Event>), Error> {
        let mut payload = Payload::new(
            Uuid::new_v4(),
            self.client_now(),
            PayloadKind::Text {
                text: text.to_owned(),
            },
        );
        // A fresh franking key per message: the commitment lets a recipient report it.
        let mut key = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut key);
        payload.franking_key = Some(key);
        let events = self.send_payload(conversation_id, &payload).await?;
        Ok((payload.message_id, events))
    }

    fn client_now(&self) -> i64 {
        self.client.now_ms()
    }

    /// Encrypts and sends any payload (see [`send_text`](Self::send_text)); returns the
    /// events of any sync it needed. A message that shows in the timeline (a text, an
    /// attachment) is written there as [`SendState::Sending`] with the ratchet state,
    /// before it leaves, then marked sent or failed.
    pub async fn send_payload(
        &mut self,
        conversation_id: Uuid,
        payload: &Payload,
    ) -> Result<Vec<Event>, Error> {
        let ids = self.ids()?;
        let conversation = ConversationId(conversation_id);
        // A shown message goes into the timeline before it leaves (as `Sending`); a change
        // to one (edit, reaction, receipt) only once the server has accepted it.
        let (shown, change) = match op_for(conversation, ids, payload, None, SendState::Sending) {
            Some(op @ Op::Insert(_)) => {
                self.recorded.push(Record {
                    event: None,
                    ephemeral: false,
                    op: Some(op),
                });
                (true, None)
            }
            other => (false, other),
        };
        let result = self.send_encrypted(conversation_id, payload).await;
        if let (Ok(_), Some(op)) = (&result, change) {
            self.recorded.push(Record {
                event: None,
                ephemeral: false,
                op: Some(op),
            });
            self.persist().await?;
        }
        if shown {
            let state = match &result {
                Ok(_) => SendState::Sent,
                Err(e) if e.is_transient() => SendState::Sending,
                Err(_) => SendState::Failed,
            };
            self.recorded.push(Record {
                event: None,
                ephemeral: false,
                op: Some(Op::Change {
                    conversation_id: conversation,
                    target: crate::ids::MessageId(payload.message_id),
                    by_user: ids.user_id,
                    change: Change::State(state),
                }),
            });
            self.persist().await?;
        }
        result
    }

    async fn send_encrypted(
        &mut self,
        conversation_id: Uuid,
        payload: &Payload,
    ) -> Result<Vec<Event>, Error> {
        let mut events = Vec::new();
        for _ in 0..=STALE_RETRIES {
            // Removals the server proposed are committed before anything is encrypted.
            events.extend(self.commit_proposals(conversation_id).await?);
            let identity = self.client.identity();
            let conversation = self
                .conversations
                .get_mut(&conversation_id)
                .ok_or(Error::InvalidState("unknown conversation"))?;
            let body = conversation.encrypt(&self.provider, identity, payload)?;
            let request = SendMessageRequest {
                // The payload's id doubles as the idempotency key: a retry is not duplicated.
                client_msg_id: payload.message_id,
                epoch: conversation.epoch(),
                body,
                class: payload.class(),
                franking_tag: payload.franking_tag(conversation_id),
            };
            // The ratchet moved: store it before the ciphertext leaves, so a restart never
            // reuses a message key.
            self.persist().await?;
            let sent =
                retry_transport(|| self.client.send_message(conversation_id, &request)).await;
            match sent {
                Ok(_) => return Ok(events),
                Err(e) if is_stale(&e) => events.extend(self.sync().await?),
                Err(e) => return Err(e),
            }
        }
        Err(Error::InvalidState(
            "the conversation kept moving; try again",
        ))
    }

    /// Waits up to `wait` for new messages over the WebSocket (connecting, or reconnecting
    /// with backoff, as needed) and returns their events. Each envelope is processed in
    /// mailbox order, stored, and acknowledged. When the socket cannot be opened, falls back
    /// to fetching over REST.
    pub async fn next_events(&mut self, wait: std::time::Duration) -> Result<Vec<Event>, Error> {
        if !self.pending_commits.is_empty() {
            return self.sync().await;
        }
        if self.channel.is_none() {
            let token = self.client.token().await?;
            match Channel::connect(
                self.client.base_url(),
                token.expose_secret(),
                self.cursor,
                self.client.tls(),
            )
            .await
            {
                Ok(c) => {
                    self.reconnects = 0;
                    self.channel = Some(c);
                }
                Err(_) => {
                    // Back off (with jitter) before the REST fallback; the next call tries the
                    // socket again.
                    let delay = crate::realtime::backoff(self.reconnects, &mut rand::thread_rng());
                    self.reconnects = self.reconnects.saturating_add(1);
                    tokio::time::sleep(delay.min(wait)).await;
                    return self.sync().await;
                }
            }
        }
        let mut events = Vec::new();
        let mut deadline = tokio::time::Instant::now() + wait;
        let acked = self.cursor;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let Some(channel) = self.channel.as_mut() else {
                break;
            };
            let envelope = match channel.next_envelope(left).await {
                Ok(Some(e)) => e,
                Ok(None) => break,
                Err(e) => {
                    // The socket broke: drop it; the next call reconnects and resumes.
                    self.channel = None;
                    if events.is_empty() {
                        return Err(e);
                    }
                    break;
                }
            };
            if envelope.seq <= self.cursor {
                continue; // already processed (a resume can repeat entries)
            }
            let seq = envelope.seq;
            match self.handle(&envelope).await {
                Ok(event) => events.extend(event),
                Err(e) => {
                    // A transient failure: drop the socket so the next call resumes at
                    // this entry and tries it again.
                    self.channel = None;
                    if events.is_empty() {
                        return Err(e);
                    }
                    break;
                }
            }
            self.cursor = seq;
            self.persist().await?;
            if !events.is_empty() {
                // Something to hand over: take what else is already arriving, then return.
                deadline = deadline.min(tokio::time::Instant::now() + DRAIN_WINDOW);
            }
        }
        // One acknowledgement for everything this call stored: the server deletes up to it.
        // Unacknowledged entries only come again on the next resume, and the cursor skips
        // them.
        if self.cursor > acked
            && let Some(channel) = self.channel.as_mut()
            && channel
                .send(&ClientFrame::Ack {
                    up_to: self.cursor,
                    quiet: true,
                })
                .await
                .is_err()
        {
            self.channel = None;
        }
        Ok(events)
    }

    /// The decrypted events as a stream, delivered in real time over the WebSocket (with
    /// reconnection and REST fallback). Transient connection errors are retried inside;
    /// an error that ends access (a revoked device, a suspended user) ends the stream.
    pub fn events(&mut self) -> impl futures_util::Stream<Item = Result<Event, Error>> + '_ {
        futures_util::stream::unfold((self, false), |(m, done)| async move {
            if done {
                return None;
            }
            loop {
                match m.next_events(EVENTS_POLL).await {
                    Ok(events) if events.is_empty() => continue,
                    Ok(events) => return Some((Ok(events), (m, false))),
                    Err(Error::Transport(_)) => continue,
                    Err(e) => return Some((Err(e), (m, true))),
                }
            }
        })
        .flat_map(|batch| {
            let items: Vec<Result<Event, Error>> = match batch {
                Ok(events) => events.into_iter().map(Ok).collect(),
                Err(e) => vec![Err(e)],
            };
            futures_util::stream::iter(items)
        })
    }

    /// Processes one envelope pushed over the socket, in order: its state, event and
    /// timeline change are stored before this returns, so the caller may acknowledge
    /// `envelope.seq` once [`cursor`](Self::cursor) has reached it. An entry already
    /// processed is skipped. A transient failure leaves it for later.
    pub async fn receive(
        &mut self,
        envelope: &cloak_proto::delivery::Envelope,
    ) -> Result<Vec<Event>, Error> {
        if envelope.seq <= self.cursor {
            return Ok(Vec::new());
        }
        let event = self.handle(envelope).await?;
        self.cursor = envelope.seq;
        if self.seen.len() > SEEN_LIMIT {
            self.seen.clear();
        }
        self.persist().await?;
        Ok(event.into_iter().collect())
    }

    /// The last mailbox sequence number processed (and stored).
    pub fn cursor(&self) -> u64 {
        self.cursor
    }

    /// The conversation's name, once a member named it.
    pub fn topic(&self, conversation_id: Uuid) -> Option<&str> {
        self.topics.get(&conversation_id).map(String::as_str)
    }

    /// Names the conversation for every member.
    pub async fn set_topic(&mut self, conversation_id: Uuid, name: &str) -> Result<(), Error> {
        let payload = Payload::new(
            Uuid::new_v4(),
            self.client_now(),
            PayloadKind::Topic {
                name: name.to_owned(),
            },
        );
        self.send_payload(conversation_id, &payload).await?;
        self.topics.insert(conversation_id, name.to_owned());
        self.persist().await
    }

    /// Leaves a conversation: tells the members (whose devices then remove this user's
    /// devices) and forgets it here.
    pub async fn leave(&mut self, conversation_id: Uuid) -> Result<(), Error> {
        let payload = Payload::new(Uuid::new_v4(), self.client_now(), PayloadKind::Leave);
        self.send_payload(conversation_id, &payload).await?;
        self.conversations.remove(&conversation_id);
        self.topics.remove(&conversation_id);
        self.persist().await
    }

    /// Removes the devices of users who said they leave, from the conversations they left
    /// (any member may; when another did it first, there is nothing left to remove).
    pub async fn remove_leavers(&mut self) -> Result<Vec<Event>, Error> {
        let mut events = Vec::new();
        while let Some((conversation_id, user)) = self.leavers.first().copied() {
            let devices: Vec<Uuid> = self
                .conversations
                .get(&conversation_id)
                .filter(|c| c.is_active())
                .map(|c| {
                    c.members()
                        .iter()
                        .filter(|m| m.user_id == user)
                        .map(|m| m.device_id)
                        .collect()
                })
                .unwrap_or_default();
            if !devices.is_empty() {
                match self
                    .commit_with_retry(conversation_id, |c, p, i| {
                        let still: Vec<Uuid> = c
                            .members()
                            .iter()
                            .filter(|m| devices.contains(&m.device_id))
                            .map(|m| m.device_id)
                            .collect();
                        if still.is_empty() {
                            return Err(Error::InvalidState("already removed"));
                        }
                        c.remove_devices(p, i, &still)
                    })
                    .await
                {
                    Ok(e) => events.extend(e),
                    Err(Error::InvalidState("already removed")) => {}
                    Err(e) if e.is_transient() => return Err(e),
                    Err(_) => {}
                }
            }
            self.leavers.retain(|l| *l != (conversation_id, user));
            self.persist().await?;
        }
        Ok(events)
    }

    /// Fetches and processes every mailbox entry, in order, acknowledging them. Commits
    /// this device wrote before a restart and never heard back about are settled first.
    /// A transient failure while checking an entry stops there: what came before is
    /// stored and acknowledged, the entry and those after it are fetched again next time
    /// (an error only if nothing was processed in this call).
    pub async fn sync(&mut self) -> Result<Vec<Event>, Error> {
        self.resume_pending_commits().await?;
        let mut events = Vec::new();
        loop {
            let page = self.client.fetch_mailbox(self.cursor, PAGE).await?;
            if page.items.is_empty() {
                return Ok(events);
            }
            let mut stopped = None;
            let mut last = None;
            for envelope in &page.items {
                if envelope.seq <= self.cursor {
                    continue;
                }
                match self.handle(envelope).await {
                    Ok(event) => {
                        events.extend(event);
                        last = Some(envelope.seq);
                        self.cursor = envelope.seq;
                    }
                    Err(e) => {
                        stopped = Some(e);
                        break;
                    }
                }
            }
            if self.seen.len() > SEEN_LIMIT {
                self.seen.clear();
            }
            // State first, then the acknowledgement: nothing acknowledged is lost.
            if let Some(last) = last {
                self.persist().await?;
                self.client.ack_mailbox(last).await?;
            }
            match stopped {
                Some(e) if events.is_empty() => return Err(e),
                Some(_) => return Ok(events),
                None if !page.more => return Ok(events),
                None => {}
            }
        }
    }

    /// Processes one envelope; a refusal becomes an [`Event::Rejected`], never an error, so
    /// one bad entry cannot stall the mailbox. The error is for a *transient* failure
    /// (the network, a 5xx, a rate limit) while checking it: nothing was changed, and the
    /// caller stops before this entry so it is processed again later, never refused.
    async fn handle(
        &mut self,
        envelope: &cloak_proto::delivery::Envelope,
    ) -> Result<Option<Event>, Error> {
        let conversation_id = envelope.conversation_id;
        let event = match self.process(envelope).await {
            Ok(event) => event,
            Err(e) if e.is_transient() => return Err(e),
            Err(e) => Some(Event::Rejected {
                conversation_id,
                seq: envelope.seq,
                reason: e.to_string(),
            }),
        };
        // Recorded before the caller persists and acknowledges: nothing acknowledged is
        // missing from the event queue or the timeline.
        if let Some(event) = &event {
            self.record(event);
        }
        Ok(event)
    }

    async fn process(
        &mut self,
        envelope: &cloak_proto::delivery::Envelope,
    ) -> Result<Option<Event>, Error> {
        let (conversation_id, body) = (envelope.conversation_id, envelope.body.as_slice());
        match envelope.kind {
            EnvelopeKind::Welcome => self.process_welcome(conversation_id, body).await,
            EnvelopeKind::Commit => {
                // Staging a commit uses up its handshake key: a transient failure while
                // checking it puts the MLS state back so it stages again next time.
                let snapshot = self.mls_snapshot()?;
                let result = self.process_group_message(envelope).await;
                if matches!(&result, Err(e) if e.is_transient()) {
                    self.mls_restore(snapshot)?;
                }
                result
            }
            EnvelopeKind::Application | EnvelopeKind::Proposal => {
                self.process_group_message(envelope).await
            }
        }
    }

    async fn process_group_message(
        &mut self,
        envelope: &cloak_proto::delivery::Envelope,
    ) -> Result<Option<Event>, Error> {
        let (conversation_id, body) = (envelope.conversation_id, envelope.body.as_slice());
        {
            {
                let conversation =
                    self.conversations
                        .get_mut(&conversation_id)
                        .ok_or(Error::InvalidState(
                            "message for a conversation this device is not in",
                        ))?;
                match conversation.process(&self.provider, body)? {
                    Incoming::Application { sender, payload } => {
                        if !self.seen.insert(payload.message_id)
                            || matches!(payload.kind, PayloadKind::Unknown)
                        {
                            return Ok(None);
                        }
                        if let PayloadKind::Call(signal) = &payload.kind {
                            return self.on_call_signal(
                                conversation_id,
                                sender,
                                signal,
                                envelope.sent_at_ms,
                            );
                        }
                        let franking = check_franking(envelope, &sender, &payload)?;
                        match &payload.kind {
                            PayloadKind::Leave => {
                                self.leavers.push((conversation_id, sender.user_id));
                            }
                            PayloadKind::Topic { name } => {
                                self.topics.insert(conversation_id, name.clone());
                            }
                            _ => {}
                        }
                        Ok(Some(Event::Message {
                            conversation_id,
                            sender,
                            payload,
                            franking,
                        }))
                    }
                    Incoming::Commit(change) => {
                        // Stage → check → merge: a commit whose new leaves are not approved
                        // directory devices is dropped unmerged (the group stays as it was).
                        let directory = self.directory_of(&change.users()).await?;
                        change.check(&directory)?;
                        let (added, removed) = (change.added().to_vec(), change.removed().to_vec());
                        self.conversations
                            .get_mut(&conversation_id)
                            .ok_or(Error::InvalidState("unknown conversation"))?
                            .merge(&self.provider, change)?;
                        Ok(Some(Event::MembersChanged {
                            conversation_id,
                            added,
                            removed,
                        }))
                    }
                    // Stored in the group; this device's next send commits it.
                    Incoming::RemovalProposed(_) | Incoming::Ignored => Ok(None),
                }
            }
        }
    }

    /// Opens a Welcome, checks every member against the verified directories, and only
    /// then joins. OpenMLS consumes the KeyPackage when it opens the Welcome, so a
    /// transient failure during the check puts the MLS state back as it was: the entry
    /// stays unacknowledged and the Welcome opens again on the next try.
    async fn process_welcome(
        &mut self,
        conversation_id: Uuid,
        body: &[u8],
    ) -> Result<Option<Event>, Error> {
        let snapshot = self.mls_snapshot()?;
        let staged = Conversation::stage_join(&self.provider, body)?;
        if staged.id() != conversation_id {
            return Err(Error::Verification(
                "welcome for another conversation".into(),
            ));
        }
        let mut users: Vec<Uuid> = staged.members().iter().map(|m| m.user_id).collect();
        users.sort_unstable();
        users.dedup();
        let checked = match self.directory_of(&users).await {
            Ok(directory) => staged.check(&directory),
            Err(e) => Err(e),
        };
        if let Err(e) = checked {
            if e.is_transient() {
                self.mls_restore(snapshot)?;
            }
            return Err(e);
        }
        let conversation = staged.join(&self.provider)?;
        let members = conversation.members();
        self.conversations.insert(conversation_id, conversation);
        Ok(Some(Event::Joined {
            conversation_id,
            members,
        }))
    }

    /// A copy of the MLS state (zeroized when dropped).
    fn mls_snapshot(&self) -> Result<MlsSnapshot, Error> {
        Ok(self
            .provider
            .storage()
            .values
            .read()
            .map_err(|_| Error::Storage("state lock poisoned".into()))?
            .iter()
            .map(|(k, v)| (k.clone(), zeroize::Zeroizing::new(v.clone())))
            .collect())
    }

    fn mls_restore(&self, snapshot: MlsSnapshot) -> Result<(), Error> {
        let mut values = self
            .provider
            .storage()
            .values
            .write()
            .map_err(|_| Error::Storage("state lock poisoned".into()))?;
        values.clear();
        values.extend(snapshot.into_iter().map(|(k, v)| (k, v.to_vec())));
        Ok(())
    }
}
