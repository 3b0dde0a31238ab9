//! One conversation as an MLS group (sans-IO).
//!
//! A [`Conversation`] wraps the OpenMLS group whose id is the conversation's UUID (its 16
//! bytes) and whose leaves are the member devices. Nothing here touches the network or a
//! disk: every state change is written to the OpenMLS provider's storage that the caller
//! passes in (the caller persists it transactionally with whatever else it records), and
//! randomness comes from the provider. Time enters only through the [`Payload`]'s
//! `sent_at_ms`, which the caller sets.
//!
//! Commits follow the delivery service's compare-and-swap on the epoch:
//! [`add_devices`](Conversation::add_devices) / [`remove_devices`](Conversation::remove_devices)
//! leave a pending commit and return a [`PendingCommit`] for `POST .../commits`; on
//! acceptance call [`confirm_commit`](Conversation::confirm_commit), on 409 `stale_epoch`
//! call [`discard_commit`](Conversation::discard_commit), [`process`](Conversation::process)
//! the commits the device missed, and try again. While a commit is pending the group
//! cannot encrypt.
//!
//! Trust: the sender of every incoming message and the members added by a commit are
//! named by their MLS credentials, never by the envelope. Nothing received changes the
//! group before it is checked: a Welcome becomes a [`StagedJoin`] and another member's
//! commit a [`StagedChange`]; the caller checks their leaves against the verified device
//! directory and only then joins or merges (stage → check → merge, or drop).
//!
//! The delivery service is the group's one external sender (RFC 9420 §12.1.8.1, set at
//! creation). From it only a Remove proposal is accepted (OpenMLS checks its signature
//! against the group's `external_senders`): it is stored, and the device's next commit
//! carries it out. That trusts the server with availability only, which it has anyway: a
//! removal gives nobody a key, and the server cannot propose adding anyone.

use cloak_proto::devices::{Device, DeviceStatus};
use openmls::prelude::tls_codec::{Deserialize as _, Serialize as _};
use openmls::prelude::{
    BasicCredential, Credential, Extension, Extensions, ExternalSender, GroupId, KeyPackage,
    LeafNodeIndex, Member, MlsGroup, MlsGroupCreateConfig, MlsGroupJoinConfig, MlsMessageBodyIn,
    MlsMessageIn, MlsMessageOut, OpenMlsProvider, ProcessedMessageContent, Proposal,
    ProtocolMessage, Sender, SenderRatchetConfiguration, StagedCommit, StagedWelcome,
};
use uuid::Uuid;

use crate::Error;
use crate::identity::DeviceIdentity;
use crate::ids::DeviceIds;
use crate::mls::{CIPHERSUITE, MlsSigner, credential_with_key, decode_credential_identity};
use crate::payload::Payload;

#[cfg(test)]
mod tests;

/// How many past epochs' secrets a device keeps, so that application messages sent just
/// before a commit still decrypt after it (OpenMLS's default is 0). Costs forward secrecy
/// for that many epochs.
pub const MAX_PAST_EPOCHS: usize = 5;
/// How many skipped message keys per sender a device keeps within an epoch, so messages
/// that arrive out of order still decrypt (OpenMLS's default is 5).
pub const OUT_OF_ORDER_TOLERANCE: u32 = 100;
/// How far ahead of the last message from a sender a message may be (OpenMLS's default is
/// 1000): a device that missed many messages still decrypts the next one.
pub const MAXIMUM_FORWARD_DISTANCE: u32 = 5000;

/// A commit created locally and not yet accepted by the server: the fields of a
/// `CommitRequest` except its `client_msg_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingCommit {
    /// The epoch the commit was created in (`CommitRequest::epoch`).
    pub epoch_before: u64,
    /// The MLS commit.
    pub commit: Vec<u8>,
    /// The MLS Welcome for the added devices, if any.
    pub welcome: Option<Vec<u8>>,
    /// Devices the commit adds.
    pub add: Vec<Uuid>,
    /// Devices the commit removes.
    pub remove: Vec<Uuid>,
    /// The leaf each added device takes, in `add` order (`CommitRequest::leaf_indices`).
    pub leaf_indices: Vec<u32>,
}

/// The membership changes of a pending commit.
struct Changes {
    add: Vec<Uuid>,
    remove: Vec<Uuid>,
    leaf_indices: Vec<u32>,
}

