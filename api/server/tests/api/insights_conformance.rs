//! The console's reads on both backends: per-day sums, top spenders, wallet search and the
//! filtered wallet ledger, each kept to one tenant; and console role changes.

use cloak_api::services::api_keys;
use cloak_api::store::{
    ConsoleAccount, DAY_MS, DayTotal, LedgerFilter, LedgerOutcome, NewLedgerEntry, NewTenant,
    NewUser, Store, WalletQuery, WalletSort,
};
use uuid::Uuid;

use crate::backend_tests;
use crate::helpers::{Backend, fresh_store};

async fn tenant(store: &dyn Store) -> Uuid {
    let id = Uuid::new_v4();
    let t = NewTenant {
        id,
        name: "T".into(),
        created_at_ms: 1_000,
    };
    let key = api_keys::generate(id, "initial", 1_000, &mut rand::rngs::OsRng);
    store.create_tenant(&t, &key.record).await.unwrap();
    id
}

async fn user(store: &dyn Store, tenant_id: Uuid, external_id: &str, name: &str) -> Uuid {
    let id = Uuid::new_v4();
    store
        .create_user(&NewUser {
            id,
            tenant_id,
            external_id: external_id.into(),
            display_name: name.into(),
            trust_level: "new".into(),
            created_at_ms: 1_000,
        })
        .await
        .unwrap();
    id
}

struct Entry<'a> {
    wallet: Uuid,
    delta: i64,
    kind: &'a str,
    reason: Option<&'a str>,
    user: Option<Uuid>,
    at_ms: i64,
}

async fn post(store: &dyn Store, tenant_id: Uuid, e: Entry<'_>) -> i64 {
    let outcome = store
        .post_ledger(&NewLedgerEntry {
            tenant_id,
            wallet_id: e.wallet,
            delta: e.delta,
            kind: e.kind.into(),
            reason: e.reason.map(str::to_owned),
            actor: "api".into(),
            idempotency_key: Uuid::new_v4().to_string(),
            reference: None,
            user_id: e.user,
            now_ms: e.at_ms,
            clamp: false,
        })
        .await
        .unwrap();
    match outcome {
        LedgerOutcome::Applied(entry) => entry.id,
        other => panic!("not applied: {other:?}"),
    }
}

fn at(day: i64, ms: i64) -> i64 {
    day * DAY_MS + ms
}

/// A tenant with two users' wallets and its own, over days 9 to 11; returns
/// (tenant, ann, bob, the id of each of ann's entries in order).
async fn seeded(store: &dyn Store) -> (Uuid, Uuid, Uuid, Vec<i64>) {
    let t = tenant(store).await;
    let ann = user(store, t, "ann-1", "Ann Smith").await;
    let bob = user(store, t, "bob_2", "Bob").await;
    let e = |wallet, delta, kind, reason, user, at_ms| Entry {
        wallet,
        delta,
        kind,
        reason,
        user,
        at_ms,
    };
    post(store, t, e(t, 1000, "grant", None, None, at(9, 5))).await;
    let mut ids = Vec::new();
    for entry in [
        e(ann, 100, "purchase", None, None, at(10, 10)),
        e(ann, -3, "message", None, None, at(10, 20)),
        e(
            ann,
            -5,
            "attachment",
            Some("attachment_small"),
            None,
            at(11, 30),
        ),
        e(
            ann,
            -7,
            "attachment",
            Some("attachment_large"),
            None,
            at(11, 40),
        ),
    ] {
        ids.push(post(store, t, entry).await);
    }
    post(store, t, e(bob, 50, "grant", None, None, at(10, 50))).await;
    post(store, t, e(bob, -2, "message", None, None, at(11, 60))).await;
    // The tenant pays for one of Bob's messages: the spend is still Bob's.
    post(store, t, e(t, -4, "message", None, Some(bob), at(11, 70))).await;

    // Another tenant, with a user of the same name, spends more: never counted.
    let other = tenant(store).await;
    let ann2 = user(store, other, "ann-1", "Ann Smith").await;
    post(store, other, e(ann2, 500, "grant", None, None, at(10, 1))).await;
    post(
        store,
        other,
        e(ann2, -400, "message", None, None, at(11, 1)),
    )
    .await;
    (t, ann, bob, ids)
}

