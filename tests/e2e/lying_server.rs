//! The SDK against a server it need not trust: a proxy between the SDK and the real
//! server rewrites directory and key-package answers, injects failures, or forwards a
//! request and never answers (the device crashes while waiting), and a hostile member
//! commits a device nobody approved. The SDK refuses every forgery and loses nothing.

use std::time::Duration;

use cloak_e2e::listener::{Listener, joined};
use cloak_e2e::lying_proxy::{Action, LyingProxy};
use cloak_e2e::{ServerEnv, Stack};
use cloak_proto::delivery::{CommitRequest, EnvelopeKind};
use cloak_proto::devices::{Device, DeviceList, DeviceStatus};
use cloak_proto::key_packages::{ClaimedKeyPackage, ClaimedKeyPackages};
use cloak_proto::users::User;
use cloak_sdk::{
    Conversation, DeviceIdentity, DeviceIds, Error, Event, StoreKey, generate_key_packages,
};
use openmls::prelude::OpenMlsProvider as _;
use openmls_rust_crypto::OpenMlsRustCrypto;
use uuid::Uuid;

/// A server on the embedded default, a lying proxy in front of it, and two users who are
/// contacts.
async fn two_contacts() -> (Stack, LyingProxy, User, User) {
    let stack = Stack::start(&ServerEnv::embedded());
    let proxy = LyingProxy::start(&stack.server.base_url).await;
    let alice = stack.tenant.create_user("alice", "Alice").await;
    let bob = stack.tenant.create_user("bob", "Bob").await;
    stack.tenant.add_contact(alice.id, bob.id).await;
    (stack, proxy, alice, bob)
}

/// A device the server "holds": its own key, named as a device of `user`.
fn forged_device(tenant: Uuid, user: Uuid, key: &DeviceIdentity) -> Device {
    Device {
        id: Uuid::new_v4(),
        tenant_id: tenant,
        user_id: user,
        name: Some("server".into()),
        identity_key: key.public_key().to_vec(),
        status: DeviceStatus::Approved,
        created_at: time::OffsetDateTime::UNIX_EPOCH,
        approved_by: None,
        approved_at_ms: None,
        approval_signature: None,
    }
}

/// A KeyPackage for `device` signed with `key` (valid MLS, named as that device).
fn forged_package(key: &DeviceIdentity, device: &Device) -> ClaimedKeyPackage {
    let provider = OpenMlsRustCrypto::default();
    let ids = DeviceIds {
        tenant_id: device.tenant_id,
        user_id: device.user_id,
        device_id: device.id,
    };
    let upload = generate_key_packages(&provider, key, &ids, 1, false)
        .unwrap()
        .remove(0);
    ClaimedKeyPackage {
        device_id: device.id,
        hash_ref: upload.hash_ref,
        data: upload.data,
        last_resort: false,
    }
}

fn json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap()
}

/// The server answers Alice's own directory with devices of its own making and hands out
/// their KeyPackages. First a one-device directory whose root it holds; then a subtler
/// one that re-signs Alice's device under a root it holds, so the signatures all verify
/// and Alice's device is listed as approved. Both are refused: the root differs from the
/// one pinned when Alice registered, and nothing is committed.
#[tokio::test]
async fn a_forged_own_directory_cannot_add_a_server_device() {
    let (stack, proxy, alice, bob) = two_contacts().await;
    let phone = stack
        .cloak_builder(alice.id, &proxy.base_url)
        .build()
        .await
        .unwrap();
    let _bobs = stack.cloak(bob.id).await;
    let me = phone.ids();
    let real = phone.devices().list().await.unwrap();
    let own_directory = format!("/v1/users/{}/devices", alice.id);
    let own_claim = format!("/v1/users/{}/key-packages/claim", alice.id);

    let server_key = DeviceIdentity::generate_os();
    let server_root = forged_device(me.tenant_id, alice.id, &server_key);
    let planted = forged_package(&server_key, &server_root);
    let claim = ClaimedKeyPackages {
        user_id: alice.id,
        items: vec![planted.clone()],
    };
    let lie = |directory: DeviceList| {
        proxy.clear();
        let body = json(&directory);
        let path = own_directory.clone();
        proxy.rule(
            "GET",
            move |p| p == path,
            Action::Rewrite(Box::new(move |_| body.clone())),
            None,
        );
        let body = json(&claim);
        let path = own_claim.clone();
        proxy.rule(
            "POST",
            move |p| p == path,
            Action::Rewrite(Box::new(move |_| body.clone())),
            None,
        );
    };

    // 1. A one-device directory: the server's own device as Alice's only one.
    lie(DeviceList {
        items: vec![server_root.clone()],
    });
    let err = phone.conversation_with(bob.id).await.unwrap_err();
    assert!(matches!(err, Error::Verification(_)), "{err:?}");
    assert!(proxy.uses()[0] >= 1, "the forged directory was served");

    // 2. The same root re-signs Alice's real device: every signature verifies and her
    // device is listed as approved, but the root is not the one she registered with.
    let mut mine = real[0].clone();
    assert_eq!(mine.id, me.device_id);
    let key: [u8; 32] = mine.identity_key.as_slice().try_into().unwrap();
    mine.approved_by = Some(server_root.id);
    mine.approved_at_ms = Some(1_000);
    mine.approval_signature = Some(
        server_key
            .sign_approval(me.tenant_id, alice.id, &key, 1_000)
            .to_vec(),
    );
    let chained = DeviceList {
        items: vec![server_root.clone(), mine],
    };
    cloak_sdk::verify_device_directory(&chained.items).expect("the forgery verifies");
    lie(chained);
    let err = phone.conversation_with(bob.id).await.unwrap_err();
    assert!(
        matches!(&err, Error::Verification(r) if r.contains("root")),
        "{err:?}"
    );
    let err = phone.create_invite(1, 600).await.unwrap_err();
    assert!(matches!(err, Error::Verification(_)), "{err:?}");
    assert!(phone.devices().list().await.is_err());
    assert_eq!(
        stack
            .server
            .request_count("POST", "/v1/conversations/{id}/commits")
            .await,
        0,
        "nothing was committed"
    );

    // With the truth back, the same device works.
    proxy.clear();
    let chat = phone.conversation_with(bob.id).await.unwrap();
    let members = chat.members().await.unwrap();
    assert!(!members.iter().any(|m| m.device_id == server_root.id));
    assert_eq!(members.len(), 2);
}

