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

async fn a_device_invites_as_its_own_user_and_lists_contacts(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.create_user("alice").await;
    let bob = app.create_user("bob").await;
    let a = app.new_device(alice).await;
    let b = app.new_device(bob).await;
    let body = json!({"max_uses": 1, "expires_in_secs": 600});
    let resp = app.post_json("/v1/invites", &a.token, &body).await;
    assert_eq!(resp.status(), 201);
    let inv: Value = resp.json().await.unwrap();
    assert_eq!(inv["inviter_user_id"], json!(alice));
    // A device cannot invite as someone else; a tenant must name the inviter.
    assert_problem(
        app.post_json(
            "/v1/invites",
            &a.token,
            &json!({"inviter_user_id": bob, "max_uses": 1, "expires_in_secs": 600}),
        )
        .await,
        403,
        "not_own_user",
    )
    .await;
    assert_problem(
        app.post_json("/v1/invites", &app.api_key, &body).await,
        400,
        "inviter_required",
    )
    .await;
    // A pending device cannot invite.
    let second = app.new_device(alice).await;
    assert_eq!(second.status, "pending");
    assert_problem(
        app.post_json("/v1/invites", &second.token, &body).await,
        403,
        "device_pending",
    )
    .await;

    let none: Value = app
        .get("/v1/contacts", &b.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(none["items"], json!([]));
    let code = inv["code"].as_str().unwrap();
    let r = app
        .post_json(&format!("/v1/invites/{code}/redeem"), &b.token, &json!({}))
        .await;
    assert_eq!(r.status(), 200);
    let contacts: Value = app
        .get("/v1/contacts", &b.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(contacts["items"].as_array().unwrap().len(), 1, "{contacts}");
    assert_eq!(contacts["items"][0]["user_id"], json!(alice));
    assert_eq!(contacts["items"][0]["external_id"], "alice");
    let theirs: Value = app
        .get("/v1/contacts", &a.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(theirs["items"][0]["user_id"], json!(bob));
    assert_problem(
        app.get("/v1/contacts", &app.api_key).await,
        401,
        "invalid_token",
    )
    .await;
}

async fn tenant_settings_shape_the_landing_page(backend: Backend) {
    let app = spawn_app(backend).await;
    let settings: Value = app
        .get("/v1/tenant", &app.api_key)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(settings["message_retention_secs"], 30 * 24 * 3600);
    assert!(settings.get("open_in_app_template").is_none(), "{settings}");
    for bad in [
        "javascript:alert({code})",
        "myapp://join",
        "not a url {code}",
    ] {
        let resp = app
            .client
            .patch(app.url("/v1/tenant"))
            .bearer_auth(&app.api_key)
            .json(&json!({"open_in_app_template": bad}))
            .send()
            .await
            .unwrap();
        assert_problem(resp, 400, "invalid_template").await;
    }
    let resp = app
        .client
        .patch(app.url("/v1/tenant"))
        .bearer_auth(&app.api_key)
        .json(&json!({"open_in_app_template": "myapp://join?invite={link}&c={code}", "message_retention_secs": 86400}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let settings: Value = resp.json().await.unwrap();
    assert_eq!(settings["message_retention_secs"], 86400);

    let alice = app.create_user("alice").await;
    app.new_device(alice).await;
    let inv = invite(&app, alice, 1).await;
    let code = inv["code"].as_str().unwrap();
    let html = app
        .client
        .get(app.url(&format!("/i/{code}")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let link = inv["url"].as_str().unwrap();
    let encoded: String =
        percent_encoding::utf8_percent_encode(link, percent_encoding::NON_ALPHANUMERIC).to_string();
    let expected = format!("href=\"myapp://join?invite={encoded}&amp;c={code}\"");
    assert!(html.contains(&expected), "{expected} in {html}");

    // An empty template removes it: the button opens the invite link again.
    let resp = app
        .client
        .patch(app.url("/v1/tenant"))
        .bearer_auth(&app.api_key)
        .json(&json!({"open_in_app_template": ""}))
        .send()
        .await
        .unwrap();
    let settings: Value = resp.json().await.unwrap();
    assert!(settings.get("open_in_app_template").is_none(), "{settings}");
    assert_eq!(settings["message_retention_secs"], 86400, "kept");
    let html = app
        .client
        .get(app.url(&format!("/i/{code}")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains(&format!("href=\"{link}\"")), "{html}");
}

/// A newcomer's first invite needs only the inviter: one use, valid for 7 days.
async fn an_invite_has_defaults(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.create_user("alice").await;
    let resp = app
        .post_json(
            "/v1/invites",
            &app.api_key,
            &json!({"inviter_user_id": alice}),
        )
        .await;
    assert_eq!(resp.status(), 201);
    let invite: Value = resp.json().await.unwrap();
    assert_eq!(invite["max_uses"], 1);
    let expires = time::OffsetDateTime::parse(
        invite["expires_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let lifetime = expires.unix_timestamp() * 1000 - app.clock_ms();
    assert!(
        (7 * 24 * 3600 * 1000 - 2_000..=7 * 24 * 3600 * 1000).contains(&lifetime),
        "{lifetime}"
    );
}

backend_tests!(
    an_invite_has_defaults,
    a_device_invites_as_its_own_user_and_lists_contacts,
    tenant_settings_shape_the_landing_page,
    invites_carry_the_link_with_fingerprint_as_qr_codes,
    redeeming_makes_contacts_once_and_refuses_dead_invites,
    two_users_racing_for_the_last_use_one_wins,
    the_landing_page_shows_the_qr_and_the_state,
    other_tenants_cannot_touch_invites,
);
