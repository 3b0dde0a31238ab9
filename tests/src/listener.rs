//! Waiting for what a [`cloak_sdk::Cloak`] client receives, with deadlines, so a test
//! reads like the conversation it checks.

use std::pin::Pin;
use std::time::Duration;

use cloak_sdk::{Cloak, Event, PayloadKind, Update};
use futures_util::{Stream, StreamExt as _};
use uuid::Uuid;

/// How long a test waits for something that should arrive.
pub const ARRIVES: Duration = Duration::from_secs(30);

/// One subscription of a client.
pub struct Listener {
    cloak: Cloak,
    stream: Pin<Box<dyn Stream<Item = Update> + Send>>,
}

impl Listener {
    pub fn new(cloak: &Cloak) -> Self {
        Self {
            cloak: cloak.clone(),
            stream: Box::pin(cloak.subscribe()),
        }
    }

    /// The next event (marked handled), or a panic after [`ARRIVES`].
    pub async fn next(&mut self) -> Event {
        let update = tokio::time::timeout(ARRIVES, self.stream.next())
            .await
            .expect("an event in time")
            .expect("the stream goes on");
        if update.id.0 > 0 {
            self.cloak.mark_handled(update.id).await.unwrap();
        }
        update.event
    }

    /// Events until `pred` matches one (returned last).
    pub async fn until(&mut self, pred: impl Fn(&Event) -> bool) -> Vec<Event> {
        let mut seen = Vec::new();
        loop {
            let event = self.next().await;
            let done = pred(&event);
            seen.push(event);
            if done {
                return seen;
            }
        }
    }

    /// The next `n` texts (sending device, text), skipping other events.
    pub async fn texts(&mut self, n: usize) -> Vec<(Uuid, String)> {
        let mut got = Vec::new();
        while got.len() < n {
            got.extend(texts(&[self.next().await]));
        }
        got
    }

    /// Events that arrive within `quiet` of each other (none after that).
    pub async fn drain(&mut self, quiet: Duration) -> Vec<Event> {
        let mut seen = Vec::new();
        while let Ok(Some(update)) = tokio::time::timeout(quiet, self.stream.next()).await {
            seen.push(update.event);
        }
        seen
    }
}

/// The texts among events: (sending device, text).
pub fn texts(events: &[Event]) -> Vec<(Uuid, String)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Message {
                sender, payload, ..
            } => match &payload.kind {
                PayloadKind::Text { text } => Some((sender.device_id, text.clone())),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// Whether the event is this device joining `conversation`.
pub fn joined(event: &Event, conversation: cloak_sdk::ConversationId) -> bool {
    matches!(event, Event::Joined { conversation_id, .. } if *conversation_id == conversation.0)
}
