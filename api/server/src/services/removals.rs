//! Proposing the removal of revoked and long-inactive devices, as the groups' external
//! sender. A revoked device's removals are recorded when it is revoked; inactive devices
//! are found by a periodic sweep. This worker proposes each pending removal once per
//! epoch: every commit outdates the proposals before it, so after a commit that did not
//! carry them out, the removal is proposed again at the new epoch, until a member's commit
//! removes the device. It runs on every node; the store lets one proposal per epoch win.

use uuid::Uuid;

use super::external_sender::ExternalSender;
use crate::broker::Broker;
use crate::store::{NewProposals, Store, StoreError};

/// Most pending removals read per pass.
const BATCH: i64 = 500;

/// Proposes every removal due (not yet proposed at its conversation's current epoch) and
/// wakes the members who got a proposal. Returns how many conversations got proposals.
pub async fn propose_due(
    store: &dyn Store,
    broker: &dyn Broker,
    sender: &ExternalSender,
    mailbox_quota: i64,
    now_ms: i64,
) -> Result<usize, StoreError> {
    let mut proposed = 0;
    for due in store.removals_due(BATCH).await? {
        let epoch = u64::try_from(due.epoch).unwrap_or_default();
        let proposals = match due
            .removals
            .iter()
            .map(|r| {
                sender
                    .remove_proposal(due.conversation_id, epoch, r.leaf_index)
                    .map(|body| (r.device_id, body))
            })
            .collect::<Result<Vec<(Uuid, Vec<u8>)>, _>>()
        {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "cannot sign a removal proposal");
                continue;
            }
        };
        let stored = store
            .store_proposals(&NewProposals {
                tenant_id: due.tenant_id,
                conversation_id: due.conversation_id,
                epoch: due.epoch,
                proposals,
                now_ms,
                mailbox_quota,
            })
            .await?;
        // `None`: a commit moved the epoch on (the next pass proposes at the new one), or
        // another node proposed first.
        if let Some(recipients) = stored {
            super::push::wake(broker, &recipients).await;
            proposed += 1;
        }
    }
    Ok(proposed)
}
