//! Planning a batch of application messages (group commit), without I/O.
//!
//! `sql_delivery_batch.rs` loads what a batch needs in a few statements (conversations,
//! members, the senders' standing, blocks, then the locked mailbox counters and wallets),
//! and these functions decide, message by message and in order, what each one gets:
//! stored (with its sequence numbers and charge) or refused (402, mailbox full, stale
//! epoch, …). A refusal never touches the others; what was decided is then written with
//! multi-row statements in the same transaction.

use std::collections::{HashMap, HashSet};

use uuid::Uuid;

use super::{Charge, Member, NewSend, SendOutcome, StoredSend};

/// A conversation as the batch sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConversationRow {
    pub tenant_id: Uuid,
    pub epoch: i64,
    pub retention_ms: i64,
    /// The tenant keeps its mailbox entries in memory only.
    pub memory: bool,
}

/// A sender device's standing, read in the batch's transaction.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SenderRow {
    pub approved: bool,
    pub suspended: bool,
}

/// Everything read before the batch claims its sends.
#[derive(Debug, Default)]
pub(crate) struct Loaded {
    /// By (tenant, conversation id): ids are unique per tenant only.
    pub conversations: HashMap<(Uuid, Uuid), ConversationRow>,
    /// Members by conversation, in device-id order.
    pub members: HashMap<(Uuid, Uuid), Vec<Member>>,
    pub senders: HashMap<Uuid, SenderRow>,
    /// (tenant, blocker user, blocked user).
    pub blocks: HashSet<(Uuid, Uuid, Uuid)>,
}

/// Where a message goes, once routed.
#[derive(Debug, Clone)]
pub(crate) struct Route {
    pub recipients: Vec<Uuid>,
    pub epoch: i64,
    pub expires_at: i64,
    /// Its entries go to the memory mailbox, not the database.
    pub memory: bool,
}

/// What routing decided for one message of the batch.
#[derive(Debug, Clone)]
pub(crate) enum Routed {
    /// Refused before any write.
    Refused(SendOutcome),
    /// The same (sender, client message id) as an earlier message of this batch: it gets
    /// that message's answer, as a retry would.
    SameAs(usize),
    /// To be claimed and stored.
    Go(Route),
}

/// Routes every message: checks conversation, membership, sender standing and epoch, and
/// drops recipients who blocked the sender.
pub(crate) fn route(sends: &[NewSend], loaded: &Loaded) -> Vec<Routed> {
    let mut seen: HashMap<(Uuid, Uuid), usize> = HashMap::new();
    let mut out = Vec::with_capacity(sends.len());
    for (i, send) in sends.iter().enumerate() {
        if let Some(&first) = seen.get(&(send.sender.device_id, send.client_msg_id)) {
            out.push(Routed::SameAs(first));
            continue;
        }
        seen.insert((send.sender.device_id, send.client_msg_id), i);
        out.push(route_one(send, loaded));
    }
    out
}

fn route_one(send: &NewSend, loaded: &Loaded) -> Routed {
    let key = (send.tenant_id, send.conversation_id);
    let conversation = match loaded.conversations.get(&key) {
        Some(c) if c.tenant_id == send.tenant_id => *c,
        _ => return Routed::Refused(SendOutcome::NoConversation),
    };
    match loaded.senders.get(&send.sender.device_id) {
        Some(s) if s.suspended => return Routed::Refused(SendOutcome::SenderSuspended),
        Some(s) if s.approved => {}
        _ => return Routed::Refused(SendOutcome::SenderRevoked),
    }
    let members = loaded
        .members
        .get(&key)
        .map(Vec::as_slice)
        .unwrap_or_default();
    if !members.iter().any(|m| m.device_id == send.sender.device_id) {
        return Routed::Refused(SendOutcome::NotMember);
    }
    if conversation.epoch != send.epoch {
        return Routed::Refused(SendOutcome::StaleEpoch(conversation.epoch));
    }
    let recipients = members
        .iter()
        .filter(|m| m.device_id != send.sender.device_id)
        .filter(|m| {
            !loaded
                .blocks
                .contains(&(send.tenant_id, m.user_id, send.sender.user_id))
        })
        .map(|m| m.device_id)
        .collect();
    Routed::Go(Route {
        recipients,
        epoch: conversation.epoch,
        expires_at: send.now_ms.saturating_add(conversation.retention_ms),
        memory: conversation.memory,
    })
}