/// What an incoming MLS message was.
pub enum Incoming {
    /// An application message from `sender` (named by its MLS credential).
    Application {
        /// The sending device.
        sender: DeviceIds,
        /// The decrypted payload (its kind may be [`Unknown`](crate::PayloadKind::Unknown)).
        payload: Payload,
    },
    /// A commit by another member that MLS accepted, **not merged yet**: check its new
    /// leaves against the verified directory ([`StagedChange::check`]), then
    /// [`merge`](Conversation::merge) it, or drop it to refuse it.
    Commit(StagedChange),
    /// The server, as the group's external sender, proposed removing a member device
    /// (`None`: a leaf whose credential names no Cloak device). The proposal is stored in
    /// the group: the next commit of this device carries it out
    /// ([`commit_pending_proposals`](Conversation::commit_pending_proposals)), and another
    /// member's commit that carries it out can be processed.
    RemovalProposed(Option<DeviceIds>),
    /// Nothing to act on: this device's own message, or a repeated proposal.
    Ignored,
}

impl std::fmt::Debug for Incoming {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Application { sender, .. } => f
                .debug_struct("Application")
                .field("sender", sender)
                .finish_non_exhaustive(),
            Self::Commit(change) => f.debug_tuple("Commit").field(change).finish(),
            Self::RemovalProposed(device) => {
                f.debug_tuple("RemovalProposed").field(device).finish()
            }
            Self::Ignored => f.write_str("Ignored"),
        }
    }
}

/// A leaf a commit brings in: an added device, or the committer's (or an updater's) new
/// leaf. Its credential and signature key must match an approved directory device.
#[derive(Debug, Clone, PartialEq, Eq)]
struct NewLeaf {
    credential: Option<DeviceIds>,
    signature_key: Vec<u8>,
}

/// Another member's commit, staged by OpenMLS (signature, membership and tree checks
/// passed) but not merged. Nothing about the group changes until
/// [`Conversation::merge`]; dropping it leaves the conversation where it was.
pub struct StagedChange {
    added: Vec<DeviceIds>,
    removed: Vec<DeviceIds>,
    new_leaves: Vec<NewLeaf>,
    staged: Box<StagedCommit>,
}

impl std::fmt::Debug for StagedChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StagedChange")
            .field("added", &self.added)
            .field("removed", &self.removed)
            .field("epoch", &self.epoch())
            .finish_non_exhaustive()
    }
}

impl StagedChange {
    /// Devices the commit adds.
    pub fn added(&self) -> &[DeviceIds] {
        &self.added
    }

    /// Devices the commit removes (possibly this one).
    pub fn removed(&self) -> &[DeviceIds] {
        &self.removed
    }

    /// The epoch the conversation reaches when the commit is merged.
    pub fn epoch(&self) -> u64 {
        self.staged.group_context().epoch().as_u64()
    }

    /// Every leaf the commit brings in (added devices, and the committer's new leaf from
    /// its update path) must be an approved device of the (verified) directory with the
    /// leaf's signature key as its identity key. The error names the first that fails.
    pub fn check(&self, directory: &[Device]) -> Result<(), Error> {
        self.new_leaves.iter().try_for_each(|leaf| {
            check_leaf(
                "new leaf",
                leaf.credential.as_ref(),
                &leaf.signature_key,
                directory,
            )
        })
    }

    /// The users whose directories [`check`](Self::check) needs.
    pub fn users(&self) -> Vec<Uuid> {
        let mut users: Vec<Uuid> = self
            .new_leaves
            .iter()
            .filter_map(|l| l.credential.map(|c| c.user_id))
            .collect();
        users.sort_unstable();
        users.dedup();
        users
    }
}

/// A Welcome that decrypted with one of this device's KeyPackages, not yet a
/// conversation: check its members ([`StagedJoin::check`]), then
/// [`join`](StagedJoin::join). OpenMLS consumed the KeyPackage's private part from the
/// provider when it opened the Welcome.
pub struct StagedJoin {
    id: Uuid,
    staged: StagedWelcome,
}

impl StagedJoin {
    /// The conversation (the group id).
    pub fn id(&self) -> Uuid {
        self.id
    }

