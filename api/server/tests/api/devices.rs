//! Devices: register → login → approve, challenge rules, revocation, directory access.

use serde_json::{Value, json};

use crate::backend_tests;
use crate::helpers::{Backend, assert_problem, spawn_app, spawn_on};
use crate::identity_helpers::{b64, unb64};

async fn register_login_approve_flow(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.create_user("alice").await;
    let phone = app.new_device(alice).await;
    assert_eq!(
        phone.status, "approved",
        "a user's first device is approved"
    );
    let laptop = app.new_device(alice).await;
    assert_eq!(laptop.status, "pending", "later devices wait for approval");

    // Re-registering the same key is idempotent.
    let again = app
        .post_json(
            "/v1/devices",
            &app.user_token(alice).await,
            &json!({"identity_key": b64(&laptop.public_key())}),
        )
        .await;
    assert_eq!(again.status(), 200);
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["id"], laptop.id.to_string());

    // A pending device may log in and list its user's devices, but not act as approved.
    let mine: Value = app
        .get("/v1/devices", &laptop.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(mine["items"].as_array().unwrap().len(), 2);
    let claim = app
        .post_json(
            &format!("/v1/users/{alice}/key-packages/claim"),
            &laptop.token,
            &json!({}),
        )
        .await;
    assert_problem(claim, 403, "device_pending").await;
    assert_problem(
        app.approve(&laptop, &phone, app.clock_ms()).await,
        403,
        "device_pending",
    )
    .await;

    let resp = app.approve(&phone, &laptop, app.clock_ms()).await;
    assert_eq!(resp.status(), 200);
    let approved: Value = resp.json().await.unwrap();
    assert_eq!(approved["status"], "approved");
    assert_eq!(approved["approved_by"], phone.id.to_string());

    // The directory carries a signature anyone can check against the approver's key.
    let dir: Value = app
        .get(&format!("/v1/users/{alice}/devices"), &laptop.token)
        .await
        .json()
        .await
        .unwrap();
    let entry = dir["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == laptop.id.to_string())
        .unwrap();
    let sig = ed25519_dalek::Signature::from_slice(&unb64(&entry["approval_signature"])).unwrap();
    let msg = cloak_proto::signing::approval_message(
        phone.tenant_id,
        alice,
        &laptop.public_key(),
        entry["approved_at_ms"].as_i64().unwrap(),
    );
    phone.key.verifying_key().verify_strict(&msg, &sig).unwrap();

    assert_problem(
        app.approve(&phone, &laptop, app.clock_ms()).await,
        409,
        "device_not_pending",
    )
    .await;
}

async fn approvals_must_be_signed_fresh_and_same_user(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.create_user("alice").await;
    let bob = app.create_user("bob").await;
    let phone = app.new_device(alice).await;
    let laptop = app.new_device(alice).await;
    let bobs = app.new_device(bob).await;

    // Signed by the wrong key: bob's key pretending to be alice's phone.
    let msg = cloak_proto::signing::approval_message(
        phone.tenant_id,
        alice,
        &laptop.public_key(),
        app.clock_ms(),
    );
    let forged = ed25519_dalek::Signer::sign(&bobs.key, &msg).to_bytes();
    let resp = app
        .post_json(
            &format!("/v1/devices/{}/approve", laptop.id),
            &phone.token,
            &json!({"approved_at_ms": app.clock_ms(), "signature": b64(&forged)}),
        )
        .await;
    assert_problem(resp, 400, "invalid_signature").await;
    let resp = app
        .post_json(
            &format!("/v1/devices/{}/approve", laptop.id),
            &phone.token,
            &json!({"approved_at_ms": app.clock_ms(), "signature": b64(&[0u8; 10])}),
        )
        .await;
    assert_problem(resp, 400, "invalid_signature").await;
    assert_problem(
        app.approve(&phone, &laptop, app.clock_ms() - 10 * 60 * 1000)
            .await,
        400,
        "approval_time_skew",
    )
    .await;
    // Another user's device cannot approve, nor be approved.
    assert_problem(
        app.approve(&bobs, &laptop, app.clock_ms()).await,
        404,
        "not_found",
    )
    .await;
    let bob_laptop = app.new_device(bob).await;
    assert_problem(
        app.approve(&phone, &bob_laptop, app.clock_ms()).await,
        404,
        "not_found",
    )
    .await;
    let status: Value = app
        .get("/v1/devices", &laptop.token)
        .await
        .json()
        .await
        .unwrap();
    assert!(
        status["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["id"] == laptop.id.to_string() && d["status"] == "pending")
    );
}

async fn challenges_are_single_use_and_expire(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.create_user("alice").await;
    let phone = app.new_device(alice).await;

    let (nonce, sig) = app.signed_challenge(&phone).await;
    assert_eq!(app.login_with(phone.id, &nonce, &sig).await.status(), 200);
    assert_problem(
        app.login_with(phone.id, &nonce, &sig).await,
        401,
        "invalid_challenge",
    )
    .await;

    let (nonce, sig) = app.signed_challenge(&phone).await;
    app.clock.advance_ms(61_000);
    assert_problem(
        app.login_with(phone.id, &nonce, &sig).await,
        401,
        "invalid_challenge",
    )
    .await;

    let (nonce, mut sig) = app.signed_challenge(&phone).await;
    sig[0] ^= 1;
    assert_problem(
        app.login_with(phone.id, &nonce, &sig).await,
        401,
        "invalid_login",
    )
    .await;
    // The failed attempt used the challenge up.
    sig[0] ^= 1;
    assert_problem(
        app.login_with(phone.id, &nonce, &sig).await,
        401,
        "invalid_challenge",
    )
    .await;

    // A challenge for one device cannot log in another.
    let other = app.new_device(alice).await;
    let (nonce, sig) = app.signed_challenge(&phone).await;
    assert_problem(
        app.login_with(other.id, &nonce, &sig).await,
        401,
        "invalid_challenge",
    )
    .await;
    assert_problem(
        app.login_with(phone.id, &[1, 2, 3], &sig).await,
        401,
        "invalid_challenge",
    )
    .await;

    assert_problem(app.challenge(uuid::Uuid::new_v4()).await, 404, "not_found").await;

    // Device tokens expire after an hour.
    let token = app.login(&phone).await;
    app.clock.advance_ms(60 * 60 * 1000);
    assert_problem(app.get("/v1/devices", &token).await, 401, "token_expired").await;
}

async fn revoked_devices_lose_access_at_once_on_every_node(backend: Backend) {
    let app = spawn_app(backend).await;
    let (node_b, _) = spawn_on(backend, &app.db).await;
    let alice = app.create_user("alice").await;
    let phone = app.new_device(alice).await;
    let laptop = app.new_device(alice).await;
    assert_eq!(
        app.approve(&phone, &laptop, app.clock_ms()).await.status(),
        200
    );
    let via_b = |token: String| {
        app.client
            .get(format!("{node_b}/v1/devices"))
            .bearer_auth(token)
            .send()
    };
    assert_eq!(via_b(laptop.token.clone()).await.unwrap().status(), 200);

    assert_eq!(
        app.delete(&format!("/v1/devices/{}", laptop.id), &phone.token)
            .await
            .status(),
        204
    );
    assert_problem(
        app.get("/v1/devices", &laptop.token).await,
        401,
        "device_revoked",
    )
    .await;
    assert_problem(
        via_b(laptop.token.clone()).await.unwrap(),
        401,
        "device_revoked",
    )
    .await;
    assert_problem(app.challenge(laptop.id).await, 401, "device_revoked").await;

    // Re-registering a revoked key does not bring it back.
    let resp = app
        .post_json(
            "/v1/devices",
            &app.user_token(alice).await,
            &json!({"identity_key": b64(&laptop.public_key())}),
        )
        .await;
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["status"], "revoked");

    // The tenant may revoke too; then the user's next device is approved as a first device.
    assert_eq!(
        app.delete(&format!("/v1/devices/{}", phone.id), &app.api_key)
            .await
            .status(),
        204
    );
    assert_problem(
        app.get("/v1/devices", &phone.token).await,
        401,
        "device_revoked",
    )
    .await;
    let fresh = app.new_device(alice).await;
    assert_eq!(fresh.status, "approved");
}

async fn suspension_stops_device_tokens(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.create_user("alice").await;
    let phone = app.new_device(alice).await;
    let resp = app
        .client
        .patch(app.url(&format!("/v1/users/{alice}")))
        .bearer_auth(&app.api_key)
        .json(&json!({"suspended": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_problem(
        app.get("/v1/devices", &phone.token).await,
        401,
        "user_suspended",
    )
    .await;
    let (nonce, sig) = app.signed_challenge(&phone).await;
    assert_problem(
        app.login_with(phone.id, &nonce, &sig).await,
        401,
        "user_suspended",
    )
    .await;
}

async fn directory_is_visible_to_self_contacts_and_tenant_only(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.create_user("alice").await;
    let bob = app.create_user("bob").await;
    let carol = app.create_user("carol").await;
    let a = app.new_device(alice).await;
    let b = app.new_device(bob).await;
    let _c = app.new_device(carol).await;

    assert_problem(
        app.get(&format!("/v1/users/{bob}/devices"), &a.token).await,
        404,
        "not_found",
    )
    .await;
    app.make_contacts(alice, bob).await;
    app.make_contacts(alice, bob).await; // idempotent
    let dir: Value = app
        .get(&format!("/v1/users/{bob}/devices"), &a.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(dir["items"][0]["id"], b.id.to_string());
    let back: Value = app
        .get(&format!("/v1/users/{alice}/devices"), &b.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(back["items"][0]["id"], a.id.to_string());
    assert_problem(
        app.get(&format!("/v1/users/{carol}/devices"), &a.token)
            .await,
        404,
        "not_found",
    )
    .await;
    let tenant: Value = app
        .get(&format!("/v1/users/{carol}/devices"), &app.api_key)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(tenant["items"].as_array().unwrap().len(), 1);

    let self_contact = app
        .post_json(
            "/v1/contacts",
            &app.api_key,
            &json!({"user_id": alice, "contact_user_id": alice}),
        )
        .await;
    assert_problem(self_contact, 400, "self_contact").await;
    let ghost = app
        .post_json(
            "/v1/contacts",
            &app.api_key,
            &json!({"user_id": alice, "contact_user_id": uuid::Uuid::new_v4()}),
        )
        .await;
    assert_problem(ghost, 404, "not_found").await;
}

async fn bad_identity_keys_are_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.create_user("alice").await;
    let bob = app.create_user("bob").await;
    let token = app.user_token(alice).await;
    for key in [vec![1u8; 31], vec![0u8; 32]] {
        let resp = app
            .post_json("/v1/devices", &token, &json!({"identity_key": b64(&key)}))
            .await;
        assert_problem(resp, 400, "invalid_identity_key").await;
    }
    let resp = app
        .post_json("/v1/devices", &token, &json!({"identity_key": "%%%"}))
        .await;
    assert_problem(resp, 400, "invalid_json").await;
    let a = app.new_device(alice).await;
    let resp = app
        .post_json(
            "/v1/devices",
            &app.user_token(bob).await,
            &json!({"identity_key": b64(&a.public_key())}),
        )
        .await;
    assert_problem(resp, 409, "identity_key_in_use").await;
    // A device token is not a user token and vice versa.
    let resp = app
        .post_json(
            "/v1/devices",
            &a.token,
            &json!({"identity_key": b64(&[7u8; 32])}),
        )
        .await;
    assert_problem(resp, 401, "invalid_token").await;
    assert_problem(app.get("/v1/devices", &token).await, 401, "invalid_token").await;
}

backend_tests!(
    register_login_approve_flow,
    approvals_must_be_signed_fresh_and_same_user,
    challenges_are_single_use_and_expire,
    revoked_devices_lose_access_at_once_on_every_node,
    suspension_stops_device_tokens,
    directory_is_visible_to_self_contacts_and_tenant_only,
    bad_identity_keys_are_refused,
);
