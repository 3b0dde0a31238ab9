//! The calls a device takes part in (sans-IO): what each signal from the conversation
//! means for the call's state, and the events the app sees. Time is a parameter.
//!
//! A call rings until someone of another user accepts, everyone else declines, the caller
//! hangs up, or the ringing timeout passes (then the caller's SDK hangs up for everyone).
//! When one of the callee's devices accepts, the user's other devices stop ringing with
//! [`CallEndReason::AnsweredElsewhere`]. Offers, answers and ICE candidates addressed to
//! another device are not for this one. Group calls are a mesh of at most
//! [`MAX_CALL_USERS`] users.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::call_signal::{CallMedia, CallSignal, Signal};
use crate::ids::DeviceIds;

/// Most users in a call (every device connects to every other: a mesh).
pub const MAX_CALL_USERS: usize = 8;
/// How long a call rings before it is given up, by default.
pub const RING_TIMEOUT_MS: i64 = 45_000;

/// Why a call ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CallEndReason {
    /// A device hung up (for a call still ringing: the caller cancelled it).
    HungUp {
        /// Who.
        by: DeviceIds,
    },
    /// Everyone called declined (the last one given).
    Declined {
        /// Who.
        by: DeviceIds,
    },
    /// Nobody answered within the ringing timeout (the caller's side).
    NoAnswer,
    /// It rang here past the timeout, or arrived too late to ring (a missed call).
    Missed,
    /// Another device of this user took it (or declined it).
    AnsweredElsewhere,
}

/// What a call signal (or the clock) produced for the app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CallEvent {
    /// Another user calls.
    IncomingCall {
        /// The caller's device.
        from: DeviceIds,
        /// What it offers.
        media: CallMedia,
    },
    /// A device of another user took this device's call.
    CallAnswered {
        /// The device that accepted.
        by: DeviceIds,
    },
    /// In a group call, another callee's device is in the call with this one (it accepted
    /// before or after this device did; each side learns of the other exactly once, even
    /// when their accepts cross). The mesh convention: of the two, the device with the
    /// smaller id sends the offer (`offer` says whether that is this one); the caller
    /// offers to every callee on [`CallEvent::CallAnswered`]. So each pair connects once.
    PeerJoined {
        /// The other callee's device.
        by: DeviceIds,
        /// Whether this device sends the offer.
        offer: bool,
    },
    /// A peer's SDP offer (`offer: true`) or answer, for this device.
    CallSdp {
        /// The peer.
        from: DeviceIds,
        /// An offer, or else an answer.
        offer: bool,
        /// The session description.
        sdp: String,
    },
    /// A peer's trickled ICE candidate, for this device.
    IceCandidate {
        /// The peer.
        from: DeviceIds,
        /// The `candidate:` line.
        candidate: String,
        /// Its media stream id.
        sdp_mid: Option<String>,
        /// Its m-line index.
        sdp_mline_index: Option<u16>,
    },
    /// The call is over for this device.
    CallEnded {
        /// Why.
        reason: CallEndReason,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Ringing,
    Active,
    Ended,
}

#[derive(Debug, Clone)]
struct CallState {
    conversation_id: Uuid,
    outgoing: bool,
    /// When it started ringing here (this device's clock).
    since_ms: i64,
    phase: Phase,
    /// Users called (other than the caller's), for "everyone declined".
    called: usize,
    declined: HashSet<Uuid>,
    /// Devices in the call with this one.
    peers: HashSet<Uuid>,
    /// Other callees' devices that accepted (before this device did, or since).
    accepted: Vec<DeviceIds>,
    /// Those of them the app was told of ([`CallEvent::PeerJoined`]).
    announced: HashSet<Uuid>,
}

impl CallState {
    /// [`CallEvent::PeerJoined`] for `by`, once.
    fn announce(&mut self, me: Uuid, by: DeviceIds) -> Option<CallEvent> {
        self.announced
            .insert(by.device_id)
            .then_some(CallEvent::PeerJoined {
                by,
                offer: me < by.device_id,
            })
    }
}

/// What a tick decided: events for the app, and signals this device must send.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Tick {
    /// (conversation, call, event).
    pub events: Vec<(Uuid, Uuid, CallEvent)>,
    /// (conversation, signal) to send.
    pub send: Vec<(Uuid, CallSignal)>,
}