    /// The members as their credentials name them.
    pub fn members(&self) -> Vec<DeviceIds> {
        self.staged
            .members()
            .filter_map(|m| credential_ids(&m.credential))
            .collect()
    }

    /// Every member must be an approved directory device with the leaf's key.
    pub fn check(&self, directory: &[Device]) -> Result<(), Error> {
        self.staged
            .members()
            .try_for_each(|m| check_member(&m, directory))
    }

    /// Becomes the conversation.
    pub fn join(self, provider: &impl OpenMlsProvider) -> Result<Conversation, Error> {
        let group = self
            .staged
            .into_group(provider)
            .map_err(|e| Error::Verification(format!("welcome: {e}")))?;
        Ok(Conversation { id: self.id, group })
    }
}

/// One conversation: an MLS group. No `Debug`: it holds the group's secrets.
pub struct Conversation {
    id: Uuid,
    group: MlsGroup,
}

fn sender_ratchet() -> SenderRatchetConfiguration {
    SenderRatchetConfiguration::new(OUT_OF_ORDER_TOLERANCE, MAXIMUM_FORWARD_DISTANCE)
}

/// The configuration every Cloak device uses for groups it joins.
fn join_config() -> MlsGroupJoinConfig {
    MlsGroupJoinConfig::builder()
        .use_ratchet_tree_extension(true)
        .max_past_epochs(MAX_PAST_EPOCHS)
        .sender_ratchet_configuration(sender_ratchet())
        .build()
}

fn create_config(
    external_sender: Option<&cloak_proto::delivery::ExternalSender>,
) -> Result<MlsGroupCreateConfig, Error> {
    let builder = MlsGroupCreateConfig::builder()
        .ciphersuite(CIPHERSUITE)
        .use_ratchet_tree_extension(true)
        .max_past_epochs(MAX_PAST_EPOCHS)
        .sender_ratchet_configuration(sender_ratchet());
    let Some(sender) = external_sender else {
        return Ok(builder.build());
    };
    if sender.ciphersuite != cloak_proto::mls_frame::CIPHERSUITE || sender.signature_key.len() != 32
    {
        return Err(Error::Malformed(
            "the server's external sender is not an Ed25519 key of Cloak's ciphersuite".into(),
        ));
    }
    let extension = Extension::ExternalSenders(vec![ExternalSender::new(
        sender.signature_key.clone().into(),
        BasicCredential::new(sender.identity.clone()).into(),
    )]);
    let extensions =
        Extensions::single(extension).map_err(|e| crypto("external senders extension", e))?;
    Ok(builder.with_group_context_extensions(extensions).build())
}

fn crypto(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Crypto(format!("{what}: {e}"))
}

fn serialize(what: &str, msg: &MlsMessageOut) -> Result<Vec<u8>, Error> {
    msg.tls_serialize_detached().map_err(|e| crypto(what, e))
}

/// Parses a whole TLS-encoded MLS message (no trailing bytes).
fn parse_message(bytes: &[u8]) -> Result<MlsMessageIn, Error> {
    let mut reader = bytes;
    let msg = MlsMessageIn::tls_deserialize(&mut reader)
        .map_err(|e| Error::Malformed(format!("MLS message: {e}")))?;
    if !reader.is_empty() {
        return Err(Error::Malformed(
            "trailing bytes after the MLS message".into(),
        ));
    }
    Ok(msg)
}

/// The device a credential names, if it is a Cloak BasicCredential.
fn credential_ids(credential: &Credential) -> Option<DeviceIds> {
    let basic = BasicCredential::try_from(credential.clone()).ok()?;
    decode_credential_identity(basic.identity())
}

fn required_ids(credential: &Credential) -> Result<DeviceIds, Error> {
    credential_ids(credential)
        .ok_or_else(|| Error::Verification("credential names no Cloak device".into()))
}

impl Conversation {
    /// Creates the conversation at epoch 0 with this device as its only member. With
    /// `external_sender` (the server's, from `GET /v1/mls/external-sender`), the group lists
    /// it in its `external_senders` extension: the server may then *propose* removing
    /// devices, never commit. Removal is the only proposal accepted from it.
    pub fn create(
        provider: &impl OpenMlsProvider,
        identity: &DeviceIdentity,
        ids: &DeviceIds,
        conversation_id: Uuid,
        external_sender: Option<&cloak_proto::delivery::ExternalSender>,
    ) -> Result<Self, Error> {
        let group = MlsGroup::new_with_group_id(
            provider,
            &MlsSigner::new(identity),
            &create_config(external_sender)?,
            GroupId::from_slice(conversation_id.as_bytes()),
            credential_with_key(identity, ids),
        )
        .map_err(|e| crypto("create group", e))?;
        Ok(Self {
            id: conversation_id,
            group,
        })
    }

