//! [`ConversationHandle`]: one conversation: send, edit, delete, react, receipts, typing,
//! members, history, calls, leave.

use uuid::Uuid;

use super::Cloak;
use crate::Error;
use crate::ids::{ConversationId, DeviceIds, MessageId};
use crate::payload::{Payload, PayloadKind};
use crate::store::history::{Cursor, Page};

/// A conversation of a [`Cloak`] client. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ConversationHandle {
    cloak: Cloak,
    id: ConversationId,
}

impl ConversationHandle {
    pub(super) fn new(cloak: Cloak, id: ConversationId) -> Self {
        Self { cloak, id }
    }

    /// Its id.
    pub fn id(&self) -> ConversationId {
        self.id
    }

    /// Sends a text; returns its id once the server stored it for every recipient.
    pub async fn send_text(&self, text: &str) -> Result<MessageId, Error> {
        let mut m = self.cloak.shared().messenger.lock().await;
        let (id, _) = m.send_text(self.id.0, text).await?;
        Ok(MessageId(id))
    }

    /// Encrypts a file on this device (a fresh key, STREAM chunks), uploads it — resuming
    /// after an interruption — and sends its id, key, digest, size, name and MIME type to
    /// the members inside an MLS message. Every device of every member can download it.
    pub async fn send_attachment<R>(
        &self,
        reader: &mut R,
        name: &str,
        mime: &str,
    ) -> Result<(MessageId, crate::Attachment), Error>
    where
        R: tokio::io::AsyncRead + tokio::io::AsyncSeek + Unpin + Send,
    {
        self.send_attachment_with_progress(reader, name, mime, &|_| {})
            .await
    }

    /// As [`send_attachment`](Self::send_attachment), reporting the upload's progress.
    pub async fn send_attachment_with_progress<R>(
        &self,
        reader: &mut R,
        name: &str,
        mime: &str,
        progress: &(dyn Fn(crate::attachment::Progress) + Send + Sync),
    ) -> Result<(MessageId, crate::Attachment), Error>
    where
        R: tokio::io::AsyncRead + tokio::io::AsyncSeek + Unpin + Send,
    {
        let attachment = self
            .cloak
            .upload_attachment(self.id.0, reader, name, mime, progress)
            .await?;
        let id = self
            .send(PayloadKind::Attachment(attachment.clone()))
            .await?;
        Ok((id, attachment))
    }

    /// Sends any payload kind (edits, reactions and the rest have their own methods).
    pub async fn send(&self, kind: PayloadKind) -> Result<MessageId, Error> {
        let mut m = self.cloak.shared().messenger.lock().await;
        let payload = Payload::new(Uuid::new_v4(), m.client().now_ms(), kind);
        m.send_payload(self.id.0, &payload).await?;
        Ok(MessageId(payload.message_id))
    }

    /// Replaces the text of one of this user's messages.
    pub async fn edit(&self, message: MessageId, text: &str) -> Result<MessageId, Error> {
        self.send(PayloadKind::Edit {
            target: message.0,
            text: text.to_owned(),
        })
        .await
    }

    /// Deletes one of this user's messages for everyone.
    pub async fn delete(&self, message: MessageId) -> Result<MessageId, Error> {
        self.send(PayloadKind::Delete { target: message.0 }).await
    }

    /// Reacts to a message (or, with `add: false`, takes the reaction back).
    pub async fn react(&self, message: MessageId, emoji: &str, add: bool) -> Result<(), Error> {
        self.send(PayloadKind::Reaction {
            target: message.0,
            emoji: emoji.to_owned(),
            add,
        })
        .await
        .map(|_| ())
    }

    /// Tells the members these messages were read.
    pub async fn mark_read(&self, messages: &[MessageId]) -> Result<(), Error> {
        self.send(PayloadKind::Receipt {
            targets: messages.iter().map(|m| m.0).collect(),
            read: true,
        })
        .await
        .map(|_| ())
    }

    /// Tells the members these messages arrived here.
    pub async fn mark_delivered(&self, messages: &[MessageId]) -> Result<(), Error> {
        self.send(PayloadKind::Receipt {
            targets: messages.iter().map(|m| m.0).collect(),
            read: false,
        })
        .await
        .map(|_| ())
    }

    /// Says this user started (or stopped) typing.
    pub async fn typing(&self, active: bool) -> Result<(), Error> {
        self.send(PayloadKind::Typing { active }).await.map(|_| ())
    }

    /// The member devices (as their MLS credentials name them, checked against the
    /// directory when they joined).
    pub async fn members(&self) -> Result<Vec<DeviceIds>, Error> {
        self.cloak
            .shared()
            .messenger
            .lock()
            .await
            .members(self.id.0)
    }

    /// Its name, once a member named it.
    pub async fn name(&self) -> Option<String> {
        let m = self.cloak.shared().messenger.lock().await;
        m.topic(self.id.0).map(str::to_owned)
    }

    /// Names (or renames) it for everyone.
    pub async fn rename(&self, name: &str) -> Result<(), Error> {
        let mut m = self.cloak.shared().messenger.lock().await;
        m.set_topic(self.id.0, name).await
    }

    /// Up to `limit` messages before `before` (the newest when `None`), oldest first,
    /// with edits, deletions, reactions and receipts applied.
    pub async fn messages(&self, before: Option<Cursor>, limit: u32) -> Result<Page, Error> {
        self.cloak
            .shared()
            .reader
            .messages(self.id, before, limit)
            .await
    }

    /// Rings the other members (a mesh of at most
    /// [`MAX_CALL_USERS`](crate::calls::MAX_CALL_USERS) users). Answers, SDP, ICE and the
    /// end of the call arrive as [`crate::Event::Call`] updates.
    pub async fn start_call(
        &self,
        media: crate::call_signal::CallMedia,
    ) -> Result<super::Call, Error> {
        let mut m = self.cloak.shared().messenger.lock().await;
        let call_id = m.start_call(self.id.0, media).await?;
        self.cloak.shared().note_calls(&m);
        Ok(self.cloak.call(self.id, call_id))
    }

    /// Leaves it: the members remove this user's devices, and it is forgotten here.
    pub async fn leave(&self) -> Result<(), Error> {
        self.cloak
            .shared()
            .messenger
            .lock()
            .await
            .leave(self.id.0)
            .await
    }
}
