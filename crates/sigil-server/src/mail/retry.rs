//! When a failed delivery is tried again: exponential backoff from 30 seconds, doubling
//! up to one hour between attempts, and no attempt later than a day after the message was
//! queued (its links have mostly expired by then).

/// The wait after the first failure.
pub const FIRST_RETRY_SECONDS: i64 = 30;
/// The longest wait between two attempts.
pub const MAX_RETRY_SECONDS: i64 = 3600;
/// A message still undelivered this long after it was queued is given up.
pub const GIVE_UP_AFTER_SECONDS: i64 = 24 * 3600;

/// When to try again after the `failures`-th failed attempt (1 for the first) of a message
/// queued at `created_at`, or `None` to give up.
pub fn next_attempt_at(created_at: i64, failures: i64, now: i64) -> Option<i64> {
    let doublings = u32::try_from(failures.saturating_sub(1))
        .unwrap_or(u32::MAX)
        .min(20);
    let wait = FIRST_RETRY_SECONDS
        .saturating_mul(1_i64 << doublings)
        .min(MAX_RETRY_SECONDS);
    let at = now.saturating_add(wait);
    (at <= created_at.saturating_add(GIVE_UP_AFTER_SECONDS)).then_some(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_an_hour() {
        let waits: Vec<i64> = (1..=9)
            .map(|n| next_attempt_at(0, n, 0).expect("retried"))
            .collect();
        assert_eq!(waits, [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]);
        assert_eq!(next_attempt_at(0, 1000, 0), Some(3600));
    }

    #[test]
    fn gives_up_a_day_after_queueing() {
        let day = GIVE_UP_AFTER_SECONDS;
        assert_eq!(next_attempt_at(0, 3, day - 3600), Some(day - 3480));
        assert_eq!(next_attempt_at(0, 20, day - 3600), Some(day));
        assert_eq!(next_attempt_at(0, 20, day - 3599), None);
        assert_eq!(next_attempt_at(0, 1, day), None);
    }
}