    /// Opens a Welcome addressed to one of this device's KeyPackages (whose private parts
    /// are in `provider`'s storage). The ratchet tree comes inside the Welcome. Check the
    /// members against the device directory, then [`StagedJoin::join`].
    pub fn stage_join(
        provider: &impl OpenMlsProvider,
        welcome: &[u8],
    ) -> Result<StagedJoin, Error> {
        let MlsMessageBodyIn::Welcome(welcome) = parse_message(welcome)?.extract() else {
            return Err(Error::Malformed("not a Welcome".into()));
        };
        let staged = StagedWelcome::new_from_welcome(provider, &join_config(), welcome, None)
            .map_err(|e| Error::Verification(format!("welcome: {e}")))?;
        let id = <[u8; 16]>::try_from(staged.group_context().group_id().as_slice())
            .map(Uuid::from_bytes)
            .map_err(|_| Error::Verification("group id is not a conversation id".into()))?;
        Ok(StagedJoin { id, staged })
    }

    /// Loads the conversation from `provider`'s storage; `None` if it is not there.
    pub fn load(
        provider: &impl OpenMlsProvider,
        conversation_id: Uuid,
    ) -> Result<Option<Self>, Error> {
        let group_id = GroupId::from_slice(conversation_id.as_bytes());
        let group = MlsGroup::load(provider.storage(), &group_id)
            .map_err(|e| crypto("load group", format!("{e:?}")))?;
        Ok(group.map(|group| Self {
            id: conversation_id,
            group,
        }))
    }

    /// The conversation id (the MLS group id).
    pub fn id(&self) -> Uuid {
        self.id
    }

    /// The current epoch.
    pub fn epoch(&self) -> u64 {
        self.group.epoch().as_u64()
    }

    /// Whether this device is still a member (false once a commit removed it).
    pub fn is_active(&self) -> bool {
        self.group.is_active()
    }

    /// Whether a commit of this device awaits the server's answer.
    pub fn has_pending_commit(&self) -> bool {
        self.group.pending_commit().is_some()
    }

    /// The member devices, as their credentials name them (leaves whose credential names
    /// no Cloak device are left out here; [`check_members`](Self::check_members) rejects
    /// them).
    pub fn members(&self) -> Vec<DeviceIds> {
        self.group
            .members()
            .filter_map(|m| credential_ids(&m.credential))
            .collect()
    }

    /// Checks every leaf against the (verified) device directory: its credential must name
    /// a device listed there as approved, with the leaf's signature key as its identity
    /// key. The error names the first leaf that fails.
    pub fn check_members(&self, directory: &[Device]) -> Result<(), Error> {
        self.group
            .members()
            .try_for_each(|m| check_member(&m, directory))
    }

    /// Adds devices from their KeyPackages (claimed from the server, validated with
    /// [`crate::mls::parse_key_package`] and checked against the directory with
    /// [`crate::mls::check_key_package_device`]). The commit stays pending.
    pub fn add_devices(
        &mut self,
        provider: &impl OpenMlsProvider,
        identity: &DeviceIdentity,
        key_packages: &[KeyPackage],
    ) -> Result<PendingCommit, Error> {
        if key_packages.is_empty() {
            return Err(Error::InvalidState("no devices to add"));
        }
        for kp in key_packages {
            required_ids(kp.leaf_node().credential())?;
        }
        let epoch_before = self.epoch();
        // The commit also carries out the removals the server proposed.
        let (commit, welcome, _) = self
            .group
            .add_members(provider, &MlsSigner::new(identity), key_packages)
            .map_err(|e| crypto("add members", e))?;
        self.pending(epoch_before, &commit, Some(&welcome))
    }

    /// Whether removals proposed by the server wait for a commit (while they do, the
    /// group cannot encrypt: commit them first).
    pub fn has_pending_proposals(&self) -> bool {
        self.group.has_pending_proposals()
    }

