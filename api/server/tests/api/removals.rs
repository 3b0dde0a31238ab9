//! The server as the MLS groups' external sender: it proposes removing revoked and
//! long-inactive devices, once per epoch, until a member's commit carries the removal out.

use std::time::Duration;

use serde_json::{Value, json};
use uuid::Uuid;

use crate::delivery_helpers::{body_of, commit_frame, welcome_frame};
use crate::helpers::{Backend, TestApp, spawn_app};
use crate::identity_helpers::{TestDevice, b64};

/// A commit at `epoch` that adds devices (at the given leaves) and removes others.
async fn commit_leaves(
    app: &TestApp,
    by: &TestDevice,
    conv: Uuid,
    epoch: u64,
    add: &[(Uuid, u32)],
    remove: &[Uuid],
) {
    let mut body = json!({
        "client_msg_id": Uuid::new_v4(),
        "epoch": epoch,
        "commit": b64(&commit_frame(conv, epoch)),
        "add": add.iter().map(|a| a.0).collect::<Vec<_>>(),
        "leaf_indices": add.iter().map(|a| a.1).collect::<Vec<_>>(),
        "remove": remove,
    });
    if !add.is_empty() {
        body["welcome"] = json!(b64(&welcome_frame(add.len())));
    }
    let resp = app
        .post_json(
            &format!("/v1/conversations/{conv}/commits"),
            &by.token,
            &body,
        )
        .await;
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
}

/// The (epoch, removed leaf) of each proposal in the device's mailbox, after checking the
/// framing the server wrote: a public message from external sender 0 holding a Remove.
async fn proposals(app: &TestApp, device: &TestDevice, conv: Uuid) -> Vec<(u64, u32)> {
    let mut out = Vec::new();
    for entry in app.mailbox(device, 0).await {
        if entry["kind"] != "proposal" {
            continue;
        }
        assert_eq!(entry["sender_device_id"], Uuid::nil().to_string());
        assert_eq!(entry["conversation_id"], conv.to_string());
        let body = body_of(&entry);
        let epoch = entry["epoch"].as_u64().unwrap();
        // version 1, public message, group id (16 bytes), epoch, external sender 0, no
        // authenticated data, content type proposal, proposal type Remove, the leaf.
        let mut head = vec![0, 1, 0, 1, 16];
        head.extend_from_slice(conv.as_bytes());
        head.extend_from_slice(&epoch.to_be_bytes());
        head.extend_from_slice(&[2, 0, 0, 0, 0, 0, 2, 0, 3]);
        assert_eq!(&body[..head.len()], head.as_slice(), "{entry}");
        let leaf = u32::from_be_bytes(body[head.len()..head.len() + 4].try_into().unwrap());
        out.push((epoch, leaf));
    }
    out
}

