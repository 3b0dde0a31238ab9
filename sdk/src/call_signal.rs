//! Call signaling messages: what the WebRTC peers of a call exchange, end-to-end encrypted
//! inside the conversation's MLS group (the server relays them as ciphertext like any
//! other message). The payload kind `call`; see [`crate::payload`] for the framing.

use serde::{Deserialize, Serialize};
use serde_bytes::ByteArray;
use uuid::Uuid;

use crate::Error;

/// Largest SDP offer or answer, in bytes.
pub const MAX_SDP_BYTES: usize = 32 * 1024;
/// Largest ICE candidate line, in bytes.
pub const MAX_CANDIDATE_BYTES: usize = 1024;
/// Largest media-stream id of a candidate, in bytes.
pub const MAX_MID_BYTES: usize = 64;

/// Audio only, or audio and video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallMedia {
    /// Audio.
    Audio,
    /// Audio and video.
    Video,
}

impl CallMedia {
    fn as_str(self) -> &'static str {
        match self {
            Self::Audio => "audio",
            Self::Video => "video",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "audio" => Some(Self::Audio),
            "video" => Some(Self::Video),
            _ => None,
        }
    }
}

/// One step of a call's signaling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signal {
    /// The caller rings the conversation.
    Invite {
        /// What the caller offers.
        media: CallMedia,
    },
    /// An SDP offer to one peer.
    Offer {
        /// The session description.
        sdp: String,
    },
    /// An SDP answer to one peer.
    Answer {
        /// The session description.
        sdp: String,
    },
    /// A trickled ICE candidate for one peer.
    Ice {
        /// The `candidate:` line.
        candidate: String,
        /// Its media stream id.
        sdp_mid: Option<String>,
        /// Its m-line index.
        sdp_mline_index: Option<u16>,
    },
    /// This device takes the call (the callee's other devices stop ringing).
    Accept,
    /// This user will not take the call.
    Decline,
    /// This device leaves the call (the caller's hang-up before an answer cancels it).
    Hangup,
}

/// A signaling message of one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallSignal {
    /// The call, chosen by the caller.
    pub call_id: Uuid,
    /// The device it is meant for (offers, answers and candidates go peer to peer in a
    /// group's mesh); `None`: every member.
    pub to: Option<Uuid>,
    /// What it says.
    pub signal: Signal,
}

/// The wire body of the `call` kind (text keys, unknown ones ignored).
#[derive(Serialize, Deserialize)]
pub(crate) struct CallBody {
    c: ByteArray<16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    to: Option<ByteArray<16>>,
    s: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    m: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sdp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cand: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    idx: Option<u16>,
}

fn malformed(what: &str) -> Error {
    Error::Malformed(format!("call signal: {what}"))
}

impl CallSignal {
    /// Checks the size limits.
    pub(crate) fn check_limits(&self) -> Result<(), Error> {
        let ok = match &self.signal {
            Signal::Offer { sdp } | Signal::Answer { sdp } => sdp.len() <= MAX_SDP_BYTES,
            Signal::Ice {
                candidate, sdp_mid, ..
            } => {
                candidate.len() <= MAX_CANDIDATE_BYTES
                    && sdp_mid.as_ref().is_none_or(|m| m.len() <= MAX_MID_BYTES)
            }
            Signal::Invite { .. } | Signal::Accept | Signal::Decline | Signal::Hangup => true,
        };
        if ok {
            Ok(())
        } else {
            Err(malformed("too large"))
        }
    }

    pub(crate) fn to_body(&self) -> CallBody {
        let mut body = CallBody {
            c: ByteArray::new(*self.call_id.as_bytes()),
            to: self.to.map(|d| ByteArray::new(*d.as_bytes())),
            s: String::new(),
            m: None,
            sdp: None,
            cand: None,
            mid: None,
            idx: None,
        };
        body.s = match &self.signal {
            Signal::Invite { media } => {
                body.m = Some(media.as_str().to_owned());
                "invite"
            }
            Signal::Offer { sdp } => {
                body.sdp = Some(sdp.clone());
                "offer"
            }
            Signal::Answer { sdp } => {
                body.sdp = Some(sdp.clone());
                "answer"
            }
            Signal::Ice {
                candidate,
                sdp_mid,
                sdp_mline_index,
            } => {
                body.cand = Some(candidate.clone());
                body.mid.clone_from(sdp_mid);
                body.idx = *sdp_mline_index;
                "ice"
            }
            Signal::Accept => "accept",
            Signal::Decline => "decline",
            Signal::Hangup => "hangup",
        }
        .to_owned();
        body
    }

    /// The signal of a body; `None` for a signal this version does not know (ignored).
    pub(crate) fn from_body(b: CallBody) -> Result<Option<Self>, Error> {
        let need = |v: Option<String>, what: &str| v.ok_or_else(|| malformed(what));
        let signal = match b.s.as_str() {
            "invite" => Signal::Invite {
                media: CallMedia::parse(&need(b.m, "invite without media")?)
                    .ok_or_else(|| malformed("unknown media"))?,
            },
            "offer" => Signal::Offer {
                sdp: need(b.sdp, "offer without sdp")?,
            },
            "answer" => Signal::Answer {
                sdp: need(b.sdp, "answer without sdp")?,
            },
            "ice" => Signal::Ice {
                candidate: need(b.cand, "ice without candidate")?,
                sdp_mid: b.mid,
                sdp_mline_index: b.idx,
            },
            "accept" => Signal::Accept,
            "decline" => Signal::Decline,
            "hangup" => Signal::Hangup,
            _ => return Ok(None),
        };
        Ok(Some(Self {
            call_id: Uuid::from_bytes(b.c.into_array()),
            to: b.to.map(|d| Uuid::from_bytes(d.into_array())),
            signal,
        }))
    }
}