    /// Commits the removals the server proposed. The commit stays pending.
    pub fn commit_pending_proposals(
        &mut self,
        provider: &impl OpenMlsProvider,
        identity: &DeviceIdentity,
    ) -> Result<PendingCommit, Error> {
        if !self.group.has_pending_proposals() {
            return Err(Error::InvalidState("no proposals to commit"));
        }
        let epoch_before = self.epoch();
        let (commit, welcome, _) = self
            .group
            .commit_to_pending_proposals(provider, &MlsSigner::new(identity))
            .map_err(|e| crypto("commit proposals", e))?;
        self.pending(epoch_before, &commit, welcome.as_ref())
    }

    /// The pending commit as it goes to the server, with its membership changes.
    fn pending(
        &self,
        epoch_before: u64,
        commit: &MlsMessageOut,
        welcome: Option<&MlsMessageOut>,
    ) -> Result<PendingCommit, Error> {
        let Changes {
            add,
            remove,
            leaf_indices,
        } = self.pending_changes()?;
        Ok(PendingCommit {
            epoch_before,
            commit: serialize("commit", commit)?,
            welcome: welcome.map(|w| serialize("welcome", w)).transpose()?,
            add,
            remove,
            leaf_indices,
        })
    }

    /// The devices the pending commit adds and removes, and the leaf each added device
    /// takes: Removes blank their leaves first, then each Add takes the leftmost blank
    /// leaf, or extends the tree (RFC 9420 §12.3, §12.1.1).
    fn pending_changes(&self) -> Result<Changes, Error> {
        let staged = self
            .group
            .pending_commit()
            .ok_or(Error::InvalidState("no pending commit"))?;
        let mut removed_leaves = std::collections::BTreeSet::new();
        let mut remove = Vec::new();
        for p in staged.remove_proposals() {
            let leaf = p.remove_proposal().removed();
            removed_leaves.insert(leaf.u32());
            let ids = self
                .group
                .member(leaf)
                .and_then(credential_ids)
                .ok_or_else(|| Error::Verification("removed leaf is unknown".into()))?;
            remove.push(ids.device_id);
        }
        remove.sort_unstable();
        remove.dedup();
        let occupied: std::collections::BTreeSet<u32> = self
            .group
            .members()
            .map(|m| m.index.u32())
            .filter(|i| !removed_leaves.contains(i))
            .collect();
        let mut add = Vec::new();
        let mut leaf_indices = Vec::new();
        let mut next = 0u32;
        for p in staged.add_proposals() {
            let ids = required_ids(p.add_proposal().key_package().leaf_node().credential())?;
            while occupied.contains(&next) {
                next = next.saturating_add(1);
            }
            add.push(ids.device_id);
            leaf_indices.push(next);
            next = next.saturating_add(1);
        }
        Ok(Changes {
            add,
            remove,
            leaf_indices,
        })
    }

    /// Removes devices (every leaf whose credential names one of them). The commit stays
    /// pending. A device cannot remove itself, and every id must be a member.
    pub fn remove_devices(
        &mut self,
        provider: &impl OpenMlsProvider,
        identity: &DeviceIdentity,
        device_ids: &[Uuid],
    ) -> Result<PendingCommit, Error> {
        if device_ids.is_empty() {
            return Err(Error::InvalidState("no devices to remove"));
        }
        let own = self.group.own_leaf_index();
        let mut leaves: Vec<LeafNodeIndex> = Vec::new();
        for id in device_ids {
            let found: Vec<LeafNodeIndex> = self
                .group
                .members()
                .filter(|m| credential_ids(&m.credential).is_some_and(|c| c.device_id == *id))
                .map(|m| m.index)
                .collect();
            if found.is_empty() {
                return Err(Error::InvalidState("device is not a member"));
            }
            if found.contains(&own) {
                return Err(Error::InvalidState("a device cannot remove itself"));
            }
            leaves.extend(found);
        }
        leaves.sort_unstable_by_key(|l| l.u32());
        leaves.dedup();
        // Leaves the server already proposed to remove go with its proposals (the commit
        // carries those out in any case), never twice.
        let proposed: Vec<LeafNodeIndex> = self
            .group
            .pending_proposals()
            .filter_map(|p| match p.proposal() {
                Proposal::Remove(r) => Some(r.removed()),
                _ => None,
            })
            .collect();
        leaves.retain(|l| !proposed.contains(l));
        if leaves.is_empty() {
            return self.commit_pending_proposals(provider, identity);
        }
        let epoch_before = self.epoch();
        let (commit, welcome, _) = self
            .group
            .remove_members(provider, &MlsSigner::new(identity), &leaves)
            .map_err(|e| crypto("remove members", e))?;
        self.pending(epoch_before, &commit, welcome.as_ref())
    }

