//! Conversations against an in-memory delivery service: one ordered log per conversation
//! with the server's compare-and-swap on the epoch; each device has its own provider.

use super::*;
use crate::mls::{generate_key_packages, parse_key_package};
use crate::payload::PayloadKind;
use cloak_proto::mls_frame;
use openmls_rust_crypto::OpenMlsRustCrypto;
use std::collections::HashMap;

const TENANT: Uuid = Uuid::from_u128(0x7e);
const ALICE: Uuid = Uuid::from_u128(0xa);
const BOB: Uuid = Uuid::from_u128(0xb);
const CONV: Uuid = Uuid::from_u128(0xc0);

mod removals;

struct Dev {
    provider: OpenMlsRustCrypto,
    identity: DeviceIdentity,
    ids: DeviceIds,
    conv: Option<Conversation>,
    /// Index of the next log entry this device reads.
    cursor: usize,
}

impl Dev {
    fn new(user_id: Uuid, device: u128) -> Self {
        Self {
            provider: OpenMlsRustCrypto::default(),
            identity: DeviceIdentity::generate_os(),
            ids: DeviceIds {
                tenant_id: TENANT,
                user_id,
                device_id: Uuid::from_u128(device),
            },
            conv: None,
            cursor: 0,
        }
    }

    /// Processes one body; commits are merged unchecked (the directory checks have their
    /// own tests).
    fn process(&mut self, body: &[u8]) -> Result<Got, Error> {
        let conv = self.conv.as_mut().expect("device is in the conversation");
        Ok(match conv.process(&self.provider, body)? {
            Incoming::Application { sender, payload } => Got::App(sender, payload),
            Incoming::Commit(change) => {
                let (added, removed) = (change.added().to_vec(), change.removed().to_vec());
                let epoch = conv.merge(&self.provider, change)?;
                Got::Commit {
                    added,
                    removed,
                    epoch,
                }
            }
            Incoming::RemovalProposed(device) => Got::Proposed(device),
            Incoming::Ignored => Got::Ignored,
        })
    }

    fn conv(&mut self) -> &mut Conversation {
        self.conv.as_mut().expect("device is in the conversation")
    }

    /// A KeyPackage as claimed from the server and validated by the adding device.
    fn key_package(&self) -> KeyPackage {
        let upload = generate_key_packages(&self.provider, &self.identity, &self.ids, 1, false)
            .expect("key package")
            .remove(0);
        parse_key_package(self.provider.crypto(), &upload.data).expect("valid key package")
    }

    fn directory_entry(&self) -> Device {
        Device {
            id: self.ids.device_id,
            tenant_id: self.ids.tenant_id,
            user_id: self.ids.user_id,
            name: None,
            identity_key: self.identity.public_key().to_vec(),
            status: DeviceStatus::Approved,
            created_at: time::OffsetDateTime::UNIX_EPOCH,
            approved_by: None,
            approved_at_ms: None,
            approval_signature: None,
        }
    }

    fn send(&mut self, ds: &mut Ds, text: &str) -> (Payload, Vec<u8>) {
        let payload = Payload::new(Uuid::new_v4(), 1_700_000_000_000, text_kind(text));
        let (provider, identity) = (&self.provider, &self.identity);
        let conv = self.conv.as_mut().expect("member");
        let body = conv.encrypt(provider, identity, &payload).expect("encrypt");
        ds.send(self.ids.device_id, conv.epoch(), body.clone());
        (payload, body)
    }

    /// Reads every new log entry from other devices, as the mailbox would deliver them.
    fn sync(&mut self, ds: &Ds) -> Vec<Got> {
        let mut out = Vec::new();
        while let Some(entry) = ds.log.get(self.cursor) {
            self.cursor += 1;
            if entry.sender == self.ids.device_id {
                continue;
            }
            out.push(self.process(&entry.body).expect("process"));
        }
        out
    }

