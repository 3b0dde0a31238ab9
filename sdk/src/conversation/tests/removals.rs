//! The server as the group's external sender: its Remove proposals, the leaf indices a
//! committer reports, and what is refused from it.

use super::*;
use crate::mls::MlsSigner;
use openmls::prelude::{ExternalProposal, GroupEpoch, SenderExtensionIndex};

/// The server's key and what `GET /v1/mls/external-sender` would answer.
struct Server {
    key: DeviceIdentity,
}

impl Server {
    fn new() -> Self {
        Self {
            key: DeviceIdentity::generate_os(),
        }
    }

    fn info(&self) -> cloak_proto::delivery::ExternalSender {
        cloak_proto::delivery::ExternalSender {
            ciphersuite: mls_frame::CIPHERSUITE,
            signature_key: self.key.public_key().to_vec(),
            identity: cloak_proto::delivery::EXTERNAL_SENDER_IDENTITY.to_vec(),
        }
    }

    /// What the server's `remove_proposal` makes, signed by `key`.
    fn remove(key: &DeviceIdentity, epoch: u64, leaf: u32) -> Vec<u8> {
        ExternalProposal::new_remove::<OpenMlsRustCrypto>(
            LeafNodeIndex::new(leaf),
            GroupId::from_slice(CONV.as_bytes()),
            GroupEpoch::from(epoch),
            &MlsSigner::new(key),
            SenderExtensionIndex::new(0),
        )
        .expect("proposal")
        .tls_serialize_detached()
        .expect("serialize")
    }
}

/// Alice and Bob's two devices in a group that lists `server` as external sender.
fn with_server(server: &Server) -> (Ds, Dev, Dev, Dev) {
    let mut ds = Ds::default();
    let mut alice = Dev::new(ALICE, 1);
    let (mut bob1, mut bob2) = (Dev::new(BOB, 2), Dev::new(BOB, 3));
    alice.conv = Some(
        Conversation::create(
            &alice.provider,
            &alice.identity,
            &alice.ids,
            CONV,
            Some(&server.info()),
        )
        .expect("create"),
    );
    assert_eq!(
        alice.add(&mut ds, &[bob1.key_package(), bob2.key_package()]),
        Ok(1)
    );
    bob1.join(&ds);
    bob2.join(&ds);
    (ds, alice, bob1, bob2)
}

fn leaf_of(conv: &Conversation, device: Uuid) -> u32 {
    conv.group
        .members()
        .find(|m| credential_ids(&m.credential).is_some_and(|c| c.device_id == device))
        .map(|m| m.index.u32())
        .expect("a member")
}

#[test]
fn reported_leaf_indices_are_the_leaves_the_devices_get() {
    let mut ds = Ds::default();
    let mut alice = Dev::new(ALICE, 1);
    alice.conv = Some(
        Conversation::create(&alice.provider, &alice.identity, &alice.ids, CONV, None)
            .expect("create"),
    );
    let (bob1, bob2, bob3) = (Dev::new(BOB, 2), Dev::new(BOB, 3), Dev::new(BOB, 4));
    let (provider, identity) = (&alice.provider, &alice.identity);
    let pending = alice.conv.as_mut().expect("member").add_devices(
        provider,
        identity,
        &[bob1.key_package(), bob2.key_package(), bob3.key_package()],
    );
    let pending = pending.expect("add");
    assert_eq!(pending.leaf_indices, vec![1, 2, 3]);
    alice.submit(&mut ds, pending).expect("accepted");
    // Leaves 1 and 2 go blank; the next two adds fill them, the third extends the tree.
    assert_eq!(
        alice.remove(&mut ds, &[bob1.ids.device_id, bob2.ids.device_id]),
        Ok(2)
    );
    let (carol, dave, erin) = (Dev::new(ALICE, 5), Dev::new(ALICE, 6), Dev::new(ALICE, 7));
    let (provider, identity) = (&alice.provider, &alice.identity);
    let pending = alice
        .conv
        .as_mut()
        .expect("member")
        .add_devices(
            provider,
            identity,
            &[carol.key_package(), dave.key_package(), erin.key_package()],
        )
        .expect("add");
    assert_eq!(pending.leaf_indices, vec![1, 2, 4]);
    let reported: Vec<(Uuid, u32)> = pending
        .add
        .iter()
        .copied()
        .zip(pending.leaf_indices.iter().copied())
        .collect();
    alice.submit(&mut ds, pending).expect("accepted");
    for (device, leaf) in reported {
        assert_eq!(leaf_of(alice.conv(), device), leaf, "device {device}");
    }
}

