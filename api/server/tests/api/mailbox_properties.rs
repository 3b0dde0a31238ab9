//! Property: any interleaving of sends (single, batched with acknowledgements, repeated),
//! fetches, acknowledgements, resumes after a lost session, clock jumps and expiry sweeps
//! delivers every entry of a device's mailbox to the app once (a seq comes again only
//! after a resume, with the same body), in order, never after it expired, with each
//! sender's messages in the order they were sent; an entry the app never got had expired.
//! On both backends, with the mailbox in the database and in memory (Redis).

use std::collections::BTreeMap;
use std::sync::Arc;

use cloak_api::store::{Ack, NewSend, SendOutcome, Store, TenantSettingsUpdate};
use cloak_proto::tenants::MailboxStorage;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use uuid::Uuid;

use crate::delivery_conformance::{World, group, send, world_in};
use crate::helpers::{Backend, fresh_store_with};
use crate::property_tests;

const RETENTION_MS: i64 = 60_000;
/// Devices 0 and 1 send; device 2 is the receiver whose mailbox is checked.
const RECEIVER: usize = 2;

#[derive(Debug, Clone)]
enum Op {
    /// A send by device 0 or 1; with `repeat`, the retry of an earlier send instead.
    Send {
        sender: usize,
        repeat: Option<usize>,
    },
    /// A batch of sends with the receiver's acknowledgement in the same transaction.
    Batch {
        senders: Vec<usize>,
        ack: bool,
    },
    Fetch {
        limit: i64,
    },
    Ack,
    /// The receiver's session is lost: it starts again after what it acknowledged.
    Resume,
    Advance {
        ms: i64,
    },
    Purge,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0usize..2, prop::option::weighted(0.2, 0usize..64))
            .prop_map(|(sender, repeat)| Op::Send { sender, repeat }),
        2 => (prop::collection::vec(0usize..2, 1..5), any::<bool>())
            .prop_map(|(senders, ack)| Op::Batch { senders, ack }),
        3 => (1i64..6).prop_map(|limit| Op::Fetch { limit }),
        2 => Just(Op::Ack),
        1 => Just(Op::Resume),
        1 => (0i64..90_000).prop_map(|ms| Op::Advance { ms }),
        1 => Just(Op::Purge),
    ]
}

/// One mailbox entry as the model knows it.
#[derive(Debug, Clone)]
struct Stored {
    body: Vec<u8>,
    expires_at_ms: i64,
}

struct Case {
    w: World,
    storage: MailboxStorage,
    conversation: Uuid,
    now_ms: i64,
    sent: Vec<NewSend>,
    counters: [u32; 2],
    /// The receiver's mailbox: seq → entry (acknowledged ones removed).
    mailbox: BTreeMap<i64, Stored>,
    /// Every entry ever stored for the receiver.
    all: BTreeMap<i64, Stored>,
    next_seq: i64,
    /// Highest seq seen this session, and what was acknowledged.
    cursor: i64,
    acked: i64,
    /// What the app has: seq → body, and whether a resume came since it was delivered.
    app: BTreeMap<i64, (Vec<u8>, bool)>,
}

fn fail(what: impl std::fmt::Display) -> TestCaseError {
    TestCaseError::fail(what.to_string())
}

impl Case {
    async fn new(store: Arc<dyn Store>, storage: MailboxStorage) -> Self {
        let w = world_in(store, 3, storage).await;
        let update = TenantSettingsUpdate {
            retention_ms: Some(RETENTION_MS),
            ..Default::default()
        };
        assert!(
            w.store
                .update_tenant_settings(w.tenant, &update)
                .await
                .unwrap()
        );
        let conversation = group(&w).await;
        let mut case = Self {
            w,
            storage,
            conversation,
            now_ms: 100,
            sent: Vec::new(),
            counters: [0; 2],
            mailbox: BTreeMap::new(),
            all: BTreeMap::new(),
            next_seq: 1,
            cursor: 0,
            acked: 0,
            app: BTreeMap::new(),
        };
        // The group's Welcome is the receiver's first entry (stored at `send`'s 100 ms).
        case.record(b"welcome".to_vec(), 100);
        case
    }

