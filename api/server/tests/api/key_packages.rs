//! The KeyPackage directory: upload, stock, claims (one-time at most once), expiry.

use std::collections::HashSet;

use serde_json::{Value, json};

use crate::backend_tests;
use crate::helpers::{Backend, TestApp, assert_problem, spawn_app, spawn_with_clock};
use crate::identity_helpers::{TestDevice, b64, unb64};

fn package(tag: &str, i: usize, not_after: i64) -> Value {
    json!({"hash_ref": b64(format!("{tag}-{i}").as_bytes()), "data": b64(format!("kp {tag} {i}").as_bytes()), "not_after": not_after})
}

async fn upload(app: &TestApp, device: &TestDevice, one_time: usize, last_resort: bool) -> Value {
    let not_after = app.clock_ms() / 1000 + 30 * 24 * 3600;
    let mut body = json!({ "key_packages": (0..one_time).map(|i| package("ot", i, not_after)).collect::<Vec<_>>() });
    if last_resort {
        body["last_resort"] = package("lr", 0, not_after);
    }
    let resp = app
        .post_json("/v1/key-packages", &device.token, &body)
        .await;
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

async fn fifty_concurrent_claims_on_two_nodes_never_duplicate(backend: Backend) {
    let app = spawn_app(backend).await;
    // On the app's frozen clock too: the nodes share one claim limiter (Redis), and a node
    // on the real clock minutes ahead of the frozen one would look like a burst.
    let (node_b, _) = spawn_with_clock(backend, &app.db, app.clock.clone()).await;
    let alice = app.create_user("alice").await;
    let bob = app.create_user("bob").await;
    app.make_contacts(alice, bob).await;
    let alices = app.new_device(alice).await;
    let bobs = app.new_device(bob).await;
    let stock = upload(&app, &alices, 20, true).await;
    assert_eq!(
        stock,
        json!({"one_time": 20, "last_resort": true, "low": false})
    );

    let claims = (0..50).map(|i| {
        let base = if i % 2 == 0 {
            app.address.clone()
        } else {
            node_b.clone()
        };
        let req = app
            .client
            .post(format!("{base}/v1/users/{alice}/key-packages/claim"))
            .bearer_auth(&bobs.token)
            .send();
        async move {
            let resp = req.await.unwrap();
            assert_eq!(resp.status(), 200);
            resp.json::<Value>().await.unwrap()
        }
    });
    let results = futures_util::future::join_all(claims).await;
    let mut one_time = HashSet::new();
    let mut last_resort = 0;
    for r in &results {
        let items = r["items"].as_array().unwrap();
        assert_eq!(items.len(), 1, "one package per approved device: {r}");
        let item = &items[0];
        assert_eq!(item["device_id"], alices.id.to_string());
        if item["last_resort"].as_bool().unwrap() {
            assert_eq!(unb64(&item["hash_ref"]), b"lr-0");
            last_resort += 1;
        } else {
            assert!(
                one_time.insert(unb64(&item["hash_ref"])),
                "a one-time package was handed out twice"
            );
        }
    }
    assert_eq!((one_time.len(), last_resort), (20, 30));
    let stock: Value = app
        .get("/v1/key-packages/stock", &alices.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        stock,
        json!({"one_time": 0, "last_resort": true, "low": true})
    );
}

async fn claims_need_an_approved_contact_and_skip_pending_devices(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.create_user("alice").await;
    let bob = app.create_user("bob").await;
    let phone = app.new_device(alice).await;
    let laptop = app.new_device(alice).await; // pending
    let bobs = app.new_device(bob).await;
    upload(&app, &phone, 2, false).await;
    upload(&app, &laptop, 2, false).await;

    assert_problem(app.claim(&bobs.token, alice).await, 404, "not_found").await;
    app.make_contacts(alice, bob).await;
    let got: Value = app.claim(&bobs.token, alice).await.json().await.unwrap();
    let items = got["items"].as_array().unwrap();
    assert_eq!(
        items.len(),
        1,
        "the pending laptop's packages are not handed out: {got}"
    );
    assert_eq!(items[0]["device_id"], phone.id.to_string());

    // After approval the laptop's packages are claimable; a device never claims its own.
    assert_eq!(
        app.approve(&phone, &laptop, app.clock_ms()).await.status(),
        200
    );
    let own: Value = app.claim(&phone.token, alice).await.json().await.unwrap();
    let ids: Vec<&str> = own["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["device_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![laptop.id.to_string()]);
}

async fn expired_packages_are_neither_counted_nor_claimed(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.create_user("alice").await;
    let phone = app.new_device(alice).await;
    let laptop = app.new_device(alice).await;
    assert_eq!(
        app.approve(&phone, &laptop, app.clock_ms()).await.status(),
        200
    );
    let soon = app.clock_ms() / 1000 + 120;
    let body =
        json!({"key_packages": [package("ot", 1, soon)], "last_resort": package("lr", 1, soon)});
    let stock: Value = app
        .post_json("/v1/key-packages", &laptop.token, &body)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        stock,
        json!({"one_time": 1, "last_resort": true, "low": true})
    );
    app.clock.advance_ms(121_000);
    let stock: Value = app
        .get("/v1/key-packages/stock", &laptop.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        stock,
        json!({"one_time": 0, "last_resort": false, "low": true})
    );
    let got: Value = app
        .post_json(
            &format!("/v1/users/{alice}/key-packages/claim"),
            &phone.token,
            &json!({}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(got["items"].as_array().unwrap().len(), 0);

    let past = json!({"key_packages": [package("old", 1, app.clock_ms() / 1000 - 1)]});
    assert_problem(
        app.post_json("/v1/key-packages", &laptop.token, &past)
            .await,
        400,
        "key_package_expired",
    )
    .await;
    let too_many =
        json!({"key_packages": (0..101).map(|i| package("x", i, soon + 999)).collect::<Vec<_>>()});
    assert_problem(
        app.post_json("/v1/key-packages", &laptop.token, &too_many)
            .await,
        400,
        "validation_failed",
    )
    .await;
}

async fn revoking_a_device_deletes_its_packages(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.create_user("alice").await;
    let bob = app.create_user("bob").await;
    app.make_contacts(alice, bob).await;
    let phone = app.new_device(alice).await;
    let bobs = app.new_device(bob).await;
    upload(&app, &phone, 3, true).await;
    assert_eq!(
        app.delete(&format!("/v1/devices/{}", phone.id), &app.api_key)
            .await
            .status(),
        204
    );
    let got: Value = app
        .post_json(
            &format!("/v1/users/{alice}/key-packages/claim"),
            &bobs.token,
            &json!({}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(got["items"].as_array().unwrap().len(), 0);
}

backend_tests!(
    fifty_concurrent_claims_on_two_nodes_never_duplicate,
    claims_need_an_approved_contact_and_skip_pending_devices,
    expired_packages_are_neither_counted_nor_claimed,
    revoking_a_device_deletes_its_packages,
);
