//! Sign-in throttling against password guessing (RFC 6749 §10.10, OWASP's authentication
//! guidance): failures are counted per account name and per client address in the store,
//! so every replica sees every failure, and each failure beyond a free allowance doubles
//! the wait before the next attempt, up to a ceiling. An unknown account name is counted
//! exactly like a known one, so throttling reveals nothing about which names exist.

use crate::store::SignInFailures;

/// How failed sign-ins slow down further attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottlePolicy {
    /// Failures per account name allowed without any wait.
    pub account_free_failures: i64,
    /// Failures per client address allowed without any wait (higher: many people can
    /// share one address behind a NAT). 0: addresses are not counted.
    pub address_free_failures: i64,
    /// The first wait, in seconds; each further failure doubles it.
    pub base_delay: i64,
    /// The longest wait, in seconds.
    pub max_delay: i64,
    /// Seconds without a failure after which the count starts again.
    pub window: i64,
}

impl Default for ThrottlePolicy {
    fn default() -> Self {
        Self {
            account_free_failures: 5,
            address_free_failures: 20,
            base_delay: 1,
            max_delay: 900,
            window: 3600,
        }
    }
}

/// The subject a count belongs to, as stored.
pub fn account_subject(username: &str) -> String {
    format!("account:{}", crate::user::username_key(username))
}

/// The subject of a trusted device: a browser that signed in to one account before, and
/// presents the signed cookie it got then. It has a count of its own, with the account's
/// allowance, so that failures elsewhere cannot lock its owner out (OWASP's device
/// cookies). Only a hash of the device's id is kept.
pub fn device_subject(device_id: &str) -> String {
    format!(
        "device:{}",
        &crate::secret::hash_for_storage(device_id)[..22]
    )
}

/// The subject of a client address.
pub fn address_subject(address: &str) -> String {
    format!("address:{}", address_key(address))
}

/// A client address as throttles count it: an IPv4 address whole, an IPv6 address by its
/// /64 (one host usually holds a whole /64, and would otherwise get a fresh count per
/// address). Anything that does not parse is taken as it is.
pub fn address_key(address: &str) -> String {
    match address.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
        Ok(ip) => ip.to_string(),
        Err(_) => address.to_string(),
    }
}

impl ThrottlePolicy {
    /// Whether failures are counted per client address at all.
    pub fn counts_addresses(&self) -> bool {
        self.address_free_failures > 0
    }

    /// The failures a subject may have without waiting.
    pub fn free_failures(&self, subject: &str) -> i64 {
        if subject.starts_with("address:") {
            self.address_free_failures
        } else {
            self.account_free_failures
        }
    }

    /// The wait after `failures` failures of a subject with `free` free failures.
    pub fn delay(&self, failures: i64, free: i64) -> i64 {
        if failures < free.max(1) {
            return 0;
        }
        let doublings = (failures - free.max(1)).clamp(0, 30) as u32;
        self.base_delay
            .max(1)
            .saturating_mul(1_i64 << doublings)
            .min(self.max_delay)
    }

    /// Seconds to wait before the next attempt may be checked, or 0. Times are whole
    /// seconds and the last failure may have come at the end of its second, so the wait
    /// runs to the end of second `last failure + delay`: never shorter than the delay.
    pub fn wait(&self, counts: &[SignInFailures], now: i64) -> i64 {
        counts
            .iter()
            .filter(|c| c.last_failure_at >= now - self.window)
            .map(
                |c| match self.delay(c.failures, self.free_failures(&c.subject)) {
                    0 => 0,
                    delay => (c.last_failure_at + delay + 1 - now).max(0),
                },
            )
            .max()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod address_tests {
    use super::address_key;

    #[test]
    fn ipv6_addresses_count_by_their_64() {
        assert_eq!(address_key("203.0.113.9"), "203.0.113.9");
        assert_eq!(address_key("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64");
        assert_eq!(
            address_key("2001:db8:1:2:ffff::1"),
            address_key("2001:db8:1:2::7")
        );
        assert_ne!(
            address_key("2001:db8:1:3::1"),
            address_key("2001:db8:1:2::1")
        );
        assert_eq!(address_key("::ffff:192.0.2.1"), "192.0.2.1");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(subject: &str, failures: i64, last: i64) -> SignInFailures {
        SignInFailures {
            subject: subject.into(),
            failures,
            first_failure_at: 0,
            last_failure_at: last,
        }
    }

    #[test]
    fn delays_start_after_the_free_failures_and_double_to_the_ceiling() {
        let policy = ThrottlePolicy::default();
        let account = |n| policy.delay(n, policy.account_free_failures);
        assert_eq!(
            (1..=8).map(account).collect::<Vec<_>>(),
            [0, 0, 0, 0, 1, 2, 4, 8]
        );
        assert_eq!(account(40), 900);
        assert_eq!(account(i64::MAX), 900);
        assert_eq!(policy.delay(19, policy.address_free_failures), 0);
        assert_eq!(policy.delay(20, policy.address_free_failures), 1);
    }

    #[test]
    fn the_longest_wait_of_any_subject_applies_and_old_counts_are_ignored() {
        let policy = ThrottlePolicy::default();
        let now = 10_000;
        let counts = [
            count("account:alice", 7, now - 1),
            count("address:10.0.0.1", 21, now),
        ];
        assert_eq!(policy.wait(&counts, now), 4);
        assert_eq!(policy.wait(&counts, now + 3), 1);
        assert_eq!(policy.wait(&counts, now + 4), 0);
        let stale = [count("account:alice", 50, now - 3601)];
        assert_eq!(policy.wait(&stale, now), 0);
        assert_eq!(account_subject(" Alice "), "account:alice");
    }
}
