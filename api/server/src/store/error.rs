//! Store errors, classified so handlers can map them to HTTP without looking at SQL.

/// A failed store operation.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or no connection was free in time.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A uniqueness rule was violated (names the constraint).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The configuration (URL, options) is unusable.
    #[error("database configuration: {0}")]
    Config(String),
    /// Migrations failed.
    #[error("migration failed: {0}")]
    Migration(String),
    /// A stored value could not be decoded (a bug or a corrupted row).
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// Any other database error.
    #[error("database error: {0}")]
    Database(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::WorkerCrashed => StoreError::Unavailable(e.to_string()),
            sqlx::Error::Database(db) if db.code().is_some_and(|c| server_going_away(&c)) => {
                StoreError::Unavailable(e.to_string())
            }
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                StoreError::Conflict(db.constraint().unwrap_or("unique").to_owned())
            }
            sqlx::Error::ColumnDecode { .. }
            | sqlx::Error::Decode(_)
            | sqlx::Error::ColumnNotFound(_) => StoreError::Corrupt(e.to_string()),
            sqlx::Error::Configuration(_) => StoreError::Config(e.to_string()),
            _ => StoreError::Database(e.to_string()),
        }
    }
}

/// SQLSTATEs of a database that is restarting, shutting down or out of connections:
/// the request may succeed a moment later, so it is a 503, not a 500. Class 08 (connection
/// exception), 57P01 (admin shutdown), 57P02 (crash shutdown), 57P03 (cannot connect now)
/// and 53300 (too many connections).
fn server_going_away(code: &str) -> bool {
    code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03" | "53300")
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        StoreError::Migration(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::server_going_away;

    #[test]
    fn a_restarting_database_is_unavailable_not_broken() {
        for code in ["57P01", "57P02", "57P03", "53300", "08006", "08001"] {
            assert!(server_going_away(code), "{code}");
        }
        for code in ["23505", "40001", "42P01", "57014"] {
            assert!(!server_going_away(code), "{code}");
        }
    }
}
