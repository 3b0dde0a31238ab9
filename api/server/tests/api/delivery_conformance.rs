//! Store conformance for conversations and mailboxes, on every backend.

use std::collections::HashSet;
use std::sync::Arc;

use cloak_api::store::{
    CommitChanges, Member, NewDevice, NewSend, NewTenant, NewUser, SendOutcome, Store,
};
use uuid::Uuid;

use cloak_proto::tenants::MailboxStorage;

use crate::helpers::{Backend, fresh_store_with};
use crate::storage_tests;

pub(crate) struct World {
    pub store: Arc<dyn Store>,
    pub tenant: Uuid,
    pub devices: Vec<Member>,
}

pub(crate) async fn world(store: Arc<dyn Store>, devices: usize) -> World {
    world_in(store, devices, MailboxStorage::Durable).await
}

/// A tenant whose mailboxes are kept as `storage` says, with `devices` users of a device each.
pub(crate) async fn world_in(
    store: Arc<dyn Store>,
    devices: usize,
    storage: MailboxStorage,
) -> World {
    let tenant = Uuid::new_v4();
    let key = cloak_api::services::api_keys::generate(tenant, "k", 1, &mut rand::rngs::OsRng);
    store
        .create_tenant(
            &NewTenant {
                id: tenant,
                name: "T".into(),
                created_at_ms: 1,
            },
            &key.record,
        )
        .await
        .unwrap();
    let update = cloak_api::store::TenantSettingsUpdate {
        mailbox_storage: Some(storage),
        ..Default::default()
    };
    assert!(store.update_tenant_settings(tenant, &update).await.unwrap());
    let mut members = Vec::new();
    for i in 0..devices {
        let user = Uuid::new_v4();
        store
            .create_user(&NewUser {
                id: user,
                tenant_id: tenant,
                external_id: format!("u{i}"),
                display_name: "U".into(),
                trust_level: "new".into(),
                created_at_ms: 1,
            })
            .await
            .unwrap();
        let device = Uuid::new_v4();
        store
            .register_device(&NewDevice {
                id: device,
                tenant_id: tenant,
                user_id: user,
                name: None,
                identity_key: device.as_bytes().repeat(2),
                created_at_ms: 1,
            })
            .await
            .unwrap();
        members.push(Member {
            device_id: device,
            user_id: user,
        });
    }
    World {
        store,
        tenant,
        devices: members,
    }
}

pub(crate) fn send(
    w: &World,
    sender: usize,
    conversation: Uuid,
    epoch: i64,
    body: &[u8],
) -> NewSend {
    NewSend {
        tenant_id: w.tenant,
        conversation_id: conversation,
        sender: w.devices[sender],
        client_msg_id: Uuid::new_v4(),
        epoch,
        body: body.to_vec(),
        now_ms: 100,
        mailbox_quota: 1_000,
        charge: None,
        franking: None,
        viewable: true,
    }
}

/// A conversation of all devices at epoch 1, created by device 0 (device i at leaf i).
pub(crate) async fn group(w: &World) -> Uuid {
    let id = Uuid::new_v4();
    assert!(
        w.store
            .create_conversation(w.tenant, id, w.devices[0], 1)
            .await
            .unwrap()
    );
    assert!(
        !w.store
            .create_conversation(w.tenant, id, w.devices[0], 1)
            .await
            .unwrap(),
        "ids are unique"
    );
    let changes = CommitChanges {
        add: w.devices[1..].to_vec(),
        leaves: (1..u32::try_from(w.devices.len()).unwrap()).collect(),
        remove: vec![],
        welcome: Some(b"welcome".to_vec()),
    };
    match w
        .store
        .store_commit(&send(w, 0, id, 0, b"commit"), &changes)
        .await
        .unwrap()
    {
        SendOutcome::Stored(s) => assert_eq!(s.epoch, 1),
        other => panic!("{other:?}"),
    }
    id
}

/// The conversation as stored (it must exist).
async fn conversation(w: &World, id: Uuid) -> cloak_api::store::ConversationRecord {
    w.store
        .get_conversation(w.tenant, id)
        .await
        .unwrap()
        .unwrap()
}

fn stored(outcome: SendOutcome) -> cloak_api::store::StoredSend {
    match outcome {
        SendOutcome::Stored(s) => s,
        other => panic!("expected stored, got {other:?}"),
    }
}

