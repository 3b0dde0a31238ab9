//! Calls end to end: signaling inside MLS between SDK clients (ringing on every device of
//! the callee, answered elsewhere, SDP and ICE addressed per device, hang-up, the ringing
//! timeout), with nothing of it readable by the server.

use std::time::Duration;

use cloak_e2e::listener::{Listener, joined};
use cloak_e2e::{ServerEnv, Stack, on_both_backends};
use cloak_sdk::{CallEndReason, CallEvent, CallMedia, Cloak, Event};
use uuid::Uuid;

fn device_id(c: &Cloak) -> Uuid {
    c.ids().device_id
}

/// The next call event of `call` a listener sees.
async fn call_event(l: &mut Listener, call: Uuid) -> CallEvent {
    let events = l
        .until(|e| matches!(e, Event::Call { call_id, .. } if *call_id == call))
        .await;
    match events.last() {
        Some(Event::Call { event, .. }) => event.clone(),
        other => panic!("expected a call event, got {other:?}"),
    }
}

/// Within half a second, `l` sees no SDP (it was addressed to another device).
async fn assert_no_sdp(l: &mut Listener) {
    let rest = l.drain(Duration::from_millis(500)).await;
    assert!(
        !rest.iter().any(|e| matches!(
            e,
            Event::Call {
                event: CallEvent::CallSdp { .. },
                ..
            }
        )),
        "{rest:?}"
    );
}

async fn a_call_rings_every_device_is_answered_on_one_and_exchanges_sdp_and_ice(env: ServerEnv) {
    let stack = Stack::start(&env);
    let alice = stack.tenant.create_user("alice", "Alice").await;
    let bob = stack.tenant.create_user("bob", "Bob").await;
    stack.tenant.add_contact(alice.id, bob.id).await;
    let a = stack.cloak(alice.id).await;
    let phone = stack.cloak(bob.id).await;
    let laptop = stack.cloak(bob.id).await;
    phone
        .devices()
        .approve(device_id(&laptop), &laptop.fingerprint().await)
        .await
        .unwrap();
    let mut la = Listener::new(&a);
    let mut lp = Listener::new(&phone);
    let mut ll = Listener::new(&laptop);
    let chat = a.conversation_with(bob.id).await.unwrap();
    lp.until(|e| joined(e, chat.id())).await;
    ll.until(|e| joined(e, chat.id())).await;

    let call = chat.start_call(CallMedia::Video).await.unwrap();
    for l in [&mut lp, &mut ll] {
        match call_event(l, call.id()).await {
            CallEvent::IncomingCall { from, media } => {
                assert_eq!((from.device_id, media), (device_id(&a), CallMedia::Video));
            }
            other => panic!("{other:?}"),
        }
    }
    // Bob takes it on his phone: Alice hears the answer, the laptop stops ringing.
    phone.call(chat.id(), call.id()).accept().await.unwrap();
    match call_event(&mut la, call.id()).await {
        CallEvent::CallAnswered { by } => assert_eq!(by.device_id, device_id(&phone)),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        call_event(&mut ll, call.id()).await,
        CallEvent::CallEnded {
            reason: CallEndReason::AnsweredElsewhere
        }
    );
    // SDP and ICE go to the answering device only.
    let offer = format!("v=0 o=- {} 2 IN IP4 127.0.0.1", Uuid::new_v4().simple());
    call.send_offer(device_id(&phone), &offer).await.unwrap();
    match call_event(&mut lp, call.id()).await {
        CallEvent::CallSdp {
            from,
            offer: true,
            sdp,
        } => {
            assert_eq!((from.device_id, sdp), (device_id(&a), offer.clone()));
        }
        other => panic!("{other:?}"),
    }
    let bobs_call = phone.call(chat.id(), call.id());
    bobs_call
        .send_answer(device_id(&a), "v=0 answer")
        .await
        .unwrap();
    bobs_call
        .send_ice_candidate(
            device_id(&a),
            "candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host",
            Some("0"),
            Some(0),
        )
        .await
        .unwrap();
    assert!(matches!(
        call_event(&mut la, call.id()).await,
        CallEvent::CallSdp { offer: false, .. }
    ));
    match call_event(&mut la, call.id()).await {
        CallEvent::IceCandidate {
            candidate,
            sdp_mid,
            sdp_mline_index,
            ..
        } => {
            assert!(candidate.contains("typ host"));
            assert_eq!((sdp_mid.as_deref(), sdp_mline_index), (Some("0"), Some(0)));
        }
        other => panic!("{other:?}"),
    }
    call.hang_up().await.unwrap();
    match call_event(&mut lp, call.id()).await {
        CallEvent::CallEnded {
            reason: CallEndReason::HungUp { by },
        } => assert_eq!(by.device_id, device_id(&a)),
        other => panic!("{other:?}"),
    }
    // The laptop saw no SDP meant for the phone.
    assert_no_sdp(&mut ll).await;
    // Signals never show as messages in the timeline.
    let page = chat.messages(None, 50).await.unwrap();
    assert!(page.messages.is_empty(), "{:?}", page.messages);
}

