//! End-to-end encrypted conversations through the real server with the SDK's
//! [`Messenger`]: several devices per user, both directions, and a plaintext canary that
//! must appear nowhere on the server (database files or dump, logs).

use cloak_e2e::{ServerEnv, Stack, on_both_backends};
use cloak_sdk::{
    DeviceClient, DeviceIdentity, Event, LocalStore, Messenger, PayloadKind, StoreKey, SystemClock,
    fingerprint,
};
use uuid::Uuid;

async fn messenger(stack: &Stack, user: Uuid) -> Messenger {
    let mut m = Messenger::new(stack.device_client(user).await);
    m.publish_key_packages(5).await.unwrap();
    m
}

fn texts(events: &[Event]) -> Vec<(Uuid, String)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Message {
                sender, payload, ..
            } => match &payload.kind {
                PayloadKind::Text { text } => Some((sender.device_id, text.clone())),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

fn device_id(m: &Messenger) -> Uuid {
    m.client().ids().unwrap().device_id
}

/// Everything the server keeps or prints: database files (or a dump) and logs.
fn server_artifacts(stack: &mut Stack, env: &ServerEnv) -> Vec<u8> {
    let mut all = stack.server.logs().join("\n").into_bytes();
    match env.vars.iter().find(|(k, _)| k == "CLOAK_DATABASE_URL") {
        None => {
            for entry in std::fs::read_dir(stack.dir.path().join("cloak-data")).unwrap() {
                all.extend(std::fs::read(entry.unwrap().path()).unwrap());
            }
        }
        Some((_, url)) => {
            let pg_dump = std::fs::read_dir("/usr/lib/postgresql")
                .unwrap()
                .map(|e| e.unwrap().path().join("bin/pg_dump"))
                .find(|p| p.exists())
                .expect("pg_dump");
            let out = std::process::Command::new(pg_dump)
                .arg(url)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(out.stdout.len() > 1000, "the dump has the schema and rows");
            all.extend(out.stdout);
        }
    }
    all
}

/// `redis-cli MONITOR` writing every command Redis receives to a file, for production.
fn redis_monitor(env: &ServerEnv) -> Option<(std::process::Child, std::path::PathBuf)> {
    let (_, url) = env.vars.iter().find(|(k, _)| k == "CLOAK_REDIS_URL")?;
    let path = std::env::temp_dir().join(format!("cloak-monitor-{}.log", Uuid::new_v4()));
    let out = std::fs::File::create(&path).unwrap();
    let child = std::process::Command::new("redis-cli")
        .args(["-u", url, "monitor"])
        .stdout(out)
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    Some((child, path))
}

async fn two_users_with_two_devices_each_talk_both_ways(env: ServerEnv) {
    let mut stack = Stack::start(&env);
    let alice = stack.tenant.create_user("alice", "Alice").await;
    let bob = stack.tenant.create_user("bob", "Bob").await;
    stack.tenant.add_contact(alice.id, bob.id).await;

    let mut phone = messenger(&stack, alice.id).await;
    let mut laptop = messenger(&stack, alice.id).await;
    let laptop_fp = fingerprint(&laptop.client().identity().public_key());
    phone
        .client()
        .approve_device_with_fingerprint(device_id(&laptop), &laptop_fp)
        .await
        .unwrap();
    laptop.publish_key_packages(5).await.unwrap();
    let mut bobs = messenger(&stack, bob.id).await;
    let mut bobs_laptop = messenger(&stack, bob.id).await;
    let bl_fp = fingerprint(&bobs_laptop.client().identity().public_key());
    bobs.client()
        .approve_device_with_fingerprint(device_id(&bobs_laptop), &bl_fp)
        .await
        .unwrap();
    bobs_laptop.publish_key_packages(5).await.unwrap();

    let conv = phone.create_conversation(&[bob.id]).await.unwrap();
    let mut members: Vec<Uuid> = phone
        .members(conv)
        .unwrap()
        .iter()
        .map(|m| m.device_id)
        .collect();
    members.sort();
    let mut expected = vec![
        device_id(&phone),
        device_id(&laptop),
        device_id(&bobs),
        device_id(&bobs_laptop),
    ];
    expected.sort();
    assert_eq!(
        members, expected,
        "every approved device of both users is in"
    );

    for m in [&mut laptop, &mut bobs, &mut bobs_laptop] {
        let events = m.sync().await.unwrap();
        assert!(
            matches!(events.as_slice(), [Event::Joined { conversation_id, .. }] if *conversation_id == conv),
            "{events:?}"
        );
    }

    // Everything that crosses Redis while the canary travels (production only).
    let redis_monitor = redis_monitor(&env);
    let canary = format!("CANARY-{}", Uuid::new_v4().simple());
    phone
        .send_text(conv, &format!("hello bob {canary}"))
        .await
        .unwrap();
    let got = texts(&bobs.sync().await.unwrap());
    assert_eq!(
        got,
        vec![(device_id(&phone), format!("hello bob {canary}"))]
    );
    assert_eq!(
        texts(&laptop.sync().await.unwrap()),
        got,
        "alice's other device reads it too"
    );
    assert_eq!(
        texts(&bobs_laptop.sync().await.unwrap()),
        got,
        "and so does bob's"
    );

    bobs.send_text(conv, "hi alice").await.unwrap();
    bobs.send_text(conv, "second").await.unwrap();
    for m in [&mut phone, &mut laptop, &mut bobs_laptop] {
        let got = texts(&m.sync().await.unwrap());
        assert_eq!(
            got,
            vec![
                (device_id(&bobs), "hi alice".to_owned()),
                (device_id(&bobs), "second".to_owned())
            ]
        );
    }
    // Synced entries were acknowledged: nothing is left to deliver.
    assert!(bobs.sync().await.unwrap().is_empty());

    let mut artifacts = server_artifacts(&mut stack, &env);
    if let Some((mut child, path)) = redis_monitor {
        let _ = child.kill();
        let _ = child.wait();
        let seen = std::fs::read(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        assert!(
            seen.windows(7).any(|w| w.eq_ignore_ascii_case(b"publish")),
            "the monitor saw the wake-ups"
        );
        artifacts.extend(seen);
    }
    // Positive control: the scan does see what the server stores (a display name).
    assert!(
        artifacts.windows(5).any(|w| w == b"Alice"),
        "the scan found no stored data"
    );
    assert!(
        !artifacts
            .windows(canary.len())
            .any(|w| w == canary.as_bytes()),
        "the plaintext canary reached the server"
    );
    assert!(
        !artifacts.windows(8).any(|w| w == b"hi alice"),
        "a plaintext reached the server"
    );
}

on_both_backends!(two_users_with_two_devices_each_talk_both_ways);

async fn an_approved_device_reads_later_messages_and_a_revoked_one_nothing_more(env: ServerEnv) {
    let stack = Stack::start(&env);
    let alice = stack.tenant.create_user("alice", "Alice").await;
    let bob = stack.tenant.create_user("bob", "Bob").await;
    stack.tenant.add_contact(alice.id, bob.id).await;
    let mut a = messenger(&stack, alice.id).await;
    let mut phone = messenger(&stack, bob.id).await;
    let conv = a.create_conversation(&[bob.id]).await.unwrap();
    phone.sync().await.unwrap();
    a.send_text(conv, "before the tablet").await.unwrap();

    // bob's tablet registers (pending), publishes key packages, and is approved by the phone,
    // which adds it to the conversation.
    let mut tablet = messenger(&stack, bob.id).await;
    let fp = fingerprint(&tablet.client().identity().public_key());
    // Approval syncs first; its events are part of the phone's history.
    let mut phone_events = phone.approve_device(device_id(&tablet), &fp).await.unwrap();
    let events = a.sync().await.unwrap();
    assert!(
        events.iter().any(|e| matches!(e, Event::MembersChanged { added, .. } if added.iter().any(|d| d.device_id == device_id(&tablet)))),
        "{events:?}"
    );
    a.send_text(conv, "after the tablet").await.unwrap();
    let tablet_events = tablet.sync().await.unwrap();
    assert!(
        matches!(tablet_events.first(), Some(Event::Joined { .. })),
        "{tablet_events:?}"
    );
    assert_eq!(
        texts(&tablet_events),
        vec![(device_id(&a), "after the tablet".to_owned())],
        "nothing from before"
    );

    // The phone revokes the tablet: it leaves the group and loses access.
    phone_events.extend(phone.revoke_device(device_id(&tablet)).await.unwrap());
    a.sync().await.unwrap();
    assert!(
        !a.members(conv)
            .unwrap()
            .iter()
            .any(|m| m.device_id == device_id(&tablet))
    );
    a.send_text(conv, "after the revocation").await.unwrap();
    match tablet.sync().await {
        Err(cloak_sdk::Error::Revoked) => {}
        other => panic!("a revoked device must not fetch: {other:?}"),
    }
    phone_events.extend(phone.sync().await.unwrap());
    assert_eq!(
        texts(&phone_events),
        vec![
            (device_id(&a), "before the tablet".to_owned()),
            (device_id(&a), "after the tablet".to_owned()),
            (device_id(&a), "after the revocation".to_owned()),
        ]
    );
}

async fn ten_users_share_a_group_with_edits_deletes_and_receipts(env: ServerEnv) {
    let stack = Stack::start(&env);
    let owner = stack.tenant.create_user("owner", "Owner").await;
    let mut users = Vec::new();
    for i in 0..9 {
        let u = stack
            .tenant
            .create_user(&format!("user-{i}"), &format!("User {i}"))
            .await;
        stack.tenant.add_contact(owner.id, u.id).await;
        users.push(u.id);
    }
    let mut owner_m = messenger(&stack, owner.id).await;
    let mut others = Vec::new();
    for u in &users {
        others.push(messenger(&stack, *u).await);
    }
    let conv = owner_m.create_conversation(&users).await.unwrap();
    assert_eq!(owner_m.members(conv).unwrap().len(), 10);
    for m in &mut others {
        let events = m.sync().await.unwrap();
        assert!(
            matches!(events.as_slice(), [Event::Joined { members, .. }] if members.len() == 10),
            "{events:?}"
        );
    }
    let (first, _) = owner_m.send_text(conv, "hello everyone").await.unwrap();
    let now = owner_m.client().now_ms();
    let kinds = [
        PayloadKind::Edit {
            target: first,
            text: "hello, everyone".into(),
        },
        PayloadKind::Receipt {
            targets: vec![first],
            read: true,
        },
        PayloadKind::Delete { target: first },
    ];
    for kind in kinds.clone() {
        let payload = cloak_sdk::Payload::new(Uuid::new_v4(), now, kind);
        others[4].send_payload(conv, &payload).await.unwrap();
    }
    for (i, m) in others.iter_mut().enumerate() {
        let events = m.sync().await.unwrap();
        let got: Vec<PayloadKind> = events
            .iter()
            .filter_map(|e| match e {
                Event::Message { payload, .. } => Some(payload.kind.clone()),
                _ => None,
            })
            .collect();
        let mut expected = vec![PayloadKind::Text {
            text: "hello everyone".into(),
        }];
        if i != 4 {
            expected.extend(kinds.clone());
        }
        assert_eq!(got, expected, "member {i}");
    }
    let owner_got = owner_m.sync().await.unwrap();
    assert_eq!(owner_got.len(), 3, "{owner_got:?}");
}

async fn a_device_restarts_from_its_encrypted_store(env: ServerEnv) {
    let stack = Stack::start(&env);
    let alice = stack.tenant.create_user("alice", "Alice").await;
    let bob = stack.tenant.create_user("bob", "Bob").await;
    stack.tenant.add_contact(alice.id, bob.id).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alice-phone.db");
    let key = [42u8; 32];

    let token = stack.tenant.user_token(alice.id).await.token;
    let identity = DeviceIdentity::generate_os();
    let secret = identity.to_secret_bytes();
    let mut client = DeviceClient::new(
        reqwest::Client::new(),
        stack.server.base_url.clone(),
        identity,
        SystemClock,
    );
    client.register(&token, Some("phone")).await.unwrap();
    client.login().await.unwrap();
    let store = LocalStore::open(&path, &StoreKey::from_bytes(key))
        .await
        .unwrap();
    let mut a = Messenger::with_store(client, store).await.unwrap();
    a.publish_key_packages(5).await.unwrap();
    let alice_device = device_id(&a);

    let mut b = messenger(&stack, bob.id).await;
    let conv = b.create_conversation(&[alice.id]).await.unwrap();
    assert!(matches!(
        a.sync().await.unwrap().as_slice(),
        [Event::Joined { .. }]
    ));
    b.send_text(conv, "one").await.unwrap();
    assert_eq!(
        texts(&a.sync().await.unwrap()),
        vec![(device_id(&b), "one".to_owned())]
    );
    drop(a); // the app quits

    let canary = format!("CANARY-{}", Uuid::new_v4().simple());
    b.send_text(conv, &canary).await.unwrap();
    let store = LocalStore::open(&path, &StoreKey::from_bytes(key))
        .await
        .unwrap();
    let mut a = Messenger::restore(
        reqwest::Client::new(),
        &stack.server.base_url,
        SystemClock,
        store,
    )
    .await
    .unwrap()
    .expect("the store holds a device");
    assert_eq!(device_id(&a), alice_device);
    assert_eq!(
        texts(&a.sync().await.unwrap()),
        vec![(device_id(&b), canary.clone())],
        "no repeat of \"one\""
    );
    a.send_text(conv, "three").await.unwrap();
    assert_eq!(
        texts(&b.sync().await.unwrap()),
        vec![(alice_device, "three".to_owned())]
    );
    drop(a);

    // A copied store file reveals nothing: no plaintext, no identity key.
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        bytes.extend(std::fs::read(entry.unwrap().path()).unwrap());
    }
    assert!(bytes.len() > 4096, "the store has content");
    for needle in [canary.as_bytes(), b"three".as_slice(), secret.as_slice()] {
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle),
            "readable in the store file"
        );
    }
    assert!(matches!(
        LocalStore::open(&path, &StoreKey::from_bytes([1; 32])).await,
        Err(cloak_sdk::Error::WrongStoreKey)
    ));
}