/// A member of the conversation (Bob, with a modified client) commits a device that is
/// in no directory; the server relays it as it relays every commit. Alice refuses the
/// commit without merging it: the device is not a member on her side, and her
/// conversation stays where it was.
#[tokio::test]
async fn a_commit_adding_an_unapproved_device_is_refused_unmerged() {
    let (stack, _proxy, alice, bob) = two_contacts().await;
    let phone = stack.cloak(alice.id).await;
    let mut phone_events = Listener::new(&phone);

    // Bob's hostile client: the SDK's low-level parts, driven by hand.
    let bob_client = stack.device_client(bob.id).await;
    let bob_ids = bob_client.ids().unwrap();
    let bob_mls = OpenMlsRustCrypto::default();
    bob_client.top_up_key_packages(&bob_mls, 2).await.unwrap();
    let chat = phone.conversation_with(bob.id).await.unwrap();
    let conversation = chat.id().0;
    let page = bob_client.fetch_mailbox(0, 10).await.unwrap();
    let welcome = page
        .items
        .iter()
        .find(|e| e.kind == EnvelopeKind::Welcome)
        .unwrap();
    let mut bobs_view = Conversation::stage_join(&bob_mls, &welcome.body)
        .unwrap()
        .join(&bob_mls)
        .unwrap();
    let intruder_key = DeviceIdentity::generate_os();
    let intruder = DeviceIds {
        tenant_id: bob_ids.tenant_id,
        user_id: bob.id,
        device_id: Uuid::new_v4(),
    };
    let upload = generate_key_packages(&bob_mls, &intruder_key, &intruder, 1, false)
        .unwrap()
        .remove(0);
    let kp = cloak_sdk::mls::parse_key_package(bob_mls.crypto(), &upload.data).unwrap();
    let pending = bobs_view
        .add_devices(&bob_mls, bob_client.identity(), &[kp])
        .unwrap();
    // The server checks the devices a commit names, not what the commit does.
    bob_client
        .submit_commit(
            conversation,
            &CommitRequest {
                client_msg_id: Uuid::new_v4(),
                epoch: pending.epoch_before,
                commit: pending.commit,
                welcome: None,
                add: vec![],
                remove: vec![],
                leaf_indices: vec![],
            },
        )
        .await
        .unwrap();

    let events = phone_events
        .until(|e| matches!(e, Event::Rejected { .. }))
        .await;
    assert!(
        events.iter().any(|e| matches!(e,
            Event::Rejected { reason, .. } if reason.contains(&intruder.device_id.to_string()))),
        "{events:?}"
    );
    let members = chat.members().await.unwrap();
    assert_eq!(members.len(), 2, "{members:?}");
    assert!(!members.iter().any(|m| m.device_id == intruder.device_id));
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, Event::MembersChanged { .. })),
        "nothing merged"
    );
}