    /// Joins from the Welcome the delivery service holds for this device.
    fn join(&mut self, ds: &Ds) {
        let (welcome, cursor) = ds.welcomes.get(&self.ids.device_id).expect("welcome");
        let conv = Conversation::stage_join(&self.provider, welcome)
            .expect("welcome")
            .join(&self.provider)
            .expect("join");
        assert_eq!(conv.id(), CONV);
        self.conv = Some(conv);
        self.cursor = *cursor;
    }

    /// Creates a commit, submits it and confirms or discards it as the server answers.
    fn submit(&mut self, ds: &mut Ds, pending: PendingCommit) -> Result<u64, u64> {
        let answer = ds.commit(self.ids.device_id, &pending);
        let provider = &self.provider;
        let conv = self.conv.as_mut().expect("member");
        match answer {
            Ok(_) => conv.confirm_commit(provider).expect("confirm"),
            Err(_) => conv.discard_commit(provider).expect("discard"),
        }
        answer
    }

    fn add(&mut self, ds: &mut Ds, kps: &[KeyPackage]) -> Result<u64, u64> {
        let (provider, identity) = (&self.provider, &self.identity);
        let pending = self
            .conv
            .as_mut()
            .expect("member")
            .add_devices(provider, identity, kps)
            .expect("add");
        self.submit(ds, pending)
    }

    fn remove(&mut self, ds: &mut Ds, devices: &[Uuid]) -> Result<u64, u64> {
        let (provider, identity) = (&self.provider, &self.identity);
        let pending = self
            .conv
            .as_mut()
            .expect("member")
            .remove_devices(provider, identity, devices)
            .expect("remove");
        self.submit(ds, pending)
    }
}

/// What a device made of one incoming body, commits merged.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Got {
    App(DeviceIds, Payload),
    Commit {
        added: Vec<DeviceIds>,
        removed: Vec<DeviceIds>,
        epoch: u64,
    },
    Proposed(Option<DeviceIds>),
    Ignored,
}

fn text_kind(text: &str) -> PayloadKind {
    PayloadKind::Text { text: text.into() }
}

struct Entry {
    sender: Uuid,
    body: Vec<u8>,
}

/// The delivery service for one conversation.
struct Ds {
    group: Uuid,
    epoch: u64,
    log: Vec<Entry>,
    /// Per added device: its Welcome and the log index after the commit that added it.
    welcomes: HashMap<Uuid, (Vec<u8>, usize)>,
}

impl Default for Ds {
    fn default() -> Self {
        Self::for_group(CONV)
    }
}

impl Ds {
    fn for_group(group: Uuid) -> Self {
        Self {
            group,
            epoch: 0,
            log: Vec::new(),
            welcomes: HashMap::new(),
        }
    }

    /// Compare-and-swap on the epoch: `Err(current_epoch)` is the 409 `stale_epoch`.
    fn commit(&mut self, sender: Uuid, c: &PendingCommit) -> Result<u64, u64> {
        // The framing checks the real server makes (cloak-api's delivery::commit).
        let f = mls_frame::parse_framing(&c.commit).expect("commit framing");
        assert_eq!(
            (f.group_id, f.epoch, f.content_type),
            (
                &self.group.as_bytes()[..],
                c.epoch_before,
                mls_frame::ContentType::Commit
            )
        );
        if let Some(welcome) = &c.welcome {
            let shape = mls_frame::parse_welcome(welcome).expect("welcome framing");
            assert_eq!(shape.recipients, c.add.len(), "one secret per added device");
            assert_eq!(shape.cipher_suite, mls_frame::CIPHERSUITE);
        }
        if c.epoch_before != self.epoch {
            return Err(self.epoch);
        }
        self.epoch += 1;
        self.log.push(Entry {
            sender,
            body: c.commit.clone(),
        });
        for device in &c.add {
            let welcome = c.welcome.clone().expect("welcome for added devices");
            self.welcomes.insert(*device, (welcome, self.log.len()));
        }
        Ok(self.epoch)
    }

