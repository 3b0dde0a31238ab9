//! Encrypted attachments end to end: a 50 MB file through the filesystem blob store
//! (embedded default) and through a real S3-protocol server (production), to every device
//! of every member; an upload interrupted at 60% that resumes; a server that flips a
//! byte, drops a chunk or truncates the blob, each detected; and the plaintext never
//! reaching the blob store, the database or the logs.

use std::io::Cursor;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use cloak_e2e::listener::{Listener, joined};
use cloak_e2e::lying_proxy::{Action, LyingProxy};
use cloak_e2e::{ServerEnv, Stack, on_both_backends};
use cloak_sdk::{Attachment, Cloak, Error, Event, PayloadKind, Progress};
use sha2::Digest as _;
use uuid::Uuid;

const SEALED_CHUNK: usize = cloak_sdk::attachment::seal::SEALED_CHUNK;
const HEADER: usize = cloak_sdk::attachment::seal::HEADER;

fn device_id(c: &Cloak) -> Uuid {
    c.ids().device_id
}

/// A file whose every 4 KiB holds the canary, so any plaintext leak shows it.
fn canary_file(len: usize, canary: &str) -> Vec<u8> {
    let mut data = Vec::with_capacity(len);
    let mut i = 0u64;
    while data.len() < len {
        if i.is_multiple_of(4096) {
            data.extend_from_slice(canary.as_bytes());
        }
        data.push((i.wrapping_mul(2_654_435_761) >> 13) as u8);
        i += 1;
    }
    data.truncate(len);
    data
}

async fn next_attachment(listener: &mut Listener) -> (Uuid, Attachment) {
    loop {
        if let Event::Message {
            sender, payload, ..
        } = listener.next().await
            && let PayloadKind::Attachment(a) = payload.kind
        {
            return (sender.device_id, a);
        }
    }
}

async fn download(cloak: &Cloak, a: &Attachment) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    cloak.download_attachment(a, &mut out).await?;
    Ok(out)
}

/// Every file under `dir`, recursively.
fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

