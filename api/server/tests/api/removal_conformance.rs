//! Store conformance for the removals the server proposes, on every backend.

use cloak_api::store::{CommitChanges, NewProposals, PendingRemoval, RemovalsDue, SendOutcome};
use cloak_proto::delivery::EnvelopeKind;
use uuid::Uuid;

use crate::backend_tests;
use crate::delivery_conformance::{World, group, send, world};
use crate::helpers::{Backend, fresh_store};

fn proposals(w: &World, conv: Uuid, epoch: i64, device: Uuid, body: &[u8]) -> NewProposals {
    NewProposals {
        tenant_id: w.tenant,
        conversation_id: conv,
        epoch,
        proposals: vec![(device, body.to_vec())],
        now_ms: 300,
        mailbox_quota: 1_000,
    }
}

async fn commit(w: &World, by: usize, conv: Uuid, epoch: i64, remove: Vec<Uuid>) {
    let changes = CommitChanges {
        remove,
        ..CommitChanges::default()
    };
    match w
        .store
        .store_commit(&send(w, by, conv, epoch, b"commit"), &changes)
        .await
        .unwrap()
    {
        SendOutcome::Stored(s) => assert_eq!(s.epoch, epoch + 1),
        other => panic!("{other:?}"),
    }
}

async fn removals_are_proposed_once_per_epoch_until_a_commit_removes(backend: Backend) {
    let (store, _db) = fresh_store(backend).await;
    let w = world(store, 3).await;
    let conv = group(&w).await;
    let (d0, d1, d2) = (
        w.devices[0].device_id,
        w.devices[1].device_id,
        w.devices[2].device_id,
    );
    assert!(w.store.removals_due(100).await.unwrap().is_empty());
    w.store.revoke_device(w.tenant, d2, 200).await.unwrap();
    let due = |epoch| RemovalsDue {
        tenant_id: w.tenant,
        conversation_id: conv,
        epoch,
        removals: vec![PendingRemoval {
            device_id: d2,
            leaf_index: 2,
        }],
    };
    assert_eq!(w.store.removals_due(100).await.unwrap(), vec![due(1)]);
    // Made at an epoch the conversation left: nothing is stored.
    let stale = proposals(&w, conv, 0, d2, b"stale");
    assert_eq!(w.store.store_proposals(&stale).await.unwrap(), None);
    let p = proposals(&w, conv, 1, d2, b"remove leaf 2");
    let mut got = w.store.store_proposals(&p).await.unwrap().expect("stored");
    got.sort();
    let mut members = vec![d0, d1];
    members.sort();
    assert_eq!(got, members, "every member but the revoked device");
    // Another node proposing at the same epoch stores nothing.
    assert_eq!(w.store.store_proposals(&p).await.unwrap(), None);
    assert!(w.store.removals_due(100).await.unwrap().is_empty());
    let entries = w
        .store
        .fetch_mailbox(w.tenant, d1, 0, 100, 300)
        .await
        .unwrap();
    let entry = entries.last().expect("the proposal");
    assert_eq!(
        (entry.kind, entry.sender_device_id, entry.epoch),
        (EnvelopeKind::Proposal, Uuid::nil(), 1)
    );
    assert_eq!(entry.body, b"remove leaf 2");
    // A commit that does not remove the device outdates the proposal.
    commit(&w, 0, conv, 1, vec![]).await;
    assert_eq!(w.store.removals_due(100).await.unwrap(), vec![due(2)]);
    // The commit that removes it ends the removal.
    commit(&w, 1, conv, 2, vec![d2]).await;
    assert!(w.store.removals_due(100).await.unwrap().is_empty());
}

async fn inactive_devices_are_found_and_a_login_cancels(backend: Backend) {
    let (store, _db) = fresh_store(backend).await;
    let w = world(store, 2).await;
    let conv = group(&w).await;
    let retention = 30 * 24 * 3600 * 1000_i64;
    // Not yet past the retention (the devices were created at 1).
    assert_eq!(w.store.mark_inactive(retention).await.unwrap(), 0);
    let later = retention + 10;
    assert_eq!(w.store.mark_inactive(later).await.unwrap(), 2);
    // Found once.
    assert_eq!(w.store.mark_inactive(later).await.unwrap(), 0);
    w.store
        .record_login(w.tenant, w.devices[1].device_id, later)
        .await
        .unwrap();
    assert_eq!(
        w.store.removals_due(100).await.unwrap(),
        vec![RemovalsDue {
            tenant_id: w.tenant,
            conversation_id: conv,
            epoch: 1,
            removals: vec![PendingRemoval {
                device_id: w.devices[0].device_id,
                leaf_index: 0,
            }],
        }]
    );
    // The device that logged in is active again.
    assert_eq!(w.store.mark_inactive(later + 1).await.unwrap(), 0);
}

backend_tests!(
    removals_are_proposed_once_per_epoch_until_a_commit_removes,
    inactive_devices_are_found_and_a_login_cancels,
);