    /// The server accepted the pending commit: merge it (the epoch advances).
    pub fn confirm_commit(&mut self, provider: &impl OpenMlsProvider) -> Result<(), Error> {
        if self.group.pending_commit().is_none() {
            return Err(Error::InvalidState("no pending commit"));
        }
        self.group
            .merge_pending_commit(provider)
            .map_err(|e| crypto("merge commit", e))
    }

    /// The server refused the pending commit (409 `stale_epoch`): drop it. Process the
    /// commits the server ordered first, then commit again.
    pub fn discard_commit(&mut self, provider: &impl OpenMlsProvider) -> Result<(), Error> {
        self.group
            .clear_pending_commit(provider.storage())
            .map_err(|e| crypto("clear pending commit", format!("{e:?}")))
    }

    /// Encrypts a payload as an MLS application message in the current epoch. Fails while
    /// a commit is pending.
    pub fn encrypt(
        &mut self,
        provider: &impl OpenMlsProvider,
        identity: &DeviceIdentity,
        payload: &Payload,
    ) -> Result<Vec<u8>, Error> {
        if self.group.pending_commit().is_some() {
            return Err(Error::InvalidState("a commit is pending"));
        }
        if self.group.has_pending_proposals() {
            return Err(Error::InvalidState("proposed removals wait for a commit"));
        }
        let plaintext = payload.encode()?;
        let msg = self
            .group
            .create_message(provider, &MlsSigner::new(identity), &plaintext)
            .map_err(|e| crypto("encrypt", e))?;
        serialize("application message", &msg)
    }