async fn a_50_mb_file_reaches_every_device_of_every_member(env: ServerEnv) {
    let production = env.vars.iter().any(|(k, _)| k == "CLOAK_DATABASE_URL");
    // Production keeps blobs in the S3 server; the embedded default under its data dir.
    let env = if production {
        let endpoint = std::env::var("CLOAK_TEST_S3_ENDPOINT").expect(
            "CLOAK_TEST_S3_ENDPOINT is not set: run the suite with scripts/test, which starts an S3 server",
        );
        env.with(
            "CLOAK_BLOB_URL",
            &format!("s3://cloak-test/e2e-{}", Uuid::new_v4().simple()),
        )
        .with("CLOAK_BLOB_ENDPOINT", &endpoint)
        .with("CLOAK_BLOB_ACCESS_KEY_ID", "test")
        .with("CLOAK_BLOB_SECRET_ACCESS_KEY", "test")
        .with("CLOAK_BLOB_REGION", "us-east-1")
    } else {
        env
    };
    let mut stack = Stack::start(&env);
    let alice = stack.tenant.create_user("alice", "Alice").await;
    let bob = stack.tenant.create_user("bob", "Bob").await;
    stack.tenant.add_contact(alice.id, bob.id).await;
    let phone = stack.cloak(alice.id).await;
    let laptop = stack.cloak(alice.id).await;
    phone
        .devices()
        .approve(device_id(&laptop), &laptop.fingerprint().await)
        .await
        .unwrap();
    let bobs = stack.cloak(bob.id).await;
    let mut at_laptop = Listener::new(&laptop);
    let mut at_bob = Listener::new(&bobs);
    let chat = phone.conversation_with(bob.id).await.unwrap();
    at_laptop.until(|e| joined(e, chat.id())).await;
    at_bob.until(|e| joined(e, chat.id())).await;

    let canary = format!("CANARY-{}", Uuid::new_v4().simple());
    let data = canary_file(50 << 20, &canary);
    let seen = Mutex::new(Vec::<Progress>::new());
    let (_, sent) = chat
        .send_attachment_with_progress(
            &mut Cursor::new(data.clone()),
            "holiday.mp4",
            "video/mp4",
            &|p| seen.lock().unwrap().push(p),
        )
        .await
        .unwrap();
    let seen = seen.into_inner().unwrap();
    let last = *seen.last().unwrap();
    assert_eq!(last.done, last.total, "the upload finished");
    assert!(seen.len() > 10 && seen.windows(2).all(|w| w[0].done <= w[1].done));
    assert_eq!(sent.size, data.len() as u64);

    // Not a byte of plaintext on the server's side: its blobs and database, checked
    // before anyone downloads (the sweeper deletes the blob once every device has it),
    // and its logs at the end.
    let needle = canary.as_bytes();
    if production {
        // Every object moto holds for this server, fetched raw.
        let endpoint = std::env::var("CLOAK_TEST_S3_ENDPOINT").unwrap();
        let prefix = env
            .vars
            .iter()
            .find(|(k, _)| k == "CLOAK_BLOB_URL")
            .unwrap()
            .1
            .trim_start_matches("s3://cloak-test/")
            .to_owned();
        let http = reqwest::Client::new();
        let listing = http
            .get(format!("{endpoint}/cloak-test?list-type=2&prefix={prefix}"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let keys: Vec<&str> = listing
            .split("<Key>")
            .skip(1)
            .filter_map(|s| s.split("</Key>").next())
            .collect();
        assert!(!keys.is_empty(), "the blob went to S3: {listing}");
        for key in keys {
            let object = http
                .get(format!("{endpoint}/cloak-test/{key}"))
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap();
            assert!(!contains(&object, needle), "plaintext in S3 object {key}");
        }
    } else {
        let data_dir = stack.dir.path().join("cloak-data");
        let files = files_under(&data_dir);
        assert!(
            files.iter().any(|f| f.to_string_lossy().contains("blobs")),
            "{files:?}"
        );
        for f in files {
            let bytes = std::fs::read(&f).unwrap();
            assert!(!contains(&bytes, needle), "plaintext in {}", f.display());
        }
    }
    let want = sha2::Sha256::digest(&data);
    for (cloak, listener) in [(&bobs, &mut at_bob), (&laptop, &mut at_laptop)] {
        let (from, got) = next_attachment(listener).await;
        assert_eq!(from, device_id(&phone));
        assert_eq!(
            (got.name.as_str(), got.mime.as_str(), got.size),
            ("holiday.mp4", "video/mp4", sent.size)
        );
        let bytes = download(cloak, &got).await.unwrap();
        assert_eq!(
            sha2::Sha256::digest(&bytes),
            want,
            "intact at {}",
            device_id(cloak)
        );
    }

    let logs = stack.server.logs().join("\n");
    assert!(!logs.contains(&canary), "plaintext in the server's logs");
}

on_both_backends!(a_50_mb_file_reaches_every_device_of_every_member);

/// alice and bob (contacts) on the embedded default, alice's client behind a proxy.
async fn through_proxy() -> (Stack, LyingProxy, Cloak, Cloak, Listener, Uuid) {
    let stack = Stack::start(&ServerEnv::embedded());
    let proxy = LyingProxy::start(&stack.server.base_url).await;
    let alice = stack.tenant.create_user("alice", "Alice").await;
    let bob = stack.tenant.create_user("bob", "Bob").await;
    stack.tenant.add_contact(alice.id, bob.id).await;
    let phone = stack
        .cloak_builder(alice.id, &proxy.base_url)
        .allow_plaintext()
        .build()
        .await
        .unwrap();
    let bobs = stack
        .cloak_builder(bob.id, &proxy.base_url)
        .allow_plaintext()
        .build()
        .await
        .unwrap();
    let mut at_bob = Listener::new(&bobs);
    let chat = phone.conversation_with(bob.id).await.unwrap();
    at_bob.until(|e| joined(e, chat.id())).await;
    let id = chat.id();
    (stack, proxy, phone, bobs, at_bob, id.0)
}

#[tokio::test]
async fn an_upload_interrupted_at_60_percent_resumes_at_the_servers_offset() {
    let (_stack, proxy, phone, bobs, mut at_bob, conv) = through_proxy().await;
    // 10 PATCHes of about 4 MiB; the 7th fails as a dropped connection would.
    let data = canary_file(40 << 20, "resume");
    let patches = AtomicUsize::new(0);
    proxy.rule(
        "PATCH",
        move |p| p.starts_with("/v1/attachments/") && patches.fetch_add(1, Ordering::SeqCst) == 6,
        Action::Fail(502),
        Some(1),
    );
    let chat = phone
        .conversation(cloak_sdk::ConversationId(conv))
        .await
        .unwrap();
    chat.send_attachment(
        &mut Cursor::new(data.clone()),
        "big.bin",
        "application/octet-stream",
    )
    .await
    .unwrap();
    assert_eq!(proxy.uses(), vec![1], "the failure was injected once");
    let (_, got) = next_attachment(&mut at_bob).await;
    assert_eq!(download(&bobs, &got).await.unwrap(), data);
}

#[tokio::test]
async fn a_blob_altered_on_the_server_is_refused() {
    let (_stack, proxy, phone, bobs, mut at_bob, conv) = through_proxy().await;
    let data = canary_file(5 * (64 << 10) + 100, "tamper");
    let chat = phone
        .conversation(cloak_sdk::ConversationId(conv))
        .await
        .unwrap();
    chat.send_attachment(
        &mut Cursor::new(data.clone()),
        "f.bin",
        "application/octet-stream",
    )
    .await
    .unwrap();
    let (_, got) = next_attachment(&mut at_bob).await;
    let is_download = |p: &str| p.starts_with("/v1/attachments/");
    let cases: Vec<(&str, cloak_e2e::lying_proxy::Rewrite)> = vec![
        (
            "a flipped byte",
            Box::new(|b: &[u8]| {
                let mut b = b.to_vec();
                b[HEADER + SEALED_CHUNK + 10] ^= 0x40;
                b
            }),
        ),
        (
            "a dropped chunk",
            Box::new(|b: &[u8]| {
                let mut out = b[..HEADER + SEALED_CHUNK].to_vec();
                out.extend_from_slice(&b[HEADER + 2 * SEALED_CHUNK..]);
                out
            }),
        ),
        (
            "swapped chunks",
            Box::new(|b: &[u8]| {
                let mut out = b[..HEADER].to_vec();
                out.extend_from_slice(&b[HEADER + SEALED_CHUNK..HEADER + 2 * SEALED_CHUNK]);
                out.extend_from_slice(&b[HEADER..HEADER + SEALED_CHUNK]);
                out.extend_from_slice(&b[HEADER + 2 * SEALED_CHUNK..]);
                out
            }),
        ),
        (
            "a truncated blob",
            Box::new(|b: &[u8]| b[..HEADER + 3 * SEALED_CHUNK].to_vec()),
        ),
    ];
    for (what, rewrite) in cases {
        proxy.clear();
        proxy.rule("GET", is_download, Action::Rewrite(rewrite), None);
        match download(&bobs, &got).await {
            Err(Error::Verification(_)) => {}
            other => panic!("{what} was not detected: {:?}", other.map(|b| b.len())),
        }
    }
    proxy.clear();
    assert_eq!(
        download(&bobs, &got).await.unwrap(),
        data,
        "the honest blob opens"
    );
}
