//! Who is in a conversation: creating one, approving and revoking devices, and the
//! commits that carry those changes.
//!
//! Every commit is written to the encrypted store, with the request that carries it,
//! *before* it is sent. When the answer is lost (a crash, a network failure after the
//! server accepted it), the next [`Messenger::sync`] sends the same request again: the
//! server stores a commit once per `client_msg_id` and answers a replay as accepted, so
//! the device merges exactly what the server ordered and never falls an epoch behind.
//! KeyPackages are stored before they are uploaded, for the same reason: a Welcome for a
//! package whose private part was lost could never be opened.

use cloak_proto::delivery::{CommitRequest, SendReceipt};
use cloak_proto::devices::DeviceStatus;
use cloak_proto::key_packages::MAX_BATCH;
use openmls::prelude::OpenMlsProvider as _;
use openmls_rust_crypto::OpenMlsRustCrypto;
use uuid::Uuid;

use super::{Event, Messenger, STALE_RETRIES, is_stale, retry_transport};
use crate::Error;
use crate::clock::Clock;
use crate::conversation::{Conversation, PendingCommit};
use crate::mls::{check_key_package_device, generate_key_packages, parse_key_package};

impl<C: Clock> Messenger<C> {
    /// Publishes KeyPackages so others can add this device: when the server's stock is
    /// low, enough one-time packages to reach `target`, and a last-resort package when
    /// none is on file. The private parts are stored before the packages are uploaded.
    pub async fn publish_key_packages(&mut self, target: u32) -> Result<(), Error> {
        let ids = self.ids()?;
        let stock = self.client.stock().await?;
        let missing = if stock.low {
            usize::try_from(target.saturating_sub(stock.one_time)).unwrap_or(usize::MAX)
        } else {
            0
        };
        let identity = self.client.identity();
        let mut last_resort = if stock.last_resort {
            None
        } else {
            generate_key_packages(&self.provider, identity, &ids, 1, true)?.pop()
        };
        let mut one_time = generate_key_packages(&self.provider, identity, &ids, missing, false)?;
        if one_time.is_empty() && last_resort.is_none() {
            return Ok(());
        }
        self.persist().await?;
        while !one_time.is_empty() || last_resort.is_some() {
            let rest = one_time.split_off(one_time.len().min(MAX_BATCH));
            let batch = std::mem::replace(&mut one_time, rest);
            self.client
                .upload_key_packages(batch, last_resort.take())
                .await?;
        }
        Ok(())
    }

    /// Starts a conversation with every approved device of `users` and of this device's
    /// own user. Returns its id.
    pub async fn create_conversation(&mut self, users: &[Uuid]) -> Result<Uuid, Error> {
        let ids = self.ids()?;
        let mut packages = self.key_packages_of(ids.user_id).await?;
        for user in users.iter().filter(|u| **u != ids.user_id) {
            packages.extend(self.key_packages_of(*user).await?);
        }
        // The server's external-sender credential goes into the new group, so it can
        // propose removing revoked and long-inactive devices.
        let external_sender = self.client.external_sender().await?;
        let id = Uuid::new_v4();
        self.client.create_conversation(id).await?;
        let mut conversation = Conversation::create(
            &self.provider,
            self.client.identity(),
            &ids,
            id,
            Some(&external_sender),
        )?;
        let submitted = if packages.is_empty() {
            Ok(())
        } else {
            let pending =
                conversation.add_devices(&self.provider, self.client.identity(), &packages)?;
            self.submit(&mut conversation, pending).await
        };
        match submitted {
            Ok(()) => {}
            // Still pending: kept, and settled by the next sync.
            Err(e) if e.is_transient() => {
                self.conversations.insert(id, conversation);
                self.persist().await?;
                return Err(e);
            }
            Err(e) => {
                self.persist().await?;
                return Err(e);
            }
        }
        self.conversations.insert(id, conversation);
        self.persist().await?;
        Ok(id)
    }

    /// Stores a pending commit with its request, then submits it: merged when accepted,
    /// discarded when refused, kept pending when the answer did not come.
    async fn submit(
        &mut self,
        conversation: &mut Conversation,
        pending: PendingCommit,
    ) -> Result<(), Error> {
        let request = CommitRequest {
            client_msg_id: Uuid::new_v4(),
            epoch: pending.epoch_before,
            commit: pending.commit,
            welcome: pending.welcome,
            add: pending.add,
            remove: pending.remove,
            leaf_indices: pending.leaf_indices,
        };
        let id = conversation.id();
        self.pending_commits.insert(id, request.clone());
        self.persist().await?;
        let answer = retry_transport(|| self.client.submit_commit(id, &request)).await;
        self.settle_commit(conversation, answer)
    }

    /// Applies the server's answer to a submitted commit.
    fn settle_commit(
        &mut self,
        conversation: &mut Conversation,
        answer: Result<SendReceipt, Error>,
    ) -> Result<(), Error> {
        let id = conversation.id();
        match answer {
            Ok(_) => {
                self.pending_commits.remove(&id);
                conversation.confirm_commit(&self.provider)
            }
            Err(e) if e.is_transient() => Err(e),
            Err(e) => {
                self.pending_commits.remove(&id);
                conversation.discard_commit(&self.provider)?;
                Err(e)
            }
        }
    }