/// A mailbox counter, locked in the batch's transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MailboxCounter {
    pub seq: i64,
    pub depth: i64,
}

/// One mailbox entry to insert.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EntryRow {
    /// Index of the message in the batch.
    pub send: usize,
    pub device_id: Uuid,
    pub seq: i64,
}

/// One ledger debit to insert.
#[derive(Debug, Clone)]
pub(crate) struct DebitRow {
    pub send: usize,
    pub wallet_id: Uuid,
    pub delta: i64,
    pub balance_after: i64,
    pub kind: &'static str,
    /// Kept as the entry's reason (an attachment's tier).
    pub tier: Option<&'static str>,
    pub actor: String,
    pub user_id: Uuid,
    /// The balance crossed the tenant's low-balance threshold with this debit.
    pub crossed_threshold: Option<i64>,
}

/// What the claimed messages of a batch write.
#[derive(Debug, Default)]
pub(crate) struct Allocation {
    /// One per message of the batch (`None` for those not claimed here).
    pub outcomes: Vec<Option<SendOutcome>>,
    pub entries: Vec<EntryRow>,
    /// Final mailbox counters of every device that got an entry.
    pub counters: Vec<(Uuid, MailboxCounter)>,
    pub debits: Vec<DebitRow>,
    /// Final balances of every wallet debited.
    pub balances: Vec<(Uuid, i64)>,
    /// Postpaid meter rows: (message index, customer, event name, value).
    pub meters: Vec<(usize, String, String, i64)>,
    /// Claimed messages that were refused: their send records are removed again.
    pub unclaim: Vec<usize>,
}

/// Decides, in batch order, the charge and sequence numbers of every claimed message.
/// `claimed[i]` holds message `i`'s route when this batch claimed it. A message the payer
/// cannot afford, or whose recipient's mailbox is full, is refused and changes nothing.
pub(crate) fn allocate(
    sends: &[NewSend],
    claimed: &[Option<&Route>],
    counters: &mut HashMap<Uuid, MailboxCounter>,
    mut balances: HashMap<Uuid, i64>,
) -> Allocation {
    let mut out = Allocation {
        outcomes: vec![None; sends.len()],
        ..Allocation::default()
    };
    let mut touched_devices: Vec<Uuid> = Vec::new();
    let mut touched_wallets: Vec<Uuid> = Vec::new();
    for (i, (send, route)) in sends.iter().zip(claimed).enumerate() {
        let Some(route) = route else { continue };
        // The payer first, as a single send would be charged before it is stored.
        let mut debit = None;
        let mut meter = None;
        match &send.charge {
            Some(Charge::Prepaid {
                wallet_id,
                amount,
                kind,
                tier,
                actor,
                user_id,
                low_balance_threshold,
            }) => {
                let balance = balances.get(wallet_id).copied().unwrap_or(0);
                if balance < *amount {
                    out.outcomes[i] = Some(SendOutcome::InsufficientCredits(balance));
                    out.unclaim.push(i);
                    continue;
                }
                let after = balance - amount;
                let crossed = low_balance_threshold.filter(|t| after < *t && balance >= *t);
                debit = Some(DebitRow {
                    send: i,
                    wallet_id: *wallet_id,
                    delta: -amount,
                    balance_after: after,
                    kind,
                    tier: *tier,
                    actor: actor.clone(),
                    user_id: *user_id,
                    crossed_threshold: crossed,
                });
            }
            Some(Charge::Postpaid {
                customer_id,
                event_name,
                value,
            }) => meter = Some((i, customer_id.clone(), event_name.clone(), *value)),
            None => {}
        }
        // A full mailbox leaves out only its device; a message that would reach nobody
        // is refused.
        let (open, skipped): (Vec<Uuid>, Vec<Uuid>) = route.recipients.iter().partition(|d| {
            counters
                .get(d)
                .is_some_and(|c| c.depth.saturating_add(1) <= send.mailbox_quota)
        });
        if open.is_empty()
            && let Some(full) = skipped.first()
        {
            out.outcomes[i] = Some(SendOutcome::MailboxFull(*full));
            out.unclaim.push(i);
            continue;
        }
        if !skipped.is_empty() {
            metrics::counter!("delivery_skipped_full_mailboxes_total")
                .increment(skipped.len() as u64);
        }
        let mut seqs = Vec::with_capacity(open.len());
        for device in &open {
            if let Some(c) = counters.get_mut(device) {
                c.seq += 1;
                c.depth += 1;
                metrics::histogram!("mailbox_depth_entries").record(c.depth as f64);
                seqs.push(c.seq);
                out.entries.push(EntryRow {
                    send: i,
                    device_id: *device,
                    seq: c.seq,
                });
                touched_devices.push(*device);
            }
        }
        if let Some(d) = debit {
            balances.insert(d.wallet_id, d.balance_after);
            touched_wallets.push(d.wallet_id);
            out.debits.push(d);
        }
        out.meters.extend(meter);
        out.outcomes[i] = Some(SendOutcome::Stored(StoredSend {
            recipients: open,
            seqs,
            epoch: route.epoch,
            sent_at_ms: send.now_ms,
            duplicate: false,
            skipped,
        }));
    }
    touched_devices.sort_unstable();
    touched_devices.dedup();
    out.counters = touched_devices
        .into_iter()
        .filter_map(|d| counters.get(&d).map(|c| (d, *c)))
        .collect();
    touched_wallets.sort_unstable();
    touched_wallets.dedup();
    out.balances = touched_wallets
        .into_iter()
        .filter_map(|w| balances.get(&w).map(|b| (w, *b)))
        .collect();
    out
}