/// This device's calls.
#[derive(Debug, Clone)]
pub struct CallBook {
    me: DeviceIds,
    ring_timeout_ms: i64,
    calls: HashMap<Uuid, CallState>,
}

impl CallBook {
    /// The calls of device `me`.
    pub fn new(me: DeviceIds, ring_timeout_ms: i64) -> Self {
        Self {
            me,
            ring_timeout_ms,
            calls: HashMap::new(),
        }
    }

    /// This device starts a call ringing `called_users` other users.
    pub fn start(
        &mut self,
        conversation_id: Uuid,
        call_id: Uuid,
        called_users: usize,
        now_ms: i64,
    ) {
        self.calls.insert(
            call_id,
            CallState {
                conversation_id,
                outgoing: true,
                since_ms: now_ms,
                phase: Phase::Ringing,
                called: called_users,
                declined: HashSet::new(),
                peers: HashSet::new(),
                accepted: Vec::new(),
                announced: HashSet::new(),
            },
        );
    }

    /// This device accepts a ringing call: `None` when no such call rings here, else the
    /// other callees already in it ([`CallEvent::PeerJoined`] for each).
    pub fn accept(&mut self, call_id: Uuid) -> Option<Vec<CallEvent>> {
        let me = self.me.device_id;
        match self.calls.get_mut(&call_id) {
            Some(c) if c.phase == Phase::Ringing && !c.outgoing => {
                c.phase = Phase::Active;
                let earlier = c.accepted.clone();
                Some(
                    earlier
                        .into_iter()
                        .filter_map(|by| c.announce(me, by))
                        .collect(),
                )
            }
            _ => None,
        }
    }

    /// This device declines or hangs up: the call is over here.
    pub fn end(&mut self, call_id: Uuid) {
        if let Some(c) = self.calls.get_mut(&call_id) {
            c.phase = Phase::Ended;
        }
    }

    /// The conversation of a call this device knows, if any.
    pub fn conversation_of(&self, call_id: Uuid) -> Option<Uuid> {
        self.calls.get(&call_id).map(|c| c.conversation_id)
    }

    /// Whether a call is ringing or active here.
    pub fn is_live(&self, call_id: Uuid) -> bool {
        self.calls
            .get(&call_id)
            .is_some_and(|c| c.phase != Phase::Ended)
    }

    /// Whether any call is ringing here (so [`CallBook::tick`] has work).
    pub fn ringing(&self) -> bool {
        self.calls.values().any(|c| c.phase == Phase::Ringing)
    }