    fn send(&mut self, sender: Uuid, epoch: u64, body: Vec<u8>) {
        assert_eq!(epoch, self.epoch, "sent in the current epoch");
        let f = mls_frame::parse_framing(&body).expect("application framing");
        assert_eq!(
            (f.group_id, f.epoch, f.content_type),
            (
                &self.group.as_bytes()[..],
                epoch,
                mls_frame::ContentType::Application
            )
        );
        self.log.push(Entry { sender, body });
    }
}

/// Alice (one device) and Bob (two devices) in one conversation at epoch 1.
fn alice_and_bob() -> (Ds, Dev, Dev, Dev) {
    let mut ds = Ds::default();
    let mut alice = Dev::new(ALICE, 1);
    let mut bob1 = Dev::new(BOB, 2);
    let mut bob2 = Dev::new(BOB, 3);
    alice.conv = Some(
        Conversation::create(&alice.provider, &alice.identity, &alice.ids, CONV, None)
            .expect("create"),
    );
    assert_eq!(alice.conv().epoch(), 0);
    assert_eq!(alice.conv().members(), vec![alice.ids]);
    let kps = [bob1.key_package(), bob2.key_package()];
    assert_eq!(alice.add(&mut ds, &kps), Ok(1));
    bob1.join(&ds);
    bob2.join(&ds);
    (ds, alice, bob1, bob2)
}

fn application(got: &Got) -> (DeviceIds, &Payload) {
    match got {
        Got::App(sender, payload) => (*sender, payload),
        other => panic!("expected an application message, got {other:?}"),
    }
}

#[test]
fn members_exchange_messages_both_ways() {
    let (mut ds, mut alice, mut bob1, mut bob2) = alice_and_bob();
    for dev in [&mut alice, &mut bob1, &mut bob2] {
        assert_eq!(dev.conv().epoch(), 1);
        let mut members = dev.conv().members();
        members.sort_by_key(|m| m.device_id);
        assert_eq!(members.len(), 3);
        assert_eq!(members[0].device_id, Uuid::from_u128(1));
    }
    let (sent, _) = alice.send(&mut ds, "hi bob");
    for bob in [&mut bob1, &mut bob2] {
        let got = bob.sync(&ds);
        assert_eq!(got.len(), 1);
        assert_eq!(application(&got[0]), (alice.ids, &sent));
    }
    let (reply, _) = bob1.send(&mut ds, "hi alice");
    for dev in [&mut alice, &mut bob2] {
        let got = dev.sync(&ds);
        assert_eq!(got.len(), 1);
        assert_eq!(application(&got[0]), (bob1.ids, &reply));
    }
}

#[test]
fn a_later_device_reads_later_messages_only() {
    let (mut ds, mut alice, mut bob1, mut bob2) = alice_and_bob();
    let (_, before) = alice.send(&mut ds, "before bob3");
    let mut bob3 = Dev::new(BOB, 4);
    assert_eq!(alice.add(&mut ds, &[bob3.key_package()]), Ok(2));
    bob3.join(&ds);
    for bob in [&mut bob1, &mut bob2] {
        let got = bob.sync(&ds);
        assert_eq!(got.len(), 2);
        assert_eq!(
            got[1],
            Got::Commit {
                added: vec![bob3.ids],
                removed: vec![],
                epoch: 2
            }
        );
    }
    assert!(bob3.process(&before).is_err());
    let (after, _) = alice.send(&mut ds, "after bob3");
    let got = bob3.sync(&ds);
    assert_eq!(got.len(), 1);
    assert_eq!(application(&got[0]), (alice.ids, &after));
}

#[test]
fn a_removed_device_cannot_read_later_messages() {
    let (mut ds, mut alice, mut bob1, mut bob2) = alice_and_bob();
    assert_eq!(alice.remove(&mut ds, &[bob2.ids.device_id]), Ok(2));
    let removed = Got::Commit {
        added: vec![],
        removed: vec![bob2.ids],
        epoch: 2,
    };
    assert_eq!(bob1.sync(&ds), vec![removed.clone()]);
    assert_eq!(bob2.sync(&ds), vec![removed]);
    assert!(!bob2.conv().is_active());
    assert!(bob1.conv().is_active());
    let (secret, body) = alice.send(&mut ds, "without bob2");
    assert!(bob2.process(&body).is_err());
    let got = bob1.sync(&ds);
    assert_eq!(application(&got[0]), (alice.ids, &secret));
    assert_eq!(alice.conv().members().len(), 2);
}

