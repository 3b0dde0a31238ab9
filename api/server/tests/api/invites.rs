//! Invites: minting, QR codes that decode to the link, the landing page, redemption
//! (contacts, idempotency, last use raced, expiry, revocation).

use serde_json::{Value, json};

use crate::backend_tests;
use crate::helpers::{Backend, TestApp, assert_problem, spawn_app};

async fn invite(app: &TestApp, inviter: uuid::Uuid, max_uses: u32) -> Value {
    let resp = app
        .post_json(
            "/v1/invites",
            &app.api_key,
            &json!({"inviter_user_id": inviter, "max_uses": max_uses, "expires_in_secs": 3600, "note": "launch"}),
        )
        .await;
    assert_eq!(resp.status(), 201);
    resp.json().await.unwrap()
}

fn decode_png_qr(png_bytes: &[u8]) -> String {
    let decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let (w, h) = (info.width as usize, info.height as usize);
    let mut img = rqrr::PreparedImage::prepare_from_greyscale(w, h, |x, y| buf[y * w + x]);
    let grids = img.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code in the PNG");
    grids[0].decode().unwrap().1
}

async fn invites_carry_the_link_with_fingerprint_as_qr_codes(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.create_user("alice").await;
    let phone = app.new_device(alice).await;
    let inv = invite(&app, alice, 3).await;
    let code = inv["code"].as_str().unwrap();
    assert_eq!(code.len(), 22, "128 bits, base64url");
    let fp = cloak_sdk_free_fingerprint(&phone.public_key());
    assert_eq!(inv["url"], format!("{}/i/{code}#fp={fp}", app.address));
    assert_eq!(
        (
            inv["uses"].as_u64(),
            inv["max_uses"].as_u64(),
            inv["revoked"].as_bool()
        ),
        (Some(0), Some(3), Some(false))
    );

    let png = app
        .get(&format!("/v1/invites/{code}/qr.png"), &app.api_key)
        .await;
    assert_eq!(png.headers()["content-type"], "image/png");
    assert_eq!(
        decode_png_qr(&png.bytes().await.unwrap()),
        inv["url"].as_str().unwrap()
    );
    let svg = app
        .get(&format!("/v1/invites/{code}/qr.svg"), &app.api_key)
        .await
        .text()
        .await
        .unwrap();
    assert!(svg.contains("<svg"), "{svg}");

    let got: Value = app
        .get(&format!("/v1/invites/{code}"), &app.api_key)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(got, inv);
    let list: Value = app
        .get(&format!("/v1/users/{alice}/invites"), &app.api_key)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"][0]["code"], code);

    let bad = app
        .post_json(
            "/v1/invites",
            &app.api_key,
            &json!({"inviter_user_id": alice, "max_uses": 0, "expires_in_secs": 3600}),
        )
        .await;
    assert_problem(bad, 400, "validation_failed").await;
    let ghost = app
        .post_json("/v1/invites", &app.api_key, &json!({"inviter_user_id": uuid::Uuid::new_v4(), "max_uses": 1, "expires_in_secs": 3600}))
        .await;
    assert_problem(ghost, 404, "not_found").await;
}

/// The SDK's fingerprint: lowercase hex of SHA-256 of the identity key.
fn cloak_sdk_free_fingerprint(key: &[u8; 32]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(key))
}