    fn record(&mut self, body: Vec<u8>, sent_at_ms: i64) {
        let entry = Stored {
            body,
            expires_at_ms: sent_at_ms + RETENTION_MS,
        };
        self.mailbox.insert(self.next_seq, entry.clone());
        self.all.insert(self.next_seq, entry);
        self.next_seq += 1;
    }

    fn new_send(&mut self, sender: usize) -> NewSend {
        self.counters[sender] += 1;
        let body = format!("s{sender}-{:04}", self.counters[sender]);
        let mut s = send(&self.w, sender, self.conversation, 1, body.as_bytes());
        s.now_ms = self.now_ms;
        s
    }

    /// Checks one send's outcome and updates the model; `fresh` is false for a retry.
    fn check_sent(
        &mut self,
        s: NewSend,
        outcome: SendOutcome,
        fresh: bool,
    ) -> Result<(), TestCaseError> {
        let SendOutcome::Stored(stored) = outcome else {
            return Err(fail(format!("a send was refused: {outcome:?}")));
        };
        prop_assert_eq!(
            stored.duplicate,
            !fresh,
            "a retry is a duplicate, a new send is not"
        );
        if fresh {
            self.record(s.body.clone(), s.now_ms);
            self.sent.push(s);
        }
        Ok(())
    }

    async fn ack(&mut self) -> Result<(), TestCaseError> {
        let up_to = self.cursor;
        let deleted = self
            .w
            .store
            .ack_mailbox(self.w.tenant, self.receiver(), up_to)
            .await
            .map_err(fail)?;
        self.acknowledged(up_to, deleted)
    }

    /// The model's side of an acknowledgement, checking the count the store gave.
    fn acknowledged(&mut self, up_to: i64, deleted: u64) -> Result<(), TestCaseError> {
        let gone: Vec<i64> = self.mailbox.range(..=up_to).map(|(seq, _)| *seq).collect();
        let live = gone
            .iter()
            .filter(|seq| self.mailbox[seq].expires_at_ms > self.now_ms)
            .count() as u64;
        // Expired entries may already have been swept (Redis drops them by itself).
        prop_assert!(
            (live..=gone.len() as u64).contains(&deleted),
            "ack up to {} deleted {}, expected {}..={}",
            up_to,
            deleted,
            live,
            gone.len()
        );
        for seq in gone {
            self.mailbox.remove(&seq);
        }
        self.acked = self.acked.max(up_to);
        Ok(())
    }

    fn receiver(&self) -> Uuid {
        self.w.devices[RECEIVER].device_id
    }

    async fn fetch(&mut self, limit: i64) -> Result<usize, TestCaseError> {
        let got = self
            .w
            .store
            .fetch_mailbox(
                self.w.tenant,
                self.receiver(),
                self.cursor,
                limit,
                self.now_ms,
            )
            .await
            .map_err(fail)?;
        let expected: Vec<i64> = self
            .mailbox
            .range(self.cursor + 1..)
            .filter(|(_, e)| e.expires_at_ms > self.now_ms)
            .map(|(seq, _)| *seq)
            .take(usize::try_from(limit).unwrap_or(0))
            .collect();
        let seqs: Vec<i64> = got.iter().map(|e| e.seq).collect();
        prop_assert_eq!(
            &seqs,
            &expected,
            "the page after {} at {} ms",
            self.cursor,
            self.now_ms
        );
        for entry in got.iter() {
            let body = &self.all[&entry.seq].body;
            prop_assert_eq!(&entry.body, body, "seq {}", entry.seq);
            match self.app.get(&entry.seq) {
                Some((had, resumed)) => {
                    prop_assert!(
                        *resumed,
                        "seq {} delivered twice without a resume",
                        entry.seq
                    );
                    prop_assert_eq!(had, body);
                }
                None => {
                    self.app.insert(entry.seq, (entry.body.clone(), false));
                }
            }
            self.cursor = entry.seq;
        }
        Ok(got.len())
    }

