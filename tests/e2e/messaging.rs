//! End-to-end encrypted conversations through the real server over TLS, with the SDK's
//! [`Cloak`] client: several devices per user, both directions, groups with edits,
//! reactions and receipts in the local timeline, restarts from the encrypted store, and
//! a plaintext canary that must appear nowhere on the server (database files or dump,
//! logs, Redis traffic).

use std::time::Duration;

use cloak_e2e::listener::{Listener, joined};
use cloak_e2e::{ServerEnv, Stack, on_both_backends};
use cloak_sdk::{Cloak, ConnectionState, Content, Event, LocalStore, StoreKey};
use uuid::Uuid;

fn device_id(c: &Cloak) -> Uuid {
    c.ids().device_id
}

/// Everything the server keeps or prints: database files (or a dump) and logs.
pub(crate) fn server_artifacts(stack: &mut Stack, env: &ServerEnv) -> Vec<u8> {
    let mut all = stack.server.logs().join("\n").into_bytes();
    match env.vars.iter().find(|(k, _)| k == "CLOAK_DATABASE_URL") {
        None => {
            // The database files and the attachment blobs under cloak-data/blobs.
            let mut dirs = vec![stack.dir.path().join("cloak-data")];
            while let Some(dir) = dirs.pop() {
                for entry in std::fs::read_dir(dir).unwrap() {
                    let path = entry.unwrap().path();
                    if path.is_dir() {
                        dirs.push(path);
                    } else {
                        all.extend(std::fs::read(path).unwrap());
                    }
                }
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
    // Line-buffered, so what it saw is in the file when it is stopped.
    let child = std::process::Command::new("stdbuf")
        .args(["-oL", "redis-cli", "-u", url, "monitor"])
        .stdout(out)
        .spawn()
        .unwrap();
    // MONITOR answers OK once it is watching: only then is every later command seen.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !std::fs::read(&path).unwrap_or_default().starts_with(b"OK") {
        assert!(
            std::time::Instant::now() < deadline,
            "redis-cli monitor started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Some((child, path))
}

/// The newest ten messages of a conversation on one device, oldest first.
async fn newest(device: &Cloak, conversation: cloak_sdk::ConversationId) -> cloak_sdk::Page {
    device
        .conversation(conversation)
        .await
        .unwrap()
        .messages(None, 10)
        .await
        .unwrap()
}

/// Waits (up to 30 s) until `device` is (`present`) or is not a member of `chat`.
async fn wait_members(
    chat: &cloak_sdk::ConversationHandle,
    device: Uuid,
    present: bool,
    what: &str,
) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let members = chat.members().await.unwrap();
        if members.iter().any(|m| m.device_id == device) == present {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A second device of the same user: registers (pending), then `approver` checks its
/// fingerprint and approves it.
async fn second_device(stack: &Stack, user: Uuid, approver: &Cloak) -> Cloak {
    let device = stack.cloak(user).await;
    approver
        .devices()
        .approve(device_id(&device), &device.fingerprint().await)
        .await
        .unwrap();
    device
}

async fn two_users_with_two_devices_each_talk_both_ways(env: ServerEnv) {
    let mut stack = Stack::start(&env);
    let alice = stack.tenant.create_user("alice", "Alice").await;
    let bob = stack.tenant.create_user("bob", "Bob").await;
    stack.tenant.add_contact(alice.id, bob.id).await;

    let phone = stack.cloak(alice.id).await;
    let laptop = second_device(&stack, alice.id, &phone).await;
    let bobs = stack.cloak(bob.id).await;
    let bobs_laptop = second_device(&stack, bob.id, &bobs).await;
    let mut listeners: Vec<Listener> = [&phone, &laptop, &bobs, &bobs_laptop]
        .into_iter()
        .map(Listener::new)
        .collect();

    let chat = phone.conversation_with(bob.id).await.unwrap();
    let mut members: Vec<Uuid> = chat
        .members()
        .await
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
    for listener in &mut listeners[1..] {
        listener.until(|e| joined(e, chat.id())).await;
    }
    // The one-to-one conversation is the same one from either side.
    assert_eq!(
        bobs.conversation_with(alice.id).await.unwrap().id(),
        chat.id()
    );

    // Everything that crosses Redis while the canary travels (production only).
    let redis_monitor = redis_monitor(&env);
    let canary = format!("CANARY-{}", Uuid::new_v4().simple());
    let hello = format!("hello bob {canary}");
    chat.send_text(&hello).await.unwrap();
    for listener in &mut listeners[1..] {
        assert_eq!(
            listener.texts(1).await,
            vec![(device_id(&phone), hello.clone())]
        );
    }
    let from_bob = bobs.conversation(chat.id()).await.unwrap();
    from_bob.send_text("hi alice").await.unwrap();
    from_bob.send_text("second").await.unwrap();
    for i in [0, 1, 3] {
        assert_eq!(
            listeners[i].texts(2).await,
            vec![
                (device_id(&bobs), "hi alice".to_owned()),
                (device_id(&bobs), "second".to_owned())
            ],
            "listener {i}"
        );
    }
    // The timeline holds all three, in order, on every device; own ones marked sent.
    for device in [&phone, &bobs_laptop] {
        let page = newest(device, chat.id()).await;
        let shown: Vec<&str> = page.messages.iter().filter_map(|m| m.text()).collect();
        assert_eq!(shown, vec![hello.as_str(), "hi alice", "second"]);
    }
    let own = from_bob.messages(None, 10).await.unwrap();
    assert_eq!(own.messages.len(), 3);
    assert_eq!(own.messages[1].state, cloak_sdk::SendState::Sent);

    let mut artifacts = server_artifacts(&mut stack, &env);
    if let Some((mut child, path)) = redis_monitor {
        let saw_publish =
            |bytes: &[u8]| bytes.windows(7).any(|w| w.eq_ignore_ascii_case(b"publish"));
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !saw_publish(&std::fs::read(&path).unwrap_or_default())
            && std::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        let seen = std::fs::read(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        assert!(saw_publish(&seen), "the monitor saw the wake-ups");
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
    let a = stack.cloak(alice.id).await;
    let phone = stack.cloak(bob.id).await;
    let mut phone_events = Listener::new(&phone);
    let chat = a.conversation_with(bob.id).await.unwrap();
    phone_events.until(|e| joined(e, chat.id())).await;
    chat.send_text("before the tablet").await.unwrap();
    assert_eq!(phone_events.texts(1).await.len(), 1);

    // bob's tablet registers (pending) and is approved by the phone, which adds it to
    // the conversation; it reads what is sent from then on, nothing earlier.
    let tablet = stack.cloak(bob.id).await;
    let mut tablet_events = Listener::new(&tablet);
    phone
        .devices()
        .approve(device_id(&tablet), &tablet.fingerprint().await)
        .await
        .unwrap();
    tablet_events.until(|e| joined(e, chat.id())).await;
    let tablet_id = device_id(&tablet);
    wait_members(&chat, tablet_id, true, "alice saw the tablet join").await;
    chat.send_text("after the tablet").await.unwrap();
    assert_eq!(
        tablet_events.texts(1).await,
        vec![(device_id(&a), "after the tablet".to_owned())],
        "nothing from before"
    );
    let tablet_history = newest(&tablet, chat.id()).await;
    assert_eq!(tablet_history.messages.len(), 1);

    // The phone revokes the tablet: it leaves the group and loses access.
    let mut tablet_state = tablet.connection();
    phone.devices().revoke(tablet_id).await.unwrap();
    tokio::time::timeout(Duration::from_secs(30), async {
        while !matches!(
            *tablet_state.borrow_and_update(),
            ConnectionState::Closed { .. }
        ) {
            tablet_state.changed().await.unwrap();
        }
    })
    .await
    .expect("the revoked tablet's connection closes");
    wait_members(&chat, tablet_id, false, "the tablet was removed").await;
    chat.send_text("after the revocation").await.unwrap();
    match tablet.sync().await {
        Err(cloak_sdk::Error::Revoked) => {}
        other => panic!("a revoked device must not fetch: {other:?}"),
    }
    assert_eq!(
        phone_events.texts(2).await,
        vec![
            (device_id(&a), "after the tablet".to_owned()),
            (device_id(&a), "after the revocation".to_owned()),
        ]
    );
}

async fn ten_users_share_a_group_with_edits_deletes_reactions_and_receipts(env: ServerEnv) {
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
    let owner_c = stack.cloak(owner.id).await;
    let mut others = Vec::new();
    for u in &users {
        let c = stack.cloak(*u).await;
        let l = Listener::new(&c);
        others.push((c, l));
    }
    let mut owner_events = Listener::new(&owner_c);
    let group = owner_c.create_group(&users, "Book club").await.unwrap();
    assert_eq!(group.members().await.unwrap().len(), 10);
    for (_, l) in &mut others {
        let seen = l.until(|e| joined(e, group.id())).await;
        assert!(
            matches!(seen.last(), Some(Event::Joined { members, .. }) if members.len() == 10),
            "{seen:?}"
        );
    }
    let first = group.send_text("hello everyone").await.unwrap();
    let (fifth, fifth_events) = &mut others[4];
    assert_eq!(fifth_events.texts(1).await.len(), 1);
    let theirs = fifth.conversation(group.id()).await.unwrap();
    assert_eq!(theirs.name().await.as_deref(), Some("Book club"));
    // Only its sender may edit or delete a message: user 4's edit is ignored everywhere.
    theirs.edit(first, "forged edit").await.unwrap();
    theirs.react(first, "👍", true).await.unwrap();
    theirs.mark_read(&[first]).await.unwrap();
    group.edit(first, "hello, everyone").await.unwrap();
    let last = theirs.send_text("done").await.unwrap();
    owner_events
        .until(|e| matches!(e, Event::Message { payload, .. } if payload.message_id == last.0))
        .await;
    // Sent after everything above was stored: whoever has it has all of that too.
    let probe = group.send_text("probe").await.unwrap();
    for (i, (c, l)) in others.iter_mut().enumerate() {
        l.until(|e| matches!(e, Event::Message { payload, .. } if payload.message_id == probe.0))
            .await;
        let page = newest(c, group.id()).await;
        let m = &page.messages[0];
        assert_eq!(m.text(), Some("hello, everyone"), "member {i}");
        assert!(m.edited);
        assert_eq!(m.reactions.len(), 1, "member {i}");
        assert_eq!(m.reactions[0].user_id, users[4]);
        assert_eq!(page.messages[1].text(), Some("done"));
    }
    let owner_view = group.messages(None, 10).await.unwrap();
    assert_eq!(owner_view.messages[0].read_by, vec![users[4]]);
    assert_eq!(owner_view.messages[0].delivered_to, vec![users[4]]);

    // The owner deletes it for everyone.
    group.delete(first).await.unwrap();
    let probe = group.send_text("after the delete").await.unwrap();
    let (c, l) = &mut others[0];
    l.until(|e| matches!(e, Event::Message { payload, .. } if payload.message_id == probe.0))
        .await;
    let page = newest(c, group.id()).await;
    assert_eq!(page.messages[0].content, Content::Deleted);

    // One member leaves: the others remove its devices.
    let (leaver, _) = &others[8];
    let leaver_id = device_id(leaver);
    leaver
        .conversation(group.id())
        .await
        .unwrap()
        .leave()
        .await
        .unwrap();
    assert!(leaver.conversation(group.id()).await.is_err());
    wait_members(&group, leaver_id, false, "the leaver was removed").await;
    assert_eq!(group.members().await.unwrap().len(), 9);
    // Nine users are too many for a call's mesh (at most 8): it does not start.
    let refused = group.start_call(cloak_sdk::CallMedia::Audio).await;
    assert!(
        matches!(refused, Err(cloak_sdk::Error::InvalidState(m)) if m.contains("at most 8")),
        "{refused:?}"
    );
}

async fn a_device_restarts_from_its_encrypted_store(env: ServerEnv) {
    let stack = Stack::start(&env);
    let alice = stack.tenant.create_user("alice", "Alice").await;
    let bob = stack.tenant.create_user("bob", "Bob").await;
    stack.tenant.add_contact(alice.id, bob.id).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alice-phone.db");
    let key = [42u8; 32];
    let open = || {
        stack
            .cloak_builder(alice.id, &stack.server.base_url)
            .store(&path, StoreKey::from_bytes(key))
            .build()
    };

    let a = open().await.unwrap();
    let alice_device = device_id(&a);
    let mut a_events = Listener::new(&a);
    let b = stack.cloak(bob.id).await;
    let mut b_events = Listener::new(&b);
    let chat = b.conversation_with(alice.id).await.unwrap();
    a_events.until(|e| joined(e, chat.id())).await;
    chat.send_text("one").await.unwrap();
    assert_eq!(
        a_events.texts(1).await,
        vec![(device_id(&b), "one".to_owned())]
    );
    a.shutdown().await;
    drop((a_events, a)); // the app quits

    let canary = format!("CANARY-{}", Uuid::new_v4().simple());
    chat.send_text(&canary).await.unwrap();
    let a = open().await.unwrap();
    assert_eq!(device_id(&a), alice_device, "the same device, restored");
    let mut a_events = Listener::new(&a);
    assert_eq!(
        a_events.texts(1).await,
        vec![(device_id(&b), canary.clone())],
        "no repeat of \"one\""
    );
    let mine = a.conversation(chat.id()).await.unwrap();
    mine.send_text("three").await.unwrap();
    assert_eq!(
        b_events.texts(1).await,
        vec![(alice_device, "three".to_owned())]
    );
    let history = mine.messages(None, 2).await.unwrap();
    let shown: Vec<&str> = history.messages.iter().filter_map(|m| m.text()).collect();
    assert_eq!(shown, vec![canary.as_str(), "three"]);
    let older = mine.messages(history.older, 10).await.unwrap();
    assert_eq!(older.messages.len(), 1);
    assert_eq!(older.messages[0].text(), Some("one"));
    assert!(older.older.is_none());
    a.shutdown().await;
    drop((a_events, a, mine));

    // A copied store file reveals nothing: no plaintext.
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        bytes.extend(std::fs::read(entry.unwrap().path()).unwrap());
    }
    assert!(bytes.len() > 4096, "the store has content");
    for needle in [canary.as_bytes(), b"three".as_slice()] {
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
    let a = stack.cloak(alice.id).await;
    let b = stack.cloak(bob.id).await;
    let mut b_events = Listener::new(&b);
    let chat = a.conversation_with(bob.id).await.unwrap();
    b_events.until(|e| joined(e, chat.id())).await;

    let started = std::time::Instant::now();
    chat.send_text("live").await.unwrap();
    assert_eq!(
        b_events.texts(1).await,
        vec![(device_id(&a), "live".to_owned())]
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    // Two subscribers see the same events while another task sends.
    let mut second = Listener::new(&b);
    let sender = {
        let chat = chat.clone();
        tokio::spawn(async move { chat.send_text("to both").await.unwrap() })
    };
    assert_eq!(b_events.texts(1).await[0].1, "to both");
    assert_eq!(
        second.texts(1).await[0].1,
        "to both",
        "each subscriber sees it once"
    );
    sender.await.unwrap();

    let bind = stack
        .server
        .base_url
        .trim_start_matches("https://")
        .to_owned();
    stack.server.kill_hard();
    let restarted = cloak_e2e::ServerProcess::start_at(stack.dir.path(), &env, &bind);
    chat.send_text("after the restart").await.unwrap();
    assert_eq!(
        b_events.texts(1).await,
        vec![(device_id(&a), "after the restart".to_owned())]
    );
    drop(restarted);
}

/// The tenant revokes a device (no device of its user takes part): the server, as the
/// group's MLS external sender, proposes its removal, and a member's next send commits it.
async fn the_server_proposes_removing_a_device_the_tenant_revoked(env: ServerEnv) {
    let stack = Stack::start(&env);
    let alice = stack.tenant.create_user("alice", "Alice").await;
    let bob = stack.tenant.create_user("bob", "Bob").await;
    stack.tenant.add_contact(alice.id, bob.id).await;
    let a = stack.cloak(alice.id).await;
    let phone = stack.cloak(bob.id).await;
    let tablet = second_device(&stack, bob.id, &phone).await;
    let (mut phone_events, mut tablet_events) = (Listener::new(&phone), Listener::new(&tablet));
    let chat = a.conversation_with(bob.id).await.unwrap();
    phone_events.until(|e| joined(e, chat.id())).await;
    tablet_events.until(|e| joined(e, chat.id())).await;
    let tablet_id = device_id(&tablet);
    wait_members(&chat, tablet_id, true, "the tablet is in the group").await;

    stack.tenant.revoke_device(tablet_id).await;
    // Alice's SDK stores the proposal when it arrives; her next send commits it first.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut sent = 0;
    while chat
        .members()
        .await
        .unwrap()
        .iter()
        .any(|m| m.device_id == tablet_id)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no member committed the server's removal"
        );
        chat.send_text(&format!("ping {sent}")).await.unwrap();
        sent += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Bob's phone follows the commit: the tablet is out of the MLS group there too, and
    // the conversation goes on.
    let phone_chat = phone.conversation(chat.id()).await.unwrap();
    wait_members(&phone_chat, tablet_id, false, "the phone saw the removal").await;
    chat.send_text("after the removal").await.unwrap();
    let texts = phone_events.texts(sent + 1).await;
    assert_eq!(
        texts.last(),
        Some(&(device_id(&a), "after the removal".to_owned()))
    );
}

mod group {
    use super::*;
    on_both_backends!(
        the_server_proposes_removing_a_device_the_tenant_revoked,
        an_approved_device_reads_later_messages_and_a_revoked_one_nothing_more,
        ten_users_share_a_group_with_edits_deletes_reactions_and_receipts,
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
    let a = stack.cloak(alice.id).await;
    let b = stack.cloak(bob.id).await;
    // A second device of bob's does not change the number: it is rooted in his first.
    let _bob_tablet = stack.cloak(bob.id).await;
    let from_alice = a.safety_number(bob.id).await.unwrap();
    let from_bob = b.safety_number(alice.id).await.unwrap();
    assert_eq!(from_alice, from_bob);
    assert_eq!(from_alice.digits.len(), 71, "{}", from_alice.digits);
    // carol has no device yet: there is nothing to verify.
    assert!(a.safety_number(carol.id).await.is_err());
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
    let a = stack.cloak(alice.id).await;
    let mut a_events = Listener::new(&a);
    let b = stack.cloak(bob.id).await;
    let c = stack.cloak(carol.id).await;
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
    let joined_chat = b.join_invite(&link).await.unwrap();
    assert_eq!(joined_chat.inviter, alice.id);
    assert!(
        b.is_verified(alice.id).await.unwrap(),
        "the scan verified alice"
    );
    // Joining again reuses the one-to-one conversation.
    let again = b.join_invite(&link).await.unwrap();
    assert_eq!(again.conversation.id(), joined_chat.conversation.id());
    joined_chat
        .conversation
        .send_text("joined by QR")
        .await
        .unwrap();
    assert_eq!(
        a_events.texts(1).await,
        vec![(device_id(&b), "joined by QR".to_owned())]
    );
    assert_eq!(
        a.conversation_with(bob.id).await.unwrap().id(),
        joined_chat.conversation.id()
    );
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
        Some(a.fingerprint().await)
    );

    // A link whose fingerprint was swapped (a substituted key) is refused.
    let (head, _) = link.split_once("#fp=").unwrap();
    let forged = format!("{head}#fp={}", "ab".repeat(32));
    match c.join_invite(&forged).await {
        Err(cloak_sdk::Error::Verification(_)) => {}
        other => panic!("a fingerprint mismatch must abort the join: {other:?}"),
    }
    assert!(!c.is_verified(alice.id).await.unwrap());
    assert!(
        c.conversations().await.is_empty(),
        "no conversation on a mismatch"
    );
    let joined_chat = c.join_invite(&own).await.unwrap();
    assert!(c.is_verified(alice.id).await.unwrap());
    joined_chat
        .conversation
        .send_text("hi from carol")
        .await
        .unwrap();
    assert_eq!(
        a_events.texts(1).await,
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