    /// Sends again every commit stored before a send whose answer never came, and applies
    /// the answers (a replay of an accepted commit is answered as accepted).
    pub(super) async fn resume_pending_commits(&mut self) -> Result<(), Error> {
        if self.pending_commits.is_empty() {
            return Ok(());
        }
        let mut ids: Vec<Uuid> = self.pending_commits.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            let Some(request) = self.pending_commits.get(&id).cloned() else {
                continue;
            };
            let Some(mut conversation) = self.conversations.remove(&id) else {
                self.pending_commits.remove(&id);
                continue;
            };
            let settled = if conversation.has_pending_commit() {
                let answer = self.client.submit_commit(id, &request).await;
                self.settle_commit(&mut conversation, answer)
            } else {
                self.pending_commits.remove(&id);
                Ok(())
            };
            self.conversations.insert(id, conversation);
            match settled {
                Err(e) if e.is_transient() => {
                    self.persist().await?;
                    return Err(e);
                }
                // Refused (another commit won, say): discarded; the sync that follows
                // merges what the server ordered instead.
                _ => {}
            }
        }
        self.persist().await
    }

    /// Approves a pending device of this user after checking the fingerprint it shows, and
    /// adds it to every conversation this device is in (it reads messages from then on,
    /// never earlier ones). Returns the events of any sync needed on the way.
    pub async fn approve_device(
        &mut self,
        device_id: Uuid,
        fingerprint: &str,
    ) -> Result<Vec<Event>, Error> {
        let ids = self.ids()?;
        self.client
            .approve_device_with_fingerprint(device_id, fingerprint)
            .await?;
        let mut events = self.sync().await?;
        let mut ids_to_update: Vec<Uuid> = self
            .conversations
            .iter()
            .filter(|(_, c)| c.is_active() && !c.members().iter().any(|m| m.device_id == device_id))
            .map(|(id, _)| *id)
            .collect();
        ids_to_update.sort();
        if ids_to_update.is_empty() {
            return Ok(events);
        }
        let directory = self.trusted_directory(ids.user_id).await?;
        let device = directory
            .iter()
            .find(|d| d.id == device_id && d.status == DeviceStatus::Approved)
            .ok_or(Error::InvalidState(
                "the device is not approved in the directory",
            ))?
            .clone();
        for conversation_id in ids_to_update {
            let claimed = self.client.claim_key_packages(ids.user_id).await?;
            let item = claimed
                .items
                .into_iter()
                .find(|i| i.device_id == device_id)
                .ok_or(Error::InvalidState(
                    "the new device has published no key package",
                ))?;
            let kp = parse_key_package(self.provider.crypto(), &item.data)?;
            check_key_package_device(&kp, &device)?;
            let packages = [kp];
            events.extend(
                self.commit_with_retry(conversation_id, |c, p, i| c.add_devices(p, i, &packages))
                    .await?,
            );
        }
        Ok(events)
    }

    /// Revokes a device (its tokens stop at once) and removes it from every conversation
    /// this device is in, so it cannot read anything sent afterwards.
    pub async fn revoke_device(&mut self, device_id: Uuid) -> Result<Vec<Event>, Error> {
        self.client.revoke_device(device_id).await?;
        let mut events = self.sync().await?;
        let mut affected: Vec<Uuid> = self
            .conversations
            .iter()
            .filter(|(_, c)| c.members().iter().any(|m| m.device_id == device_id))
            .map(|(id, _)| *id)
            .collect();
        affected.sort();
        for conversation_id in affected {
            events.extend(
                self.commit_with_retry(conversation_id, |c, p, i| {
                    c.remove_devices(p, i, &[device_id])
                })
                .await?,
            );
        }
        Ok(events)
    }

    /// Commits the removals the server proposed in a conversation, if any wait (a group
    /// with pending proposals cannot encrypt). When another member's commit carried them
    /// out first, there is nothing left to do.
    pub(super) async fn commit_proposals(
        &mut self,
        conversation_id: Uuid,
    ) -> Result<Vec<Event>, Error> {
        let waiting = self
            .conversations
            .get(&conversation_id)
            .is_some_and(|c| c.is_active() && c.has_pending_proposals());
        if !waiting {
            return Ok(Vec::new());
        }
        match self
            .commit_with_retry(conversation_id, |c, p, i| c.commit_pending_proposals(p, i))
            .await
        {
            Err(Error::InvalidState("no proposals to commit")) => Ok(Vec::new()),
            other => other,
        }
    }

    /// Makes a commit with `make` and submits it; on `stale_epoch` syncs (merging the
    /// commits that won) and makes it again.
    pub(super) async fn commit_with_retry<F>(
        &mut self,
        conversation_id: Uuid,
        make: F,
    ) -> Result<Vec<Event>, Error>
    where
        F: Fn(
            &mut Conversation,
            &OpenMlsRustCrypto,
            &crate::DeviceIdentity,
        ) -> Result<PendingCommit, Error>,
    {
        let mut events = Vec::new();
        for _ in 0..=STALE_RETRIES {
            let mut conversation = self
                .conversations
                .remove(&conversation_id)
                .ok_or(Error::InvalidState("unknown conversation"))?;
            let result = match make(&mut conversation, &self.provider, self.client.identity()) {
                Ok(pending) => self.submit(&mut conversation, pending).await,
                Err(e) => Err(e),
            };
            self.conversations.insert(conversation_id, conversation);
            match result {
                Ok(()) => {
                    self.persist().await?;
                    return Ok(events);
                }
                Err(e) if is_stale(&e) => events.extend(self.sync().await?),
                Err(e) => {
                    self.persist().await?;
                    return Err(e);
                }
            }
        }
        Err(Error::InvalidState(
            "the conversation kept moving; try again",
        ))
    }
}