#[test]
fn a_member_commits_the_servers_removal_and_the_others_follow() {
    let server = Server::new();
    let (mut ds, mut alice, mut bob1, mut bob2) = with_server(&server);
    let leaf = leaf_of(alice.conv(), bob2.ids.device_id);
    let proposal = Server::remove(&server.key, 1, leaf);
    // Every member stores it; a repeat changes nothing.
    for dev in [&mut alice, &mut bob1] {
        assert_eq!(
            dev.process(&proposal).expect("accepted"),
            Got::Proposed(Some(bob2.ids))
        );
        assert_eq!(dev.process(&proposal).expect("repeat"), Got::Ignored);
        assert!(dev.conv().has_pending_proposals());
    }
    // The device to remove gets it too (it needs it to follow the commit).
    assert_eq!(
        bob2.process(&proposal).expect("accepted"),
        Got::Proposed(Some(bob2.ids))
    );
    // Nothing is encrypted while the removal waits; the commit carries it out.
    let payload = Payload::new(Uuid::new_v4(), 1, text_kind("x"));
    let (provider, identity) = (&alice.provider, &alice.identity);
    let conv = alice.conv.as_mut().expect("member");
    assert!(conv.encrypt(provider, identity, &payload).is_err());
    let (provider, identity) = (&alice.provider, &alice.identity);
    let pending = alice
        .conv
        .as_mut()
        .expect("member")
        .commit_pending_proposals(provider, identity)
        .expect("commit");
    assert_eq!(pending.remove, vec![bob2.ids.device_id]);
    assert!(pending.add.is_empty() && pending.welcome.is_none());
    assert_eq!(alice.submit(&mut ds, pending), Ok(2));
    let commit = ds.log.last().expect("the commit").body.clone();
    let got = bob1.sync(&ds);
    assert_eq!(
        got,
        vec![Got::Commit {
            added: vec![],
            removed: vec![bob2.ids],
            epoch: 2
        }]
    );
    for dev in [&mut alice, &mut bob1] {
        assert!(!dev.conv().has_pending_proposals());
        assert!(!dev.conv().members().contains(&bob2.ids));
    }
    let (sent, _) = alice.send(&mut ds, "bob2 is gone");
    assert_eq!(application(&bob1.sync(&ds)[0]), (alice.ids, &sent));
    // The removed device learns it is out.
    assert!(matches!(bob2.process(&commit), Ok(Got::Commit { .. })));
    assert!(!bob2.conv().is_active());
}

#[test]
fn an_add_commit_carries_the_proposed_removal_too() {
    let server = Server::new();
    let (mut ds, mut alice, _bob1, bob2) = with_server(&server);
    let proposal = Server::remove(&server.key, 1, leaf_of(alice.conv(), bob2.ids.device_id));
    alice.process(&proposal).expect("accepted");
    let carol = Dev::new(ALICE, 9);
    let (provider, identity) = (&alice.provider, &alice.identity);
    let pending = alice
        .conv
        .as_mut()
        .expect("member")
        .add_devices(provider, identity, &[carol.key_package()])
        .expect("add");
    // The server's member list must follow: the removal is reported with the add, and
    // Carol takes the leaf Bob's second device leaves.
    assert_eq!(pending.remove, vec![bob2.ids.device_id]);
    assert_eq!(pending.add, vec![carol.ids.device_id]);
    assert_eq!(pending.leaf_indices, vec![2]);
    alice.submit(&mut ds, pending).expect("accepted");
    assert_eq!(leaf_of(alice.conv(), carol.ids.device_id), 2);
}

#[test]
fn proposals_not_signed_by_the_groups_server_or_not_removals_are_refused() {
    let server = Server::new();
    let (_ds, mut alice, bob1, _bob2) = with_server(&server);
    // Another key (a second "server", or a member posing as one).
    let forged = Server::remove(&DeviceIdentity::generate_os(), 1, 1);
    assert!(matches!(
        alice.process(&forged),
        Err(Error::Verification(_))
    ));
    // The right key, but an Add: the server may only propose removals.
    let add = ExternalProposal::new_add::<OpenMlsRustCrypto>(
        Dev::new(BOB, 8).key_package(),
        GroupId::from_slice(CONV.as_bytes()),
        GroupEpoch::from(1),
        &MlsSigner::new(&server.key),
        SenderExtensionIndex::new(0),
    )
    .expect("proposal")
    .tls_serialize_detached()
    .expect("serialize");
    assert!(matches!(alice.process(&add), Err(Error::Verification(_))));
    // A stale epoch.
    let stale = Server::remove(&server.key, 0, 1);
    assert!(alice.process(&stale).is_err());
    assert!(!alice.conv().has_pending_proposals());
    // A group created without the server as external sender takes nothing from it.
    let (_ds, mut plain, _b1, _b2) = alice_and_bob();
    let proposal = Server::remove(&server.key, 1, 1);
    assert!(plain.process(&proposal).is_err());
    assert!(!plain.conv().has_pending_proposals());
    let _ = bob1;
}
