//! The update stream: queued events from the store, then live ones, without gaps or
//! repeats (a subscriber that falls behind the live buffer re-reads the store).

use std::collections::VecDeque;

use futures_util::StreamExt as _;
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;

use crate::store::history::{EventId, HistoryReader, Update};

/// Events read from the store at a time.
const PAGE: u32 = 256;
/// Updates handed over but not yet taken.
const FORWARD_BUFFER: usize = 64;

struct State {
    reader: HistoryReader,
    live: broadcast::Receiver<Update>,
    backlog: VecDeque<Update>,
    /// The last queued event handed out.
    last: EventId,
    /// Whether the store must be read (at the start, and after falling behind).
    catch_up: bool,
}

/// Updates read to completion by a task of their own and handed over through a channel:
/// a consumer that drops a pending `next()` (in a `select!`) never leaves a store read
/// half done, holding the store's one connection.
pub(super) fn forwarded(reader: HistoryReader, live: broadcast::Receiver<Update>) -> Updates {
    let (tx, rx) = tokio::sync::mpsc::channel(FORWARD_BUFFER);
    tokio::spawn(async move {
        let mut updates = Box::pin(stream(reader, live));
        loop {
            let update = tokio::select! {
                () = tx.closed() => return,
                update = updates.next() => update,
            };
            let Some(update) = update else { return };
            if tx.send(update).await.is_err() {
                return;
            }
        }
    });
    Updates { rx }
}

/// The stream of a [`super::Cloak::subscribe`]: `Unpin`, cancel-safe.
#[derive(Debug)]
pub struct Updates {
    rx: tokio::sync::mpsc::Receiver<Update>,
}

impl futures_util::Stream for Updates {
    type Item = Update;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Update>> {
        self.rx.poll_recv(cx)
    }
}

fn stream(
    reader: HistoryReader,
    live: broadcast::Receiver<Update>,
) -> impl futures_util::Stream<Item = Update> + Send + 'static {
    let state = State {
        reader,
        live,
        backlog: VecDeque::new(),
        last: EventId(0),
        catch_up: true,
    };
    futures_util::stream::unfold(state, |mut s| async move {
        loop {
            if let Some(update) = s.backlog.pop_front() {
                s.last = s.last.max(update.id);
                return Some((update, s));
            }
            if s.catch_up {
                match s.reader.events(s.last, PAGE).await {
                    Ok(page) if page.is_empty() => s.catch_up = false,
                    Ok(page) => s.backlog.extend(page),
                    // The store failed: go on with live updates.
                    Err(_) => s.catch_up = false,
                }
                continue;
            }
            match s.live.recv().await {
                // Ephemeral (typing) updates are not queued: hand them out as they come.
                Ok(update) if update.id == EventId(0) => return Some((update, s)),
                Ok(update) if update.id > s.last => {
                    s.last = update.id;
                    return Some((update, s));
                }
                Ok(_) => continue,
                Err(RecvError::Lagged(_)) => s.catch_up = true,
                Err(RecvError::Closed) => return None,
            }
        }
    })
}
