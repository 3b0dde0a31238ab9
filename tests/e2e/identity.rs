//! Identity through the SDK against the real server, on both backends: devices register,
//! log in by signing challenges, approve each other by fingerprint, publish and claim MLS
//! KeyPackages, get revoked, and keep their device tokens fresh.

use cloak_e2e::{ServerEnv, Stack, TestClock, on_both_backends};
use cloak_proto::Code;
use cloak_proto::devices::{Device, DeviceStatus};
use cloak_proto::key_packages::{ClaimedKeyPackage, KeyPackageStock};
use cloak_proto::users::User;
use cloak_sdk::client::TOKEN_REFRESH_MARGIN_MS;
use cloak_sdk::mls::{check_key_package_device, parse_key_package};
use cloak_sdk::{
    Clock, DeviceClient, DeviceIdentity, Error, SystemClock, verify_approval,
    verify_device_directory,
};
use openmls::prelude::{KeyPackageBundle, KeyPackageRef, OpenMlsProvider as _};
use openmls_rust_crypto::OpenMlsRustCrypto;
use openmls_traits::storage::StorageProvider as _;
use secrecy::ExposeSecret;
use uuid::Uuid;

/// How long the server's device tokens live (documented on `POST /v1/auth/login`).
const DEVICE_TOKEN_TTL_MS: i64 = 60 * 60 * 1000;

on_both_backends!(
    a_new_device_is_approved_by_fingerprint,
    key_packages_are_claimed_by_contacts_once_per_device,
    revoked_devices_are_refused_at_once,
    pending_devices_wait_for_approval,
    device_tokens_are_refreshed_before_expiry,
);

/// A device with a fresh identity key, not registered yet.
fn new_device<C: Clock>(stack: &Stack, clock: C) -> DeviceClient<C> {
    DeviceClient::new(
        cloak_e2e::tls::http(),
        stack.server.base_url.clone(),
        DeviceIdentity::generate_os(),
        clock,
    )
    .with_tls(cloak_e2e::tls::sdk_tls())
    .unwrap()
}

/// A user and a device of theirs, registered with a freshly minted user token.
async fn user_with_device(
    stack: &Stack,
    external_id: &str,
    name: &str,
) -> (User, DeviceClient, Device) {
    let user = stack.tenant.create_user(external_id, name).await;
    let (client, device) = another_device(stack, &user, "phone").await;
    (user, client, device)
}

/// Registers a new device for `user`.
async fn another_device(stack: &Stack, user: &User, name: &str) -> (DeviceClient, Device) {
    let token = stack.tenant.user_token(user.id).await;
    let mut client = new_device(stack, SystemClock);
    let device = client.register(&token.token, Some(name)).await.unwrap();
    (client, device)
}

/// The server's problem code behind an error, or a panic naming what came back instead.
fn problem<T: std::fmt::Debug>(result: Result<T, Error>) -> Code {
    match result {
        Err(e) if e.code().is_some() => e.code().unwrap(),
        other => panic!("expected a server refusal, got {other:?}"),
    }
}

/// A fingerprint as a person might type it from another screen: upper case, in pairs.
fn displayed(fingerprint: &str) -> String {
    fingerprint
        .to_uppercase()
        .as_bytes()
        .chunks(2)
        .map(|pair| std::str::from_utf8(pair).unwrap())
        .collect::<Vec<_>>()
        .join(":")
}

/// Parses and validates a claimed package, checks it against the owner's (verified)
/// directory entry and that its private part is in the owner's provider storage.
fn check_claimed(item: &ClaimedKeyPackage, directory: &[Device], owner: &OpenMlsRustCrypto) {
    let device = directory
        .iter()
        .find(|d| d.id == item.device_id)
        .unwrap_or_else(|| panic!("claimed a package of unlisted device {}", item.device_id));
    assert_eq!(device.status, DeviceStatus::Approved);
    let verifier = OpenMlsRustCrypto::default();
    let kp = parse_key_package(verifier.crypto(), &item.data).unwrap();
    check_key_package_device(&kp, device).unwrap();
    assert_eq!(kp.last_resort(), item.last_resort);
    let hash_ref: KeyPackageRef = kp.hash_ref(verifier.crypto()).unwrap();
    assert_eq!(hash_ref.as_slice(), item.hash_ref.as_slice());
    let bundle: Option<KeyPackageBundle> = owner.storage().key_package(&hash_ref).unwrap();
    assert!(
        bundle.is_some_and(|b| b.key_package() == &kp),
        "the owner keeps the private part of every package it published"
    );
}

