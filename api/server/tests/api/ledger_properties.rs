//! Property: any sequence of grants, adjustments, charges, Stripe purchases, redeliveries
//! and refunds, with idempotency keys reused at random, leaves every wallet's balance
//! non-negative, equal to the sum of its ledger and to a model's, with each entry's
//! `balance_after` the running sum. On both backends; each case gets its own tenant.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use cloak_api::store::{
    Charge, CheckoutRecord, LedgerOutcome, NewLedgerEntry, NewUser, Store, StripeEventMeta,
    StripeOutcome,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use uuid::Uuid;

use crate::helpers::{Backend, fresh_store};
use crate::property_tests;

/// Three wallets: the tenant's and two users'.
const WALLETS: usize = 3;

#[derive(Debug, Clone)]
enum Op {
    Grant {
        wallet: usize,
        amount: i64,
        key: u8,
    },
    Adjust {
        wallet: usize,
        delta: i64,
        clamp: bool,
        key: u8,
    },
    Charge {
        wallet: usize,
        amount: i64,
        key: u8,
    },
    Purchase {
        wallet: usize,
        credits: i64,
    },
    /// Stripe delivers the `n`th purchase's completion again.
    Redeliver {
        purchase: usize,
    },
    /// A refund (total so far, parts per million) of the `n`th purchase.
    Refund {
        purchase: usize,
        ppm: i64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let wallet = 0..WALLETS;
    // Few keys, so that replays are common.
    let key = 0u8..12;
    prop_oneof![
        (wallet.clone(), 1i64..60, key.clone()).prop_map(|(wallet, amount, key)| Op::Grant {
            wallet,
            amount,
            key
        }),
        (wallet.clone(), -60i64..60, any::<bool>(), key.clone()).prop_map(
            |(wallet, delta, clamp, key)| Op::Adjust {
                wallet,
                delta: if delta == 0 { 1 } else { delta },
                clamp,
                key
            }
        ),
        (wallet.clone(), 1i64..25, key).prop_map(|(wallet, amount, key)| Op::Charge {
            wallet,
            amount,
            key
        }),
        (wallet, 1i64..80).prop_map(|(wallet, credits)| Op::Purchase { wallet, credits }),
        (0usize..4).prop_map(|purchase| Op::Redeliver { purchase }),
        (0usize..4, 0i64..=1_000_000).prop_map(|(purchase, ppm)| Op::Refund { purchase, ppm }),
    ]
}

struct Case {
    store: Arc<dyn Store>,
    tenant: Uuid,
    wallets: [Uuid; WALLETS],
    /// The model: each wallet's balance.
    balance: [i64; WALLETS],
    applied_keys: HashSet<String>,
    /// Per purchase: wallet, credits, credits refunded so far (the session's record).
    purchases: Vec<(usize, i64, i64)>,
    now_ms: i64,
}

fn fail(what: impl std::fmt::Display) -> TestCaseError {
    TestCaseError::fail(what.to_string())
}

impl Case {
    async fn new(store: Arc<dyn Store>) -> Self {
        let tenant = crate::helpers::store_tenant(store.as_ref()).await;
        let mut users = [Uuid::nil(); 2];
        for (i, u) in users.iter_mut().enumerate() {
            *u = Uuid::new_v4();
            store
                .create_user(&NewUser {
                    id: *u,
                    tenant_id: tenant,
                    external_id: format!("u{i}"),
                    display_name: "U".into(),
                    trust_level: "new".into(),
                    created_at_ms: 1,
                })
                .await
                .unwrap();
        }
        Self {
            store,
            tenant,
            wallets: [tenant, users[0], users[1]],
            balance: [0; WALLETS],
            applied_keys: HashSet::new(),
            purchases: Vec::new(),
            now_ms: 1_000,
        }
    }

