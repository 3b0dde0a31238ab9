//! The invite landing page in a real browser: headless Chromium (Debian's `chromium`,
//! installed by scripts/test) loads it; the DOM has the QR code and the "Open in app" link,
//! and the QR code in the screenshot decodes to the invite link.

use std::path::PathBuf;
use std::process::Command;

use cloak_e2e::{ServerEnv, Stack};

fn chromium() -> PathBuf {
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find_map(|name| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|p| p.join(name))
                    .find(|p| p.is_file())
            })
        })
        .expect("chromium is not installed: run the suite with scripts/test, which installs it")
}

fn headless(profile: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--no-first-run",
            "--hide-scrollbars",
            &cloak_e2e::tls::test_ca().chromium_flag,
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .output()
        .unwrap()
}

fn decode_png_qr(png_bytes: &[u8]) -> Vec<String> {
    let mut decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let (w, h) = (info.width as usize, info.height as usize);
    let channels = info.color_type.samples();
    let mut img =
        rqrr::PreparedImage::prepare_from_greyscale(w, h, |x, y| buf[(y * w + x) * channels]);
    img.detect_grids()
        .iter()
        .filter_map(|g| g.decode().ok().map(|(_, text)| text))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_landing_page_renders_in_chromium() {
    let stack = Stack::start(&ServerEnv::embedded());
    let alice = stack.tenant.create_user("alice", "Alice <3").await;
    stack.device_client(alice.id).await;
    let resp = stack
        .tenant
        .http
        .post(format!("{}/v1/invites", stack.tenant.base_url))
        .bearer_auth(&stack.tenant.api_key)
        .json(&serde_json::json!({"inviter_user_id": alice.id, "max_uses": 1, "expires_in_secs": 600}))
        .send()
        .await
        .unwrap();
    let invite: serde_json::Value = resp.json().await.unwrap();
    let code = invite["code"].as_str().unwrap();
    let link = invite["url"].as_str().unwrap();
    let page = format!("{}/i/{code}", stack.server.base_url);
    let profile = stack.dir.path().join("chromium");

    let dom = headless(&profile, &["--dump-dom", &page]);
    assert!(
        dom.status.success(),
        "{}",
        String::from_utf8_lossy(&dom.stderr)
    );
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert!(dom.contains("data-state=\"valid\""), "{dom}");
    assert!(
        dom.contains("Alice &lt;3 invites you"),
        "the name is escaped: {dom}"
    );
    assert!(dom.contains("<svg"), "inline QR: {dom}");
    let open = format!("href=\"{link}\"");
    assert!(dom.contains(&open) && dom.contains("Open in app"), "{dom}");

    let shot = stack.dir.path().join("landing.png");
    let out = headless(
        &profile,
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=600,900",
            &page,
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let png = std::fs::read(&shot).unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    assert_eq!(
        decode_png_qr(&png),
        vec![link.to_owned()],
        "the rendered QR decodes to the link"
    );

    // A revoked invite renders its state.
    let revoked = stack
        .tenant
        .http
        .delete(format!("{}/v1/invites/{code}", stack.tenant.base_url))
        .bearer_auth(&stack.tenant.api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 204);
    let dom = headless(&profile, &["--dump-dom", &page]);
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert!(dom.contains("data-state=\"invite_revoked\""), "{dom}");
    assert!(!dom.contains("<svg"), "no QR for a dead invite");
}