async fn an_unanswered_call_times_out_and_a_declined_one_ends(env: ServerEnv) {
    let stack = Stack::start(&env);
    let alice = stack.tenant.create_user("alice", "Alice").await;
    let bob = stack.tenant.create_user("bob", "Bob").await;
    stack.tenant.add_contact(alice.id, bob.id).await;
    let a = stack
        .cloak_builder(alice.id, &stack.server.base_url)
        .ring_timeout(Duration::from_secs(2))
        .build()
        .await
        .unwrap();
    let b = stack
        .cloak_builder(bob.id, &stack.server.base_url)
        .ring_timeout(Duration::from_secs(30))
        .build()
        .await
        .unwrap();
    let mut la = Listener::new(&a);
    let mut lb = Listener::new(&b);
    let chat = a.conversation_with(bob.id).await.unwrap();
    lb.until(|e| joined(e, chat.id())).await;

    let call = chat.start_call(CallMedia::Audio).await.unwrap();
    assert!(matches!(
        call_event(&mut lb, call.id()).await,
        CallEvent::IncomingCall { .. }
    ));
    // Nobody answers: Alice's SDK gives up and hangs up, which stops Bob's ringing.
    assert_eq!(
        call_event(&mut la, call.id()).await,
        CallEvent::CallEnded {
            reason: CallEndReason::NoAnswer
        }
    );
    assert!(matches!(
        call_event(&mut lb, call.id()).await,
        CallEvent::CallEnded {
            reason: CallEndReason::HungUp { .. }
        }
    ));
    // A declined call ends for the caller.
    let second = chat.start_call(CallMedia::Audio).await.unwrap();
    call_event(&mut lb, second.id()).await;
    b.call(chat.id(), second.id()).decline().await.unwrap();
    match call_event(&mut la, second.id()).await {
        CallEvent::CallEnded {
            reason: CallEndReason::Declined { by },
        } => assert_eq!(by.device_id, device_id(&b)),
        other => panic!("{other:?}"),
    }
    // A call that is over takes no more signals.
    assert!(second.hang_up().await.is_err());
}

/// A group call is a mesh: the caller offers to each callee who accepts (`CallAnswered`),
/// two callees each learn of the other (`PeerJoined`) and the one with the smaller device
/// id offers, and the SDP between them reaches only the one it is addressed to.
async fn a_group_call_connects_every_pair_of_callees(env: ServerEnv) {
    let mut stack = Stack::start(&env);
    let alice = stack.tenant.create_user("alice", "Alice").await;
    let bob = stack.tenant.create_user("bob", "Bob").await;
    let carol = stack.tenant.create_user("carol", "Carol").await;
    stack.tenant.add_contact(alice.id, bob.id).await;
    stack.tenant.add_contact(alice.id, carol.id).await;
    let a = stack.cloak(alice.id).await;
    let b = stack.cloak(bob.id).await;
    let c = stack.cloak(carol.id).await;
    let (mut la, mut lb, mut lc) = (Listener::new(&a), Listener::new(&b), Listener::new(&c));
    let group = a
        .create_group(&[bob.id, carol.id], "Standup")
        .await
        .unwrap();
    lb.until(|e| joined(e, group.id())).await;
    lc.until(|e| joined(e, group.id())).await;

    let call = group.start_call(CallMedia::Audio).await.unwrap();
    for l in [&mut lb, &mut lc] {
        assert!(matches!(
            call_event(l, call.id()).await,
            CallEvent::IncomingCall { .. }
        ));
    }
    b.call(group.id(), call.id()).accept().await.unwrap();
    match call_event(&mut la, call.id()).await {
        CallEvent::CallAnswered { by } => assert_eq!(by.device_id, device_id(&b)),
        other => panic!("{other:?}"),
    }
    c.call(group.id(), call.id()).accept().await.unwrap();
    match call_event(&mut la, call.id()).await {
        CallEvent::CallAnswered { by } => assert_eq!(by.device_id, device_id(&c)),
        other => panic!("{other:?}"),
    }
    // Bob and Carol each learn that the other is in the call, whatever order their
    // accepts arrived in; the one with the smaller device id offers.
    let mut offers = Vec::new();
    for (l, other) in [(&mut lb, device_id(&c)), (&mut lc, device_id(&b))] {
        match call_event(l, call.id()).await {
            CallEvent::PeerJoined { by, offer } => {
                assert_eq!(by.device_id, other);
                offers.push(offer);
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        offers,
        vec![device_id(&b) < device_id(&c), device_id(&c) < device_id(&b)]
    );
    let (offerer, offerer_l, answerer, answerer_l) = if offers[0] {
        (&b, &mut lb, &c, &mut lc)
    } else {
        (&c, &mut lc, &b, &mut lb)
    };
    let offer = format!("v=0 o=peer {} 2 IN IP4 127.0.0.1", Uuid::new_v4().simple());
    let offer_canary = offer.clone();
    offerer
        .call(group.id(), call.id())
        .send_offer(device_id(answerer), &offer)
        .await
        .unwrap();
    match call_event(answerer_l, call.id()).await {
        CallEvent::CallSdp {
            from,
            offer: true,
            sdp,
        } => assert_eq!((from.device_id, sdp), (device_id(offerer), offer)),
        other => panic!("{other:?}"),
    }
    answerer
        .call(group.id(), call.id())
        .send_answer(device_id(offerer), "v=0 callee-answer-canary")
        .await
        .unwrap();
    match call_event(offerer_l, call.id()).await {
        CallEvent::CallSdp {
            from, offer: false, ..
        } => assert_eq!(from.device_id, device_id(answerer)),
        other => panic!("{other:?}"),
    }
    // The caller saw neither: it was addressed between the callees.
    assert_no_sdp(&mut la).await;
    // Bob leaves; the call goes on between Alice and Carol until Alice hangs up.
    b.call(group.id(), call.id()).hang_up().await.unwrap();
    call.hang_up().await.unwrap();
    match call_event(&mut lc, call.id()).await {
        CallEvent::CallEnded {
            reason: CallEndReason::HungUp { by },
        } => assert_eq!(by.device_id, device_id(&a), "Bob leaving did not end it"),
        other => panic!("{other:?}"),
    }
    // The server relayed the signaling without reading it: neither session description is
    // in its database or logs.
    let artifacts = crate::messaging::server_artifacts(&mut stack, &env);
    for canary in [offer_canary.as_bytes(), b"v=0 callee-answer-canary"] {
        assert!(
            !artifacts.windows(canary.len()).any(|w| w == canary),
            "call signaling readable on the server"
        );
    }
}

on_both_backends!(
    a_call_rings_every_device_is_answered_on_one_and_exchanges_sdp_and_ice,
    a_group_call_connects_every_pair_of_callees,
    an_unanswered_call_times_out_and_a_declined_one_ends,
);

fn required(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the suite with scripts/test, which starts coturn")
    })
}