/// The claimed package of `device_id`, which must be there.
fn item_of(items: &[ClaimedKeyPackage], device_id: Uuid) -> &ClaimedKeyPackage {
    items
        .iter()
        .find(|i| i.device_id == device_id)
        .unwrap_or_else(|| panic!("no package of device {device_id} in {items:?}"))
}

async fn a_new_device_is_approved_by_fingerprint(env: ServerEnv) {
    let stack = Stack::start(&env);
    let alice = stack.tenant.create_user("alice", "Alice").await;
    let token = stack.tenant.user_token(alice.id).await;

    // Only a real user token registers a device.
    let mut phone = new_device(&stack, SystemClock);
    assert_eq!(
        problem(phone.register("cu_forged.token", Some("phone")).await),
        Code::InvalidToken
    );
    assert_eq!(phone.ids(), None);

    // The first device is approved on registration and logs in.
    let phone_dev = phone.register(&token.token, Some("phone")).await.unwrap();
    assert_eq!(phone_dev.status, DeviceStatus::Approved);
    assert_eq!(phone_dev.tenant_id, stack.tenant.tenant_id);
    assert_eq!(phone_dev.user_id, alice.id);
    assert_eq!(phone_dev.name.as_deref(), Some("phone"));
    assert_eq!(phone_dev.identity_key, phone.identity().public_key());
    assert_eq!(phone_dev.approved_by, None);
    assert_eq!(phone.ids().unwrap().device_id, phone_dev.id);
    let logged_in = phone.login().await.unwrap();
    assert_eq!(logged_in.id, phone_dev.id);
    assert_eq!(logged_in.status, DeviceStatus::Approved);
    // Registering the same key again returns the same device.
    assert_eq!(
        phone.register(&token.token, None).await.unwrap().id,
        phone_dev.id
    );

    // A second device waits for approval.
    let mut laptop = new_device(&stack, SystemClock);
    let laptop_dev = laptop.register(&token.token, Some("laptop")).await.unwrap();
    assert_eq!(laptop_dev.status, DeviceStatus::Pending);
    assert_ne!(laptop_dev.id, phone_dev.id);
    assert_eq!(laptop.login().await.unwrap().status, DeviceStatus::Pending);
    // It cannot approve itself: the server wants an approved approver.
    assert_eq!(
        problem(laptop.approve_device(laptop_dev.id).await),
        Code::DevicePending
    );

    // The phone refuses a key whose fingerprint is not the one the laptop shows.
    let wrong = DeviceIdentity::generate_os().fingerprint();
    assert!(matches!(
        phone
            .approve_device_with_fingerprint(laptop_dev.id, &wrong)
            .await,
        Err(Error::Verification(_))
    ));
    let still = phone.devices().await.unwrap();
    assert_eq!(still[1].id, laptop_dev.id);
    assert_eq!(still[1].status, DeviceStatus::Pending);

    // With the fingerprint the laptop displays, the approval goes through.
    let before = SystemClock.now_ms();
    let approved = phone
        .approve_device_with_fingerprint(
            laptop_dev.id,
            &displayed(&laptop.identity().fingerprint()),
        )
        .await
        .unwrap();
    assert_eq!(approved.id, laptop_dev.id);
    assert_eq!(approved.status, DeviceStatus::Approved);
    assert_eq!(approved.approved_by, Some(phone_dev.id));
    let at = approved.approved_at_ms.unwrap();
    assert!((before..=SystemClock.now_ms()).contains(&at), "{at}");
    assert!(verify_approval(
        &phone.identity().public_key(),
        stack.tenant.tenant_id,
        alice.id,
        &laptop.identity().public_key(),
        at,
        approved.approval_signature.as_deref().unwrap(),
    ));
    assert!(matches!(
        phone.approve_device(laptop_dev.id).await,
        Err(Error::InvalidState("device is not pending"))
    ));

    // The laptop, now approved, reads and verifies the directory: the chain leads from
    // the laptop's approval back to the phone.
    let directory = laptop.verified_user_devices(alice.id).await.unwrap();
    let ids: Vec<_> = directory.iter().map(|d| (d.id, d.status)).collect();
    assert_eq!(
        ids,
        [
            (phone_dev.id, DeviceStatus::Approved),
            (laptop_dev.id, DeviceStatus::Approved)
        ]
    );
    assert_eq!(directory[0].identity_key, phone.identity().public_key());
    assert_eq!(directory[1].identity_key, laptop.identity().public_key());
    assert_eq!(directory[1].approved_at_ms, Some(at));
    assert_eq!(laptop.devices().await.unwrap(), directory);
    // A directory where the server swapped in another key for the laptop does not verify.
    let mut forged = directory.clone();
    forged[1].identity_key = DeviceIdentity::generate_os().public_key().to_vec();
    assert!(matches!(
        verify_device_directory(&forged),
        Err(Error::Verification(_))
    ));

    // And it can claim: the phone's package, not its own.
    let phone_mls = OpenMlsRustCrypto::default();
    assert_eq!(
        phone.top_up_key_packages(&phone_mls, 3).await.unwrap(),
        KeyPackageStock {
            one_time: 3,
            last_resort: true,
            low: true
        }
    );
    let claimed = laptop.claim_key_packages(alice.id).await.unwrap();
    assert_eq!(claimed.user_id, alice.id);
    assert_eq!(claimed.items.len(), 1, "{:?}", claimed.items);
    assert_eq!(claimed.items[0].device_id, phone_dev.id);
    assert!(!claimed.items[0].last_resort);
    check_claimed(&claimed.items[0], &directory, &phone_mls);
    assert_eq!(phone.stock().await.unwrap().one_time, 2);
}