#[test]
fn a_commit_that_lost_the_race_is_discarded_and_retried() {
    let (mut ds, mut alice, mut bob1, bob2) = alice_and_bob();
    let bob3 = Dev::new(BOB, 4);
    // Both commit at epoch 1; the server orders alice's first.
    let (provider, identity) = (&bob1.provider, &bob1.identity);
    let bob1_commit = bob1
        .conv
        .as_mut()
        .expect("member")
        .remove_devices(provider, identity, &[bob2.ids.device_id])
        .expect("remove");
    assert!(bob1.conv().has_pending_commit());
    assert_eq!(alice.add(&mut ds, &[bob3.key_package()]), Ok(2));
    assert_eq!(bob1.submit(&mut ds, bob1_commit), Err(2));
    assert!(!bob1.conv().has_pending_commit());
    assert_eq!(bob1.conv().epoch(), 1);
    // bob1 catches up, then retries.
    let got = bob1.sync(&ds);
    assert!(matches!(got[..], [Got::Commit { epoch: 2, .. }]));
    assert_eq!(bob1.remove(&mut ds, &[bob2.ids.device_id]), Ok(3));
    assert_eq!(bob1.conv().epoch(), 3);
    let got = alice.sync(&ds);
    assert!(matches!(got[..], [Got::Commit { epoch: 3, .. }]));
    let (msg, _) = bob1.send(&mut ds, "after the retry");
    let got = alice.sync(&ds);
    assert_eq!(application(&got[0]), (bob1.ids, &msg));
    assert_eq!(alice.conv().members().len(), 3);
}

#[test]
fn the_loser_may_process_the_winner_without_discarding_first() {
    let (mut ds, mut alice, mut bob1, _bob2) = alice_and_bob();
    let (provider, identity) = (&bob1.provider, &bob1.identity);
    let pending = bob1
        .conv
        .as_mut()
        .expect("member")
        .add_devices(provider, identity, &[Dev::new(BOB, 5).key_package()])
        .expect("add");
    assert_eq!(alice.remove(&mut ds, &[Uuid::from_u128(3)]), Ok(2));
    assert!(ds.commit(bob1.ids.device_id, &pending).is_err());
    let got = bob1.sync(&ds);
    assert!(matches!(got[..], [Got::Commit { epoch: 2, .. }]));
    assert!(!bob1.conv().has_pending_commit());
    let (msg, _) = bob1.send(&mut ds, "still here");
    assert_eq!(application(&alice.sync(&ds)[0]), (bob1.ids, &msg));
}

#[test]
fn out_of_order_and_previous_epoch_messages_decrypt() {
    let (mut ds, mut alice, mut bob1, mut bob2) = alice_and_bob();
    let sent: Vec<_> = (0..4)
        .map(|i| alice.send(&mut ds, &format!("m{i}")))
        .collect();
    for i in [3, 0, 2, 1] {
        let got = bob1.process(&sent[i].1).expect("decrypt");
        assert_eq!(application(&got), (alice.ids, &sent[i].0));
    }
    // A message from epoch 1 still decrypts after the group moved on.
    let (late, late_body) = bob2.send(&mut ds, "late");
    assert_eq!(alice.remove(&mut ds, &[Uuid::from_u128(2)]), Ok(2));
    bob2.sync(&ds);
    let got = alice.process(&late_body).expect("past epoch");
    assert_eq!(application(&got), (bob2.ids, &late));
}

#[test]
fn own_messages_are_ignored() {
    let (mut ds, mut alice, _bob1, _bob2) = alice_and_bob();
    let (_, body) = alice.send(&mut ds, "echo");
    let got = alice.process(&body).expect("own");
    assert_eq!(got, Got::Ignored);
}

