//! Keyset pagination for list endpoints: a page is the rows after the last one seen, in a
//! fixed order, so a page costs the same however deep it is and rows added meanwhile are
//! neither skipped nor repeated. Cursors are opaque to clients: `p_{time_ms}_{key}`.

use cloak_proto::Code;
use cloak_proto::paging::PageQuery;

use super::ServiceError;

/// Rows per page unless the client asks otherwise.
pub const DEFAULT_LIMIT: u32 = 100;

/// The page size a query asks for (validated to 1..=500).
pub fn limit(query: &PageQuery) -> i64 {
    i64::from(query.limit.unwrap_or(DEFAULT_LIMIT))
}

/// The cursor after a row ordered by (time, key).
pub fn encode(time_ms: i64, key: &str) -> String {
    format!("p_{time_ms}_{key}")
}

/// The (time, key) a cursor stands for; `None` for the first page.
pub fn decode(cursor: Option<&str>) -> Result<Option<(i64, String)>, ServiceError> {
    let Some(cursor) = cursor.filter(|c| !c.is_empty()) else {
        return Ok(None);
    };
    cursor
        .strip_prefix("p_")
        .and_then(|rest| rest.split_once('_'))
        .and_then(|(t, key)| Some((t.parse::<i64>().ok()?, key.to_owned())))
        .filter(|(_, key)| !key.is_empty())
        .map(Some)
        .ok_or_else(|| {
            ServiceError::invalid(Code::InvalidCursor, "not a cursor from a previous page")
        })
}

/// As [`decode`], for lists keyed by (time, UUID).
pub fn decode_uuid(cursor: Option<&str>) -> Result<Option<(i64, uuid::Uuid)>, ServiceError> {
    match decode(cursor)? {
        None => Ok(None),
        Some((t, key)) => key.parse().map(|id| Some((t, id))).map_err(|_| invalid()),
    }
}

fn invalid() -> ServiceError {
    ServiceError::invalid(Code::InvalidCursor, "not a cursor from a previous page")
}

/// The next page's cursor: present only when the page is full.
pub fn next<T>(rows: &[T], limit: i64, key: impl Fn(&T) -> (i64, String)) -> Option<String> {
    if i64::try_from(rows.len()).unwrap_or(i64::MAX) < limit {
        return None;
    }
    rows.last().map(|r| {
        let (t, k) = key(r);
        encode(t, &k)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_foreign_ones_are_refused() {
        let c = encode(-5, "abc_def");
        assert_eq!(decode(Some(&c)).unwrap(), Some((-5, "abc_def".into())));
        assert_eq!(decode(None).unwrap(), None);
        assert_eq!(decode(Some("")).unwrap(), None);
        for bad in ["le_5", "p_x_y", "p_5_", "p_5", "nonsense"] {
            assert!(decode(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_a_full_page_has_a_next_cursor() {
        let rows = [(1, "a"), (2, "b")];
        let key = |r: &(i64, &str)| (r.0, r.1.to_owned());
        assert_eq!(next(&rows, 2, key), Some(encode(2, "b")));
        assert_eq!(next(&rows, 3, key), None);
    }
}
