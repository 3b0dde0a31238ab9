//! The subcommands. Each opens the profile's device, does one thing, and prints the result
//! (as text, or as JSON with `--json`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Result, bail};
use cloak_proto::devices::DeviceStatus;
use cloak_proto::invites::Contact;
use cloak_sdk::{Cloak, ConversationHandle, Event, PayloadKind, Update};
use futures_util::{Stream, StreamExt as _};
use serde_json::json;
use uuid::Uuid;

use crate::profile::Profile;
use cloak_chat::qr;

/// How long `recv` keeps taking messages after the first, before it prints and exits.
const DRAIN: Duration = Duration::from_millis(500);

/// What every command gets.
pub struct Ctx {
    pub profile: Profile,
    pub server: Option<String>,
    pub ca_cert: Option<PathBuf>,
    pub json: bool,
}

impl Ctx {
    pub(crate) async fn cloak(&self) -> Result<Cloak> {
        let server = self.profile.server(self.server.as_deref())?;
        self.profile
            .cloak(&server, self.ca_cert.as_deref(), None, "cloak-chat")
            .await
    }

    pub(crate) fn print(&self, value: serde_json::Value, text: impl FnOnce() -> String) {
        if self.json {
            println!("{value}");
        } else {
            println!("{}", text());
        }
    }
}

/// A one-line description of an error, with the server's code when there is one.
pub fn describe(e: &anyhow::Error) -> String {
    match e.downcast_ref::<cloak_sdk::Error>() {
        Some(cloak_sdk::Error::Problem(p)) => {
            let what = p.detail.as_deref().unwrap_or(&p.title);
            format!("{what} ({})", p.code)
        }
        Some(other) => match other.code() {
            Some(code) => format!("{other} ({code})"),
            None => other.to_string(),
        },
        None => format!("{e:#}"),
    }
}

fn status(s: DeviceStatus) -> &'static str {
    s.as_str()
}

pub async fn login(ctx: &Ctx, user_token: Option<&str>, name: &str) -> Result<()> {
    let server = ctx.profile.server(ctx.server.as_deref())?;
    // The token is only used when the profile holds no device yet (a failed first login
    // may have left an empty store behind).
    if user_token.is_none() && !ctx.profile.has_device() {
        bail!("this profile has no device yet: pass --user-token from the host platform");
    }
    let token = user_token.map(str::to_owned);
    let cloak = ctx
        .profile
        .cloak(&server, ctx.ca_cert.as_deref(), token, name)
        .await?;
    ctx.profile.save_server(&server)?;
    let device = cloak.this_device().await?;
    let fingerprint = cloak.fingerprint().await;
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
    cloak.shutdown().await;
    Ok(())
}

