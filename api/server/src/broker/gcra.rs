//! GCRA (the generic cell rate algorithm): a limit of `n` per `window` becomes an emission
//! interval `T = window / n` and a tolerance `τ = window − T`, with one stored number per key:
//! the theoretical arrival time (TAT) of the next request. A request at `now` is allowed
//! when `TAT − τ ≤ now`; it then moves TAT to `max(TAT, now) + T`. The decision is exact
//! and needs no timers. Times are microseconds inside (so rates above 1,000/s work); the
//! Redis backend runs the same rule in one Lua script.

/// A limit: `limit` events per `window_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub limit: u32,
    pub window_ms: i64,
}

impl Rate {
    /// Emission interval T, µs.
    pub fn emission_us(&self) -> i64 {
        (self.window_ms.saturating_mul(1000) / i64::from(self.limit.max(1))).max(1)
    }

    /// Tolerance τ, µs.
    pub fn tolerance_us(&self) -> i64 {
        (self.window_ms.saturating_mul(1000) - self.emission_us()).max(0)
    }
}

/// The outcome of asking a limiter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateDecision {
    pub allowed: bool,
    /// When refused: how long until a request would be allowed, in ms (rounded up).
    pub retry_after_ms: i64,
    /// Requests still allowed right now (after this one, if allowed).
    pub remaining: u32,
    /// How long until the limiter is back to its full allowance, in ms.
    pub reset_ms: i64,
}

fn ceil_ms(us: i64) -> i64 {
    (us.max(0) + 999) / 1000
}

/// Applies GCRA to a stored TAT in µs (`None`: never seen) at `now_ms`. Returns the
/// decision and the TAT to store (unchanged when refused).
pub fn decide(tat_us: Option<i64>, now_ms: i64, rate: Rate) -> (RateDecision, i64) {
    let now = now_ms.saturating_mul(1000);
    let tat = tat_us.unwrap_or(now).max(now);
    if tat - rate.tolerance_us() > now {
        return (refused(tat, now_ms, rate), tat);
    }
    let new_tat = tat + rate.emission_us();
    (allowed(new_tat, now_ms, rate), new_tat)
}

/// The decision for a refused request while TAT is `tat_us`.
pub fn refused(tat_us: i64, now_ms: i64, rate: Rate) -> RateDecision {
    let now = now_ms.saturating_mul(1000);
    RateDecision {
        allowed: false,
        retry_after_ms: ceil_ms(tat_us - rate.tolerance_us() - now),
        remaining: 0,
        reset_ms: ceil_ms(tat_us - now),
    }
}

/// The decision for an allowed request that moved TAT to `new_tat_us`.
pub fn allowed(new_tat_us: i64, now_ms: i64, rate: Rate) -> RateDecision {
    let now = now_ms.saturating_mul(1000);
    let t = rate.emission_us();
    let slack = (now + rate.tolerance_us() - (new_tat_us - t)).max(0) / t;
    RateDecision {
        allowed: true,
        retry_after_ms: 0,
        remaining: u32::try_from(slack)
            .unwrap_or(u32::MAX)
            .min(rate.limit.saturating_sub(1)),
        reset_ms: ceil_ms(new_tat_us - now),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_per_ten_seconds() {
        let rate = Rate {
            limit: 1,
            window_ms: 10_000,
        };
        let (first, tat) = decide(None, 1_000, rate);
        assert!(first.allowed);
        let (second, same) = decide(Some(tat), 2_000, rate);
        assert_eq!((second.allowed, second.retry_after_ms), (false, 9_000));
        assert_eq!(same, tat, "a refusal does not move the limiter");
        let (third, _) = decide(Some(tat), 11_000, rate);
        assert!(third.allowed);
    }

    #[test]
    fn a_burst_of_the_limit_then_steady() {
        let rate = Rate {
            limit: 6,
            window_ms: 60_000,
        };
        let mut tat = None;
        let mut allowed = 0;
        for _ in 0..10 {
            let (d, next) = decide(tat, 0, rate);
            tat = Some(next);
            if d.allowed {
                allowed += 1;
                assert_eq!(d.remaining, 6 - allowed);
            }
        }
        assert_eq!(allowed, 6);
        let (d, _) = decide(tat, 0, rate);
        assert_eq!(
            d.retry_after_ms, 10_000,
            "one more after one emission interval"
        );
    }

    #[test]
    fn high_rates_keep_their_precision() {
        let rate = Rate {
            limit: 5_000,
            window_ms: 1_000,
        };
        let mut tat = None;
        let mut allowed = 0;
        for _ in 0..6_000 {
            let (d, next) = decide(tat, 0, rate);
            tat = Some(next);
            allowed += u32::from(d.allowed);
        }
        assert_eq!(allowed, 5_000);
    }
}