fn total(day: i64, kind: &str, tier: Option<&str>, credits: i64, entries: i64) -> DayTotal {
    DayTotal {
        day,
        kind: kind.into(),
        tier: tier.map(str::to_owned),
        credits,
        entries,
    }
}

async fn ledger_totals_are_summed_per_day_kind_and_tier(backend: Backend) {
    let (store, _db) = fresh_store(backend).await;
    let (t, _, _, _) = seeded(store.as_ref()).await;
    let totals = store.ledger_totals(t, at(10, 0)).await.unwrap();
    assert_eq!(
        totals,
        vec![
            total(10, "grant", None, 50, 1),
            total(10, "message", None, -3, 1),
            total(10, "purchase", None, 100, 1),
            total(11, "attachment", Some("attachment_large"), -7, 1),
            total(11, "attachment", Some("attachment_small"), -5, 1),
            total(11, "message", None, -6, 2),
        ],
        "day 9's grant is before the range; the other tenant is not counted"
    );
    let all = store.ledger_totals(t, 0).await.unwrap();
    assert_eq!(all[0], total(9, "grant", None, 1000, 1));
    assert_eq!(store.wallet_totals(t).await.unwrap(), (996 + 85 + 48, 3));
    assert_eq!(store.wallet_totals(Uuid::new_v4()).await.unwrap(), (0, 0));
}

async fn top_spenders_count_charges_for_the_user_whoever_paid(backend: Backend) {
    let (store, _db) = fresh_store(backend).await;
    let (t, ann, bob, _) = seeded(store.as_ref()).await;
    let top = store.top_spenders(t, at(10, 0), 10).await.unwrap();
    let got: Vec<_> = top
        .iter()
        .map(|s| (s.user_id, s.external_id.as_deref(), s.spent, s.entries))
        .collect();
    assert_eq!(
        got,
        vec![(ann, Some("ann-1"), 15, 3), (bob, Some("bob_2"), 6, 2)],
        "purchases and grants are no spend; the tenant-paid message is Bob's"
    );
    assert_eq!(top[0].display_name.as_deref(), Some("Ann Smith"));
    let one = store.top_spenders(t, at(11, 0), 1).await.unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!((one[0].user_id, one[0].spent), (ann, 12));
}