async fn key_packages_are_claimed_by_contacts_once_per_device(env: ServerEnv) {
    let stack = Stack::start(&env);
    let (alice, alice_phone, _) = user_with_device(&stack, "alice", "Alice").await;
    let (bob, bob_phone, bob_phone_dev) = user_with_device(&stack, "bob", "Bob").await;
    let (bob_tablet, bob_tablet_dev) = another_device(&stack, &bob, "tablet").await;
    let (_, carol_phone, _) = user_with_device(&stack, "carol", "Carol").await;
    stack.tenant.add_contact(alice.id, bob.id).await;
    bob_phone
        .approve_device_with_fingerprint(bob_tablet_dev.id, &bob_tablet.identity().fingerprint())
        .await
        .unwrap();

    // Bob's phone tops up to 12 one-time packages and a last-resort one; while the stock
    // is not low, topping up does nothing.
    let phone_mls = OpenMlsRustCrypto::default();
    let full = KeyPackageStock {
        one_time: 12,
        last_resort: true,
        low: false,
    };
    assert_eq!(
        bob_phone.stock().await.unwrap(),
        KeyPackageStock {
            one_time: 0,
            last_resort: false,
            low: true
        }
    );
    assert_eq!(
        bob_phone.top_up_key_packages(&phone_mls, 12).await.unwrap(),
        full
    );
    assert_eq!(
        bob_phone.top_up_key_packages(&phone_mls, 50).await.unwrap(),
        full
    );
    // The tablet keeps one one-time package and a last-resort one.
    let tablet_mls = OpenMlsRustCrypto::default();
    assert_eq!(
        bob_tablet
            .top_up_key_packages(&tablet_mls, 1)
            .await
            .unwrap(),
        KeyPackageStock {
            one_time: 1,
            last_resort: true,
            low: true
        }
    );

    // Alice, Bob's contact, verifies Bob's directory and claims one package per device.
    let directory = alice_phone.verified_user_devices(bob.id).await.unwrap();
    assert_eq!(
        directory.iter().map(|d| d.id).collect::<Vec<_>>(),
        [bob_phone_dev.id, bob_tablet_dev.id]
    );
    let first = alice_phone.claim_key_packages(bob.id).await.unwrap();
    assert_eq!(first.user_id, bob.id);
    assert_eq!(first.items.len(), 2, "{:?}", first.items);
    let phone_1 = item_of(&first.items, bob_phone_dev.id);
    let tablet_1 = item_of(&first.items, bob_tablet_dev.id);
    assert!(!phone_1.last_resort && !tablet_1.last_resort);
    check_claimed(phone_1, &directory, &phone_mls);
    check_claimed(tablet_1, &directory, &tablet_mls);
    assert_eq!(bob_phone.stock().await.unwrap().one_time, 11);
    assert_eq!(
        bob_tablet.stock().await.unwrap(),
        KeyPackageStock {
            one_time: 0,
            last_resort: true,
            low: true
        }
    );

    // One-time packages are never handed out twice; once the tablet's are gone, its
    // last-resort package is handed out, and again after that.
    let second = alice_phone.claim_key_packages(bob.id).await.unwrap();
    let phone_2 = item_of(&second.items, bob_phone_dev.id);
    let tablet_2 = item_of(&second.items, bob_tablet_dev.id);
    assert!(!phone_2.last_resort);
    assert_ne!(phone_2.hash_ref, phone_1.hash_ref);
    assert!(tablet_2.last_resort);
    check_claimed(phone_2, &directory, &phone_mls);
    check_claimed(tablet_2, &directory, &tablet_mls);
    let third = alice_phone.claim_key_packages(bob.id).await.unwrap();
    let phone_3 = item_of(&third.items, bob_phone_dev.id);
    let tablet_3 = item_of(&third.items, bob_tablet_dev.id);
    assert!(![&phone_1.hash_ref, &phone_2.hash_ref].contains(&&phone_3.hash_ref));
    assert_eq!(tablet_3, tablet_2);
    assert_eq!(bob_phone.stock().await.unwrap().one_time, 9);

    // Bob's own device claims his other device's package, never its own.
    let own = bob_phone.claim_key_packages(bob.id).await.unwrap();
    assert_eq!(own.items.len(), 1);
    assert_eq!(own.items[0].device_id, bob_tablet_dev.id);

    // Carol is not Bob's contact: for her Bob does not exist, like a made-up user.
    for user_id in [bob.id, Uuid::new_v4()] {
        assert_eq!(
            problem(carol_phone.claim_key_packages(user_id).await),
            Code::NotFound
        );
        assert_eq!(
            problem(carol_phone.user_devices(user_id).await),
            Code::NotFound
        );
    }
    assert_eq!(bob_phone.stock().await.unwrap().one_time, 9);
}