    async fn apply(&mut self, op: &Op) -> Result<(), TestCaseError> {
        self.now_ms += 7;
        match op {
            Op::Send { sender, repeat } => {
                let (s, fresh) = match repeat {
                    Some(i) if !self.sent.is_empty() => {
                        (self.sent[i % self.sent.len()].clone(), false)
                    }
                    _ => (self.new_send(*sender), true),
                };
                let outcome = self.w.store.store_application(&s).await.map_err(fail)?;
                self.check_sent(s, outcome, fresh)?;
            }
            Op::Batch { senders, ack } => {
                let sends: Vec<NewSend> = senders.iter().map(|&s| self.new_send(s)).collect();
                let acks: Vec<Ack> = if *ack {
                    vec![Ack {
                        tenant_id: self.w.tenant,
                        device_id: self.receiver(),
                        up_to: self.cursor,
                    }]
                } else {
                    Vec::new()
                };
                let (outcomes, deleted) = self
                    .w
                    .store
                    .store_batch(&sends, &acks)
                    .await
                    .map_err(fail)?;
                prop_assert_eq!(outcomes.len(), sends.len());
                // The acknowledgements go first.
                if let Some(&n) = deleted.first() {
                    self.acknowledged(self.cursor, n)?;
                }
                for (s, outcome) in sends.into_iter().zip(outcomes) {
                    self.check_sent(s, outcome, true)?;
                }
            }
            Op::Fetch { limit } => {
                self.fetch(*limit).await?;
            }
            Op::Ack => self.ack().await?,
            Op::Resume => {
                self.cursor = self.acked;
                for (_, resumed) in self.app.values_mut() {
                    *resumed = true;
                }
            }
            Op::Advance { ms } => self.now_ms += ms,
            Op::Purge => {
                // Send records are kept (`sends_before` 0), so retries stay duplicates.
                self.w
                    .store
                    .purge_mailboxes(self.now_ms, 0)
                    .await
                    .map_err(fail)?;
                // The sweep is the database's; Redis drops entries by its own TTL.
                if self.storage == MailboxStorage::Durable {
                    let now = self.now_ms;
                    self.mailbox.retain(|_, e| e.expires_at_ms > now);
                }
            }
        }
        Ok(())
    }

    /// Drains the mailbox, then checks what the app got against everything stored.
    async fn finish(&mut self) -> Result<(), TestCaseError> {
        while self.fetch(50).await? > 0 {}
        for (seq, entry) in &self.all {
            match self.app.get(seq) {
                Some((body, _)) => prop_assert_eq!(body, &entry.body),
                None => prop_assert!(
                    entry.expires_at_ms <= self.now_ms,
                    "seq {} never reached the app and has not expired",
                    seq
                ),
            }
        }
        // Each sender's messages reached the app in the order they were sent.
        for sender in ["s0-", "s1-"] {
            let bodies: Vec<&Vec<u8>> = self
                .app
                .values()
                .map(|(b, _)| b)
                .filter(|b| b.starts_with(sender.as_bytes()))
                .collect();
            prop_assert!(
                bodies.windows(2).all(|p| p[0] < p[1]),
                "{} out of order",
                sender
            );
        }
        Ok(())
    }
}

fn mailbox_interleavings_deliver_each_entry_once_in_order(backend: Backend) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    for storage in [MailboxStorage::Durable, MailboxStorage::Memory] {
        let (store, _db) = rt.block_on(fresh_store_with(backend, storage));
        let mut runner = TestRunner::new(Config {
            cases: 32,
            failure_persistence: None,
            ..Config::default()
        });
        let result = runner.run(&prop::collection::vec(op(), 1..50), |ops| {
            rt.block_on(async {
                let mut case = Case::new(store.clone(), storage).await;
                for op in &ops {
                    case.apply(op).await?;
                }
                case.finish().await
            })
        });
        if let Err(e) = result {
            panic!("{storage:?} mailbox: {e}");
        }
    }
}

property_tests!(mailbox_interleavings_deliver_each_entry_once_in_order);
