//! The console's dashboard figures, from the ledger's per-day sums: what was spent and on
//! what, what came in (purchases, grants) and went back (refunds, disputes), and the
//! tenant's total balance at the end of each day (worked back from today's).

use uuid::Uuid;

use crate::services::ServiceError;
use crate::store::{DAY_MS, DayTotal, Spender, Store};

/// One day's figures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayFigures {
    /// `YYYY-MM-DD` (UTC).
    pub date: String,
    /// Credits charged for actions.
    pub spent: i64,
    /// Credits bought and granted.
    pub added: i64,
    /// The sum of all wallets at the end of the day.
    pub balance: i64,
}

/// Spend on one kind of action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionSpend {
    /// The price-table row (`text_message`, `attachment_small`…).
    pub action: &'static str,
    pub label: &'static str,
    pub credits: i64,
    pub entries: i64,
}

/// Everything the dashboard shows for a range of days.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dashboard {
    pub days: Vec<DayFigures>,
    pub by_action: Vec<ActionSpend>,
    pub spent: i64,
    pub purchased: i64,
    pub purchases: i64,
    pub granted: i64,
    /// Credits taken back by refunds and disputes (positive).
    pub refunded: i64,
    pub refunds: i64,
    /// Net of manual adjustments.
    pub adjusted: i64,
    pub balance: i64,
    pub wallets: i64,
    pub top: Vec<Spender>,
}

/// The actions the price table charges for, in its order: (row, label, ledger kind, tier).
const ACTIONS: &[(&str, &str, &str, Option<&str>)] = &[
    ("text_message", "Text messages", "message", None),
    (
        "attachment_small",
        "Attachments, small",
        "attachment",
        Some("attachment_small"),
    ),
    (
        "attachment_medium",
        "Attachments, medium",
        "attachment",
        Some("attachment_medium"),
    ),
    (
        "attachment_large",
        "Attachments, large",
        "attachment",
        Some("attachment_large"),
    ),
    ("edit", "Edits", "edit", None),
    ("delete", "Deletes", "delete", None),
    ("call_minute", "Calls", "call", None),
    (
        "invite_redemption",
        "Invites redeemed",
        "invite_redemption",
        None,
    ),
    ("group_commit", "Membership changes", "commit", None),
    ("message_view", "Message views", "message_view", None),
];

/// Top spenders shown.
pub const TOP: i64 = 10;

/// The date of a day number.
pub fn date_of(day: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(day.saturating_mul(86_400))
        .map(|t| t.date().to_string())
        .unwrap_or_default()
}

/// Reads and sums the last `days` days (today included) for the tenant.
pub async fn dashboard(
    store: &dyn Store,
    tenant_id: Uuid,
    days: i64,
    now_ms: i64,
) -> Result<Dashboard, ServiceError> {
    let today = now_ms.div_euclid(DAY_MS);
    let first = today - days + 1;
    let totals = store.ledger_totals(tenant_id, first * DAY_MS).await?;
    let (balance, wallets) = store.wallet_totals(tenant_id).await?;
    let top = store.top_spenders(tenant_id, first * DAY_MS, TOP).await?;
    Ok(summarize(&totals, first, today, balance, wallets, top))
}

/// The dashboard of days `first..=today` from their sums and today's balance.
pub fn summarize(
    totals: &[DayTotal],
    first: i64,
    today: i64,
    balance: i64,
    wallets: i64,
    top: Vec<Spender>,
) -> Dashboard {
    let n = usize::try_from(today - first + 1).unwrap_or(0);
    let mut spent = vec![0i64; n];
    let mut added = vec![0i64; n];
    let mut net = vec![0i64; n];
    let mut by_action: Vec<ActionSpend> = ACTIONS
        .iter()
        .map(|(action, label, _, _)| ActionSpend {
            action,
            label,
            credits: 0,
            entries: 0,
        })
        .collect();
    let mut d = Dashboard {
        days: Vec::with_capacity(n),
        by_action: Vec::new(),
        spent: 0,
        purchased: 0,
        purchases: 0,
        granted: 0,
        refunded: 0,
        refunds: 0,
        adjusted: 0,
        balance,
        wallets,
        top,
    };
    for t in totals {
        let Some(i) = usize::try_from(t.day - first).ok().filter(|i| *i < n) else {
            continue;
        };
        net[i] += t.credits;
        match t.kind.as_str() {
            "purchase" => {
                d.purchased += t.credits;
                d.purchases += t.entries;
                added[i] += t.credits;
            }
            "grant" => {
                d.granted += t.credits;
                added[i] += t.credits;
            }
            "refund" | "dispute" => {
                d.refunded -= t.credits;
                d.refunds += t.entries;
            }
            "adjustment" => d.adjusted += t.credits,
            kind => {
                spent[i] -= t.credits;
                d.spent -= t.credits;
                // An attachment charged before tiers were recorded counts as small.
                let tier = t.tier.as_deref().or(Some("attachment_small"));
                let row = ACTIONS
                    .iter()
                    .position(|(_, _, k, want)| *k == kind && (want.is_none() || *want == tier));
                if let Some(row) = row {
                    by_action[row].credits -= t.credits;
                    by_action[row].entries += t.entries;
                }
            }
        }
    }
    // Work the balance back from today's: each day ends at the next day's end less its net.
    let mut end = balance;
    let mut ends = vec![0i64; n];
    for i in (0..n).rev() {
        ends[i] = end;
        end -= net[i];
    }
    for i in 0..n {
        d.days.push(DayFigures {
            date: date_of(first + i64::try_from(i).unwrap_or(0)),
            spent: spent[i],
            added: added[i],
            balance: ends[i],
        });
    }
    by_action.retain(|a| a.entries > 0);
    by_action.sort_by_key(|a| std::cmp::Reverse(a.credits));
    d.by_action = by_action;
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    fn total(day: i64, kind: &str, tier: Option<&str>, credits: i64, entries: i64) -> DayTotal {
        DayTotal {
            day,
            kind: kind.into(),
            tier: tier.map(str::to_owned),
            credits,
            entries,
        }
    }

    #[test]
    fn days_actions_and_balances_add_up() {
        let totals = [
            total(100, "purchase", None, 1000, 1),
            total(100, "message", None, -30, 30),
            total(101, "attachment", Some("attachment_large"), -50, 1),
            total(101, "attachment", None, -5, 1),
            total(101, "refund", None, -200, 1),
            total(102, "grant", None, 10, 1),
            total(102, "adjustment", None, -1, 1),
            total(99, "message", None, -7, 7),
        ];
        let d = summarize(&totals, 100, 102, 724, 2, Vec::new());
        assert_eq!(d.days.len(), 3);
        assert_eq!(d.days[0].date, "1970-04-11");
        assert_eq!(
            d.days.iter().map(|x| x.balance).collect::<Vec<_>>(),
            [970, 715, 724]
        );
        assert_eq!(
            d.days.iter().map(|x| x.spent).collect::<Vec<_>>(),
            [30, 55, 0]
        );
        assert_eq!(d.days[2].added, 10);
        assert_eq!(
            (d.spent, d.purchased, d.refunded, d.adjusted),
            (85, 1000, 200, -1)
        );
        let actions: Vec<_> = d.by_action.iter().map(|a| (a.action, a.credits)).collect();
        assert_eq!(
            actions,
            [
                ("attachment_large", 50),
                ("text_message", 30),
                ("attachment_small", 5)
            ]
        );
    }
}
