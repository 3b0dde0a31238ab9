//! Files: `send-file CONTACT PATH` encrypts and uploads on this device; `recv` saves what
//! arrives under `<profile>/downloads/`. A progress bar shows on a terminal.

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use cloak_sdk::{Attachment, Cloak, Progress};
use serde_json::json;

use crate::commands::{Ctx, conversation_for, resolve};

/// A progress bar on stderr when it is a terminal; nothing otherwise.
fn bar(label: &str) -> Option<indicatif::ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(0);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(label.to_owned());
    Some(bar)
}

fn report(bar: &Option<indicatif::ProgressBar>) -> impl Fn(Progress) + Send + Sync + '_ {
    move |p: Progress| {
        if let Some(bar) = bar {
            bar.set_length(p.total);
            bar.set_position(p.done);
        }
    }
}

/// A guess at the MIME type from the extension (the receiver treats it as a hint).
fn mime_of(path: &Path) -> &'static str {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("pdf") => "application/pdf",
        Some("txt") => "text/plain",
        Some("mp4") => "video/mp4",
        _ => "application/octet-stream",
    }
}

pub async fn send_file(ctx: &Ctx, contact: &str, path: &Path) -> Result<()> {
    let cloak = ctx.cloak().await?;
    let c = resolve(&cloak, contact).await?;
    let conversation = conversation_for(&cloak, c.user_id).await?;
    let mut file = tokio::fs::File::open(path)
        .await
        .with_context(|| format!("cannot open {}", path.display()))?;
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("file")
        .to_owned();
    let bar = bar(&format!("sending {name}"));
    let (message_id, attachment) = conversation
        .send_attachment_with_progress(&mut file, &name, mime_of(path), &report(&bar))
        .await?;
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    ctx.print(
        json!({"message_id": message_id, "conversation_id": conversation.id(), "to": c.external_id,
               "attachment_id": attachment.id, "size": attachment.size, "name": name}),
        || {
            format!(
                "sent {name} ({} bytes) to {}",
                attachment.size, c.external_id
            )
        },
    );
    cloak.shutdown().await;
    Ok(())
}

/// A file name that stays inside the downloads directory: no separators, no leading dot,
/// nothing empty.
fn safe_name(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || matches!(c, '.' | '-' | '_' | ' ') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let cleaned = cleaned.trim().trim_start_matches('.').to_owned();
    if cleaned.is_empty() {
        "file".to_owned()
    } else {
        cleaned
    }
}

/// Downloads a received file into `<profile>/downloads/` (a new name if one is taken);
/// returns where it was saved. Written to a temporary file first, renamed only once every
/// chunk and the digest checked out.
pub async fn save(ctx: &Ctx, cloak: &Cloak, attachment: &Attachment) -> Result<PathBuf> {
    let dir = ctx.profile.dir().join("downloads");
    tokio::fs::create_dir_all(&dir).await?;
    let name = safe_name(&attachment.name);
    let mut target = dir.join(&name);
    let mut n = 1;
    while tokio::fs::try_exists(&target).await.unwrap_or(false) {
        target = dir.join(format!("{n}-{name}"));
        n += 1;
    }
    let partial = dir.join(format!(".{}.part", attachment.id.simple()));
    let mut file = tokio::fs::File::create(&partial).await?;
    let bar = bar(&format!("receiving {name}"));
    let result = cloak
        .download_attachment_with_progress(attachment, &mut file, &report(&bar))
        .await;
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    drop(file);
    if let Err(e) = result {
        let _ = tokio::fs::remove_file(&partial).await;
        return Err(e.into());
    }
    tokio::fs::rename(&partial, &target).await?;
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cannot_leave_the_downloads_directory() {
        assert_eq!(safe_name("../../etc/passwd"), "_.._etc_passwd");
        assert_eq!(safe_name(".bashrc"), "bashrc");
        assert_eq!(safe_name(""), "file");
        assert_eq!(safe_name("holiday photo.jpg"), "holiday photo.jpg");
    }
}