/// Real-time delivery over the WebSocket, and a reconnection (with resume) after the
/// server restarts on the same address.
async fn messages_arrive_in_real_time_and_survive_a_server_restart(env: ServerEnv) {
    let mut stack = Stack::start(&env);
    let alice = stack.tenant.create_user("alice", "Alice").await;
    let bob = stack.tenant.create_user("bob", "Bob").await;
    stack.tenant.add_contact(alice.id, bob.id).await;
    let mut a = messenger(&stack, alice.id).await;
    let mut b = messenger(&stack, bob.id).await;
    let conv = a.create_conversation(&[bob.id]).await.unwrap();
    let joined = b
        .next_events(std::time::Duration::from_secs(5))
        .await
        .unwrap();
    assert!(
        matches!(joined.as_slice(), [Event::Joined { .. }]),
        "{joined:?}"
    );

    let started = std::time::Instant::now();
    a.send_text(conv, "live").await.unwrap();
    let got = b
        .next_events(std::time::Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(texts(&got), vec![(device_id(&a), "live".to_owned())]);
    // The same through the stream API.
    a.send_text(conv, "streamed").await.unwrap();
    {
        use futures_util::StreamExt as _;
        let mut events = Box::pin(b.events());
        let next = tokio::time::timeout(std::time::Duration::from_secs(10), events.next())
            .await
            .expect("an event within 10 s")
            .expect("the stream goes on")
            .unwrap();
        assert_eq!(texts(&[next]), vec![(device_id(&a), "streamed".to_owned())]);
    }
    assert!(
        started.elapsed() < std::time::Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );

    let bind = stack
        .server
        .base_url
        .trim_start_matches("http://")
        .to_owned();
    stack.server.kill_hard();
    let restarted = cloak_e2e::ServerProcess::start_at(stack.dir.path(), &env, &bind);
    a.send_text(conv, "after the restart").await.unwrap();
    let mut got = Vec::new();
    for _ in 0..20 {
        if let Ok(events) = b.next_events(std::time::Duration::from_secs(1)).await {
            got.extend(texts(&events));
        }
        if !got.is_empty() {
            break;
        }
    }
    assert_eq!(got, vec![(device_id(&a), "after the restart".to_owned())]);
    drop(restarted);
}

mod group {
    use super::*;
    on_both_backends!(
        an_approved_device_reads_later_messages_and_a_revoked_one_nothing_more,
        ten_users_share_a_group_with_edits_deletes_and_receipts,
        a_device_restarts_from_its_encrypted_store,
        messages_arrive_in_real_time_and_survive_a_server_restart,
        safety_numbers_match_on_both_sides_and_verification_is_remembered,
    );
}

async fn safety_numbers_match_on_both_sides_and_verification_is_remembered(env: ServerEnv) {
    let stack = Stack::start(&env);
    let alice = stack.tenant.create_user("alice", "Alice").await;
    let bob = stack.tenant.create_user("bob", "Bob").await;
    let carol = stack.tenant.create_user("carol", "Carol").await;
    stack.tenant.add_contact(alice.id, bob.id).await;
    stack.tenant.add_contact(alice.id, carol.id).await;
    let mut a = messenger(&stack, alice.id).await;
    let b = messenger(&stack, bob.id).await;
    // A second device of bob's does not change the number: it is rooted in his first.
    let _bob_tablet = messenger(&stack, bob.id).await;
    let from_alice = a.safety_number(bob.id).await.unwrap();
    let from_bob = b.safety_number(alice.id).await.unwrap();
    assert_eq!(from_alice, from_bob);
    assert_eq!(from_alice.digits.len(), 71, "{}", from_alice.digits);
    let with_carol = a.safety_number(carol.id).await;
    // carol has no device yet: there is nothing to verify.
    assert!(with_carol.is_err());
    assert!(!a.is_verified(bob.id).await.unwrap());
    a.mark_verified(bob.id).await.unwrap();
    assert!(a.is_verified(bob.id).await.unwrap());
}

/// Scanning an invite joins and verifies at once; a substituted fingerprint is refused.
async fn joining_by_invite_link_verifies_the_inviter(env: ServerEnv) {
    let stack = Stack::start(&env);
    let alice = stack.tenant.create_user("alice", "Alice").await;
    let bob = stack.tenant.create_user("bob", "Bob").await;
    let carol = stack.tenant.create_user("carol", "Carol").await;
    let mut a = messenger(&stack, alice.id).await;
    let mut b = messenger(&stack, bob.id).await;
    let mut c = messenger(&stack, carol.id).await;
    let mint = |max_uses: u32| {
        let tenant = &stack.tenant;
        async move {
            let resp = tenant
                .http
                .post(format!("{}/v1/invites", tenant.base_url))
                .bearer_auth(&tenant.api_key)
                .json(&serde_json::json!({"inviter_user_id": alice.id, "max_uses": max_uses, "expires_in_secs": 600}))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 201);
            resp.json::<serde_json::Value>().await.unwrap()["url"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let link = mint(5).await;
    assert!(link.contains("#fp="), "{link}");
    let joined = b.join_invite(&link).await.unwrap();
    assert_eq!(joined.inviter, alice.id);
    assert!(
        b.is_verified(alice.id).await.unwrap(),
        "the scan verified alice"
    );
    // The join opened the one-to-one conversation; joining again reuses it.
    assert_eq!(b.conversation_with(alice.id), Some(joined.conversation_id));
    assert_eq!(b.join_invite(&link).await.unwrap(), joined);
    b.send_text(joined.conversation_id, "joined by QR")
        .await
        .unwrap();
    assert_eq!(
        texts(&a.sync().await.unwrap()),
        vec![(device_id(&b), "joined by QR".to_owned())]
    );
    assert_eq!(a.conversation_with(bob.id), Some(joined.conversation_id));
    let names: Vec<String> = a
        .contacts()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.external_id)
        .collect();
    assert_eq!(names, vec!["bob".to_owned()]);

    // A device shows its own invite: the fingerprint is the one it knows, and a scan
    // verifies it the same way.
    let own = a.create_invite(1, 600).await.unwrap();
    assert_eq!(
        own.split_once("#fp=").map(|(_, fp)| fp.to_owned()),
        Some(cloak_sdk::fingerprint(&a.client().identity().public_key()))
    );

    // A link whose fingerprint was swapped (a substituted key) is refused.
    let (head, _) = link.split_once("#fp=").unwrap();
    let forged = format!("{head}#fp={}", "ab".repeat(32));
    match c.join_invite(&forged).await {
        Err(cloak_sdk::Error::Verification(_)) => {}
        other => panic!("a fingerprint mismatch must abort the join: {other:?}"),
    }
    assert!(!c.is_verified(alice.id).await.unwrap());
    assert_eq!(
        c.conversation_with(alice.id),
        None,
        "no conversation on a mismatch"
    );
    let joined = c.join_invite(&own).await.unwrap();
    assert!(c.is_verified(alice.id).await.unwrap());
    c.send_text(joined.conversation_id, "hi from carol")
        .await
        .unwrap();
    assert_eq!(
        texts(&a.sync().await.unwrap()),
        vec![(device_id(&c), "hi from carol".to_owned())]
    );
    match c.join_invite("https://example.test/not-an-invite").await {
        Err(cloak_sdk::Error::Malformed(_)) => {}
        other => panic!("{other:?}"),
    }
}

mod invites {
    use super::*;
    on_both_backends!(joining_by_invite_link_verifies_the_inviter);
}
