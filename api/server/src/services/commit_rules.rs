//! The rules a commit meets before the delivery service orders it, checked without the
//! database or any key: `add` and the Welcome go together, no device is listed twice,
//! sizes are within the configured bounds, the commit's MLS framing names this
//! conversation's group at the stated epoch, and the Welcome holds one secret per device
//! added, in Cloak's ciphersuite.

use cloak_proto::Code;
use cloak_proto::delivery::CommitRequest;
use cloak_proto::mls_frame::{self, ContentType};
use uuid::Uuid;

use super::ServiceError;
use crate::config::Guards;

/// Checks what can be checked of a commit without the database: sizes, duplicates, the MLS
/// framing and the Welcome's shape.
pub fn check(
    guards: &Guards,
    conversation_id: Uuid,
    request: &CommitRequest,
) -> Result<(), ServiceError> {
    if request.add.is_empty() != request.welcome.is_none() {
        return Err(ServiceError::invalid(
            Code::WelcomeMismatch,
            "a commit that adds devices carries a welcome, and only then",
        ));
    }
    let mut seen =
        std::collections::HashSet::with_capacity(request.add.len() + request.remove.len());
    if let Some(dup) = request
        .add
        .iter()
        .chain(&request.remove)
        .find(|id| !seen.insert(**id))
    {
        return Err(ServiceError::invalid(
            Code::DuplicateDevice,
            format!("device {dup} is listed more than once in add and remove"),
        ));
    }
    if !request.leaf_indices.is_empty() {
        let mut leaves = std::collections::HashSet::with_capacity(request.leaf_indices.len());
        if request.leaf_indices.len() != request.add.len()
            || !request.leaf_indices.iter().all(|l| leaves.insert(*l))
        {
            return Err(ServiceError::invalid(
                Code::InvalidCommit,
                "leaf_indices holds one distinct leaf index per device in add, or nothing",
            ));
        }
    }
    if request.commit.len() > guards.max_commit_bytes {
        return Err(too_large(format!(
            "a commit is at most {} bytes",
            guards.max_commit_bytes
        )));
    }
    let framing = mls_frame::parse_framing(&request.commit)
        .map_err(|e| ServiceError::invalid(Code::InvalidCommit, format!("commit: {e}")))?;
    if framing.content_type != ContentType::Commit {
        return Err(ServiceError::invalid(
            Code::InvalidCommit,
            "the message is not an MLS commit",
        ));
    }
    if framing.group_id != conversation_id.as_bytes() {
        return Err(ServiceError::invalid(
            Code::InvalidCommit,
            "the commit is for another MLS group",
        ));
    }
    if framing.epoch != request.epoch {
        return Err(ServiceError::invalid(
            Code::InvalidCommit,
            format!(
                "the commit was made in epoch {}, not {}",
                framing.epoch, request.epoch
            ),
        ));
    }
    if let Some(welcome) = &request.welcome {
        if welcome.len() > guards.max_welcome_bytes {
            return Err(too_large(format!(
                "a Welcome is at most {} bytes",
                guards.max_welcome_bytes
            )));
        }
        if welcome.len().saturating_mul(request.add.len()) > guards.max_welcome_fanout_bytes {
            return Err(too_large(format!(
                "a commit may store at most {} bytes of Welcome copies (its size times the devices added); add fewer devices per commit",
                guards.max_welcome_fanout_bytes
            )));
        }
        let shape = mls_frame::parse_welcome(welcome)
            .map_err(|e| ServiceError::invalid(Code::InvalidWelcome, format!("welcome: {e}")))?;
        if shape.cipher_suite != mls_frame::CIPHERSUITE {
            return Err(ServiceError::invalid(
                Code::InvalidWelcome,
                "the Welcome uses another ciphersuite",
            ));
        }
        if shape.recipients != request.add.len() {
            return Err(ServiceError::invalid(
                Code::InvalidWelcome,
                format!(
                    "the Welcome has secrets for {} devices, but the commit adds {}",
                    shape.recipients,
                    request.add.len()
                ),
            ));
        }
    }
    Ok(())
}

fn too_large(detail: String) -> ServiceError {
    ServiceError::invalid(Code::CommitTooLarge, detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(conversation: Uuid, epoch: u64, add: usize, recipients: usize) -> CommitRequest {
        CommitRequest {
            client_msg_id: Uuid::new_v4(),
            epoch,
            commit: mls_frame::private_message(
                conversation.as_bytes(),
                epoch,
                ContentType::Commit,
                b"c",
            ),
            welcome: (add > 0).then(|| mls_frame::welcome(recipients, b"gi")),
            add: (0..add).map(|_| Uuid::new_v4()).collect(),
            remove: Vec::new(),
            leaf_indices: Vec::new(),
        }
    }

    fn code(r: Result<(), ServiceError>) -> Option<&'static str> {
        match r {
            Ok(()) => None,
            Err(ServiceError::Invalid { code, .. }) => Some(code.as_str()),
            Err(e) => panic!("every commit rule is a 400: {e}"),
        }
    }

    #[test]
    fn a_well_formed_commit_passes_and_each_rule_refuses_its_case() {
        let g = Guards::default();
        let c = Uuid::new_v4();
        assert_eq!(code(check(&g, c, &request(c, 4, 2, 2))), None);
        assert_eq!(
            code(check(&g, Uuid::new_v4(), &request(c, 4, 0, 0))),
            Some("invalid_commit")
        );
        let mut stale = request(c, 4, 0, 0);
        stale.epoch = 5;
        assert_eq!(code(check(&g, c, &stale)), Some("invalid_commit"));
        assert_eq!(
            code(check(&g, c, &request(c, 4, 2, 3))),
            Some("invalid_welcome")
        );
        let mut dup = request(c, 4, 1, 1);
        dup.remove = dup.add.clone();
        assert_eq!(code(check(&g, c, &dup)), Some("duplicate_device"));
        let mut missing = request(c, 4, 1, 1);
        missing.welcome = None;
        assert_eq!(code(check(&g, c, &missing)), Some("welcome_mismatch"));
        let mut leaves = request(c, 4, 2, 2);
        leaves.leaf_indices = vec![3, 4];
        assert_eq!(code(check(&g, c, &leaves)), None);
        leaves.leaf_indices = vec![3];
        assert_eq!(code(check(&g, c, &leaves)), Some("invalid_commit"));
        leaves.leaf_indices = vec![3, 3];
        assert_eq!(code(check(&g, c, &leaves)), Some("invalid_commit"));
        let small = Guards {
            max_commit_bytes: 10,
            ..Guards::default()
        };
        assert_eq!(
            code(check(&small, c, &request(c, 4, 0, 0))),
            Some("commit_too_large")
        );
    }
}
