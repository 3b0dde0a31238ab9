//! The subcommands. Each opens the profile's device, does one thing, and prints the result
//! (as text, or as JSON with `--json`).

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use cloak_proto::devices::DeviceStatus;
use cloak_proto::invites::Contact;
use cloak_sdk::{DeviceClient, DeviceIdentity, Messenger, PayloadKind, SystemClock};
use serde_json::json;
use uuid::Uuid;

use crate::profile::Profile;
use crate::qr;

/// KeyPackages kept on the server so others can add this device.
const KEY_PACKAGES: u32 = 20;

/// What every command gets.
pub struct Ctx {
    pub profile: Profile,
    pub server: Option<String>,
    pub json: bool,
}

impl Ctx {
    async fn messenger(&self) -> Result<Messenger> {
        let server = self.profile.server(self.server.as_deref())?;
        self.profile.messenger(&server).await
    }

    fn print(&self, value: serde_json::Value, text: impl FnOnce() -> String) {
        if self.json {
            println!("{value}");
        } else {
            println!("{}", text());
        }
    }
}

/// An error as a person should read it: the server's problem detail and code, or the cause.
pub fn describe(e: &anyhow::Error) -> String {
    match e.downcast_ref::<cloak_sdk::Error>() {
        Some(cloak_sdk::Error::Problem(p)) => {
            let what = p.detail.as_deref().unwrap_or(&p.title);
            return format!("{what} ({})", p.code);
        }
        Some(other) if other.code().is_some() => {
            return format!(
                "{other} ({})",
                other.code().unwrap_or(cloak_proto::Code::Unknown)
            );
        }
        _ => {}
    }
    format!("{e:#}")
}

fn status(s: DeviceStatus) -> &'static str {
    s.as_str()
}

pub async fn login(ctx: &Ctx, user_token: Option<&str>, name: &str) -> Result<()> {
    let server = ctx.profile.server(ctx.server.as_deref())?;
    let http = reqwest::Client::new();
    let restored = Messenger::restore(
        http.clone(),
        &server,
        SystemClock,
        ctx.profile.store().await?,
    )
    .await?;
    let (mut m, device) = match restored {
        Some(m) => {
            let device = m.client().login().await?;
            (m, device)
        }
        None => {
            let token = user_token.context(
                "this profile has no device yet: pass --user-token from the host platform",
            )?;
            let mut client =
                DeviceClient::new(http, &server, DeviceIdentity::generate_os(), SystemClock);
            client.register(token, Some(name)).await?;
            let device = client.login().await?;
            let store = ctx.profile.store().await?;
            (Messenger::with_store(client, store).await?, device)
        }
    };
    m.keep_inbox();
    m.publish_key_packages(KEY_PACKAGES).await?;
    ctx.profile.save_server(&server)?;
    let fingerprint = m.client().identity().fingerprint();
    let st = status(device.status);
    ctx.print(
        json!({"device_id": device.id, "user_id": device.user_id, "status": st, "fingerprint": fingerprint}),
        || {
            let mut s = format!("device {} is {st}\nfingerprint {fingerprint}", device.id);
            if device.status == DeviceStatus::Pending {
                s.push_str(&format!(
                    "\napprove it from another device of yours: cloak-chat devices approve {} --fingerprint {fingerprint}",
                    device.id
                ));
            }
            s
        },
    );
    Ok(())
}

