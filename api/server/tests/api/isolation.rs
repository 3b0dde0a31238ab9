//! Cross-tenant access: every endpoint, called by one tenant (or its devices) with the
//! other tenant's ids, answers 404 and changes nothing.

use serde_json::{Value, json};

use crate::backend_tests;
use crate::helpers::{Backend, assert_problem, create_tenant, spawn_app};

async fn no_endpoint_reaches_another_tenants_users_or_devices(backend: Backend) {
    let app = spawn_app(backend).await;
    // Tenant A is the app's tenant; tenant B gets its own key, user and device.
    let a_user = app.create_user("shared-external-id").await;
    let a_device = app.new_device(a_user).await;
    let a_pending = app.new_device(a_user).await;
    let (_, b_key) = create_tenant(app.store.as_ref(), "Tenant B").await;
    let b_device = app.tenant_device(&b_key, "shared-external-id").await;
    let b_user = b_device.user_id;

    // Tenant B's API key on tenant A's resources.
    let c = &app.client;
    let u = |p: &str| app.url(p);
    let cases = vec![
        c.get(u(&format!("/v1/users/{a_user}"))).bearer_auth(&b_key),
        c.patch(u(&format!("/v1/users/{a_user}"))).bearer_auth(&b_key).json(&json!({"suspended": true})),
        c.delete(u(&format!("/v1/users/{a_user}"))).bearer_auth(&b_key),
        c.post(u(&format!("/v1/users/{a_user}/tokens"))).bearer_auth(&b_key),
        c.get(u(&format!("/v1/users/{a_user}/devices"))).bearer_auth(&b_key),
        c.delete(u(&format!("/v1/devices/{}", a_device.id))).bearer_auth(&b_key),
        c.post(u("/v1/contacts")).bearer_auth(&b_key).json(&json!({"user_id": a_user, "contact_user_id": b_user})),
        // Tenant B's device on tenant A's resources.
        c.get(u(&format!("/v1/users/{a_user}/devices"))).bearer_auth(&b_device.token),
        c.post(u(&format!("/v1/users/{a_user}/key-packages/claim"))).bearer_auth(&b_device.token),
        c.delete(u(&format!("/v1/devices/{}", a_device.id))).bearer_auth(&b_device.token),
        c.post(u(&format!("/v1/devices/{}/approve", a_pending.id)))
            .bearer_auth(&b_device.token)
            .json(&json!({"approved_at_ms": app.clock_ms(), "signature": crate::identity_helpers::b64(&[0u8; 64])})),
    ];
    for (i, req) in cases.into_iter().enumerate() {
        let resp = req.send().await.unwrap();
        assert_eq!(
            resp.status(),
            404,
            "case {i} reached another tenant's resource"
        );
        assert_problem(resp, 404, "not_found").await;
    }
    // Lookups by external id see only the caller's tenant.
    let found: Value = app
        .get("/v1/users?external_id=shared-external-id", &b_key)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(found["items"].as_array().unwrap().len(), 1);
    assert_eq!(found["items"][0]["id"], b_user.to_string());

    // Nothing changed for tenant A.
    let user: Value = app
        .get(&format!("/v1/users/{a_user}"), &app.api_key)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(user["suspended"], false);
    assert_eq!(app.get("/v1/devices", &a_device.token).await.status(), 200);
    let devices: Value = app
        .get("/v1/devices", &a_device.token)
        .await
        .json()
        .await
        .unwrap();
    assert!(
        devices["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["status"] == "pending")
    );
}

backend_tests!(no_endpoint_reaches_another_tenants_users_or_devices);