fn turn_password(secret: &str, username: &str) -> String {
    use base64::Engine as _;
    use hmac::Mac as _;
    let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(username.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// One TURN allocation on the test coturn with these credentials, sending one message
/// through the relay to a local echo peer: whether it succeeded, and the tool's output.
async fn allocate(port: &str, peer_port: u16, username: &str, password: &str) -> (bool, String) {
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::process::Command::new("turnutils_uclient")
            .args(["-v", "-n", "1", "-c", "-m", "1", "-e", "127.0.0.1"])
            .args([
                "-r",
                &peer_port.to_string(),
                "-p",
                port,
                "-u",
                username,
                "-w",
                password,
            ])
            .arg("127.0.0.1")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("turnutils_uclient finished")
    .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (
        out.status.success() && text.contains("Received relay addr"),
        text,
    )
}

/// The credentials the server issues allocate a relay on a real coturn (started by
/// scripts/test with the same shared secret) and carry data through it; expired and
/// forged ones are refused by the relay.
#[tokio::test]
async fn issued_turn_credentials_allocate_a_relay_on_coturn() {
    let port = required("CLOAK_TEST_TURN_PORT");
    let secret = required("CLOAK_TEST_TURN_SECRET");
    let env = ServerEnv::embedded()
        .with(
            "CLOAK_TURN_URIS",
            &format!("turn:127.0.0.1:{port}?transport=udp"),
        )
        .with("CLOAK_TURN_SECRET", &secret);
    let stack = Stack::start(&env);
    let alice = stack.tenant.create_user("alice", "Alice").await;
    let a = stack.cloak(alice.id).await;
    let issued = a.turn_credentials().await.unwrap();
    assert_eq!(
        issued.uris,
        vec![format!("turn:127.0.0.1:{port}?transport=udp")]
    );
    // An echo peer behind the relay.
    let peer_port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _peer = tokio::process::Command::new("turnutils_peer")
        .args(["-L", "127.0.0.1", "-p", &peer_port.to_string()])
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let (ok, log) = allocate(&port, peer_port, &issued.username, &issued.password).await;
    assert!(ok, "issued credentials were refused:\n{log}");
    assert!(
        log.contains("tot_recv_msgs=1"),
        "nothing came back through the relay:\n{log}"
    );

    let mut forged = issued.password.clone();
    forged.replace_range(0..1, if forged.starts_with('A') { "B" } else { "A" });
    let (ok, log) = allocate(&port, peer_port, &issued.username, &forged).await;
    assert!(!ok, "a forged password was accepted:\n{log}");

    let user = issued.username.split_once(':').unwrap().1;
    let past = time::OffsetDateTime::now_utc().unix_timestamp() - 3600;
    let expired = format!("{past}:{user}");
    let (ok, log) = allocate(
        &port,
        peer_port,
        &expired,
        &turn_password(&secret, &expired),
    )
    .await;
    assert!(!ok, "expired credentials were accepted:\n{log}");
    // The same shape, valid now, is accepted: the refusals were about expiry and the HMAC.
    let fresh = format!("{}:{user}", past + 7200);
    let (ok, log) = allocate(&port, peer_port, &fresh, &turn_password(&secret, &fresh)).await;
    assert!(ok, "{log}");
}