/// While Bob's client checks a Welcome's members, the directory answers 503, then 429:
/// the Welcome is neither refused nor acknowledged, and once the directory answers the
/// same Welcome opens.
#[tokio::test]
async fn a_transient_failure_while_checking_a_welcome_is_retried_not_rejected() {
    let (stack, proxy, alice, bob) = two_contacts().await;
    let phone = stack.cloak(alice.id).await;
    let bobs = stack
        .cloak_builder(bob.id, &proxy.base_url)
        .build()
        .await
        .unwrap();
    let mut bob_events = Listener::new(&bobs);
    let alice_directory = format!("/v1/users/{}/devices", alice.id);
    let path = alice_directory.clone();
    proxy.rule("GET", move |p| p == path, Action::Fail(503), None);
    let chat = phone.conversation_with(bob.id).await.unwrap();
    chat.send_text("first").await.unwrap();

    let err = bobs.sync().await.unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    proxy.clear();
    proxy.rule(
        "GET",
        move |p| p == alice_directory,
        Action::Fail(429),
        None,
    );
    let err = bobs.sync().await.unwrap_err();
    assert!(matches!(err, Error::RateLimited { .. }), "{err:?}");
    assert!(bobs.conversations().await.is_empty());
    let meanwhile = bob_events.drain(Duration::from_millis(500)).await;
    assert!(
        meanwhile.is_empty(),
        "nothing joined, nothing refused: {meanwhile:?}"
    );

    // The directory answers again: the same Welcome opens.
    proxy.clear();
    bobs.sync().await.unwrap();
    let seen = bob_events.until(|e| joined(e, chat.id())).await;
    assert!(
        !seen.iter().any(|e| matches!(e, Event::Rejected { .. })),
        "{seen:?}"
    );
    assert_eq!(bob_events.texts(1).await[0].1, "first");
}

/// Runs `call` until the server has answered `route` once more than before (the proxy
/// forwards and never passes the answer on), then drops it: the app died waiting.
async fn crash_once_answered<T>(
    stack: &Stack,
    method: &str,
    route: &str,
    call: impl std::future::Future<Output = T>,
) {
    let before = stack.server.request_count(method, route).await;
    let answered = async {
        while stack.server.request_count(method, route).await == before {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::select! {
        _ = call => panic!("the call returned although its answer never came"),
        waited = tokio::time::timeout(Duration::from_secs(60), answered) => {
            waited.expect("the server answered the forwarded request");
        }
    }
    // Let the call go on waiting a moment, as a real app would, before it dies.
    tokio::time::sleep(Duration::from_millis(50)).await;
}

/// Alice's device creates a conversation; the server accepts the commit but the answer
/// never comes, and the app is killed while waiting. Restarted from its store, the
/// device sends the same commit again, the server answers it as the replay it is, and
/// the device carries on at the epoch the server ordered: Bob reads what it sends.
#[tokio::test]
async fn a_commit_whose_answer_was_lost_is_resubmitted_after_a_restart() {
    let (stack, proxy, alice, bob) = two_contacts().await;
    let bobs = stack.cloak(bob.id).await;
    let mut bob_events = Listener::new(&bobs);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alice.db");
    let open = || {
        stack
            .cloak_builder(alice.id, &proxy.base_url)
            .store(&path, StoreKey::from_bytes([9; 32]))
            .build()
    };
    let phone = open().await.unwrap();

    proxy.rule("POST", |p| p.ends_with("/commits"), Action::Hang, Some(1));
    crash_once_answered(
        &stack,
        "POST",
        "/v1/conversations/{id}/commits",
        phone.conversation_with(bob.id),
    )
    .await;
    phone.shutdown().await;
    drop(phone);

    let phone = open().await.unwrap();
    phone.sync().await.unwrap();
    let chat = phone.conversations().await.pop().expect("kept");
    assert_eq!(chat.members().await.unwrap().len(), 2);
    chat.send_text("after the restart").await.unwrap();
    bob_events.until(|e| joined(e, chat.id())).await;
    assert_eq!(bob_events.texts(1).await[0].1, "after the restart");
}

/// Bob's device uploads KeyPackages while it starts and is killed before hearing back.
/// The packages reached the server; their private parts were stored before they left,
/// so the restarted device opens the Welcome that one of them brings.
#[tokio::test]
async fn key_packages_are_stored_before_they_are_uploaded() {
    let (stack, proxy, alice, bob) = two_contacts().await;
    let phone = stack.cloak(alice.id).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bob.db");
    let open = || {
        stack
            .cloak_builder(bob.id, &proxy.base_url)
            .store(&path, StoreKey::from_bytes([9; 32]))
            .build()
    };

    proxy.rule("POST", |p| p == "/v1/key-packages", Action::Hang, Some(1));
    crash_once_answered(&stack, "POST", "/v1/key-packages", open()).await;

    let chat = phone.conversation_with(bob.id).await.unwrap();
    assert_eq!(
        chat.members().await.unwrap().len(),
        2,
        "bob's package was claimed"
    );
    chat.send_text("can you read this").await.unwrap();
    let bobs = open().await.unwrap();
    let mut bob_events = Listener::new(&bobs);
    let seen = bob_events.until(|e| joined(e, chat.id())).await;
    assert!(
        !seen.iter().any(|e| matches!(e, Event::Rejected { .. })),
        "{seen:?}"
    );
    assert_eq!(bob_events.texts(1).await[0].1, "can you read this");
}