    /// Processes one envelope body (an MLS application message or commit of this
    /// conversation). A commit by another member comes back staged
    /// ([`Incoming::Commit`]), not merged: check it, then [`merge`](Self::merge) it or
    /// drop it. Malformed bytes give [`Error::Malformed`]; anything that does not decrypt
    /// or verify (forged, from a removed device, from an epoch too old or not reached yet)
    /// gives [`Error::Verification`] and is dropped; later messages still decrypt. A
    /// commit that adds a leaf whose credential names no Cloak device is refused: the
    /// device then stays at its epoch, failing closed.
    pub fn process(
        &mut self,
        provider: &impl OpenMlsProvider,
        envelope_body: &[u8],
    ) -> Result<Incoming, Error> {
        let message: ProtocolMessage = parse_message(envelope_body)?
            .try_into_protocol_message()
            .map_err(|_| Error::Malformed("not an MLS group message".into()))?;
        if message.group_id() != self.group.group_id() {
            return Err(Error::Verification(
                "message belongs to another conversation".into(),
            ));
        }
        let processed = self
            .group
            .process_message(provider, message)
            .map_err(|e| Error::Verification(format!("MLS message: {e}")))?;
        if let Sender::External(_) = processed.sender() {
            // OpenMLS verified the signature against the group's `external_senders`.
            return self.external_proposal(provider, processed.into_content());
        }
        if !matches!(processed.sender(), Sender::Member(_)) {
            return Err(Error::Verification("sender is not a member".into()));
        }
        let sender = credential_ids(processed.credential());
        match processed.into_content() {
            ProcessedMessageContent::ApplicationMessage(app) => {
                let sender = sender.ok_or_else(|| {
                    Error::Verification("credential names no Cloak device".into())
                })?;
                let payload = Payload::decode(&app.into_bytes())?;
                Ok(Incoming::Application { sender, payload })
            }
            ProcessedMessageContent::StagedCommitMessage(staged) => {
                let mut added = Vec::new();
                let mut new_leaves = Vec::new();
                for p in staged.add_proposals() {
                    let leaf = p.add_proposal().key_package().leaf_node();
                    added.push(required_ids(leaf.credential())?);
                    new_leaves.push(new_leaf(leaf.credential(), leaf.signature_key().as_slice()));
                }
                for p in staged.update_proposals() {
                    let leaf = p.update_proposal().leaf_node();
                    new_leaves.push(new_leaf(leaf.credential(), leaf.signature_key().as_slice()));
                }
                if let Some(leaf) = staged.update_path_leaf_node() {
                    new_leaves.push(new_leaf(leaf.credential(), leaf.signature_key().as_slice()));
                }
                let removed = staged
                    .remove_proposals()
                    .map(|p| {
                        let leaf = p.remove_proposal().removed();
                        self.group
                            .member(leaf)
                            .and_then(credential_ids)
                            .ok_or_else(|| Error::Verification("removed leaf is unknown".into()))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Incoming::Commit(StagedChange {
                    added,
                    removed,
                    new_leaves,
                    staged,
                }))
            }
            _ => Ok(Incoming::Ignored),
        }
    }

    /// A proposal from the server (the group's external sender): only a Remove of a
    /// member is accepted, and stored for the next commit. The server is trusted with
    /// nothing more by this: removing a device takes nobody's keys, only availability,
    /// which the server controls anyway; it cannot add anyone.
    fn external_proposal(
        &mut self,
        provider: &impl OpenMlsProvider,
        content: ProcessedMessageContent,
    ) -> Result<Incoming, Error> {
        let ProcessedMessageContent::ProposalMessage(queued) = content else {
            return Err(Error::Verification(
                "the external sender may only propose".into(),
            ));
        };
        let Proposal::Remove(remove) = queued.proposal() else {
            return Err(Error::Verification(
                "the external sender may only propose removals".into(),
            ));
        };
        let leaf = remove.removed();
        let member = self
            .group
            .member(leaf)
            .ok_or_else(|| Error::Verification("proposed removal of an empty leaf".into()))?;
        let device = credential_ids(member);
        let repeated = self
            .group
            .pending_proposals()
            .any(|p| matches!(p.proposal(), Proposal::Remove(r) if r.removed() == leaf));
        if repeated {
            return Ok(Incoming::Ignored);
        }
        self.group
            .store_pending_proposal(provider.storage(), *queued)
            .map_err(|e| crypto("store proposal", format!("{e:?}")))?;
        Ok(Incoming::RemovalProposed(device))
    }

    /// Merges a commit staged by [`process`](Self::process) after its check passed
    /// (discarding this device's own pending commit, which the server can then no longer
    /// accept). Returns the new epoch.
    pub fn merge(
        &mut self,
        provider: &impl OpenMlsProvider,
        change: StagedChange,
    ) -> Result<u64, Error> {
        self.discard_commit(provider)?;
        self.group
            .merge_staged_commit(provider, *change.staged)
            .map_err(|e| crypto("merge commit", e))?;
        Ok(self.epoch())
    }
}

fn new_leaf(credential: &Credential, signature_key: &[u8]) -> NewLeaf {
    NewLeaf {
        credential: credential_ids(credential),
        signature_key: signature_key.to_vec(),
    }
}

fn check_member(member: &Member, directory: &[Device]) -> Result<(), Error> {
    let leaf = format!("leaf {}", member.index.u32());
    check_leaf(
        &leaf,
        credential_ids(&member.credential).as_ref(),
        member.signature_key.as_slice(),
        directory,
    )
}

/// A leaf must name (by its credential) a device listed as approved in the directory,
/// with the leaf's signature key as that device's identity key.
fn check_leaf(
    leaf: &str,
    ids: Option<&DeviceIds>,
    signature_key: &[u8],
    directory: &[Device],
) -> Result<(), Error> {
    let ids = ids
        .ok_or_else(|| Error::Verification(format!("{leaf}: credential names no Cloak device")))?;
    let approved = directory.iter().any(|d| {
        d.status == DeviceStatus::Approved
            && d.tenant_id == ids.tenant_id
            && d.user_id == ids.user_id
            && d.id == ids.device_id
            && d.identity_key.as_slice() == signature_key
    });
    if approved {
        Ok(())
    } else {
        Err(Error::Verification(format!(
            "{leaf}: device {} of user {} is not an approved directory device with this key",
            ids.device_id, ids.user_id
        )))
    }
}