#[test]
fn garbage_and_forgeries_are_errors() {
    let (mut ds, mut alice, mut bob1, _bob2) = alice_and_bob();
    let (_, body) = alice.send(&mut ds, "genuine");
    let conv = bob1.conv.as_mut().expect("member");
    assert!(matches!(
        conv.process(&bob1.provider, b"garbage"),
        Err(Error::Malformed(_))
    ));
    assert!(conv.process(&bob1.provider, &[]).is_err());
    for i in [body.len() / 2, body.len() - 1] {
        let mut forged = body.clone();
        forged[i] ^= 1;
        assert!(conv.process(&bob1.provider, &forged).is_err());
    }
    let mut trailing = body.clone();
    trailing.push(0);
    assert!(conv.process(&bob1.provider, &trailing).is_err());
    assert!(
        conv.process(&bob1.provider, &body[..body.len() - 1])
            .is_err()
    );
    // A message of another conversation.
    let mut eve = Dev::new(ALICE, 9);
    eve.conv = Some(
        Conversation::create(
            &eve.provider,
            &eve.identity,
            &eve.ids,
            Uuid::from_u128(0xe),
            None,
        )
        .expect("create"),
    );
    let mut other_ds = Ds::for_group(Uuid::from_u128(0xe));
    let (_, other) = eve.send(&mut other_ds, "elsewhere");
    assert!(matches!(
        conv.process(&bob1.provider, &other),
        Err(Error::Verification(_))
    ));
    // The genuine message still decrypts after all that.
    assert!(matches!(
        conv.process(&bob1.provider, &body),
        Ok(Incoming::Application { .. })
    ));
    // A Welcome is not a group message; a group message is not a Welcome.
    assert!(Conversation::stage_join(&bob1.provider, &body).is_err());
    assert!(Conversation::stage_join(&bob1.provider, b"junk").is_err());
}

#[test]
fn members_are_checked_against_the_directory() {
    let (_ds, mut alice, bob1, bob2) = alice_and_bob();
    let directory: Vec<Device> = [&alice, &bob1, &bob2]
        .iter()
        .map(|d| d.directory_entry())
        .collect();
    alice
        .conv()
        .check_members(&directory)
        .expect("all approved");

    let missing = &directory[..2];
    let err = alice
        .conv()
        .check_members(missing)
        .expect_err("bob2 missing");
    assert!(err.to_string().contains(&bob2.ids.device_id.to_string()));

    let mut wrong_key = directory.clone();
    wrong_key[1].identity_key = DeviceIdentity::generate_os().public_key().to_vec();
    assert!(alice.conv().check_members(&wrong_key).is_err());

    let mut revoked = directory.clone();
    revoked[2].status = DeviceStatus::Revoked;
    assert!(alice.conv().check_members(&revoked).is_err());

    let mut other_user = directory;
    other_user[1].user_id = ALICE;
    assert!(alice.conv().check_members(&other_user).is_err());
}

#[test]
fn conversations_persist_in_the_provider_storage() {
    let (mut ds, mut alice, mut bob1, _bob2) = alice_and_bob();
    assert!(
        Conversation::load(&alice.provider, Uuid::from_u128(0xdead))
            .expect("load")
            .is_none()
    );
    // Reload bob1 from storage and read a message with the reloaded state.
    bob1.conv = Conversation::load(&bob1.provider, CONV).expect("load");
    assert_eq!(bob1.conv().epoch(), 1);
    assert_eq!(bob1.conv().members().len(), 3);
    let (sent, _) = alice.send(&mut ds, "to the reloaded device");
    assert_eq!(application(&bob1.sync(&ds)[0]), (alice.ids, &sent));
}