async fn redeeming_makes_contacts_once_and_refuses_dead_invites(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.create_user("alice").await;
    let bob = app.create_user("bob").await;
    let carol = app.create_user("carol").await;
    let a = app.new_device(alice).await;
    let b = app.new_device(bob).await;
    let c = app.new_device(carol).await;
    let inv = invite(&app, alice, 1).await;
    let code = inv["code"].as_str().unwrap();
    let redeem = |token: String| {
        let url = app.url(&format!("/v1/invites/{code}/redeem"));
        let client = app.client.clone();
        async move { client.post(url).bearer_auth(token).send().await.unwrap() }
    };

    assert_problem(
        app.get(&format!("/v1/users/{alice}/devices"), &b.token)
            .await,
        404,
        "not_found",
    )
    .await;
    let r: Value = redeem(b.token.clone()).await.json().await.unwrap();
    assert_eq!(
        r,
        json!({"inviter_user_id": alice, "already_redeemed": false})
    );
    assert_eq!(
        app.get(&format!("/v1/users/{alice}/devices"), &b.token)
            .await
            .status(),
        200,
        "now contacts"
    );
    assert_eq!(
        app.get(&format!("/v1/users/{bob}/devices"), &a.token)
            .await
            .status(),
        200
    );
    let again: Value = redeem(b.token.clone()).await.json().await.unwrap();
    assert_eq!(again["already_redeemed"], true);
    assert_problem(redeem(c.token.clone()).await, 410, "invite_used_up").await;
    assert_problem(redeem(a.token.clone()).await, 400, "own_invite").await;

    let revoked = invite(&app, alice, 5).await;
    let rc = revoked["code"].as_str().unwrap();
    assert_eq!(
        app.delete(&format!("/v1/invites/{rc}"), &app.api_key)
            .await
            .status(),
        204
    );
    let resp = app
        .client
        .post(app.url(&format!("/v1/invites/{rc}/redeem")))
        .bearer_auth(&c.token)
        .send()
        .await
        .unwrap();
    assert_problem(resp, 410, "invite_revoked").await;

    let expiring = invite(&app, alice, 5).await;
    let ec = expiring["code"].as_str().unwrap();
    app.clock.advance_ms(3_600_001);
    let c_token = app.login(&c).await;
    let resp = app
        .client
        .post(app.url(&format!("/v1/invites/{ec}/redeem")))
        .bearer_auth(&c_token)
        .send()
        .await
        .unwrap();
    assert_problem(resp, 410, "invite_expired").await;
    let resp = app
        .client
        .post(app.url("/v1/invites/nope/redeem"))
        .bearer_auth(&c_token)
        .send()
        .await
        .unwrap();
    assert_problem(resp, 404, "not_found").await;
}

async fn two_users_racing_for_the_last_use_one_wins(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.create_user("alice").await;
    let inv = invite(&app, alice, 1).await;
    let code = inv["code"].as_str().unwrap().to_owned();
    let mut tokens = Vec::new();
    for i in 0..6 {
        let u = app.create_user(&format!("racer-{i}")).await;
        tokens.push(app.new_device(u).await.token);
    }
    let attempts = tokens.iter().map(|t| {
        app.client
            .post(app.url(&format!("/v1/invites/{code}/redeem")))
            .bearer_auth(t)
            .send()
    });
    let results = futures_util::future::join_all(attempts).await;
    let statuses: Vec<u16> = results
        .into_iter()
        .map(|r| r.unwrap().status().as_u16())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 410).count(),
        5,
        "{statuses:?}"
    );
    let got: Value = app
        .get(&format!("/v1/invites/{code}"), &app.api_key)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(got["uses"], 1);
}

async fn the_landing_page_shows_the_qr_and_the_state(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.create_user("alice").await;
    app.new_device(alice).await;
    let inv = invite(&app, alice, 1).await;
    let code = inv["code"].as_str().unwrap();
    let resp = app
        .client
        .get(app.url(&format!("/i/{code}")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'none'")
    );
    let html = resp.text().await.unwrap();
    assert!(
        html.contains("data-state=\"valid\"") && html.contains("alice invites you"),
        "{html}"
    );
    assert!(html.contains("<svg") && html.contains("Open in app"));
    assert!(html.contains(&inv["url"].as_str().unwrap().replace('&', "&amp;")));
    assert!(!html.contains("src=\"http"), "no external assets");

    assert_eq!(
        app.delete(&format!("/v1/invites/{code}"), &app.api_key)
            .await
            .status(),
        204
    );
    let gone = app
        .client
        .get(app.url(&format!("/i/{code}")))
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 410);
    assert!(
        gone.text()
            .await
            .unwrap()
            .contains("data-state=\"invite_revoked\"")
    );
    let missing = app
        .client
        .get(app.url("/i/does-not-exist"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
}

async fn other_tenants_cannot_touch_invites(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.create_user("alice").await;
    let inv = invite(&app, alice, 1).await;
    let code = inv["code"].as_str().unwrap();
    let (_, other_key) = crate::helpers::create_tenant(app.store.as_ref(), "Other").await;
    for path in [
        format!("/v1/invites/{code}"),
        format!("/v1/invites/{code}/qr.png"),
        format!("/v1/users/{alice}/invites"),
    ] {
        assert_problem(app.get(&path, &other_key).await, 404, "not_found").await;
    }
    assert_problem(
        app.delete(&format!("/v1/invites/{code}"), &other_key).await,
        404,
        "not_found",
    )
    .await;
    let got: Value = app
        .get(&format!("/v1/invites/{code}"), &app.api_key)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(got["revoked"], false);
}

backend_tests!(
    invites_carry_the_link_with_fingerprint_as_qr_codes,
    redeeming_makes_contacts_once_and_refuses_dead_invites,
    two_users_racing_for_the_last_use_one_wins,
    the_landing_page_shows_the_qr_and_the_state,
    other_tenants_cannot_touch_invites,
);
