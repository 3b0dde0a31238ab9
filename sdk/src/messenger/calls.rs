//! Calls over the conversation's MLS group: starting, accepting, declining, hanging up,
//! SDP and ICE, and the ringing timeout (the state machine is [`crate::calls`]).

use uuid::Uuid;

use super::{Event, Messenger};
use crate::Error;
use crate::call_signal::{CallMedia, CallSignal, Signal};
use crate::calls::{CallBook, MAX_CALL_USERS};
use crate::clock::Clock;
use crate::payload::{Payload, PayloadKind};

impl<C: Clock> Messenger<C> {
    /// This device's call book, created on first use.
    pub(super) fn call_book(&mut self) -> Result<&mut CallBook, Error> {
        let me = self.ids()?;
        let timeout = self.ring_timeout_ms;
        Ok(self.calls.get_or_insert_with(|| CallBook::new(me, timeout)))
    }

    /// How many users a call in the conversation would reach (its members' users).
    fn call_users(&self, conversation_id: Uuid) -> Result<usize, Error> {
        let mut users: Vec<Uuid> = self
            .members(conversation_id)?
            .iter()
            .map(|m| m.user_id)
            .collect();
        users.sort_unstable();
        users.dedup();
        Ok(users.len())
    }

    /// Sets how long calls ring before they are given up (default 45 s).
    pub fn set_ring_timeout_ms(&mut self, ms: i64) {
        self.ring_timeout_ms = ms.max(1);
        self.calls = None;
    }

    /// The event a received call signal makes, if any.
    pub(super) fn on_call_signal(
        &mut self,
        conversation_id: Uuid,
        sender: crate::ids::DeviceIds,
        signal: &CallSignal,
        sent_at_ms: i64,
    ) -> Result<Option<Event>, Error> {
        if matches!(signal.signal, Signal::Invite { .. })
            && self.call_users(conversation_id)? > MAX_CALL_USERS
        {
            // Too many for a mesh: a modified client may send it, this device does not
            // ring.
            return Ok(None);
        }
        let now = self.client_now();
        let event = self
            .call_book()?
            .on_signal(conversation_id, sender, signal, sent_at_ms, now);
        Ok(event.map(|event| Event::Call {
            conversation_id,
            call_id: signal.call_id,
            event,
        }))
    }

    async fn send_signal(
        &mut self,
        conversation_id: Uuid,
        signal: CallSignal,
    ) -> Result<(), Error> {
        let payload = Payload::new(Uuid::new_v4(), self.client_now(), PayloadKind::Call(signal));
        self.send_payload(conversation_id, &payload)
            .await
            .map(|_| ())
    }

    /// Rings the other members of a conversation (at most [`MAX_CALL_USERS`] users in
    /// all); returns the call's id.
    pub async fn start_call(
        &mut self,
        conversation_id: Uuid,
        media: CallMedia,
    ) -> Result<Uuid, Error> {
        let users = self.call_users(conversation_id)?;
        if users > MAX_CALL_USERS {
            return Err(Error::InvalidState(
                "a call takes at most 8 users (MAX_CALL_USERS)",
            ));
        }
        // Every user but this device's own.
        let called = users.saturating_sub(1);
        if called == 0 {
            return Err(Error::InvalidState(
                "no one else is in the conversation to call",
            ));
        }
        let call_id = Uuid::new_v4();
        let now = self.client_now();
        self.call_book()?
            .start(conversation_id, call_id, called, now);
        let invite = CallSignal {
            call_id,
            to: None,
            signal: Signal::Invite { media },
        };
        if let Err(e) = self.send_signal(conversation_id, invite).await {
            self.call_book()?.end(call_id);
            return Err(e);
        }
        Ok(call_id)
    }

    fn live_call(&mut self, call_id: Uuid) -> Result<Uuid, Error> {
        let book = self.call_book()?;
        match book.conversation_of(call_id) {
            Some(c) if book.is_live(call_id) => Ok(c),
            _ => Err(Error::InvalidState("no such call in progress")),
        }
    }

    /// Takes a ringing call on this device (the user's other devices stop ringing).
    pub async fn accept_call(&mut self, call_id: Uuid) -> Result<(), Error> {
        let conversation_id = self.live_call(call_id)?;
        let Some(already_in) = self.call_book()?.accept(call_id) else {
            return Err(Error::InvalidState("the call is not ringing here"));
        };
        self.send_signal(
            conversation_id,
            CallSignal {
                call_id,
                to: None,
                signal: Signal::Accept,
            },
        )
        .await?;
        // The other callees already in the call, as events like any received one.
        if !already_in.is_empty() {
            for event in already_in {
                self.record(&Event::Call {
                    conversation_id,
                    call_id,
                    event,
                });
            }
            self.persist().await?;
        }
        Ok(())
    }

    /// Declines a ringing call for this user.
    pub async fn decline_call(&mut self, call_id: Uuid) -> Result<(), Error> {
        self.end_call(call_id, Signal::Decline).await
    }

    /// Leaves a call (before an answer: cancels it).
    pub async fn hang_up_call(&mut self, call_id: Uuid) -> Result<(), Error> {
        self.end_call(call_id, Signal::Hangup).await
    }

    /// Ends a live call here and tells the members with `signal`.
    async fn end_call(&mut self, call_id: Uuid, signal: Signal) -> Result<(), Error> {
        let conversation_id = self.live_call(call_id)?;
        self.call_book()?.end(call_id);
        let signal = CallSignal {
            call_id,
            to: None,
            signal,
        };
        self.send_signal(conversation_id, signal).await
    }

    /// Sends SDP, ICE or another signal of a call in progress to one peer device (`to`),
    /// or to every member.
    pub async fn send_call_signal(
        &mut self,
        call_id: Uuid,
        to: Option<Uuid>,
        signal: Signal,
    ) -> Result<(), Error> {
        let conversation_id = self.live_call(call_id)?;
        let signal = CallSignal {
            call_id,
            to,
            signal,
        };
        signal.check_limits()?;
        self.send_signal(conversation_id, signal).await
    }

    /// Whether a call rings here (so [`Messenger::tick_calls`] has work).
    pub fn calls_ringing(&self) -> bool {
        self.calls.as_ref().is_some_and(CallBook::ringing)
    }

    /// Ends calls that rang past the timeout: the caller's side hangs up for everyone.
    /// The events are recorded (queued, with a store) and returned.
    pub async fn tick_calls(&mut self) -> Result<Vec<Event>, Error> {
        let now = self.client_now();
        let tick = self.call_book()?.tick(now);
        let events: Vec<Event> = tick
            .events
            .into_iter()
            .map(|(conversation_id, call_id, event)| Event::Call {
                conversation_id,
                call_id,
                event,
            })
            .collect();
        for e in &events {
            self.record(e);
        }
        self.persist().await?;
        for (conversation_id, signal) in tick.send {
            // The callees time out on their own too: a failed hang-up loses nothing.
            let _ = self.send_signal(conversation_id, signal).await;
        }
        Ok(events)
    }
}