pub async fn devices_list(ctx: &Ctx) -> Result<()> {
    let cloak = ctx.cloak().await?;
    let me = cloak.ids().device_id;
    let devices = cloak.devices().list().await?;
    let items: Vec<serde_json::Value> = devices
        .iter()
        .map(|d| {
            let fp = key_fingerprint(&d.identity_key);
            json!({"device_id": d.id, "name": d.name, "status": status(d.status), "fingerprint": fp, "this_device": d.id == me})
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
                    if d.id == me { " (this device)" } else { "" }
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

pub async fn devices_approve(ctx: &Ctx, device_id: Uuid, fingerprint: &str) -> Result<()> {
    let cloak = ctx.cloak().await?;
    let fp = fingerprint.to_ascii_lowercase();
    cloak.devices().approve(device_id, &fp).await?;
    ctx.print(
        json!({"device_id": device_id, "status": "approved", "fingerprint": fp}),
        || format!("approved {device_id} (fingerprint {fp}); it reads new messages from now on"),
    );
    Ok(())
}

pub async fn devices_revoke(ctx: &Ctx, device_id: Uuid) -> Result<()> {
    let cloak = ctx.cloak().await?;
    cloak.devices().revoke(device_id).await?;
    ctx.print(json!({"device_id": device_id, "status": "revoked"}), || {
        format!("revoked {device_id}; it was removed from every conversation")
    });
    Ok(())
}

pub async fn invite_show(ctx: &Ctx, max_uses: u32, expires_in: u32) -> Result<()> {
    let cloak = ctx.cloak().await?;
    let link = cloak.create_invite(max_uses, expires_in).await?;
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
    let cloak = ctx.cloak().await?;
    let joined = cloak.join_invite(&link).await?;
    let verified = cloak.is_verified(joined.inviter).await?;
    let contacts = cloak.contacts().await?;
    let name = contacts
        .iter()
        .find(|c| c.user_id == joined.inviter)
        .map_or_else(|| joined.inviter.to_string(), |c| c.external_id.clone());
    ctx.print(
        json!({"contact": name, "user_id": joined.inviter, "conversation_id": joined.conversation.id(), "verified": verified}),
        || {
            let v = if verified { "key verified by the invite" } else { "key not verified: compare safety numbers" };
            format!("joined: {name} is now a contact ({v})")
        },
    );
    Ok(())
}

pub async fn contacts(ctx: &Ctx) -> Result<()> {
    let cloak = ctx.cloak().await?;
    let mut rows = Vec::new();
    for c in cloak.contacts().await? {
        // A contact with no device yet has no key to verify.
        let verified = cloak.is_verified(c.user_id).await.unwrap_or(false);
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

/// Registers this device's push token.
pub async fn push_register(ctx: &Ctx, token: &str, provider: &str) -> Result<()> {
    let cloak = ctx.cloak().await?;
    cloak.set_push_token(token, provider).await?;
    ctx.print(
        json!({"device_id": cloak.ids().device_id, "push_token": token, "provider": provider}),
        || format!("push token registered ({provider}): the tenant is told when messages wait"),
    );
    Ok(())
}

/// A contact by external id, else by display name (case-insensitive).
pub(crate) async fn resolve(cloak: &Cloak, name: &str) -> Result<Contact> {
    let contacts = cloak.contacts().await?;
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

/// The one-to-one conversation with `user`: after catching up (a Welcome may be
/// waiting), this device's, or a new one.
pub(crate) async fn conversation_for(cloak: &Cloak, user: Uuid) -> Result<ConversationHandle> {
    cloak.sync().await?;
    Ok(cloak.conversation_with(user).await?)
}

pub async fn send(ctx: &Ctx, contact: &str, text: &str) -> Result<()> {
    let cloak = ctx.cloak().await?;
    let c = resolve(&cloak, contact).await?;
    let conversation = conversation_for(&cloak, c.user_id).await?;
    let message_id = conversation.send_text(text).await?;
    ctx.print(
        json!({"message_id": message_id, "conversation_id": conversation.id(), "to": c.external_id}),
        || format!("sent to {}", c.external_id),
    );
    cloak.shutdown().await;
    Ok(())
}

/// Who a user is, for printing.
struct Names {
    me: Uuid,
    known: HashMap<Uuid, String>,
}

impl Names {
    async fn name(&mut self, cloak: &Cloak, user: Uuid) -> Result<String> {
        if user == self.me {
            return Ok("me".to_owned());
        }
        if !self.known.contains_key(&user) {
            for c in cloak.contacts().await? {
                self.known.insert(c.user_id, c.external_id);
            }
        }
        Ok(self
            .known
            .get(&user)
            .cloned()
            .unwrap_or_else(|| user.to_string()))
    }
}

/// Prints one update (a received message); returns whether it was a message.
async fn print_update(
    ctx: &Ctx,
    cloak: &Cloak,
    names: &mut Names,
    update: &Update,
) -> Result<bool> {
    let Event::Message {
        conversation_id,
        sender,
        payload,
        ..
    } = &update.event
    else {
        return Ok(false);
    };
    let (kind, text) = match &payload.kind {
        PayloadKind::Text { text } => ("text", Some(text.clone())),
        PayloadKind::Edit { text, .. } => ("edit", Some(text.clone())),
        PayloadKind::Delete { .. } => ("delete", None),
        PayloadKind::Receipt { .. } => ("receipt", None),
        PayloadKind::Typing { .. } => ("typing", None),
        PayloadKind::Reaction { .. } => ("reaction", None),
        PayloadKind::Attachment(_) => ("file", None),
        _ => ("other", None),
    };
    let from = names.name(cloak, sender.user_id).await?;
    let file = match &payload.kind {
        PayloadKind::Attachment(a) => match crate::files::save(ctx, cloak, a).await {
            Ok(path) => Some(path.display().to_string()),
            Err(e) => {
                eprintln!("{from} sent a file that could not be saved: {e:#}");
                None
            }
        },
        _ => None,
    };
    if ctx.json {
        let mut line = json!({"from": from, "from_user_id": sender.user_id, "conversation_id": conversation_id,
                   "message_id": payload.message_id, "sent_at_ms": payload.sent_at_ms, "kind": kind, "text": text});
        if let Some(file) = &file {
            line["file"] = json!(file);
        }
        println!("{line}");
    } else if let Some(text) = text {
        println!("{from}: {text}");
    } else if let Some(file) = &file {
        println!("{from} sent a file: {file}");
    }
    Ok(true)
}

/// The next update within `wait`, marked handled once taken.
async fn next_update(
    cloak: &Cloak,
    updates: &mut (impl Stream<Item = Update> + Unpin),
    wait: Duration,
) -> Result<Option<Update>> {
    match tokio::time::timeout(wait, updates.next()).await {
        Ok(Some(update)) => {
            cloak.mark_handled(update.id).await?;
            Ok(Some(update))
        }
        _ => Ok(None),
    }
}

pub async fn recv(ctx: &Ctx, wait: u64) -> Result<()> {
    let cloak = ctx.cloak().await?;
    let mut updates = Box::pin(cloak.subscribe());
    cloak.sync().await?;
    let mut names = Names {
        me: cloak.ids().user_id,
        known: HashMap::new(),
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(wait);
    let mut printed = false;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let window = if printed { DRAIN } else { left.max(DRAIN) };
        let Some(update) = next_update(&cloak, &mut updates, window).await? else {
            break;
        };
        printed |= print_update(ctx, &cloak, &mut names, &update).await?;
    }
    cloak.shutdown().await;
    Ok(())
}

pub async fn chat(ctx: &Ctx, contact: &str) -> Result<()> {
    let cloak = ctx.cloak().await?;
    let mut updates = Box::pin(cloak.subscribe());
    let c = resolve(&cloak, contact).await?;
    let conversation = conversation_for(&cloak, c.user_id).await?;
    let mut names = Names {
        me: cloak.ids().user_id,
        known: HashMap::from([(c.user_id, c.external_id.clone())]),
    };
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
    loop {
        tokio::select! {
            update = updates.next() => {
                let Some(update) = update else { return Ok(()) };
                cloak.mark_handled(update.id).await?;
                print_update(ctx, &cloak, &mut names, &update).await?;
            }
            line = lines.recv() => match line {
                None => {
                    cloak.shutdown().await;
                    return Ok(());
                }
                Some(line) if line.trim().is_empty() => {}
                Some(line) => {
                    if let Err(e) = conversation.send_text(line.trim_end()).await {
                        eprintln!("not sent: {}", describe(&e.into()));
                    }
                }
            },
        }
    }
}

pub async fn safety_number(ctx: &Ctx, contact: &str, confirm: bool) -> Result<()> {
    let cloak = ctx.cloak().await?;
    let c = resolve(&cloak, contact).await?;
    let number = cloak.safety_number(c.user_id).await?;
    if confirm {
        cloak.mark_verified(c.user_id).await?;
    }
    let verified = cloak.is_verified(c.user_id).await?;
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
