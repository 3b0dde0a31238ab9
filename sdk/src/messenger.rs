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
//!     reqwest::Client::new(),
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
use cloak_proto::devices::{Device, DeviceStatus};
use openmls::prelude::{KeyPackage, OpenMlsProvider};
use openmls_rust_crypto::OpenMlsRustCrypto;
use uuid::Uuid;

use crate::clock::{Clock, SystemClock};
use crate::conversation::{Conversation, Incoming, PendingCommit};
use crate::ids::DeviceIds;
use crate::mls::{check_key_package_device, parse_key_package};
use crate::payload::{Payload, PayloadKind};
use crate::realtime::Channel;
use crate::store::{AppState, LocalStore};
use crate::{DeviceClient, Error};
use cloak_proto::delivery::ClientFrame;
use futures_util::StreamExt as _;
use secrecy::ExposeSecret as _;

mod contacts;
mod inbox;

pub use contacts::Joined;

/// Mailbox page size for a sync.
const PAGE: u32 = 100;
/// How often a commit or send is retried after `stale_epoch` (each time after a sync).
const STALE_RETRIES: usize = 3;

/// What a sync produced, in mailbox order.
// Events are short-lived values handed to the app; boxing the message would only add an
// allocation per message.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// This device joined a conversation (from a Welcome whose members all check out).
    Joined {
        /// The conversation.
        conversation_id: Uuid,
        /// Its members.
        members: Vec<DeviceIds>,
    },
    /// A decrypted message.
    Message {
        /// The conversation.
        conversation_id: Uuid,
        /// The sending device (from its MLS credential).
        sender: DeviceIds,
        /// The payload.
        payload: Payload,
        /// The evidence to report it with, when the sender franked it (checked on receipt).
        franking: Option<Franking>,
    },
    /// Another member's commit changed the members.
    MembersChanged {
        /// The conversation.
        conversation_id: Uuid,
        /// Added devices.
        added: Vec<DeviceIds>,
        /// Removed devices.
        removed: Vec<DeviceIds>,
    },
    /// An envelope was refused: it did not decrypt or verify, or it named a device that is
    /// not an approved device in the directory. It is dropped; later ones still work.
    Rejected {
        /// The conversation.
        conversation_id: Uuid,
        /// The mailbox sequence number.
        seq: u64,
        /// Why.
        reason: String,
    },
}

/// A received message's franking evidence: the sender's commitment and the server's stamp
/// from the envelope (the key and text are in the payload).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Franking {
    /// The sender's commitment.
    pub tag: Vec<u8>,
    /// The server's stamp.
    pub stamp: Vec<u8>,
    /// When the server accepted the message (Unix ms; part of the stamp).
    pub sent_at_ms: i64,
}

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
    /// Received messages kept for the app, when it asked for an inbox.
    inbox: Option<Vec<crate::InboxMessage>>,
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
                tokio::time::sleep(crate::realtime::backoff(attempt, &mut rand::thread_rng()))
                    .await;
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
    matches!(e, Error::Problem(p) if p.code == "stale_epoch")
}

