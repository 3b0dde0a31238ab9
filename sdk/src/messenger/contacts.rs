//! Contacts: invites this device shows, joining by a scanned invite, and the one-to-one
//! conversation with each contact.

use std::collections::HashSet;

use cloak_proto::invites::Contact;
use uuid::Uuid;

use super::Messenger;
use crate::Error;
use crate::clock::Clock;

/// What [`Messenger::join_invite`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Joined {
    /// The inviter, now a contact (verified when the link carried a fingerprint).
    pub inviter: Uuid,
    /// The one-to-one conversation with the inviter.
    pub conversation_id: Uuid,
}

/// The invite code and the expected fingerprint (lowercase hex) of an invite link
/// `…/i/{code}#fp={fingerprint}`.
pub fn parse_invite_link(link: &str) -> Result<(&str, Option<String>), Error> {
    let (path, fragment) = link.trim().split_once('#').unwrap_or((link.trim(), ""));
    let code = path
        .trim_end_matches('/')
        .rsplit_once("/i/")
        .map(|(_, code)| code)
        .filter(|c| !c.is_empty())
        .ok_or_else(|| Error::Malformed("not an invite link".into()))?;
    let fp = fragment
        .split('&')
        .find_map(|p| p.strip_prefix("fp="))
        .map(str::to_ascii_lowercase);
    Ok((code, fp))
}

impl<C: Clock> Messenger<C> {
    /// Mints an invite as this device's user and returns its link. The link's `#fp=` is
    /// the user's root key as *this device* knows it (its own key, or the root of the
    /// signed chain that approved it), not as the server says, so whoever scans it verifies
    /// this user's key in the same step.
    pub async fn create_invite(
        &self,
        max_uses: u32,
        expires_in_secs: u32,
    ) -> Result<String, Error> {
        let root = self.own_root_key().await?;
        let invite = self.client.create_invite(max_uses, expires_in_secs).await?;
        let base = invite
            .url
            .split_once('#')
            .map_or(invite.url.as_str(), |(base, _)| base);
        Ok(format!("{base}#fp={}", crate::fingerprint(&root)))
    }

    /// Joins through an invite link (`…/i/{code}#fp={fingerprint}`, as scanned from a QR
    /// code): redeems it, checks the fingerprint in the link against the inviter's root key
    /// in the verified directory, and opens the one-to-one conversation with the inviter
    /// (unless this device has one). On a match the inviter is marked verified (the scan
    /// was the comparison); on a mismatch the join stops with [`Error::Verification`] before
    /// any conversation exists: someone substituted a key.
    pub async fn join_invite(&mut self, link: &str) -> Result<Joined, Error> {
        let (code, expected) = parse_invite_link(link)?;
        let redemption = self.client.redeem_invite(code).await?;
        let inviter = redemption.inviter_user_id;
        if let Some(expected) = expected {
            let root = crate::safety::root_key(&self.client.verified_user_devices(inviter).await?)?;
            if crate::fingerprint(&root) != expected {
                return Err(Error::Verification(
                    "the inviter's key does not match the fingerprint in the invite".into(),
                ));
            }
            self.verified.insert(inviter, root);
            self.persist().await?;
        }
        let conversation_id = match self.conversation_with(inviter) {
            Some(id) => id,
            None => self.create_conversation(&[inviter]).await?,
        };
        Ok(Joined {
            inviter,
            conversation_id,
        })
    }

    /// Reports a received text message to the tenant's moderators with its franking
    /// evidence (the text and key from the payload, the commitment and stamp from the
    /// envelope). Refused by the server unless the evidence verifies.
    pub async fn report(
        &self,
        message: &super::Event,
        reason: Option<&str>,
    ) -> Result<cloak_proto::abuse::Report, Error> {
        let super::Event::Message {
            conversation_id,
            sender,
            payload,
            franking: Some(franking),
        } = message
        else {
            return Err(Error::InvalidState("only franked messages can be reported"));
        };
        let (crate::PayloadKind::Text { text }, Some(key)) = (&payload.kind, payload.franking_key)
        else {
            return Err(Error::InvalidState(
                "only franked text messages can be reported",
            ));
        };
        let request = cloak_proto::abuse::ReportRequest {
            conversation_id: *conversation_id,
            message_id: payload.message_id,
            sender_device_id: sender.device_id,
            sent_at_ms: franking.sent_at_ms,
            text: text.clone(),
            franking_key: key.to_vec(),
            franking_tag: franking.tag.clone(),
            franking_stamp: franking.stamp.clone(),
            reason: reason.map(str::to_owned),
        };
        self.client.report(&request).await
    }

    /// Blocks a user: their messages and invites stop reaching this user.
    pub async fn block(&self, user_id: Uuid) -> Result<(), Error> {
        self.client.block(user_id).await
    }

    /// This device's user's contacts, by display name.
    pub async fn contacts(&self) -> Result<Vec<Contact>, Error> {
        self.client.contacts().await
    }

    /// The one-to-one conversation this device has with `user`, if any (of several, the
    /// lowest id, so both sides pick the same one).
    pub fn conversation_with(&self, user: Uuid) -> Option<Uuid> {
        let me = self.client.ids()?.user_id;
        self.conversations
            .iter()
            .filter(|(_, c)| {
                let users: HashSet<Uuid> = c.members().iter().map(|m| m.user_id).collect();
                users.len() == 2 && users.contains(&me) && users.contains(&user)
            })
            .map(|(id, _)| *id)
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::parse_invite_link;

    #[test]
    fn links_parse_into_code_and_fingerprint() {
        let (code, fp) = parse_invite_link("https://h.example/i/AbC-_9#fp=DEAD").unwrap();
        assert_eq!((code, fp.as_deref()), ("AbC-_9", Some("dead")));
        let (code, fp) = parse_invite_link(" http://h/i/xyz/ ").unwrap();
        assert_eq!((code, fp), ("xyz", None));
        assert!(parse_invite_link("http://h/x/abc").is_err());
        assert!(parse_invite_link("http://h/i/#fp=00").is_err());
    }
}