    async fn post(
        &mut self,
        wallet: usize,
        delta: i64,
        kind: &str,
        clamp: bool,
        key: u8,
    ) -> Result<(), TestCaseError> {
        let key = format!("k{key}");
        let outcome = self
            .store
            .post_ledger(&NewLedgerEntry {
                tenant_id: self.tenant,
                wallet_id: self.wallets[wallet],
                delta,
                kind: kind.into(),
                reason: None,
                actor: "api".into(),
                idempotency_key: key.clone(),
                reference: None,
                user_id: None,
                now_ms: self.now_ms,
                clamp,
            })
            .await
            .map_err(fail)?;
        let balance = self.balance[wallet];
        match outcome {
            LedgerOutcome::Replayed(_) => {
                prop_assert!(
                    self.applied_keys.contains(&key),
                    "replayed an unseen key {key}"
                );
            }
            _ if self.applied_keys.contains(&key) => {
                return Err(fail(format!("key {key} applied twice: {outcome:?}")));
            }
            LedgerOutcome::Applied(entry) => {
                let expected = if clamp { delta.max(-balance) } else { delta };
                prop_assert!(
                    clamp || balance + delta >= 0,
                    "overdrew without clamping: {entry:?}"
                );
                prop_assert_eq!(entry.delta, expected);
                prop_assert_eq!(entry.balance_after, balance + expected);
                self.balance[wallet] += expected;
                self.applied_keys.insert(key);
            }
            LedgerOutcome::Insufficient(reported) => {
                prop_assert!(
                    !clamp && balance + delta < 0,
                    "refused an affordable {delta} at {balance}"
                );
                prop_assert_eq!(reported, balance);
            }
        }
        Ok(())
    }

    async fn charge(&mut self, wallet: usize, amount: i64, key: u8) -> Result<(), TestCaseError> {
        let key = format!("k{key}");
        let charge = Charge::Prepaid {
            wallet_id: self.wallets[wallet],
            amount,
            kind: "message",
            tier: None,
            actor: "device".into(),
            user_id: self.wallets[wallet.max(1)],
            low_balance_threshold: None,
        };
        let outcome = self
            .store
            .charge(self.tenant, &charge, &key, None, self.now_ms)
            .await
            .map_err(fail)?;
        let balance = self.balance[wallet];
        match outcome {
            Ok(()) if self.applied_keys.contains(&key) => {}
            Ok(()) => {
                prop_assert!(balance >= amount, "charged {amount} of {balance}");
                self.balance[wallet] -= amount;
                self.applied_keys.insert(key);
            }
            Err(reported) => {
                prop_assert!(
                    !self.applied_keys.contains(&key),
                    "a replayed charge was refused"
                );
                prop_assert!(balance < amount, "refused {amount} of {balance}");
                prop_assert_eq!(reported, balance);
            }
        }
        Ok(())
    }

    fn event(&mut self, id: String, event_type: &str) -> StripeEventMeta {
        self.now_ms += 1_000;
        StripeEventMeta {
            id,
            event_type: event_type.into(),
            signed_at_s: self.now_ms / 1_000,
            now_ms: self.now_ms,
        }
    }

    fn session(&self, n: usize) -> String {
        format!("cs_{}_{n}", self.tenant.simple())
    }

    async fn complete(&mut self, n: usize) -> Result<StripeOutcome, TestCaseError> {
        let event = self.event(
            format!("evt_{}_p{n}", self.tenant.simple()),
            "checkout.session.completed",
        );
        let intent = format!("pi_{}_{n}", self.tenant.simple());
        self.store
            .stripe_checkout_completed(&event, &self.session(n), Some(&intent))
            .await
            .map_err(fail)
    }

    async fn purchase(&mut self, wallet: usize, credits: i64) -> Result<(), TestCaseError> {
        let n = self.purchases.len();
        self.store
            .create_checkout(&CheckoutRecord {
                id: self.session(n),
                tenant_id: self.tenant,
                wallet_id: self.wallets[wallet],
                pack_id: "pack".into(),
                credits,
                amount: credits * 10,
                created_at_ms: self.now_ms,
            })
            .await
            .map_err(fail)?;
        match self.complete(n).await? {
            StripeOutcome::Applied(Some(entry)) => {
                prop_assert_eq!(entry.delta, credits);
                prop_assert_eq!(entry.balance_after, self.balance[wallet] + credits);
            }
            other => return Err(fail(format!("a purchase was not credited: {other:?}"))),
        }
        self.balance[wallet] += credits;
        self.purchases.push((wallet, credits, 0));
        Ok(())
    }