pub async fn devices_list(ctx: &Ctx) -> Result<()> {
    let m = ctx.messenger().await?;
    let me = m.client().ids().map(|i| i.device_id);
    let devices = m.client().devices().await?;
    let items: Vec<serde_json::Value> = devices
        .iter()
        .map(|d| {
            let fp = key_fingerprint(&d.identity_key);
            json!({"device_id": d.id, "name": d.name, "status": status(d.status), "fingerprint": fp, "this_device": Some(d.id) == me})
        })
        .collect();
    ctx.print(json!({"devices": items}), || {
        devices
            .iter()
            .map(|d| {
                format!(
                    "{} {:8} {} {}{}",
                    d.id,
                    status(d.status),
                    key_fingerprint(&d.identity_key),
                    d.name.as_deref().unwrap_or("-"),
                    if Some(d.id) == me {
                        " (this device)"
                    } else {
                        ""
                    }
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    });
    Ok(())
}

fn key_fingerprint(key: &[u8]) -> String {
    <[u8; 32]>::try_from(key)
        .map(|k| cloak_sdk::fingerprint(&k))
        .unwrap_or_else(|_| "invalid-key".into())
}

pub async fn devices_approve(ctx: &Ctx, device_id: Uuid, fingerprint: Option<&str>) -> Result<()> {
    let mut m = ctx.messenger().await?;
    let fp = match fingerprint {
        Some(fp) => fp.to_ascii_lowercase(),
        None => {
            let devices = m.client().devices().await?;
            let device = devices
                .iter()
                .find(|d| d.id == device_id)
                .context("no such device of this user")?;
            key_fingerprint(&device.identity_key)
        }
    };
    m.approve_device(device_id, &fp).await?;
    ctx.print(
        json!({"device_id": device_id, "status": "approved", "fingerprint": fp}),
        || format!("approved {device_id} (fingerprint {fp}); it reads new messages from now on"),
    );
    Ok(())
}

pub async fn devices_revoke(ctx: &Ctx, device_id: Uuid) -> Result<()> {
    let mut m = ctx.messenger().await?;
    m.revoke_device(device_id).await?;
    ctx.print(json!({"device_id": device_id, "status": "revoked"}), || {
        format!("revoked {device_id}; it was removed from every conversation")
    });
    Ok(())
}

pub async fn invite_show(ctx: &Ctx, max_uses: u32, expires_in: u32) -> Result<()> {
    let m = ctx.messenger().await?;
    let link = m.create_invite(max_uses, expires_in).await?;
    if ctx.json {
        println!("{}", json!({"link": link}));
    } else {
        println!("{}\n{link}", qr::draw(&link)?);
    }
    Ok(())
}

pub async fn join(ctx: &Ctx, link_or_png: &str) -> Result<()> {
    let link = if Path::new(link_or_png).is_file() {
        qr::decode_png(Path::new(link_or_png))?
    } else {
        link_or_png.to_owned()
    };
    let mut m = ctx.messenger().await?;
    let joined = m.join_invite(&link).await?;
    m.publish_key_packages(KEY_PACKAGES).await?;
    let verified = m.is_verified(joined.inviter).await?;
    let contacts = m.contacts().await?;
    let name = contacts
        .iter()
        .find(|c| c.user_id == joined.inviter)
        .map_or_else(|| joined.inviter.to_string(), |c| c.external_id.clone());
    ctx.print(
        json!({"contact": name, "user_id": joined.inviter, "conversation_id": joined.conversation_id, "verified": verified}),
        || {
            let v = if verified { "key verified by the invite" } else { "key not verified: compare safety numbers" };
            format!("joined: {name} is now a contact ({v})")
        },
    );
    Ok(())
}

pub async fn contacts(ctx: &Ctx) -> Result<()> {
    let m = ctx.messenger().await?;
    let mut rows = Vec::new();
    for c in m.contacts().await? {
        // A contact with no device yet has no key to verify.
        let verified = m.is_verified(c.user_id).await.unwrap_or(false);
        rows.push((c, verified));
    }
    ctx.print(
        json!({"contacts": rows.iter().map(|(c, v)| json!({"external_id": c.external_id, "display_name": c.display_name, "user_id": c.user_id, "verified": v})).collect::<Vec<_>>()}),
        || {
            if rows.is_empty() {
                return "no contacts yet: join an invite, or show yours with `cloak-chat invite show`".into();
            }
            rows.iter()
                .map(|(c, v)| format!("{} ({}) {}", c.external_id, c.display_name, if *v { "verified" } else { "not verified" }))
                .collect::<Vec<_>>()
                .join("\n")
        },
    );
    Ok(())
}

/// A contact by external id, else by display name (case-insensitive).
async fn resolve(m: &Messenger, name: &str) -> Result<Contact> {
    let contacts = m.contacts().await?;
    if let Some(c) = contacts.iter().find(|c| c.external_id == name) {
        return Ok(c.clone());
    }
    let by_name: Vec<&Contact> = contacts
        .iter()
        .filter(|c| c.display_name.eq_ignore_ascii_case(name))
        .collect();
    match by_name.as_slice() {
        [one] => Ok((*one).clone()),
        [] => bail!("no contact named {name:?}: see `cloak-chat contacts`"),
        _ => bail!("several contacts are named {name:?}: use the external id"),
    }
}

/// The one-to-one conversation with `user`: this device's, one that arrives with a sync,
/// or a new one.
async fn conversation_for(m: &mut Messenger, user: Uuid) -> Result<Uuid> {
    if let Some(id) = m.conversation_with(user) {
        return Ok(id);
    }
    m.sync().await?; // a Welcome may be waiting; messages go to the inbox
    if let Some(id) = m.conversation_with(user) {
        return Ok(id);
    }
    Ok(m.create_conversation(&[user]).await?)
}

pub async fn send(ctx: &Ctx, contact: &str, text: &str) -> Result<()> {
    let mut m = ctx.messenger().await?;
    let c = resolve(&m, contact).await?;
    let conversation = conversation_for(&mut m, c.user_id).await?;
    let (message_id, _) = m.send_text(conversation, text).await?;
    ctx.print(
        json!({"message_id": message_id, "conversation_id": conversation, "to": c.external_id}),
        || format!("sent to {}", c.external_id),
    );
    Ok(())
}

/// Prints the inbox and clears what was printed.
async fn print_inbox(
    ctx: &Ctx,
    m: &mut Messenger,
    names: &mut HashMap<Uuid, String>,
) -> Result<()> {
    let count = m.inbox().len();
    if count == 0 {
        return Ok(());
    }
    let me = m.client().ids().map(|i| i.user_id);
    for item in m.inbox() {
        let user = item.sender.user_id;
        if !names.contains_key(&user) && Some(user) != me {
            for c in m.contacts().await? {
                names.insert(c.user_id, c.external_id);
            }
        }
        let from = if Some(user) == me {
            "me".to_owned()
        } else {
            names
                .get(&user)
                .cloned()
                .unwrap_or_else(|| user.to_string())
        };
        let payload = item.payload()?;
        let (kind, text) = match &payload.kind {
            PayloadKind::Text { text } => ("text", Some(text.clone())),
            PayloadKind::Edit { text, .. } => ("edit", Some(text.clone())),
            PayloadKind::Delete { .. } => ("delete", None),
            PayloadKind::Receipt { .. } => ("receipt", None),
            PayloadKind::Typing { .. } => ("typing", None),
            PayloadKind::Attachment(_) => ("attachment", None),
            _ => ("other", None),
        };
        if ctx.json {
            println!(
                "{}",
                json!({"from": from, "from_user_id": user, "conversation_id": item.conversation_id,
                       "message_id": payload.message_id, "sent_at_ms": payload.sent_at_ms, "kind": kind, "text": text})
            );
        } else if let Some(text) = text {
            println!("{from}: {text}");
        }
    }
    m.clear_inbox(count).await?;
    Ok(())
}

pub async fn recv(ctx: &Ctx, wait: u64) -> Result<()> {
    let mut m = ctx.messenger().await?;
    m.sync().await?;
    if m.inbox().is_empty() && wait > 0 {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(wait);
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() || !m.inbox().is_empty() {
                break;
            }
            match m.next_events(left).await {
                Ok(_) | Err(cloak_sdk::Error::Transport(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    m.publish_key_packages(KEY_PACKAGES).await?;
    print_inbox(ctx, &mut m, &mut HashMap::new()).await
}

pub async fn chat(ctx: &Ctx, contact: &str) -> Result<()> {
    let mut m = ctx.messenger().await?;
    let c = resolve(&m, contact).await?;
    let conversation = conversation_for(&mut m, c.user_id).await?;
    let mut names = HashMap::from([(c.user_id, c.external_id.clone())]);
    eprintln!(
        "chatting with {} — type a message and press Enter; Ctrl-D leaves",
        c.external_id
    );
    let (tx, mut lines) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    print_inbox(ctx, &mut m, &mut names).await?;
    loop {
        match m.next_events(Duration::from_millis(300)).await {
            Ok(_) | Err(cloak_sdk::Error::Transport(_)) => {}
            Err(e) => return Err(e.into()),
        }
        print_inbox(ctx, &mut m, &mut names).await?;
        loop {
            match lines.try_recv() {
                Ok(line) if line.trim().is_empty() => {}
                Ok(line) => {
                    if let Err(e) = m.send_text(conversation, line.trim_end()).await {
                        eprintln!("not sent: {}", describe(&e.into()));
                    }
                }
                Err(tokio::sync::mpsc::error::TryRecvError::Empty) => break,
                Err(tokio::sync::mpsc::error::TryRecvError::Disconnected) => return Ok(()),
            }
        }
    }
}

pub async fn safety_number(ctx: &Ctx, contact: &str, confirm: bool) -> Result<()> {
    let mut m = ctx.messenger().await?;
    let c = resolve(&m, contact).await?;
    let number = m.safety_number(c.user_id).await?;
    if confirm {
        m.mark_verified(c.user_id).await?;
    }
    let verified = m.is_verified(c.user_id).await?;
    ctx.print(
        json!({"contact": c.external_id, "safety_number": number.digits, "verified": verified}),
        || {
            format!(
                "safety number with {}:\n{}\n{}",
                c.external_id,
                number.digits,
                if verified {
                    "verified"
                } else {
                    "compare it with theirs, then run again with --confirm"
                }
            )
        },
    );
    Ok(())
}