async fn revoked_devices_are_refused_at_once(env: ServerEnv) {
    let stack = Stack::start(&env);
    let (alice, phone, phone_dev) = user_with_device(&stack, "alice", "Alice").await;
    let (laptop, laptop_dev) = another_device(&stack, &alice, "laptop").await;
    let (tablet, tablet_dev) = another_device(&stack, &alice, "tablet").await;
    let (bob, bob_phone, _) = user_with_device(&stack, "bob", "Bob").await;
    stack.tenant.add_contact(alice.id, bob.id).await;
    // phone → laptop → tablet: each approves the next.
    phone
        .approve_device_with_fingerprint(laptop_dev.id, &laptop.identity().fingerprint())
        .await
        .unwrap();
    laptop
        .approve_device_with_fingerprint(tablet_dev.id, &tablet.identity().fingerprint())
        .await
        .unwrap();
    let (phone_mls, laptop_mls) = (OpenMlsRustCrypto::default(), OpenMlsRustCrypto::default());
    phone.top_up_key_packages(&phone_mls, 2).await.unwrap();
    laptop.top_up_key_packages(&laptop_mls, 2).await.unwrap();
    // The laptop holds a valid device token and uses it.
    assert_eq!(laptop.devices().await.unwrap().len(), 3);
    assert_eq!(laptop.stock().await.unwrap().one_time, 2);

    phone.revoke_device(laptop_dev.id).await.unwrap();

    // Its very next call is refused, and so is logging in again. The client does not
    // try to log in again for a call the server refused because the device is revoked.
    let challenges = stack
        .server
        .request_count("POST", "/v1/auth/challenge")
        .await;
    assert_eq!(problem(laptop.devices().await), Code::DeviceRevoked);
    assert_eq!(problem(laptop.stock().await), Code::DeviceRevoked);
    assert_eq!(
        stack
            .server
            .request_count("POST", "/v1/auth/challenge")
            .await,
        challenges
    );
    assert_eq!(problem(laptop.login().await), Code::DeviceRevoked);
    // The others carry on. The directory lists the laptop as revoked and still verifies:
    // the tablet's approval, signed by the laptop before it was revoked, stays valid.
    let directory = bob_phone.verified_user_devices(alice.id).await.unwrap();
    let statuses: Vec<_> = directory.iter().map(|d| (d.id, d.status)).collect();
    assert_eq!(
        statuses,
        [
            (phone_dev.id, DeviceStatus::Approved),
            (laptop_dev.id, DeviceStatus::Revoked),
            (tablet_dev.id, DeviceStatus::Approved)
        ]
    );
    assert_eq!(directory[2].approved_by, Some(laptop_dev.id));
    // Its packages are gone: contacts get the phone's only (the tablet published none).
    let claimed = bob_phone.claim_key_packages(alice.id).await.unwrap();
    assert_eq!(
        claimed
            .items
            .iter()
            .map(|i| i.device_id)
            .collect::<Vec<_>>(),
        [phone_dev.id]
    );
    check_claimed(&claimed.items[0], &directory, &phone_mls);

    // The tenant's backend revokes the lost first phone, with the same immediate effect.
    assert_eq!(phone.devices().await.unwrap().len(), 3);
    stack.tenant.revoke_device(phone_dev.id).await;
    assert_eq!(problem(phone.devices().await), Code::DeviceRevoked);
    // The tablet is Alice's only approved device; its chain of approvals still leads to
    // her first device, so her contacts still trust it.
    let directory = bob_phone.verified_user_devices(alice.id).await.unwrap();
    assert_eq!(
        directory.iter().map(|d| d.status).collect::<Vec<_>>(),
        [
            DeviceStatus::Revoked,
            DeviceStatus::Revoked,
            DeviceStatus::Approved
        ]
    );
    assert_eq!(
        tablet.verified_user_devices(alice.id).await.unwrap(),
        directory
    );
    assert!(
        bob_phone
            .claim_key_packages(alice.id)
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

async fn pending_devices_wait_for_approval(env: ServerEnv) {
    let stack = Stack::start(&env);
    let (alice, alice_phone, alice_phone_dev) = user_with_device(&stack, "alice", "Alice").await;
    let (laptop, laptop_dev) = another_device(&stack, &alice, "laptop").await;
    let (bob, bob_phone, bob_phone_dev) = user_with_device(&stack, "bob", "Bob").await;
    stack.tenant.add_contact(alice.id, bob.id).await;
    let (alice_mls, laptop_mls, bob_mls) = (
        OpenMlsRustCrypto::default(),
        OpenMlsRustCrypto::default(),
        OpenMlsRustCrypto::default(),
    );
    alice_phone
        .top_up_key_packages(&alice_mls, 2)
        .await
        .unwrap();
    bob_phone.top_up_key_packages(&bob_mls, 2).await.unwrap();

    // A pending device logs in but may not claim packages or read directories.
    assert_eq!(laptop.login().await.unwrap().status, DeviceStatus::Pending);
    for user_id in [bob.id, alice.id] {
        assert_eq!(
            problem(laptop.claim_key_packages(user_id).await),
            Code::DevicePending
        );
        assert_eq!(
            problem(laptop.user_devices(user_id).await),
            Code::DevicePending
        );
    }
    // Nothing was claimed on its behalf.
    assert_eq!(bob_phone.stock().await.unwrap().one_time, 2);

    // It may publish packages ahead of approval, but they are not handed out yet.
    assert_eq!(
        laptop.top_up_key_packages(&laptop_mls, 2).await.unwrap(),
        KeyPackageStock {
            one_time: 2,
            last_resort: true,
            low: true
        }
    );
    let claimed = bob_phone.claim_key_packages(alice.id).await.unwrap();
    assert_eq!(
        claimed
            .items
            .iter()
            .map(|i| i.device_id)
            .collect::<Vec<_>>(),
        [alice_phone_dev.id]
    );
    assert_eq!(laptop.stock().await.unwrap().one_time, 2);

    // Once approved, it claims, and its packages are handed out.
    alice_phone
        .approve_device_with_fingerprint(laptop_dev.id, &laptop.identity().fingerprint())
        .await
        .unwrap();
    let from_bob = laptop.claim_key_packages(bob.id).await.unwrap();
    assert_eq!(from_bob.items.len(), 1);
    assert_eq!(from_bob.items[0].device_id, bob_phone_dev.id);
    let directory = bob_phone.verified_user_devices(alice.id).await.unwrap();
    let claimed = bob_phone.claim_key_packages(alice.id).await.unwrap();
    assert_eq!(claimed.items.len(), 2);
    check_claimed(
        item_of(&claimed.items, laptop_dev.id),
        &directory,
        &laptop_mls,
    );
    assert_eq!(laptop.stock().await.unwrap().one_time, 1);
}

async fn device_tokens_are_refreshed_before_expiry(env: ServerEnv) {
    let stack = Stack::start(&env);
    let logins = || stack.server.request_count("POST", "/v1/auth/login");
    let alice = stack.tenant.create_user("alice", "Alice").await;
    let token = stack.tenant.user_token(alice.id).await;
    let clock = TestClock::now();
    let mut phone = new_device(&stack, clock.clone());
    phone.register(&token.token, Some("phone")).await.unwrap();
    assert_eq!(logins().await, 0);

    // The token lives one hour: by the device's clock (which stands still at `start`
    // until moved) it expires one hour after `start`, give or take the second or two
    // that the server's `Date` and the calls take.
    let start = clock.now_ms();
    let first = phone.token().await.unwrap();
    assert!(first.expose_secret().starts_with("cd_"));
    assert_eq!(
        phone.token().await.unwrap().expose_secret(),
        first.expose_secret()
    );
    assert_eq!(logins().await, 1);

    // More than the margin left: the cached token is used.
    clock.set(start + DEVICE_TOKEN_TTL_MS - TOKEN_REFRESH_MARGIN_MS - 5_000);
    assert_eq!(
        phone.token().await.unwrap().expose_secret(),
        first.expose_secret()
    );
    assert_eq!(phone.devices().await.unwrap().len(), 1);
    assert_eq!(logins().await, 1);

    // Within the margin: the client logs in again and gets a new token that works.
    // (Tokens name their issue time in ms; wait so the new one cannot coincide.)
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    clock.set(start + DEVICE_TOKEN_TTL_MS - TOKEN_REFRESH_MARGIN_MS + 5_000);
    let second = phone.token().await.unwrap();
    assert_eq!(logins().await, 2);
    assert!(second.expose_secret().starts_with("cd_"));
    assert_ne!(second.expose_secret(), first.expose_secret());
    assert_eq!(phone.devices().await.unwrap().len(), 1);
    assert_eq!(phone.stock().await.unwrap().one_time, 0);
    // Back at the real time, the new token is the cached one.
    clock.set(SystemClock.now_ms());
    assert_eq!(
        phone.token().await.unwrap().expose_secret(),
        second.expose_secret()
    );
    assert_eq!(logins().await, 2);

    // A device clock far ahead of the server's: a call logs in once more first, and
    // works; the new token then lasts its hour by that clock too (no login per call).
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    clock.advance(10 * DEVICE_TOKEN_TTL_MS);
    let devices = phone.devices().await.unwrap();
    assert_eq!(devices[0].user_id, alice.id);
    assert_eq!(logins().await, 3);
    let third = phone.token().await.unwrap();
    assert_ne!(third.expose_secret(), second.expose_secret());
    assert_ne!(third.expose_secret(), first.expose_secret());
    assert_eq!(logins().await, 3);
}