    async fn redeliver(&mut self, purchase: usize) -> Result<(), TestCaseError> {
        if purchase >= self.purchases.len() {
            return Ok(());
        }
        let outcome = self.complete(purchase).await?;
        prop_assert_eq!(outcome, StripeOutcome::Duplicate);
        Ok(())
    }

    async fn refund(&mut self, purchase: usize, ppm: i64) -> Result<(), TestCaseError> {
        let Some(&(wallet, credits, already)) = self.purchases.get(purchase) else {
            return Ok(());
        };
        let id = format!("evt_{}_r{}", self.tenant.simple(), self.now_ms);
        let event = self.event(id, "charge.refunded");
        let intent = format!("pi_{}_{purchase}", self.tenant.simple());
        let outcome = self
            .store
            .stripe_take_back(&event, &intent, ppm, "refund")
            .await
            .map_err(fail)?;
        let target = ((credits * ppm + 999_999) / 1_000_000).min(credits);
        let take = target - already;
        let StripeOutcome::Applied(entry) = outcome else {
            return Err(fail(format!("a refund was not applied: {outcome:?}")));
        };
        let delta = entry.as_ref().map_or(0, |e| e.delta);
        if take <= 0 {
            prop_assert!(entry.is_none(), "refunded twice: {entry:?}");
            return Ok(());
        }
        // Never below zero: what was spent already cannot be taken back.
        prop_assert_eq!(delta, -take.min(self.balance[wallet]));
        self.balance[wallet] += delta;
        self.purchases[purchase].2 = target;
        Ok(())
    }

    async fn apply(&mut self, op: &Op) -> Result<(), TestCaseError> {
        self.now_ms += 10;
        match *op {
            Op::Grant {
                wallet,
                amount,
                key,
            } => self.post(wallet, amount, "grant", false, key).await,
            Op::Adjust {
                wallet,
                delta,
                clamp,
                key,
            } => self.post(wallet, delta, "adjustment", clamp, key).await,
            Op::Charge {
                wallet,
                amount,
                key,
            } => self.charge(wallet, amount, key).await,
            Op::Purchase { wallet, credits } => self.purchase(wallet, credits).await,
            Op::Redeliver { purchase } => self.redeliver(purchase).await,
            Op::Refund { purchase, ppm } => self.refund(purchase, ppm).await,
        }
    }

    /// Every wallet against the model and its own ledger.
    async fn check_wallets(&self) -> Result<(), TestCaseError> {
        let listed: HashMap<Uuid, i64> = self
            .store
            .list_wallets(self.tenant)
            .await
            .map_err(fail)?
            .into_iter()
            .map(|w| (w.id, w.balance))
            .collect();
        for (i, id) in self.wallets.iter().enumerate() {
            let balance = listed.get(id).copied().unwrap_or(0);
            prop_assert!(balance >= 0, "wallet {i} is negative: {balance}");
            prop_assert_eq!(balance, self.balance[i], "wallet {} against the model", i);
            let entries = self
                .store
                .ledger_page(self.tenant, *id, 0, 10_000)
                .await
                .map_err(fail)?;
            let mut running = 0;
            for e in &entries {
                running += e.delta;
                prop_assert_eq!(e.balance_after, running, "running sum of wallet {}", i);
                prop_assert!(e.balance_after >= 0);
            }
            prop_assert_eq!(running, balance, "wallet {} is the sum of its ledger", i);
        }
        Ok(())
    }
}

fn ledger_interleavings_keep_balances_exact(backend: Backend) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (store, _db) = rt.block_on(fresh_store(backend));
    let mut runner = TestRunner::new(Config {
        cases: 48,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&prop::collection::vec(op(), 1..40), |ops| {
        rt.block_on(async {
            let mut case = Case::new(store.clone()).await;
            for op in &ops {
                case.apply(op).await?;
            }
            case.check_wallets().await
        })
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

property_tests!(ledger_interleavings_keep_balances_exact);