/// Waits (up to 10 s; the worker polls every 50 ms) until `done` holds for the proposals.
async fn wait_for(
    app: &TestApp,
    device: &TestDevice,
    conv: Uuid,
    done: impl Fn(&[(u64, u32)]) -> bool,
) -> Vec<(u64, u32)> {
    for _ in 0..200 {
        let got = proposals(app, device, conv).await;
        if done(&got) {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "proposals never matched: {:?}",
        proposals(app, device, conv).await
    );
}

/// a (leaf 0) with b (leaf 1) and b's laptop (leaf 2), at epoch 1.
async fn three_devices(app: &TestApp) -> (TestDevice, TestDevice, TestDevice, Uuid) {
    let alice = app.create_user("alice").await;
    let bob = app.create_user("bob").await;
    app.make_contacts(alice, bob).await;
    let (a, b) = (app.new_device(alice).await, app.new_device(bob).await);
    let laptop = app.new_device(bob).await;
    assert_eq!(app.approve(&b, &laptop, app.clock_ms()).await.status(), 200);
    let conv = Uuid::new_v4();
    let resp = app
        .post_json(
            "/v1/conversations",
            &a.token,
            &json!({"conversation_id": conv}),
        )
        .await;
    assert_eq!(resp.status(), 201);
    commit_leaves(app, &a, conv, 0, &[(b.id, 1), (laptop.id, 2)], &[]).await;
    (a, b, laptop, conv)
}

async fn the_external_sender_key_is_published(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.create_user("alice").await;
    let a = app.new_device(alice).await;
    let info: Value = app.get_json("/v1/mls/external-sender", &a.token).await;
    assert_eq!(info["ciphersuite"], 1);
    assert_eq!(
        crate::identity_helpers::unb64(&info["signature_key"]).len(),
        32
    );
    assert_eq!(
        crate::identity_helpers::unb64(&info["identity"]),
        b"cloak-delivery-service"
    );
    // Stable across requests (every node derives the same key).
    let again: Value = app.get_json("/v1/mls/external-sender", &a.token).await;
    assert_eq!(info, again);
    let resp = app
        .client
        .get(app.url("/v1/mls/external-sender"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
}

/// A revoked device's removal is proposed to the members at once, proposed again after a
/// commit that did not carry it out, and no more after one that did.
async fn a_revoked_devices_removal_is_proposed_until_committed(backend: Backend) {
    let app = spawn_app(backend).await;
    let (a, b, laptop, conv) = three_devices(&app).await;
    assert_eq!(
        app.delete(&format!("/v1/devices/{}", laptop.id), &b.token)
            .await
            .status(),
        204
    );
    let got = wait_for(&app, &a, conv, |p| !p.is_empty()).await;
    assert_eq!(got, vec![(1, 2)]);
    // Once per epoch, for every member still in the conversation.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(proposals(&app, &a, conv).await, vec![(1, 2)]);
    assert_eq!(proposals(&app, &b, conv).await, vec![(1, 2)]);
    // A commit that adds someone (leaf 3) outdates the proposal: it comes again at epoch 2.
    let carol_user = app.create_user("carol").await;
    app.make_contacts(a.user_id, carol_user).await;
    let carol = app.new_device(carol_user).await;
    commit_leaves(&app, &a, conv, 1, &[(carol.id, 3)], &[]).await;
    let got = wait_for(&app, &b, conv, |p| p.len() == 2).await;
    assert_eq!(got, vec![(1, 2), (2, 2)]);
    assert_eq!(proposals(&app, &carol, conv).await, vec![(2, 2)]);
    // The commit that removes it ends the proposals.
    commit_leaves(&app, &b, conv, 2, &[], &[laptop.id]).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(proposals(&app, &carol, conv).await, vec![(2, 2)]);
}

/// A device that has not logged in for longer than its tenant's retention is proposed for
/// removal; logging in again cancels what is not proposed yet.
async fn an_inactive_devices_removal_is_proposed_and_a_login_cancels_it(backend: Backend) {
    let app = spawn_app(backend).await;
    let (mut a, mut b, laptop, conv) = three_devices(&app).await;
    let day = 24 * 3600 * 1000;
    app.clock.advance_ms(31 * day);
    // The members log in again (device tokens last an hour); the laptop does not.
    a.token = app.login(&a).await;
    b.token = app.login(&b).await;
    // a and b may have been found inactive too before they logged in: only the laptop's
    // leaf is certain, and it comes.
    wait_for(&app, &a, conv, |p| p.contains(&(1, 2))).await;
    // The laptop comes back: no proposal for it at later epochs.
    app.login(&laptop).await;
    commit_leaves(&app, &a, conv, 1, &[], &[]).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let later: Vec<(u64, u32)> = proposals(&app, &b, conv)
        .await
        .into_iter()
        .filter(|p| p.0 == 2)
        .collect();
    assert!(later.is_empty(), "{later:?}");
}

crate::backend_tests!(
    the_external_sender_key_is_published,
    a_revoked_devices_removal_is_proposed_until_committed,
    an_inactive_devices_removal_is_proposed_and_a_login_cancels_it,
);
