//! What the billing console reads: the ledger summed per day and action, the users who
//! spend the most, wallets found by their user, and a wallet's ledger filtered and paged
//! newest first. Every figure is summed by the database; nothing reads a whole ledger.

use async_trait::async_trait;
use uuid::Uuid;

use super::{LedgerEntry, StoreError};

/// Milliseconds in a (UTC) day: the dashboard's buckets.
pub const DAY_MS: i64 = 86_400_000;

/// The entries of one day and action, summed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayTotal {
    /// Days since the Unix epoch (UTC).
    pub day: i64,
    /// The entries' kind (`message`, `purchase`…).
    pub kind: String,
    /// For attachments, the tier's price row (`attachment_small`…).
    pub tier: Option<String>,
    /// Sum of the entries' deltas.
    pub credits: i64,
    pub entries: i64,
}

/// A user and what the actions they made cost, whoever paid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spender {
    pub user_id: Uuid,
    pub external_id: Option<String>,
    pub display_name: Option<String>,
    /// Credits spent (positive).
    pub spent: i64,
    pub entries: i64,
}

/// How a wallet list is ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WalletSort {
    #[default]
    BalanceDesc,
    BalanceAsc,
    Newest,
}

/// Which wallets to list.
#[derive(Debug, Clone, Default)]
pub struct WalletQuery {
    /// Part of the user's external id or display name (case-insensitive); `tenant` finds
    /// the tenant's wallet.
    pub text: Option<String>,
    pub sort: WalletSort,
    pub offset: i64,
    pub limit: i64,
}

/// A wallet and its user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalletRow {
    pub wallet_id: Uuid,
    pub balance: i64,
    pub created_at_ms: i64,
    /// `None` for the tenant's wallet.
    pub external_id: Option<String>,
    pub display_name: Option<String>,
}

/// Which ledger entries of a wallet to read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LedgerFilter {
    pub kind: Option<String>,
    /// Inclusive, Unix ms.
    pub from_ms: Option<i64>,
    /// Exclusive, Unix ms.
    pub to_ms: Option<i64>,
}

/// The console's reads.
#[async_trait]
pub trait InsightStore: Send + Sync {
    /// The tenant's entries from `since_ms` on, summed per day, kind and attachment tier.
    async fn ledger_totals(
        &self,
        tenant_id: Uuid,
        since_ms: i64,
    ) -> Result<Vec<DayTotal>, StoreError>;
    /// The sum of the tenant's wallet balances and how many wallets there are.
    async fn wallet_totals(&self, tenant_id: Uuid) -> Result<(i64, i64), StoreError>;
    /// The users whose actions cost the most from `since_ms` on (charges only, net of
    /// nothing else), most first.
    async fn top_spenders(
        &self,
        tenant_id: Uuid,
        since_ms: i64,
        limit: i64,
    ) -> Result<Vec<Spender>, StoreError>;
    /// Wallets matching `query`, one page.
    async fn search_wallets(
        &self,
        tenant_id: Uuid,
        query: &WalletQuery,
    ) -> Result<Vec<WalletRow>, StoreError>;
    /// A wallet's entries matching `filter` with ids below `before_id`, newest first, at
    /// most `limit`.
    async fn ledger_search(
        &self,
        tenant_id: Uuid,
        wallet_id: Uuid,
        filter: &LedgerFilter,
        before_id: Option<i64>,
        limit: i64,
    ) -> Result<Vec<LedgerEntry>, StoreError>;
}

/// `%text%` for `LIKE … ESCAPE '\'`, lowercased, with the pattern characters escaped.
pub(crate) fn like_pattern(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('%');
    for c in text.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

#[cfg(test)]
mod tests {
    use super::like_pattern;

    #[test]
    fn like_patterns_match_text_literally() {
        assert_eq!(like_pattern("Ann"), "%ann%");
        assert_eq!(like_pattern("50%_a\\b"), "%50\\%\\_a\\\\b%");
    }
}