impl<C: Clock> Messenger<C> {
    /// A messenger for a registered, logged-in device, keeping its state in memory only.
    pub fn new(client: DeviceClient<C>) -> Self {
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
            inbox: None,
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
        mut store: LocalStore,
    ) -> Result<Option<Self>, Error> {
        let (mls, app) = store.load().await?;
        let Some(app) = app else { return Ok(None) };
        let identity = crate::DeviceIdentity::from_secret_bytes(&app.identity_secret);
        let mut client = DeviceClient::new(http, base_url, identity, clock);
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
        for id in app.conversations {
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
            inbox: app.inbox,
        }))
    }

    /// Writes MLS state and app state to the store (if any) in one transaction.
    async fn persist(&mut self) -> Result<(), Error> {
        let Some(store) = self.store.as_mut() else {
            return Ok(());
        };
        let mls = self
            .provider
            .storage()
            .values
            .read()
            .map_err(|_| Error::Storage("state lock poisoned".into()))?
            .clone();
        let app = AppState {
            identity_secret: self.client.identity().to_secret_bytes(),
            ids: self.client.ids(),
            cursor: self.cursor,
            conversations: self.conversations.keys().copied().collect(),
            seen: self.seen.iter().copied().collect(),
            verified: self.verified.iter().map(|(u, k)| (*u, *k)).collect(),
            inbox: self.inbox.clone(),
        };
        store.persist(&mls, &app).await
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

    /// Publishes KeyPackages (private parts stay in this messenger's provider) so others
    /// can add this device.
    pub async fn publish_key_packages(&mut self, target: u32) -> Result<(), Error> {
        self.client
            .top_up_key_packages(&self.provider, target)
            .await?;
        // The packages' private parts must survive a restart to process Welcomes.
        self.persist().await
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

    /// Verified KeyPackages of every approved device of `user_id` (this device excepted).
    /// A user's verified directory whose root is still the one pinned for them (by an
    /// invite scan or a safety-number comparison), if one is pinned.
    async fn trusted_directory(&self, user_id: Uuid) -> Result<Vec<Device>, Error> {
        let directory = self.client.verified_user_devices(user_id).await?;
        if let Some(pinned) = self.verified.get(&user_id)
            && crate::safety::root_key(&directory)? != *pinned
        {
            return Err(Error::Verification(
                "the user's root key differs from the verified one".into(),
            ));
        }
        Ok(directory)
    }

    async fn key_packages_of(&self, user_id: Uuid) -> Result<Vec<KeyPackage>, Error> {
        let directory = self.trusted_directory(user_id).await?;
        let claimed = self.client.claim_key_packages(user_id).await?;
        let mut packages = Vec::with_capacity(claimed.items.len());
        for item in claimed.items {
            let device = directory
                .iter()
                .find(|d| d.id == item.device_id && d.status == DeviceStatus::Approved)
                .ok_or_else(|| {
                    Error::Verification("a key package names a device not in the directory".into())
                })?;
            let kp = parse_key_package(self.provider.crypto(), &item.data)?;
            check_key_package_device(&kp, device)?;
            packages.push(kp);
        }
        Ok(packages)
    }

    /// Starts a conversation with every approved device of `users` and of this device's
    /// own user. Returns its id.
    pub async fn create_conversation(&mut self, users: &[Uuid]) -> Result<Uuid, Error> {
        let ids = self.ids()?;
        let mut packages = self.key_packages_of(ids.user_id).await?;
        for user in users.iter().filter(|u| **u != ids.user_id) {
            packages.extend(self.key_packages_of(*user).await?);
        }
        let id = Uuid::new_v4();
        self.client.create_conversation(id).await?;
        let mut conversation =
            Conversation::create(&self.provider, self.client.identity(), &ids, id)?;
        if !packages.is_empty() {
            let pending =
                conversation.add_devices(&self.provider, self.client.identity(), &packages)?;
            self.submit(&mut conversation, pending).await?;
        }
        self.conversations.insert(id, conversation);
        self.persist().await?;
        Ok(id)
    }

    /// Submits a pending commit: merged when accepted, discarded when refused.
    async fn submit(
        &self,
        conversation: &mut Conversation,
        pending: PendingCommit,
    ) -> Result<(), Error> {
        let request = CommitRequest {
            client_msg_id: Uuid::new_v4(),
            epoch: pending.epoch_before,
            commit: pending.commit,
            welcome: pending.welcome,
            add: pending.add,
            remove: pending.remove,
        };
        let id = conversation.id();
        match retry_transport(|| self.client.submit_commit(id, &request)).await {
            Ok(_) => conversation.confirm_commit(&self.provider),
            Err(e) => {
                conversation.discard_commit(&self.provider)?;
                Err(e)
            }
        }
    }

    /// Approves a pending device of this user after checking the fingerprint it shows, and
    /// adds it to every conversation this device is in (it reads messages from then on,
    /// never earlier ones). Returns the events of any sync needed on the way.
    pub async fn approve_device(
        &mut self,
        device_id: Uuid,
        fingerprint: &str,
    ) -> Result<Vec<Event>, Error> {
        let ids = self.ids()?;
        self.client
            .approve_device_with_fingerprint(device_id, fingerprint)
            .await?;
        let mut events = self.sync().await?;
        let mut ids_to_update: Vec<Uuid> = self
            .conversations
            .iter()
            .filter(|(_, c)| c.is_active() && !c.members().iter().any(|m| m.device_id == device_id))
            .map(|(id, _)| *id)
            .collect();
        ids_to_update.sort();
        if ids_to_update.is_empty() {
            return Ok(events);
        }
        let directory = self.client.verified_user_devices(ids.user_id).await?;
        let device = directory
            .iter()
            .find(|d| d.id == device_id && d.status == DeviceStatus::Approved)
            .ok_or(Error::InvalidState(
                "the device is not approved in the directory",
            ))?
            .clone();
        for conversation_id in ids_to_update {
            let claimed = self.client.claim_key_packages(ids.user_id).await?;
            let item = claimed
                .items
                .into_iter()
                .find(|i| i.device_id == device_id)
                .ok_or(Error::InvalidState(
                    "the new device has published no key package",
                ))?;
            let kp = parse_key_package(self.provider.crypto(), &item.data)?;
            check_key_package_device(&kp, &device)?;
            let packages = [kp];
            events.extend(
                self.commit_with_retry(conversation_id, |c, p, i| c.add_devices(p, i, &packages))
                    .await?,
            );
        }
        Ok(events)
    }

    /// Revokes a device (its tokens stop at once) and removes it from every conversation
    /// this device is in, so it cannot read anything sent afterwards.
    pub async fn revoke_device(&mut self, device_id: Uuid) -> Result<Vec<Event>, Error> {
        self.client.revoke_device(device_id).await?;
        let mut events = self.sync().await?;
        let mut affected: Vec<Uuid> = self
            .conversations
            .iter()
            .filter(|(_, c)| c.members().iter().any(|m| m.device_id == device_id))
            .map(|(id, _)| *id)
            .collect();
        affected.sort();
        for conversation_id in affected {
            events.extend(
                self.commit_with_retry(conversation_id, |c, p, i| {
                    c.remove_devices(p, i, &[device_id])
                })
                .await?,
            );
        }
        Ok(events)
    }

    /// Makes a commit with `make` and submits it; on `stale_epoch` syncs (merging the
    /// commits that won) and makes it again.
    async fn commit_with_retry<F>(
        &mut self,
        conversation_id: Uuid,
        make: F,
    ) -> Result<Vec<Event>, Error>
    where
        F: Fn(
            &mut Conversation,
            &OpenMlsRustCrypto,
            &crate::DeviceIdentity,
        ) -> Result<PendingCommit, Error>,
    {
        let mut events = Vec::new();
        for _ in 0..=STALE_RETRIES {
            let mut conversation = self
                .conversations
                .remove(&conversation_id)
                .ok_or(Error::InvalidState("unknown conversation"))?;
            let result = match make(&mut conversation, &self.provider, self.client.identity()) {
                Ok(pending) => self.submit(&mut conversation, pending).await,
                Err(e) => Err(e),
            };
            self.conversations.insert(conversation_id, conversation);
            match result {
                Ok(()) => {
                    self.persist().await?;
                    return Ok(events);
                }
                Err(e) if is_stale(&e) => events.extend(self.sync().await?),
                Err(e) => return Err(e),
            }
        }
        Err(Error::InvalidState(
            "the conversation kept moving; try again",
        ))
    }

    /// The safety number between this device's user and `contact`, from both users' root
    /// keys in their verified directories. Compare it in person, then
    /// [`mark_verified`](Self::mark_verified).
    pub async fn safety_number(&self, contact: Uuid) -> Result<crate::SafetyNumber, Error> {
        let ids = self.ids()?;
        let mine = crate::safety::root_key(&self.client.verified_user_devices(ids.user_id).await?)?;
        let theirs = crate::safety::root_key(&self.client.verified_user_devices(contact).await?)?;
        Ok(crate::safety::safety_number(
            (ids.user_id, mine),
            (contact, theirs),
        ))
    }

    /// Records that the safety number with `contact` was compared and matched.
    pub async fn mark_verified(&mut self, contact: Uuid) -> Result<(), Error> {
        let root = crate::safety::root_key(&self.client.verified_user_devices(contact).await?)?;
        self.verified.insert(contact, root);
        self.persist().await
    }

    /// Whether `contact` is verified and still has the root key that was verified (a new
    /// root key, such as after all devices were replaced, makes this false).
    pub async fn is_verified(&self, contact: Uuid) -> Result<bool, Error> {
        let Some(verified) = self.verified.get(&contact) else {
            return Ok(false);
        };
        let root = crate::safety::root_key(&self.client.verified_user_devices(contact).await?)?;
        Ok(&root == verified)
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
    /// events of any sync it needed.
    pub async fn send_payload(
        &mut self,
        conversation_id: Uuid,
        payload: &Payload,
    ) -> Result<Vec<Event>, Error> {
        let mut events = Vec::new();
        for _ in 0..=STALE_RETRIES {
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
        if self.channel.is_none() {
            let token = self.client.token().await?;
            match Channel::connect(self.client.base_url(), token.expose_secret(), self.cursor).await
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
            events.extend(self.handle(&envelope).await);
            self.cursor = seq;
            self.persist().await?;
            if let Some(channel) = self.channel.as_mut()
                && channel
                    .send(&ClientFrame::Ack { up_to: seq })
                    .await
                    .is_err()
            {
                self.channel = None;
            }
            if !events.is_empty() {
                // Something to hand over: take what else is already arriving, then return.
                deadline = deadline.min(tokio::time::Instant::now() + DRAIN_WINDOW);
            }
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

    /// Fetches and processes every mailbox entry, in order, acknowledging them.
    pub async fn sync(&mut self) -> Result<Vec<Event>, Error> {
        let mut events = Vec::new();
        loop {
            let page = self.client.fetch_mailbox(self.cursor, PAGE).await?;
            let Some(last) = page.items.last().map(|e| e.seq) else {
                return Ok(events);
            };
            for envelope in &page.items {
                events.extend(self.handle(envelope).await);
            }
            self.cursor = last;
            if self.seen.len() > SEEN_LIMIT {
                self.seen.clear();
            }
            // State first, then the acknowledgement: nothing acknowledged is lost.
            self.persist().await?;
            self.client.ack_mailbox(last).await?;
            if !page.more {
                return Ok(events);
            }
        }
    }

    /// Processes one envelope; a refusal becomes an [`Event::Rejected`], never an error, so
    /// one bad entry cannot stall the mailbox.
    async fn handle(&mut self, envelope: &cloak_proto::delivery::Envelope) -> Option<Event> {
        let conversation_id = envelope.conversation_id;
        let event = match self.process(envelope).await {
            Ok(event) => event,
            Err(e) => Some(Event::Rejected {
                conversation_id,
                seq: envelope.seq,
                reason: e.to_string(),
            }),
        };
        // Kept before the caller persists and acknowledges, so the inbox loses nothing.
        if let Some(event) = &event {
            self.stash(event);
        }
        event
    }

    async fn process(
        &mut self,
        envelope: &cloak_proto::delivery::Envelope,
    ) -> Result<Option<Event>, Error> {
        let (conversation_id, body) = (envelope.conversation_id, envelope.body.as_slice());
        match envelope.kind {
            EnvelopeKind::Welcome => {
                let conversation = Conversation::join(&self.provider, body)?;
                if conversation.id() != conversation_id {
                    return Err(Error::Verification(
                        "welcome for another conversation".into(),
                    ));
                }
                self.check_members(&conversation).await?;
                let members = conversation.members();
                self.conversations.insert(conversation_id, conversation);
                Ok(Some(Event::Joined {
                    conversation_id,
                    members,
                }))
            }
            EnvelopeKind::Commit | EnvelopeKind::Application => {
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
                        let franking = check_franking(envelope, &sender, &payload)?;
                        Ok(Some(Event::Message {
                            conversation_id,
                            sender,
                            payload,
                            franking,
                        }))
                    }
                    Incoming::Commit { added, removed, .. } => {
                        if let Some(conversation) = self.conversations.get(&conversation_id) {
                            self.check_members(conversation).await?;
                        }
                        Ok(Some(Event::MembersChanged {
                            conversation_id,
                            added,
                            removed,
                        }))
                    }
                    Incoming::Ignored => Ok(None),
                }
            }
        }
    }

    /// Every member must be an approved device in its user's verified directory.
    async fn check_members(&self, conversation: &Conversation) -> Result<(), Error> {
        let users: HashSet<Uuid> = conversation.members().iter().map(|m| m.user_id).collect();
        let mut directory: Vec<Device> = Vec::new();
        for user in users {
            directory.extend(self.trusted_directory(user).await?);
        }
        conversation.check_members(&directory)
    }
}
