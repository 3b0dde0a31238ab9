//! Attachments through the [`Cloak`] client: each request of a transfer takes the
//! client's lock on its own, so receiving goes on while a large file moves.

use cloak_proto::attachments::AttachmentUpload;
use tokio::io::{AsyncRead, AsyncSeek, AsyncWrite};
use uuid::Uuid;

use super::{Cloak, Shared};
use crate::Error;
use crate::attachment::Progress;
use crate::attachment::transfer::{self, Transport};
use crate::payload::Attachment;

/// The client's requests, one lock each.
struct Locked<'a>(&'a Shared);

impl Transport for Locked<'_> {
    async fn create_upload(
        &self,
        conversation_id: Uuid,
        total: u64,
    ) -> Result<AttachmentUpload, Error> {
        let m = self.0.messenger.lock().await;
        m.client().create_upload(conversation_id, total).await
    }

    async fn patch(&self, path: &str, offset: u64, body: &[u8]) -> Result<(), Error> {
        let m = self.0.messenger.lock().await;
        m.client().patch(path, offset, body).await
    }

    async fn upload_offset(&self, path: &str) -> Result<u64, Error> {
        let m = self.0.messenger.lock().await;
        m.client().upload_offset(path).await
    }

    async fn get_from(&self, path: &str, from: u64) -> Result<reqwest::Response, Error> {
        let m = self.0.messenger.lock().await;
        m.client().get_from(path, from).await
    }
}

impl Cloak {
    /// Encrypts and uploads a file for the members of `conversation` (see
    /// [`ConversationHandle::send_attachment`](super::ConversationHandle::send_attachment),
    /// which also sends the reference).
    pub(crate) async fn upload_attachment<R>(
        &self,
        conversation: Uuid,
        reader: &mut R,
        name: &str,
        mime: &str,
        progress: &(dyn Fn(Progress) + Send + Sync),
    ) -> Result<Attachment, Error>
    where
        R: AsyncRead + AsyncSeek + Unpin + Send,
    {
        transfer::upload(
            &Locked(self.shared()),
            conversation,
            reader,
            name,
            mime,
            progress,
        )
        .await
    }

    /// Downloads and decrypts a received attachment into `out`. Every chunk is
    /// authenticated before it is written; on [`Error::Verification`] (truncated,
    /// reordered or altered on the server) discard what was written.
    pub async fn download_attachment<W>(
        &self,
        attachment: &Attachment,
        out: &mut W,
    ) -> Result<(), Error>
    where
        W: AsyncWrite + Unpin + Send,
    {
        self.download_attachment_with_progress(attachment, out, &|_| {})
            .await
    }

    /// As [`download_attachment`](Self::download_attachment), reporting progress.
    pub async fn download_attachment_with_progress<W>(
        &self,
        attachment: &Attachment,
        out: &mut W,
        progress: &(dyn Fn(Progress) + Send + Sync),
    ) -> Result<(), Error>
    where
        W: AsyncWrite + Unpin + Send,
    {
        transfer::download(&Locked(self.shared()), attachment, out, progress).await
    }
}