/// The answer for a message that repeats an earlier one of its batch.
pub(crate) fn repeat_of(first: &SendOutcome) -> SendOutcome {
    match first {
        SendOutcome::Stored(s) => SendOutcome::Stored(StoredSend {
            seqs: Vec::new(),
            duplicate: true,
            skipped: Vec::new(),
            ..s.clone()
        }),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send(sender: Member, conversation: Uuid, epoch: i64, charge: Option<Charge>) -> NewSend {
        NewSend {
            tenant_id: Uuid::nil(),
            conversation_id: conversation,
            sender,
            client_msg_id: Uuid::new_v4(),
            epoch,
            body: vec![1, 2, 3],
            now_ms: 1_000,
            mailbox_quota: 2,
            charge,
            franking: None,
            viewable: true,
        }
    }

    fn member() -> Member {
        Member {
            device_id: Uuid::new_v4(),
            user_id: Uuid::new_v4(),
        }
    }

    fn loaded(conversation: Uuid, members: &[Member]) -> Loaded {
        let mut l = Loaded::default();
        l.conversations.insert(
            (Uuid::nil(), conversation),
            ConversationRow {
                tenant_id: Uuid::nil(),
                epoch: 3,
                retention_ms: 10,
                memory: false,
            },
        );
        let mut sorted = members.to_vec();
        sorted.sort_by_key(|m| m.device_id);
        l.members.insert((Uuid::nil(), conversation), sorted);
        for m in members {
            l.senders.insert(
                m.device_id,
                SenderRow {
                    approved: true,
                    suspended: false,
                },
            );
        }
        l
    }

    /// Every routed message as if this batch claimed its record.
    fn all_claimed(routed: &[Routed]) -> Vec<Option<&Route>> {
        routed
            .iter()
            .map(|r| match r {
                Routed::Go(route) => Some(route),
                _ => None,
            })
            .collect()
    }

    fn prepaid(wallet: Uuid, amount: i64) -> Option<Charge> {
        Some(Charge::Prepaid {
            wallet_id: wallet,
            amount,
            kind: "text",
            tier: None,
            actor: "device".into(),
            user_id: wallet,
            low_balance_threshold: Some(5),
        })
    }

    #[test]
    fn a_refused_message_leaves_the_others_of_its_batch_alone() {
        let (a, b) = (member(), member());
        let c = Uuid::new_v4();
        let wallet = Uuid::new_v4();
        let sends = vec![
            send(a, c, 3, prepaid(wallet, 4)),
            send(a, c, 2, prepaid(wallet, 4)), // stale epoch
            send(a, c, 3, prepaid(wallet, 4)), // 8 - 4 - 4 = 0: the third cannot pay
            send(a, c, 3, prepaid(wallet, 0)),
        ];
        let l = loaded(c, &[a, b]);
        let routed = route(&sends, &l);
        assert!(matches!(
            routed[1],
            Routed::Refused(SendOutcome::StaleEpoch(3))
        ));
        let claimed = all_claimed(&routed);
        let counters = HashMap::from([(b.device_id, MailboxCounter { seq: 7, depth: 0 })]);
        let balances = HashMap::from([(wallet, 8)]);
        let alloc = allocate(&sends, &claimed, &mut counters.clone(), balances);
        let stored: Vec<i64> = alloc
            .outcomes
            .iter()
            .filter_map(|o| match o {
                Some(SendOutcome::Stored(s)) => Some(s.seqs[0]),
                _ => None,
            })
            .collect();
        // Messages 0 and 2 pay (8 → 4 → 0); message 3 is free but b's quota is 2.
        assert_eq!(stored, vec![8, 9]);
        assert_eq!(
            alloc.outcomes[3],
            Some(SendOutcome::MailboxFull(b.device_id))
        );
        assert_eq!(alloc.balances, vec![(wallet, 0)]);
        assert_eq!(alloc.debits.len(), 2);
        // Crossing the threshold of 5 happens once, on the first debit (8 → 4).
        assert_eq!(alloc.debits[0].crossed_threshold, Some(5));
        assert_eq!(alloc.debits[1].crossed_threshold, None);
        assert_eq!(alloc.unclaim, vec![3]);
        assert_eq!(
            alloc.counters,
            vec![(b.device_id, MailboxCounter { seq: 9, depth: 2 })]
        );
    }

    #[test]
    fn a_full_mailbox_leaves_out_only_its_device() {
        let (a, b, c) = (member(), member(), member());
        let conv = Uuid::new_v4();
        let sends = vec![send(a, conv, 3, None)];
        let l = loaded(conv, &[a, b, c]);
        let routed = route(&sends, &l);
        let mut counters = HashMap::from([
            (b.device_id, MailboxCounter { seq: 9, depth: 2 }), // at the quota of 2
            (c.device_id, MailboxCounter { seq: 0, depth: 0 }),
        ]);
        let alloc = allocate(&sends, &all_claimed(&routed), &mut counters, HashMap::new());
        let Some(SendOutcome::Stored(stored)) = &alloc.outcomes[0] else {
            panic!("stored for c: {:?}", alloc.outcomes[0]);
        };
        assert_eq!(stored.recipients, vec![c.device_id]);
        assert_eq!(stored.skipped, vec![b.device_id]);
        assert_eq!(alloc.entries.len(), 1);
        assert!(alloc.unclaim.is_empty());
    }

    #[test]
    fn insufficient_credits_are_checked_in_batch_order() {
        let (a, b) = (member(), member());
        let c = Uuid::new_v4();
        let wallet = Uuid::new_v4();
        let mut sends: Vec<NewSend> = (0..5).map(|_| send(a, c, 3, prepaid(wallet, 1))).collect();
        for s in &mut sends {
            s.mailbox_quota = 100;
        }
        let l = loaded(c, &[a, b]);
        let routed = route(&sends, &l);
        let claimed = all_claimed(&routed);
        let counters = HashMap::from([(b.device_id, MailboxCounter { seq: 0, depth: 0 })]);
        let alloc = allocate(
            &sends,
            &claimed,
            &mut counters.clone(),
            HashMap::from([(wallet, 3)]),
        );
        let accepted = alloc
            .outcomes
            .iter()
            .filter(|o| matches!(o, Some(SendOutcome::Stored(_))))
            .count();
        assert_eq!(accepted, 3);
        assert_eq!(alloc.outcomes[3], Some(SendOutcome::InsufficientCredits(0)));
        assert_eq!(alloc.balances, vec![(wallet, 0)]);
    }

    #[test]
    fn blocked_recipients_revoked_senders_and_repeats() {
        let (a, b, c2) = (member(), member(), member());
        let c = Uuid::new_v4();
        let mut l = loaded(c, &[a, b, c2]);
        l.blocks.insert((Uuid::nil(), b.user_id, a.user_id));
        let first = send(a, c, 3, None);
        let mut repeat = send(a, c, 3, None);
        repeat.client_msg_id = first.client_msg_id;
        let intruder = send(member(), c, 3, None);
        let mut revoked = send(b, c, 3, None);
        l.senders.insert(
            b.device_id,
            SenderRow {
                approved: false,
                suspended: false,
            },
        );
        revoked.client_msg_id = Uuid::new_v4();
        let routed = route(&[first, repeat, intruder, revoked], &l);
        match &routed[0] {
            Routed::Go(r) => assert_eq!(r.recipients, vec![c2.device_id]),
            other => unreachable!("{other:?}"),
        }
        assert!(matches!(routed[1], Routed::SameAs(0)));
        assert!(matches!(
            routed[2],
            Routed::Refused(SendOutcome::SenderRevoked)
        ));
        assert!(matches!(
            routed[3],
            Routed::Refused(SendOutcome::SenderRevoked)
        ));
    }
}