#[test]
fn invalid_calls_are_refused() {
    let (_ds, mut alice, _bob1, _bob2) = alice_and_bob();
    let (provider, identity) = (&alice.provider, &alice.identity);
    let conv = alice.conv.as_mut().expect("member");
    assert!(conv.add_devices(provider, identity, &[]).is_err());
    assert!(conv.remove_devices(provider, identity, &[]).is_err());
    assert!(
        conv.remove_devices(provider, identity, &[Uuid::from_u128(99)])
            .is_err()
    );
    assert!(
        conv.remove_devices(provider, identity, &[Uuid::from_u128(1)])
            .is_err()
    );
    assert!(conv.confirm_commit(provider).is_err());
    // While a commit is pending nothing can be encrypted.
    conv.remove_devices(provider, identity, &[Uuid::from_u128(2)])
        .expect("remove");
    let payload = Payload::new(Uuid::nil(), 0, text_kind("x"));
    assert!(conv.encrypt(provider, identity, &payload).is_err());
    conv.discard_commit(provider).expect("discard");
    assert!(conv.encrypt(provider, identity, &payload).is_ok());
}

#[test]
fn a_commit_is_checked_before_it_is_merged_and_dropping_it_refuses_it() {
    let (mut ds, mut alice, mut bob1, mut bob2) = alice_and_bob();
    let intruder = Dev::new(BOB, 0x666);
    let directory: Vec<Device> = [&alice, &bob1, &bob2]
        .iter()
        .map(|d| d.directory_entry())
        .collect();
    // bob1 adds a device that is not in the directory.
    assert_eq!(bob1.add(&mut ds, &[intruder.key_package()]), Ok(2));
    let entry = ds.log.last().expect("commit").body.clone();
    let conv = alice.conv.as_mut().expect("member");
    let Incoming::Commit(change) = conv.process(&alice.provider, &entry).expect("stages") else {
        panic!("expected a staged commit");
    };
    assert_eq!(change.added(), &[intruder.ids]);
    assert_eq!(change.epoch(), 2);
    assert_eq!(change.users(), vec![BOB]);
    let err = change.check(&directory).expect_err("intruder refused");
    assert!(
        err.to_string()
            .contains(&intruder.ids.device_id.to_string())
    );
    drop(change);
    // Processing used up the commit's handshake key (forward secrecy): the same commit
    // cannot be staged twice, which is why a caller that must retry a check restores
    // its MLS state first.
    assert!(conv.process(&alice.provider, &entry).is_err());
    // Nothing changed: same epoch, same members, and it can still encrypt.
    assert_eq!(alice.conv().epoch(), 1);
    assert_eq!(alice.conv().members().len(), 3);
    assert!(
        !alice
            .conv()
            .members()
            .iter()
            .any(|m| m.device_id == intruder.ids.device_id)
    );
    // A member whose directory lists the device checks the commit and merges it.
    let mut with_intruder = directory;
    with_intruder.push(intruder.directory_entry());
    let conv = bob2.conv.as_mut().expect("member");
    let Incoming::Commit(change) = conv.process(&bob2.provider, &entry).expect("stages") else {
        panic!("expected a staged commit");
    };
    change.check(&with_intruder).expect("approved");
    assert_eq!(conv.merge(&bob2.provider, change).expect("merge"), 2);
    assert_eq!(bob2.conv().members().len(), 4);
}

#[test]
fn a_welcome_is_checked_before_it_is_joined() {
    let mut ds = Ds::default();
    let mut alice = Dev::new(ALICE, 1);
    let bob = Dev::new(BOB, 2);
    alice.conv = Some(
        Conversation::create(&alice.provider, &alice.identity, &alice.ids, CONV, None)
            .expect("create"),
    );
    assert_eq!(alice.add(&mut ds, &[bob.key_package()]), Ok(1));
    let (welcome, _) = ds.welcomes.get(&bob.ids.device_id).expect("welcome");
    let staged = Conversation::stage_join(&bob.provider, welcome).expect("opens");
    assert_eq!(staged.id(), CONV);
    assert_eq!(staged.members().len(), 2);
    // Alice is not (yet) in the directory Bob trusts.
    assert!(staged.check(&[bob.directory_entry()]).is_err());
    staged
        .check(&[alice.directory_entry(), bob.directory_entry()])
        .expect("both approved");
    let conv = staged.join(&bob.provider).expect("join");
    assert_eq!(conv.epoch(), 1);
}