    /// A signal from `from` in `conversation_id`, sent at `sent_at_ms` (the server's
    /// time): the event it makes, if any.
    pub fn on_signal(
        &mut self,
        conversation_id: Uuid,
        from: DeviceIds,
        signal: &CallSignal,
        sent_at_ms: i64,
        now_ms: i64,
    ) -> Option<CallEvent> {
        if from.device_id == self.me.device_id {
            return None;
        }
        if signal.to.is_some_and(|to| to != self.me.device_id) {
            return None;
        }
        let own_user = from.user_id == self.me.user_id;
        let timeout = self.ring_timeout_ms;
        if let Signal::Invite { media } = signal.signal {
            if own_user || self.calls.contains_key(&signal.call_id) {
                // This user's own call from another device, or a repeat.
                return None;
            }
            let late = now_ms.saturating_sub(sent_at_ms) >= timeout;
            self.calls.insert(
                signal.call_id,
                CallState {
                    conversation_id,
                    outgoing: false,
                    since_ms: now_ms,
                    phase: if late { Phase::Ended } else { Phase::Ringing },
                    called: 0,
                    declined: HashSet::new(),
                    peers: HashSet::from([from.device_id]),
                    accepted: Vec::new(),
                    announced: HashSet::new(),
                },
            );
            return Some(if late {
                CallEvent::CallEnded {
                    reason: CallEndReason::Missed,
                }
            } else {
                CallEvent::IncomingCall { from, media }
            });
        }
        let call = self.calls.get_mut(&signal.call_id)?;
        if call.conversation_id != conversation_id || call.phase == Phase::Ended {
            return None;
        }
        match &signal.signal {
            Signal::Invite { .. } => None,
            Signal::Accept if own_user => {
                // Another device of this user took it.
                call.phase = Phase::Ended;
                Some(CallEvent::CallEnded {
                    reason: CallEndReason::AnsweredElsewhere,
                })
            }
            Signal::Decline if own_user && call.phase == Phase::Ringing && !call.outgoing => {
                call.phase = Phase::Ended;
                Some(CallEvent::CallEnded {
                    reason: CallEndReason::AnsweredElsewhere,
                })
            }
            Signal::Accept => {
                call.peers.insert(from.device_id);
                if call.outgoing {
                    call.phase = Phase::Active;
                    Some(CallEvent::CallAnswered { by: from })
                } else {
                    if !call.accepted.iter().any(|d| d.device_id == from.device_id) {
                        call.accepted.push(from);
                    }
                    // Still ringing here: told when this device accepts.
                    if call.phase == Phase::Active {
                        call.announce(self.me.device_id, from)
                    } else {
                        None
                    }
                }
            }
            Signal::Decline => {
                if !call.outgoing || call.phase != Phase::Ringing {
                    return None;
                }
                call.declined.insert(from.user_id);
                (call.declined.len() >= call.called.max(1)).then(|| {
                    call.phase = Phase::Ended;
                    CallEvent::CallEnded {
                        reason: CallEndReason::Declined { by: from },
                    }
                })
            }
            Signal::Hangup => {
                call.peers.remove(&from.device_id);
                let over = call.phase == Phase::Ringing && !call.outgoing
                    || call.phase == Phase::Active && call.peers.is_empty();
                over.then(|| {
                    call.phase = Phase::Ended;
                    CallEvent::CallEnded {
                        reason: CallEndReason::HungUp { by: from },
                    }
                })
            }
            Signal::Offer { sdp } | Signal::Answer { sdp } => {
                call.peers.insert(from.device_id);
                Some(CallEvent::CallSdp {
                    from,
                    offer: matches!(signal.signal, Signal::Offer { .. }),
                    sdp: sdp.clone(),
                })
            }
            Signal::Ice {
                candidate,
                sdp_mid,
                sdp_mline_index,
            } => Some(CallEvent::IceCandidate {
                from,
                candidate: candidate.clone(),
                sdp_mid: sdp_mid.clone(),
                sdp_mline_index: *sdp_mline_index,
            }),
        }
    }