async fn concurrent_sends_give_each_mailbox_gapless_increasing_sequences(
    backend: Backend,
    storage: MailboxStorage,
) {
    let (store, _db) = fresh_store_with(backend, storage).await;
    let w = Arc::new(world_in(store, 4, storage).await);
    let conv = group(&w).await;
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let w = w.clone();
            tokio::spawn(async move {
                let s = send(&w, i % 3, conv, 1, format!("m{i}").as_bytes());
                stored(w.store.store_application(&s).await.unwrap())
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let last = w.devices[3];
    let entries = w
        .store
        .fetch_mailbox(w.tenant, last.device_id, 0, 1_000, 100)
        .await
        .unwrap();
    let seqs: Vec<i64> = entries.iter().map(|e| e.seq).collect();
    assert_eq!(
        seqs,
        (1..=41).collect::<Vec<_>>(),
        "welcome then 40 messages, no gaps"
    );
    let bodies: HashSet<Vec<u8>> = entries[1..].iter().map(|e| e.body.clone()).collect();
    assert_eq!(bodies.len(), 40);
    // Other tenants see nothing.
    assert!(
        w.store
            .fetch_mailbox(Uuid::new_v4(), last.device_id, 0, 1_000, 100)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn duplicates_quota_and_acks(backend: Backend, storage: MailboxStorage) {
    let (store, _db) = fresh_store_with(backend, storage).await;
    let w = world_in(store, 2, storage).await;
    let conv = group(&w).await;
    let s = send(&w, 0, conv, 1, b"x");
    assert!(!stored(w.store.store_application(&s).await.unwrap()).duplicate);
    assert!(stored(w.store.store_application(&s).await.unwrap()).duplicate);
    let receiver = w.devices[1].device_id;
    assert_eq!(
        w.store
            .fetch_mailbox(w.tenant, receiver, 0, 100, 100)
            .await
            .unwrap()
            .len(),
        2
    );

    // Quota: the receiver holds 2 entries; with a quota of 3, one more fits, then it is full.
    let mut small = send(&w, 0, conv, 1, b"y");
    small.mailbox_quota = 3;
    stored(w.store.store_application(&small).await.unwrap());
    let mut over = send(&w, 0, conv, 1, b"z");
    over.mailbox_quota = 3;
    assert_eq!(
        w.store.store_application(&over).await.unwrap(),
        SendOutcome::MailboxFull(receiver)
    );
    // A refused send stored nothing, not even for other recipients, and is not remembered.
    assert_eq!(
        w.store
            .fetch_mailbox(w.tenant, receiver, 0, 100, 100)
            .await
            .unwrap()
            .len(),
        3
    );
    assert_eq!(w.store.ack_mailbox(w.tenant, receiver, 2).await.unwrap(), 2);
    assert_eq!(
        w.store
            .ack_mailbox(Uuid::new_v4(), receiver, 100)
            .await
            .unwrap(),
        0,
        "wrong tenant acks nothing"
    );
    assert!(
        !stored(w.store.store_application(&over).await.unwrap()).duplicate,
        "fits after the ack"
    );
}

/// One batch holding acknowledgements and sends: the acks go first and free room under the
/// quota for the sends after them; a commit's quota check counts the acks too.
async fn a_batch_applies_its_acks_before_its_sends(backend: Backend, storage: MailboxStorage) {
    let (store, _db) = fresh_store_with(backend, storage).await;
    let w = world_in(store, 2, storage).await;
    let conv = group(&w).await;
    let receiver = w.devices[1].device_id;
    for body in [b"a", b"b"] {
        let mut s = send(&w, 0, conv, 1, body);
        s.mailbox_quota = 3;
        stored(w.store.store_application(&s).await.unwrap());
    }
    let entries = w
        .store
        .fetch_mailbox(w.tenant, receiver, 0, 100, 100)
        .await
        .unwrap();
    assert_eq!(entries.len(), 3, "the Welcome and two messages");
    let last = entries.last().unwrap().seq;
    // Full at a quota of 3 unless the acknowledgement in the same batch goes first.
    let mut sends = Vec::new();
    for body in [b"c", b"d"] {
        let mut s = send(&w, 0, conv, 1, body);
        s.mailbox_quota = 3;
        sends.push(s);
    }
    let ack = cloak_api::store::Ack {
        tenant_id: w.tenant,
        device_id: receiver,
        up_to: last,
    };
    let (outcomes, acked) = w.store.store_batch(&sends, &[ack]).await.unwrap();
    assert_eq!(acked, vec![3]);
    let seqs: Vec<i64> = outcomes.into_iter().map(|o| stored(o).seqs[0]).collect();
    assert_eq!(seqs, vec![last + 1, last + 2]);
    // Two entries wait now: with a quota of 3 one more fits, through a commit too.
    let mut commit = send(&w, 0, conv, 1, b"commit");
    commit.mailbox_quota = 3;
    let changes = CommitChanges::default();
    stored(w.store.store_commit(&commit, &changes).await.unwrap());
    let mut over = send(&w, 0, conv, 2, b"over");
    over.mailbox_quota = 3;
    assert_eq!(
        w.store.store_application(&over).await.unwrap(),
        SendOutcome::MailboxFull(receiver)
    );
}

/// Sends that share a client message id, written at the same moment (a client bug, or a
/// client trying to fail other people's messages), beside other members' messages: a
/// commit and a message with one id, and two batches holding one sender's two ids in
/// opposite orders (as a client retrying on another node). Nothing fails: each id is stored
/// once and answered as a replay (or refused as stale) otherwise, and the others' messages
/// are stored or refused one by one. A commit used to record its id after locking its
/// recipients while a batch records its ids first, and batches claimed ids in arrival
/// order: PostgreSQL failed one side as a deadlock, and with it a whole batch.
async fn sends_sharing_ids_never_fail_a_batch(backend: Backend, storage: MailboxStorage) {
    let (store, _db) = fresh_store_with(backend, storage).await;
    let w = Arc::new(world_in(store, 6, storage).await);
    let conv = group(&w).await;
    let no_changes = CommitChanges::default();
    let fresh = |o: &SendOutcome| matches!(o, SendOutcome::Stored(s) if !s.duplicate);
    let mut epoch = 1i64;
    for round in 0..25 {
        let commit = send(&w, 0, conv, epoch, b"commit");
        let mut shared = send(&w, 0, conv, epoch, b"same id");
        shared.client_msg_id = commit.client_msg_id;
        let (x, y) = (
            send(&w, 0, conv, epoch, b"x"),
            send(&w, 0, conv, epoch, b"y"),
        );
        let others = |from: usize| (from..from + 3).map(|i| send(&w, i, conv, epoch, b"other"));
        let first: Vec<NewSend> = others(1).chain([shared, x.clone(), y.clone()]).collect();
        let second: Vec<NewSend> = [y, x].into_iter().chain(others(3)).collect();
        let (committed, first, second) = tokio::join!(
            w.store.store_commit(&commit, &no_changes),
            w.store.store_applications(&first),
            w.store.store_applications(&second),
        );
        let committed = stored(committed.expect("the commit never fails"));
        let first = first.expect("a batch never fails");
        let second = second.expect("a batch never fails");
        for outcome in first.iter().chain(&second) {
            assert!(
                matches!(outcome, SendOutcome::Stored(_) | SendOutcome::StaleEpoch(_)),
                "round {round}: {outcome:?}"
            );
        }
        assert!(
            committed.duplicate || !fresh(&first[3]),
            "the commit's id stored twice in round {round}: {first:?}"
        );
        for (a, b) in [(4, 1), (5, 0)] {
            assert!(
                !(fresh(&first[a]) && fresh(&second[b])),
                "one id stored twice in round {round}: {first:?} {second:?}"
            );
        }
        let c = conversation(&w, conv).await;
        let expected = if committed.duplicate {
            epoch
        } else {
            epoch + 1
        };
        assert_eq!(c.epoch, expected, "round {round}");
        epoch = c.epoch;
    }
}

/// PostgreSQL only (SQLite writes one transaction at a time). Two batches hold one
/// sender's ids in opposite orders, and a transaction of the test's own holds an id both
/// need after their first, so each batch has claimed its first id by the time the
/// transaction ends. Claimed in arrival order, each batch then waited for the other's
/// first id: a deadlock, and one batch failed whole. Batches claim ids in key order.
#[tokio::test]
async fn batches_holding_ids_in_opposite_orders_never_deadlock() {
    use sqlx::{Connection as _, Row as _};
    let (store, db) = fresh_store_with(Backend::Postgres, MailboxStorage::Durable).await;
    let w = Arc::new(world_in(store, 3, MailboxStorage::Durable).await);
    let conv = group(&w).await;
    let [x, held, y] = [b"x", b"h", b"y"].map(|body| send(&w, 0, conv, 1, body));
    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let mut holder = conn.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO sends (sender_device_id, client_msg_id, tenant_id, conversation_id, epoch, recipients, sent_at) \
         VALUES ($1, $2, $3, $4, 1, 0, 1)",
    )
    .bind(held.sender.device_id)
    .bind(held.client_msg_id)
    .bind(w.tenant)
    .bind(conv)
    .execute(&mut *holder)
    .await
    .unwrap();
    let batch = |sends: [&NewSend; 3]| {
        let w = w.clone();
        let sends: Vec<NewSend> = sends.into_iter().cloned().collect();
        tokio::spawn(async move { w.store.store_applications(&sends).await })
    };
    let first = batch([&x, &held, &y]);
    let second = batch([&y, &held, &x]);
    // Both wait for the held id before it is let go.
    let mut watcher = sqlx::PgConnection::connect(&db.url).await.unwrap();
    for _ in 0..200 {
        let waiting: i64 = sqlx::query("SELECT count(*) AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()")
            .fetch_one(&mut watcher)
            .await
            .unwrap()
            .get("n");
        if waiting >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    holder.rollback().await.unwrap();
    let first = first.await.unwrap().expect("a batch never fails");
    let second = second.await.unwrap().expect("a batch never fails");
    let fresh = |o: &SendOutcome| matches!(o, SendOutcome::Stored(s) if !s.duplicate);
    for (a, b) in [(0, 2), (1, 1), (2, 0)] {
        assert!(
            fresh(&first[a]) != fresh(&second[b]),
            "each id stored once: {first:?} {second:?}"
        );
    }
}

/// A batch larger than one statement's rows: 520 conversations (two rounds of the batch's
/// read) and 13,800 mailbox entries (27 multi-row runs, packed into several statements on
/// PostgreSQL). Every message is stored, and every recipient's sequence numbers run on
/// without a gap in the batch's order.
async fn a_batch_larger_than_a_statement_is_written_whole(
    backend: Backend,
    storage: MailboxStorage,
) {
    let (store, _db) = fresh_store_with(backend, storage).await;
    let w = world_in(store, 24, storage).await;
    let conv = group(&w).await;
    let mut sends = Vec::new();
    for _ in 0..520 {
        let solo = Uuid::new_v4();
        assert!(
            w.store
                .create_conversation(w.tenant, solo, w.devices[0], 1)
                .await
                .unwrap()
        );
        sends.push(send(&w, 0, solo, 0, b"to myself"));
    }
    for i in 0..600 {
        sends.push(send(&w, i % 24, conv, 1, format!("g{i}").as_bytes()));
    }
    let (outcomes, _) = w.store.store_batch(&sends, &[]).await.unwrap();
    assert_eq!(outcomes.len(), sends.len());
    let mut next: std::collections::HashMap<Uuid, i64> = std::collections::HashMap::new();
    for (i, outcome) in outcomes.into_iter().enumerate() {
        let s = stored(outcome);
        if i < 520 {
            assert!(
                s.recipients.is_empty(),
                "a conversation of one has no recipient"
            );
            continue;
        }
        assert_eq!(s.recipients.len(), 23, "everyone but the sender");
        for (device, seq) in s.recipients.iter().zip(&s.seqs) {
            // The Welcome took 1 on every device but the creator's.
            let expected = next
                .entry(*device)
                .or_insert(if *device == w.devices[0].device_id {
                    1
                } else {
                    2
                });
            assert_eq!(*seq, *expected, "gapless, in batch order");
            *expected += 1;
        }
    }
    for member in &w.devices {
        let entries = w
            .store
            .fetch_mailbox(w.tenant, member.device_id, 0, 1_000, 1_000)
            .await
            .unwrap();
        let from_batch = entries.iter().filter(|e| e.body.starts_with(b"g")).count();
        assert_eq!(from_batch, 575, "600 less the 25 this device sent");
    }
}

async fn commits_compare_and_swap_and_change_members(backend: Backend, storage: MailboxStorage) {
    let (store, _db) = fresh_store_with(backend, storage).await;
    let w = world_in(store, 3, storage).await;
    let conv = group(&w).await;
    let remove = CommitChanges {
        add: vec![],
        leaves: vec![],
        remove: vec![w.devices[2].device_id],
        welcome: None,
    };
    assert_eq!(
        w.store
            .store_commit(&send(&w, 1, conv, 0, b"late"), &remove)
            .await
            .unwrap(),
        SendOutcome::StaleEpoch(1)
    );
    let s = stored(
        w.store
            .store_commit(&send(&w, 1, conv, 1, b"rm"), &remove)
            .await
            .unwrap(),
    );
    assert_eq!(
        (s.epoch, s.recipients.len()),
        (2, 2),
        "the removed device receives its removal"
    );
    let c = conversation(&w, conv).await;
    assert_eq!(c.epoch, 2);
    assert_eq!(c.members.len(), 2);
    assert_eq!(
        w.store
            .store_application(&send(&w, 2, conv, 2, b"x"))
            .await
            .unwrap(),
        SendOutcome::NotMember
    );
    assert_eq!(
        w.store
            .store_commit(&send(&w, 0, conv, 2, b"again"), &remove)
            .await
            .unwrap(),
        SendOutcome::BadMembership(w.devices[2].device_id)
    );
    let c = conversation(&w, conv).await;
    assert_eq!(c.epoch, 2, "a refused commit does not advance the epoch");
    assert!(
        w.store
            .get_conversation(Uuid::new_v4(), conv)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        w.store
            .device_conversations(w.tenant, w.devices[0].device_id, None, 100)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(
        w.store
            .device_conversations(w.tenant, w.devices[2].device_id, None, 100)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn expired_entries_are_hidden_then_purged(backend: Backend, storage: MailboxStorage) {
    let (store, _db) = fresh_store_with(backend, storage).await;
    let w = world_in(store, 2, storage).await;
    let conv = group(&w).await;
    stored(
        w.store
            .store_application(&send(&w, 0, conv, 1, b"x"))
            .await
            .unwrap(),
    );
    let receiver = w.devices[1].device_id;
    let retention = 30 * 24 * 3600 * 1000_i64;
    assert_eq!(
        w.store
            .fetch_mailbox(w.tenant, receiver, 0, 10, 100 + retention - 1)
            .await
            .unwrap()
            .len(),
        2
    );
    assert!(
        w.store
            .fetch_mailbox(w.tenant, receiver, 0, 10, 100 + retention)
            .await
            .unwrap()
            .is_empty()
    );
    // Durable entries are purged from the database; memory ones were never there (their
    // set's TTL and the read above dropped them).
    let purged = w.store.purge_mailboxes(100 + retention, 0).await.unwrap();
    let expected = match storage {
        MailboxStorage::Durable => 2,
        MailboxStorage::Memory => 0,
    };
    assert_eq!(purged, expected);
    // The mailbox depth was reset, so a quota of 1 admits a new entry.
    let mut s = send(&w, 0, conv, 1, b"y");
    s.mailbox_quota = 1;
    stored(w.store.store_application(&s).await.unwrap());
}

/// Charges ride in the send's transaction: a prepaid send the wallet cannot pay stores
/// nothing; postpaid usage lands in the outbox and is claimed as one batch per meter.
async fn charges_are_part_of_the_send(backend: Backend, storage: MailboxStorage) {
    let (store, _db) = fresh_store_with(backend, storage).await;
    let w = world_in(store, 2, storage).await;
    let conv = group(&w).await;
    let prepaid = cloak_api::store::Charge::Prepaid {
        wallet_id: w.tenant,
        amount: 1,
        kind: "message",
        tier: None,
        actor: "test".into(),
        user_id: w.devices[0].user_id,
        low_balance_threshold: None,
    };
    let mut s = send(&w, 0, conv, 1, b"paid");
    s.charge = Some(prepaid);
    assert_eq!(
        w.store.store_application(&s).await.unwrap(),
        SendOutcome::InsufficientCredits(0)
    );
    assert!(
        w.store
            .fetch_mailbox(w.tenant, w.devices[1].device_id, 1, 10, 100)
            .await
            .unwrap()
            .is_empty()
    );
    for i in 0..3 {
        let mut s = send(&w, 0, conv, 1, format!("metered {i}").as_bytes());
        s.charge = Some(cloak_api::store::Charge::Postpaid {
            customer_id: "cus_1".into(),
            event_name: "messages".into(),
            value: 2,
        });
        stored(w.store.store_application(&s).await.unwrap());
    }
    assert_eq!(w.store.pending_meter_events().await.unwrap(), 3);
    let batches = w.store.claim_meter_batches(1_000, 100).await.unwrap();
    assert_eq!(batches.len(), 1, "{batches:?}");
    assert_eq!(
        (batches[0].value, batches[0].customer_id.as_str()),
        (6, "cus_1")
    );
    // Leased: not claimed again until it is due.
    assert!(
        w.store
            .claim_meter_batches(1_000, 100)
            .await
            .unwrap()
            .is_empty()
    );
    w.store
        .finish_meter_batch(&batches[0].batch_id, 1_001, None, None)
        .await
        .unwrap();
    assert_eq!(w.store.pending_meter_events().await.unwrap(), 0);
}

storage_tests!(
    charges_are_part_of_the_send,
    concurrent_sends_give_each_mailbox_gapless_increasing_sequences,
    duplicates_quota_and_acks,
    a_batch_applies_its_acks_before_its_sends,
    a_batch_larger_than_a_statement_is_written_whole,
    sends_sharing_ids_never_fail_a_batch,
    commits_compare_and_swap_and_change_members,
    expired_entries_are_hidden_then_purged,
);
