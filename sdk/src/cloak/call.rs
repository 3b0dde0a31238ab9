//! [`Call`]: one call of a [`super::Cloak`] client, and the task that ends calls ringing
//! past their timeout.

use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::{Notify, watch};
use uuid::Uuid;

use super::{Cloak, Shared};
use crate::Error;
use crate::call_signal::Signal;
use crate::ids::ConversationId;

/// How often ringing calls are checked against their timeout.
const RING_CHECK: Duration = Duration::from_millis(500);

/// A call in a conversation. Its events arrive as [`crate::Event::Call`] updates. Cheap
/// to clone.
#[derive(Debug, Clone)]
pub struct Call {
    cloak: Cloak,
    conversation: ConversationId,
    id: Uuid,
}

impl Call {
    pub(super) fn new(cloak: Cloak, conversation: ConversationId, id: Uuid) -> Self {
        Self {
            cloak,
            conversation,
            id,
        }
    }

    /// Its id.
    pub fn id(&self) -> Uuid {
        self.id
    }

    /// Its conversation.
    pub fn conversation(&self) -> ConversationId {
        self.conversation
    }

    /// Takes the ringing call on this device; this user's other devices stop ringing.
    pub async fn accept(&self) -> Result<(), Error> {
        let mut m = self.cloak.shared().messenger.lock().await;
        m.accept_call(self.id).await
    }

    /// Declines the ringing call for this user.
    pub async fn decline(&self) -> Result<(), Error> {
        let mut m = self.cloak.shared().messenger.lock().await;
        m.decline_call(self.id).await
    }

    /// Leaves the call (before anyone answered: cancels it for everyone).
    pub async fn hang_up(&self) -> Result<(), Error> {
        let mut m = self.cloak.shared().messenger.lock().await;
        m.hang_up_call(self.id).await
    }

    /// Sends an SDP offer to one peer device.
    pub async fn send_offer(&self, to: Uuid, sdp: &str) -> Result<(), Error> {
        self.signal(
            Some(to),
            Signal::Offer {
                sdp: sdp.to_owned(),
            },
        )
        .await
    }

    /// Sends an SDP answer to one peer device.
    pub async fn send_answer(&self, to: Uuid, sdp: &str) -> Result<(), Error> {
        self.signal(
            Some(to),
            Signal::Answer {
                sdp: sdp.to_owned(),
            },
        )
        .await
    }

    /// Trickles an ICE candidate to one peer device.
    pub async fn send_ice_candidate(
        &self,
        to: Uuid,
        candidate: &str,
        sdp_mid: Option<&str>,
        sdp_mline_index: Option<u16>,
    ) -> Result<(), Error> {
        let signal = Signal::Ice {
            candidate: candidate.to_owned(),
            sdp_mid: sdp_mid.map(str::to_owned),
            sdp_mline_index,
        };
        self.signal(Some(to), signal).await
    }

    async fn signal(&self, to: Option<Uuid>, signal: Signal) -> Result<(), Error> {
        let mut m = self.cloak.shared().messenger.lock().await;
        m.send_call_signal(self.id, to, signal).await
    }
}

/// Ends calls that ring past their timeout (the caller's SDK then hangs up for everyone),
/// until the client stops. It sleeps until `ringing` wakes it (a call may ring), then
/// checks every [`RING_CHECK`] while one does: an idle client has no timer wake-ups.
pub(super) async fn ring_timer(
    shared: Weak<Shared>,
    ringing: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            () = ringing.notified() => {}
        }
        loop {
            tokio::select! {
                _ = stop.changed() => return,
                () = tokio::time::sleep(RING_CHECK) => {}
            }
            let Some(shared) = shared.upgrade() else {
                return;
            };
            let mut m = shared.messenger.lock().await;
            if !m.calls_ringing() {
                break;
            }
            // A failure (the store, the network) is retried on the next check.
            let _ = m.tick_calls().await;
            if !m.calls_ringing() {
                break;
            }
        }
    }
}