    /// Ends calls that rang too long: the callee's side reports a missed call; the
    /// caller's reports no answer and hangs up for everyone.
    pub fn tick(&mut self, now_ms: i64) -> Tick {
        let mut out = Tick::default();
        for (id, call) in &mut self.calls {
            if call.phase != Phase::Ringing
                || now_ms.saturating_sub(call.since_ms) < self.ring_timeout_ms
            {
                continue;
            }
            call.phase = Phase::Ended;
            let reason = if call.outgoing {
                out.send.push((
                    call.conversation_id,
                    CallSignal {
                        call_id: *id,
                        to: None,
                        signal: Signal::Hangup,
                    },
                ));
                CallEndReason::NoAnswer
            } else {
                CallEndReason::Missed
            };
            out.events
                .push((call.conversation_id, *id, CallEvent::CallEnded { reason }));
        }
        // Ended calls are forgotten after a while (repeats of their signals are ignored
        // until then).
        let keep = self.ring_timeout_ms.saturating_mul(20);
        self.calls
            .retain(|_, c| c.phase != Phase::Ended || now_ms.saturating_sub(c.since_ms) < keep);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(user: u128, device: u128) -> DeviceIds {
        DeviceIds {
            tenant_id: Uuid::nil(),
            user_id: Uuid::from_u128(user),
            device_id: Uuid::from_u128(device),
        }
    }

    fn signal(call: Uuid, signal: Signal) -> CallSignal {
        CallSignal {
            call_id: call,
            to: None,
            signal,
        }
    }

    const CONV: Uuid = Uuid::from_u128(100);

    #[test]
    fn in_a_group_call_those_already_in_learn_of_each_newcomer() {
        let caller = ids(1, 11);
        let bob = ids(2, 21);
        let carol = ids(3, 31);
        let call = Uuid::from_u128(8);
        let mut a = CallBook::new(caller, RING_TIMEOUT_MS);
        let mut b = CallBook::new(bob, RING_TIMEOUT_MS);
        let mut c = CallBook::new(carol, RING_TIMEOUT_MS);
        a.start(CONV, call, 2, 0);
        let invite = signal(
            call,
            Signal::Invite {
                media: CallMedia::Audio,
            },
        );
        for book in [&mut b, &mut c] {
            assert!(matches!(
                book.on_signal(CONV, caller, &invite, 0, 5),
                Some(CallEvent::IncomingCall { .. })
            ));
        }
        // Bob accepts first: the caller hears it; Carol, still ringing, is told nothing yet.
        assert_eq!(b.accept(call), Some(vec![]));
        let accept = signal(call, Signal::Accept);
        assert_eq!(
            a.on_signal(CONV, bob, &accept, 10, 10),
            Some(CallEvent::CallAnswered { by: bob })
        );
        assert_eq!(c.on_signal(CONV, bob, &accept, 10, 10), None);
        // Carol accepts: she learns Bob is in, the caller and Bob learn of her; Bob (the
        // smaller id) offers.
        assert_eq!(
            c.accept(call),
            Some(vec![CallEvent::PeerJoined {
                by: bob,
                offer: false
            }])
        );
        assert_eq!(
            a.on_signal(CONV, carol, &accept, 20, 20),
            Some(CallEvent::CallAnswered { by: carol })
        );
        assert_eq!(
            b.on_signal(CONV, carol, &accept, 20, 20),
            Some(CallEvent::PeerJoined {
                by: carol,
                offer: true
            })
        );
        assert_eq!(b.on_signal(CONV, carol, &accept, 21, 21), None, "once");
        // Bob hangs up: the call goes on for Carol, who still has the caller.
        let hangup = signal(call, Signal::Hangup);
        assert_eq!(c.on_signal(CONV, bob, &hangup, 30, 30), None);
        assert!(c.is_live(call));
        assert_eq!(
            c.on_signal(CONV, caller, &hangup, 40, 40),
            Some(CallEvent::CallEnded {
                reason: CallEndReason::HungUp { by: caller }
            })
        );
    }

    #[test]
    fn crossing_accepts_still_tell_each_side_once_and_one_offers() {
        let caller = ids(1, 11);
        let bob = ids(2, 21);
        let carol = ids(3, 31);
        let call = Uuid::from_u128(9);
        let invite = signal(
            call,
            Signal::Invite {
                media: CallMedia::Video,
            },
        );
        let mut b = CallBook::new(bob, RING_TIMEOUT_MS);
        let mut c = CallBook::new(carol, RING_TIMEOUT_MS);
        b.on_signal(CONV, caller, &invite, 0, 1);
        c.on_signal(CONV, caller, &invite, 0, 1);
        // Both accept before either hears of the other.
        assert_eq!(b.accept(call), Some(vec![]));
        assert_eq!(c.accept(call), Some(vec![]));
        let accept = signal(call, Signal::Accept);
        let at_b = b.on_signal(CONV, carol, &accept, 5, 5);
        let at_c = c.on_signal(CONV, bob, &accept, 5, 5);
        assert_eq!(
            (at_b, at_c),
            (
                Some(CallEvent::PeerJoined {
                    by: carol,
                    offer: true
                }),
                Some(CallEvent::PeerJoined {
                    by: bob,
                    offer: false
                })
            )
        );
    }

    #[test]
    fn a_call_rings_is_answered_and_hung_up() {
        let caller = ids(1, 11);
        let callee = ids(2, 21);
        let call = Uuid::from_u128(7);
        let mut a = CallBook::new(caller, RING_TIMEOUT_MS);
        let mut b = CallBook::new(callee, RING_TIMEOUT_MS);
        a.start(CONV, call, 1, 0);
        let invite = signal(
            call,
            Signal::Invite {
                media: CallMedia::Video,
            },
        );
        assert_eq!(
            b.on_signal(CONV, caller, &invite, 0, 10),
            Some(CallEvent::IncomingCall {
                from: caller,
                media: CallMedia::Video
            })
        );
        assert_eq!(
            b.on_signal(CONV, caller, &invite, 0, 10),
            None,
            "a repeat rings once"
        );
        assert!(b.accept(call).is_some());
        assert_eq!(
            a.on_signal(CONV, callee, &signal(call, Signal::Accept), 20, 20),
            Some(CallEvent::CallAnswered { by: callee })
        );
        let offer = CallSignal {
            call_id: call,
            to: Some(callee.device_id),
            signal: Signal::Offer { sdp: "v=0".into() },
        };
        assert_eq!(
            b.on_signal(CONV, caller, &offer, 30, 30),
            Some(CallEvent::CallSdp {
                from: caller,
                offer: true,
                sdp: "v=0".into()
            })
        );
        // Addressed to another device: not for this one.
        let elsewhere = CallSignal {
            to: Some(Uuid::from_u128(99)),
            ..offer
        };
        assert_eq!(b.on_signal(CONV, caller, &elsewhere, 30, 30), None);
        assert_eq!(
            a.on_signal(CONV, callee, &signal(call, Signal::Hangup), 40, 40),
            Some(CallEvent::CallEnded {
                reason: CallEndReason::HungUp { by: callee }
            })
        );
        assert!(!a.is_live(call));
        // The ringing timeout no longer applies to a call that ended.
        assert_eq!(a.tick(RING_TIMEOUT_MS * 2), Tick::default());
    }

    #[test]
    fn another_device_of_the_callee_answering_stops_the_ringing_here() {
        let caller = ids(1, 11);
        let phone = ids(2, 21);
        let laptop = ids(2, 22);
        let call = Uuid::from_u128(7);
        let mut book = CallBook::new(laptop, RING_TIMEOUT_MS);
        let invite = signal(
            call,
            Signal::Invite {
                media: CallMedia::Audio,
            },
        );
        assert!(matches!(
            book.on_signal(CONV, caller, &invite, 0, 0),
            Some(CallEvent::IncomingCall { .. })
        ));
        assert_eq!(
            book.on_signal(CONV, phone, &signal(call, Signal::Accept), 5, 5),
            Some(CallEvent::CallEnded {
                reason: CallEndReason::AnsweredElsewhere
            })
        );
        // This user's own calls from another device do not ring here.
        let own = signal(
            Uuid::from_u128(8),
            Signal::Invite {
                media: CallMedia::Audio,
            },
        );
        assert_eq!(book.on_signal(CONV, phone, &own, 0, 0), None);
    }

    #[test]
    fn unanswered_calls_time_out_on_both_sides_and_late_invites_are_missed() {
        let caller = ids(1, 11);
        let callee = ids(2, 21);
        let call = Uuid::from_u128(7);
        let mut a = CallBook::new(caller, 1_000);
        let mut b = CallBook::new(callee, 1_000);
        a.start(CONV, call, 1, 0);
        let invite = signal(
            call,
            Signal::Invite {
                media: CallMedia::Audio,
            },
        );
        assert!(b.on_signal(CONV, caller, &invite, 0, 100).is_some());
        assert_eq!(a.tick(999), Tick::default());
        let t = a.tick(1_000);
        assert_eq!(
            t.events,
            vec![(
                CONV,
                call,
                CallEvent::CallEnded {
                    reason: CallEndReason::NoAnswer
                }
            )]
        );
        assert_eq!(t.send, vec![(CONV, signal(call, Signal::Hangup))]);
        assert_eq!(
            b.tick(1_100).events,
            vec![(
                CONV,
                call,
                CallEvent::CallEnded {
                    reason: CallEndReason::Missed
                }
            )]
        );
        // An invite read from the mailbox after the timeout is a missed call, not a ring.
        let mut late = CallBook::new(callee, 1_000);
        assert_eq!(
            late.on_signal(CONV, caller, &invite, 0, 5_000),
            Some(CallEvent::CallEnded {
                reason: CallEndReason::Missed
            })
        );
    }

    #[test]
    fn a_call_ends_when_everyone_called_declines() {
        let caller = ids(1, 11);
        let call = Uuid::from_u128(7);
        let mut a = CallBook::new(caller, RING_TIMEOUT_MS);
        a.start(CONV, call, 2, 0);
        assert_eq!(
            a.on_signal(CONV, ids(2, 21), &signal(call, Signal::Decline), 1, 1),
            None
        );
        assert_eq!(
            a.on_signal(CONV, ids(3, 31), &signal(call, Signal::Decline), 2, 2),
            Some(CallEvent::CallEnded {
                reason: CallEndReason::Declined { by: ids(3, 31) }
            })
        );
        // A caller that hangs up before an answer cancels the ringing.
        let mut b = CallBook::new(ids(2, 21), RING_TIMEOUT_MS);
        let other = Uuid::from_u128(8);
        b.on_signal(
            CONV,
            caller,
            &signal(
                other,
                Signal::Invite {
                    media: CallMedia::Audio,
                },
            ),
            0,
            0,
        );
        assert_eq!(
            b.on_signal(CONV, caller, &signal(other, Signal::Hangup), 1, 1),
            Some(CallEvent::CallEnded {
                reason: CallEndReason::HungUp { by: caller }
            })
        );
    }
}
