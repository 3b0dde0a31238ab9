//! The terminal chat example end to end: a host platform (`cloak-platform`) creates users
//! and mints an invite; people chat through `cloak-chat` processes, each with its own
//! encrypted profile.

use std::path::{Path, PathBuf};

use cloak_e2e::{ServerEnv, Stack, binary, on_both_backends};
use serde_json::Value;

/// Output of one CLI run.
struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        assert!(self.ok, "command failed: {}", self.stderr);
        serde_json::from_str(self.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {}", self.stdout))
    }

    fn lines(&self) -> Vec<Value> {
        assert!(self.ok, "command failed: {}", self.stderr);
        self.stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

async fn run(bin: &str, envs: &[(&str, &str)], args: &[&str]) -> Run {
    let ca = cloak_e2e::tls::test_ca().ca_path.to_str().unwrap();
    let mut all = vec![("CLOAK_CA_CERT", ca)];
    all.extend_from_slice(envs);
    run_with(bin, &all, args).await
}

/// Runs with exactly `envs` (no `CLOAK_*` or `SSL_CERT_*` variable inherited).
async fn run_with(bin: &str, envs: &[(&str, &str)], args: &[&str]) -> Run {
    let mut cmd = tokio::process::Command::new(binary(bin));
    cmd.args(args).kill_on_drop(true);
    for (key, _) in std::env::vars() {
        if key.starts_with("CLOAK_") || key.starts_with("SSL_CERT_") {
            cmd.env_remove(key);
        }
    }
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(std::time::Duration::from_secs(60), cmd.output())
        .await
        .expect("the command finished within a minute")
        .unwrap();
    Run {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `cloak-platform …` as the tenant's backend.
async fn platform(stack: &Stack, args: &[&str]) -> Run {
    let env = [
        ("CLOAK_SERVER", stack.server.base_url.as_str()),
        ("CLOAK_API_KEY", stack.tenant.api_key.as_str()),
    ];
    run("cloak-platform", &env, args).await
}

/// `cloak-chat --json --profile DIR …` (the server comes from the profile after login).
async fn chat(stack: &Stack, profile: &Path, args: &[&str]) -> Run {
    let profile = profile.to_str().unwrap();
    let mut all = vec![
        "--json",
        "--profile",
        profile,
        "--server",
        &stack.server.base_url,
    ];
    all.extend_from_slice(args);
    run("cloak-chat", &[], &all).await
}

/// Creates the user on the platform and logs a new `cloak-chat` device in for them.
async fn person(stack: &Stack, id: &str, name: &str) -> PathBuf {
    let user = platform(stack, &["user", "create", id, name]).await.json();
    assert_eq!(user["external_id"], id);
    let token = platform(stack, &["user", "token", id]).await;
    assert!(token.ok, "{}", token.stderr);
    let profile = stack.dir.path().join(format!("profile-{id}"));
    let login = chat(
        stack,
        &profile,
        &["login", "--user-token", token.stdout.trim()],
    )
    .await
    .json();
    assert_eq!(login["status"], "approved", "{login}");
    profile
}

/// alice and bob, contacts, each with a logged-in `cloak-chat` profile: their user ids
/// and profiles.
async fn alice_and_bob(stack: &Stack) -> (Vec<uuid::Uuid>, PathBuf, PathBuf) {
    let mut ids = Vec::new();
    let mut profiles = Vec::new();
    for (id, name) in [("alice", "Alice"), ("bob", "Bob")] {
        ids.push(stack.tenant.create_user(id, name).await.id);
        let token = platform(stack, &["user", "token", id]).await;
        assert!(token.ok, "{}", token.stderr);
        let profile = stack.dir.path().join(format!("profile-{id}"));
        let login = chat(
            stack,
            &profile,
            &["login", "--user-token", token.stdout.trim()],
        )
        .await
        .json();
        assert_eq!(login["status"], "approved", "{login}");
        profiles.push(profile);
    }
    stack.tenant.add_contact(ids[0], ids[1]).await;
    (ids, profiles[0].clone(), profiles[1].clone())
}

/// Received messages as (from, text), waiting up to 15 s for the first.
async fn received(stack: &Stack, profile: &Path) -> Vec<(String, String)> {
    chat(stack, profile, &["recv", "--wait", "15"])
        .await
        .lines()
        .into_iter()
        .filter(|m| m["kind"] == "text")
        .map(|m| {
            (
                m["from"].as_str().unwrap().to_owned(),
                m["text"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

async fn chatting_through_the_terminal_client(env: ServerEnv) {
    let stack = Stack::start(&env);
    let alice = person(&stack, "alice", "Alice").await;
    let bob = person(&stack, "bob", "Bob").await;
    let carol = person(&stack, "carol", "Carol").await;

    // The platform mints a one-use invite for alice; bob joins by its QR code (PNG).
    let png = stack.dir.path().join("alice-invite.png");
    let invite = platform(
        &stack,
        &["invite", "create", "alice", "--png", png.to_str().unwrap()],
    )
    .await
    .json();
    assert!(invite["url"].as_str().unwrap().contains("#fp="), "{invite}");
    let joined = chat(&stack, &bob, &["join", png.to_str().unwrap()])
        .await
        .json();
    assert_eq!(
        (&joined["contact"], &joined["verified"]),
        (&Value::from("alice"), &Value::from(true)),
        "{joined}"
    );

    // They chat: bob by external id, alice by display name.
    let sent = chat(&stack, &bob, &["send", "alice", "hello alice"]).await;
    assert!(sent.ok, "{}", sent.stderr);
    assert_eq!(
        received(&stack, &alice).await,
        vec![("bob".to_owned(), "hello alice".to_owned())]
    );
    let sent = chat(&stack, &alice, &["send", "Bob", "hi bob"]).await;
    assert!(sent.ok, "{}", sent.stderr);
    assert_eq!(
        received(&stack, &bob).await,
        vec![("alice".to_owned(), "hi bob".to_owned())]
    );
    // Nothing is printed twice.
    assert!(chat(&stack, &bob, &["recv"]).await.lines().is_empty());

    // Contacts with verification state; both sides compute the same safety number.
    let contacts = chat(&stack, &bob, &["contacts"]).await.json();
    assert_eq!(contacts["contacts"][0]["external_id"], "alice");
    assert_eq!(
        contacts["contacts"][0]["verified"], true,
        "verified by the scan"
    );
    let theirs = chat(&stack, &alice, &["contacts"]).await.json();
    assert_eq!(theirs["contacts"][0]["verified"], false);
    let a = chat(&stack, &alice, &["safety-number", "bob", "--confirm"])
        .await
        .json();
    let b = chat(&stack, &bob, &["safety-number", "alice"]).await.json();
    assert_eq!(a["safety_number"], b["safety_number"]);
    assert_eq!(a["verified"], true);

    // The invite is used up: carol is refused with the server's reason.
    let used = chat(&stack, &carol, &["join", png.to_str().unwrap()]).await;
    assert!(!used.ok);
    assert!(used.stderr.contains("invite_used_up"), "{}", used.stderr);

    // An expired invite is refused.
    let old = platform(&stack, &["invite", "create", "alice", "--max-uses", "5"])
        .await
        .json();
    stack
        .execute_sql("UPDATE invites SET expires_at = 1 WHERE max_uses = 5")
        .await;
    let expired = chat(&stack, &carol, &["join", old["url"].as_str().unwrap()]).await;
    assert!(!expired.ok);
    assert!(
        expired.stderr.contains("invite_expired"),
        "{}",
        expired.stderr
    );

    // alice's device shows its own invite; a link with a substituted fingerprint is
    // refused, the true one joins and verifies.
    let shown = chat(&stack, &alice, &["invite", "show", "--max-uses", "2"])
        .await
        .json();
    let link = shown["link"].as_str().unwrap();
    let (head, _) = link.split_once("#fp=").unwrap();
    let forged = format!("{head}#fp={}", "0".repeat(64));
    let refused = chat(&stack, &carol, &["join", &forged]).await;
    assert!(!refused.ok);
    assert!(
        refused.stderr.contains("does not match"),
        "{}",
        refused.stderr
    );
    let joined = chat(&stack, &carol, &["join", link]).await.json();
    assert_eq!(joined["verified"], true);
    let sent = chat(&stack, &carol, &["send", "alice", "carol here"]).await;
    assert!(sent.ok, "{}", sent.stderr);
    assert_eq!(
        received(&stack, &alice).await,
        vec![("carol".to_owned(), "carol here".to_owned())]
    );

    // A second device of alice waits for approval from the first, then reads new messages.
    let token = platform(&stack, &["user", "token", "alice"]).await;
    let laptop = stack.dir.path().join("profile-alice-laptop");
    let login = chat(
        &stack,
        &laptop,
        &["login", "--user-token", token.stdout.trim()],
    )
    .await
    .json();
    assert_eq!(login["status"], "pending");
    let pending = chat(&stack, &laptop, &["recv"]).await;
    assert!(
        !pending.ok && pending.stderr.contains("device_pending"),
        "{}",
        pending.stderr
    );
    let id = login["device_id"].as_str().unwrap();
    let approved = chat(
        &stack,
        &alice,
        &[
            "devices",
            "approve",
            id,
            "--fingerprint",
            login["fingerprint"].as_str().unwrap(),
        ],
    )
    .await
    .json();
    assert_eq!(approved["status"], "approved");
    let list = chat(&stack, &alice, &["devices", "list"]).await.json();
    assert_eq!(list["devices"].as_array().unwrap().len(), 2, "{list}");
    let sent = chat(&stack, &bob, &["send", "alice", "to both devices"]).await;
    assert!(sent.ok, "{}", sent.stderr);
    assert_eq!(
        received(&stack, &laptop).await,
        vec![("bob".to_owned(), "to both devices".to_owned())]
    );

    // The interactive chat: lines typed are sent, arriving messages are printed, and
    // end of input leaves.
    let sent = chat(&stack, &bob, &["send", "alice", "are you there?"]).await;
    assert!(sent.ok, "{}", sent.stderr);
    let mut session = tokio::process::Command::new(binary("cloak-chat"))
        .env("CLOAK_CA_CERT", &cloak_e2e::tls::test_ca().ca_path)
        .args([
            "--json",
            "--profile",
            alice.to_str().unwrap(),
            "chat",
            "bob",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    {
        use tokio::io::AsyncWriteExt as _;
        let mut stdin = session.stdin.take().unwrap();
        stdin.write_all(b"typed in the chat\n").await.unwrap();
        stdin.flush().await.unwrap();
        assert_eq!(
            received(&stack, &bob).await,
            vec![("alice".to_owned(), "typed in the chat".to_owned())]
        );
    } // stdin closes: the chat ends
    let out = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        session.wait_with_output(),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.contains("are you there?"), "{printed}");

    // Unknown contacts and bad input get clear errors, not panics.
    let unknown = chat(&stack, &bob, &["send", "mallory", "hi"]).await;
    assert!(
        !unknown.ok && unknown.stderr.contains("no contact named"),
        "{}",
        unknown.stderr
    );
    let bad = chat(&stack, &bob, &["join", "not a link"]).await;
    assert!(
        !bad.ok && bad.stderr.contains("not an invite link"),
        "{}",
        bad.stderr
    );
}

/// The `step` of each JSON line a call command printed.
fn steps(run: &Run) -> Vec<String> {
    run.lines()
        .iter()
        .map(|l| l["step"].as_str().unwrap().to_owned())
        .collect()
}

/// `cloak-chat call` rings a contact whose `cloak-chat answer` takes the call; both print
/// the signaling steps. `call-credentials` prints exactly the TURN fields.
async fn calling_through_the_terminal_client(env: ServerEnv) {
    let env = env
        .with("CLOAK_TURN_URIS", "turn:127.0.0.1:3478?transport=udp")
        .with("CLOAK_TURN_SECRET", "cli-test-secret");
    let stack = Stack::start(&env);
    let (ids, alice, bob) = alice_and_bob(&stack).await;
    // Each side has seen the conversation once (so bob's device is in it).
    assert!(chat(&stack, &alice, &["send", "bob", "ring ring"]).await.ok);
    assert_eq!(received(&stack, &bob).await.len(), 1);

    let bob_profile = bob.to_str().unwrap().to_owned();
    let base = stack.server.base_url.clone();
    let answering = tokio::spawn(async move {
        let args = [
            "--json",
            "--profile",
            bob_profile.as_str(),
            "--server",
            base.as_str(),
            "answer",
            "--wait",
            "40",
        ];
        run("cloak-chat", &[], &args).await
    });
    // The answering side subscribes before the call rings.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let called = chat(&stack, &alice, &["call", "bob", "--video", "--wait", "40"]).await;
    assert!(called.ok, "{}\n{}", called.stdout, called.stderr);
    assert_eq!(
        steps(&called),
        ["ringing", "answered", "sdp_answer", "ice", "ended"],
        "{}",
        called.stdout
    );
    let rtt = &called.lines()[2]["signaling_rtt_ms"];
    assert!(rtt.as_f64().unwrap() > 0.0, "{rtt}");
    let answered = answering.await.unwrap();
    assert_eq!(
        steps(&answered),
        ["incoming", "accepted", "sdp_offer", "ice", "ended"],
        "{}",
        answered.stdout
    );
    assert_eq!(answered.lines()[0]["media"], "video");

    let credentials = chat(&stack, &alice, &["call-credentials"]).await.json();
    let keys: std::collections::BTreeSet<&str> = credentials
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["password", "ttl_secs", "uris", "username"].into());
    assert_eq!(credentials["uris"][0], "turn:127.0.0.1:3478?transport=udp");
    assert!(
        credentials["username"]
            .as_str()
            .unwrap()
            .ends_with(&ids[0].to_string())
    );
}

on_both_backends!(
    chatting_through_the_terminal_client,
    calling_through_the_terminal_client
);

/// Without `--ca-cert` the client trusts the system's roots, which `SSL_CERT_FILE` names
/// (as OpenSSL-based tools read it): the test CA there, and the login works; without it,
/// the server's certificate is refused and nothing is sent in clear instead.
#[tokio::test]
async fn the_client_trusts_roots_named_by_ssl_cert_file() {
    let stack = Stack::start(&ServerEnv::embedded());
    let token = platform(&stack, &["user", "create", "dora", "Dora"]).await;
    assert!(token.ok, "{}", token.stderr);
    let token = platform(&stack, &["user", "token", "dora"]).await;
    let profile = stack.dir.path().join("profile-dora");
    let profile = profile.to_str().unwrap();
    let args = [
        "--json",
        "--profile",
        profile,
        "--server",
        &stack.server.base_url,
        "login",
        "--user-token",
        token.stdout.trim(),
    ];
    let refused = run_with("cloak-chat", &[], &args).await;
    assert!(!refused.ok, "{}", refused.stdout);
    assert!(
        refused.stderr.contains("certificate") || refused.stderr.contains("transport"),
        "{}",
        refused.stderr
    );
    let ca = cloak_e2e::tls::test_ca().ca_path.to_str().unwrap();
    let login = run_with("cloak-chat", &[("SSL_CERT_FILE", ca)], &args)
        .await
        .json();
    assert_eq!(login["status"], "approved", "{login}");
}

/// `send-file CONTACT PATH`, and `recv` saving the file under `<profile>/downloads/` with
/// `"file"` beside `"from"` in its JSON line.
#[tokio::test]
async fn files_through_the_terminal_client() {
    let stack = Stack::start(&ServerEnv::embedded());
    let (_, alice, bob) = alice_and_bob(&stack).await;
    assert!(
        chat(&stack, &alice, &["send", "bob", "a file follows"])
            .await
            .ok
    );
    assert_eq!(received(&stack, &bob).await.len(), 1);
    let path = stack.dir.path().join("report.pdf");
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
    std::fs::write(&path, &data).unwrap();
    let sent = chat(
        &stack,
        &alice,
        &["send-file", "bob", path.to_str().unwrap()],
    )
    .await
    .json();
    assert_eq!(sent["to"], "bob", "{sent}");
    assert_eq!(sent["size"], 300_000);
    let lines = chat(&stack, &bob, &["recv", "--wait", "15"]).await.lines();
    let file = lines
        .iter()
        .find(|l| l["kind"] == "file")
        .unwrap_or_else(|| panic!("{lines:?}"));
    assert_eq!(file["from"], "alice");
    let saved = std::path::PathBuf::from(file["file"].as_str().unwrap());
    assert_eq!(saved, bob.join("downloads").join("report.pdf"));
    assert_eq!(std::fs::read(&saved).unwrap(), data);
}

/// `cloak-chat push-register TOKEN --provider NAME` registers the device's push token: a
/// message waiting for it reaches the tenant as a content-free `device.pending` webhook
/// carrying that token and provider.
#[tokio::test]
async fn push_register_from_the_terminal_client() {
    let env = ServerEnv::embedded()
        .with("CLOAK_PUSH_COALESCE_SECS", "1")
        .with("CLOAK_WORKER_POLL_MS", "100");
    let stack = Stack::start(&env);
    let got = crate::push::tenant_receiver(&stack).await;
    let (ids, alice, bob) = alice_and_bob(&stack).await;
    let token = format!("desktop-{}", uuid::Uuid::new_v4().simple());
    let registered = chat(
        &stack,
        &bob,
        &["push-register", &token, "--provider", "apns"],
    )
    .await
    .json();
    assert_eq!(registered["push_token"], token.as_str(), "{registered}");
    assert_eq!(registered["provider"], "apns");
    let canary = format!("CANARY-{}", uuid::Uuid::new_v4().simple());
    assert!(chat(&stack, &alice, &["send", "bob", &canary]).await.ok);
    let webhook = crate::push::device_pending(&got)
        .await
        .expect("no device.pending webhook for the token cloak-chat registered");
    let data = &webhook["data"];
    assert_eq!(data["push_token"], token.as_str(), "{data}");
    assert_eq!(data["provider"], "apns");
    assert_eq!(data["user_id"], ids[1].to_string());
    assert_eq!(data["device_id"], registered["device_id"]);
    for body in got.lock().unwrap().iter() {
        assert!(!body.contains(&canary), "a webhook carries the plaintext");
    }
}