async fn wallets_are_searched_sorted_and_paged(backend: Backend) {
    let (store, _db) = fresh_store(backend).await;
    let (t, ann, bob, _) = seeded(store.as_ref()).await;
    let find = |text: Option<&str>, sort, offset, limit| {
        let store = store.clone();
        let q = WalletQuery {
            text: text.map(str::to_owned),
            sort,
            offset,
            limit,
        };
        async move {
            store
                .search_wallets(t, &q)
                .await
                .unwrap()
                .into_iter()
                .map(|w| (w.wallet_id, w.balance))
                .collect::<Vec<_>>()
        }
    };
    let desc = WalletSort::BalanceDesc;
    assert_eq!(
        find(None, desc, 0, 10).await,
        vec![(t, 996), (ann, 85), (bob, 48)]
    );
    assert_eq!(
        find(None, WalletSort::BalanceAsc, 0, 10).await,
        vec![(bob, 48), (ann, 85), (t, 996)]
    );
    assert_eq!(
        find(None, WalletSort::Newest, 0, 10).await,
        vec![(bob, 48), (ann, 85), (t, 996)],
        "wallets are created with their first entry"
    );
    assert_eq!(find(None, desc, 1, 1).await, vec![(ann, 85)]);
    assert_eq!(find(Some("SMITH"), desc, 0, 10).await, vec![(ann, 85)]);
    assert_eq!(find(Some(" bob_ "), desc, 0, 10).await, vec![(bob, 48)]);
    assert_eq!(find(Some("tenant"), desc, 0, 10).await, vec![(t, 996)]);
    assert!(
        find(Some("b%2"), desc, 0, 10).await.is_empty(),
        "% is a character, not a pattern"
    );
    assert!(find(Some("n_1"), desc, 0, 10).await.is_empty(), "_ too");
    let rows = store
        .search_wallets(
            t,
            &WalletQuery {
                text: Some("ann".into()),
                limit: 5,
                ..WalletQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "the other tenant's Ann is not found");
    assert_eq!(rows[0].display_name.as_deref(), Some("Ann Smith"));
    assert_eq!(rows[0].created_at_ms, at(10, 10));
}

async fn a_wallets_ledger_is_filtered_and_paged_newest_first(backend: Backend) {
    let (store, _db) = fresh_store(backend).await;
    let (t, ann, _, ids) = seeded(store.as_ref()).await;
    let search = |filter: LedgerFilter, before: Option<i64>, limit| {
        let store = store.clone();
        async move {
            store
                .ledger_search(t, ann, &filter, before, limit)
                .await
                .unwrap()
                .into_iter()
                .map(|e| e.id)
                .collect::<Vec<_>>()
        }
    };
    let all = LedgerFilter::default();
    let newest_first: Vec<i64> = ids.iter().rev().copied().collect();
    assert_eq!(search(all.clone(), None, 10).await, newest_first);
    assert_eq!(search(all.clone(), None, 2).await, newest_first[..2]);
    assert_eq!(
        search(all.clone(), Some(newest_first[1]), 10).await,
        newest_first[2..],
        "the cursor continues below the last id shown"
    );
    let attachments = LedgerFilter {
        kind: Some("attachment".into()),
        ..LedgerFilter::default()
    };
    assert_eq!(search(attachments, None, 10).await, vec![ids[3], ids[2]]);
    let day10 = LedgerFilter {
        from_ms: Some(at(10, 0)),
        to_ms: Some(at(11, 0)),
        ..LedgerFilter::default()
    };
    assert_eq!(search(day10, None, 10).await, vec![ids[1], ids[0]]);
    let from_inclusive = LedgerFilter {
        from_ms: Some(at(11, 30)),
        kind: Some("attachment".into()),
        ..LedgerFilter::default()
    };
    assert_eq!(search(from_inclusive, None, 10).await, vec![ids[3], ids[2]]);
    let other = tenant(store.as_ref()).await;
    assert!(
        store
            .ledger_search(other, ann, &LedgerFilter::default(), None, 10)
            .await
            .unwrap()
            .is_empty(),
        "another tenant does not read the wallet"
    );
}

async fn console_roles_change_within_the_tenant(backend: Backend) {
    let (store, _db) = fresh_store(backend).await;
    let t = tenant(store.as_ref()).await;
    let other = tenant(store.as_ref()).await;
    let account = ConsoleAccount {
        id: Uuid::new_v4(),
        tenant_id: t,
        email: "ann@example.test".into(),
        role: "billing_admin".into(),
        password_hash: None,
        setup_expires_at_ms: Some(10_000),
        failed_logins: 0,
        locked_until_ms: None,
        created_at_ms: 1_000,
    };
    assert!(
        store
            .create_console_account(&account, &[7u8; 32])
            .await
            .unwrap()
    );
    assert!(
        !store
            .set_console_role(other, account.id, "owner")
            .await
            .unwrap(),
        "another tenant's account is not found"
    );
    assert!(
        !store
            .set_console_role(t, Uuid::new_v4(), "owner")
            .await
            .unwrap()
    );
    assert!(
        store
            .set_console_role(t, account.id, "viewer")
            .await
            .unwrap()
    );
    let listed = store.list_console_accounts(t).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].role, "viewer");
    assert_eq!(listed[0].email, account.email);
}

backend_tests!(
    ledger_totals_are_summed_per_day_kind_and_tier,
    top_spenders_count_charges_for_the_user_whoever_paid,
    wallets_are_searched_sorted_and_paged,
    a_wallets_ledger_is_filtered_and_paged_newest_first,
    console_roles_change_within_the_tenant,
);
