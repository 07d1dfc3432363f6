//! Time as a verifier reads it: the system's by default, or a clock a test moves by hand.

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Where a [`crate::Verifier`] reads the time. Both readings must move together: the
/// verifier compares tokens' `exp` and `nbf` with [`Clock::unix_time`], and measures the
/// key cache's lifetime and the refetch cool-down with [`Clock::instant`].
pub trait Clock: Send + Sync + 'static {
    /// Seconds since the Unix epoch.
    fn unix_time(&self) -> i64;
    /// A monotonic reading, for intervals.
    fn instant(&self) -> Instant;
}

/// The system's clocks: `SystemTime` for token times, `Instant` for intervals. The default.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn unix_time(&self) -> i64 {
        unix_seconds(SystemTime::now())
    }
    fn instant(&self) -> Instant {
        Instant::now()
    }
}

/// A clock that stands still until [`ManualClock::advance`] moves it: for tests of expiry,
/// cache lifetimes and cool-downs that should not sleep. It starts at the system's time.
#[derive(Debug)]
pub struct ManualClock {
    unix_start: Duration,
    start: Instant,
    elapsed: Mutex<Duration>,
}

impl ManualClock {
    pub fn new() -> Self {
        Self {
            unix_start: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default(),
            start: Instant::now(),
            elapsed: Mutex::new(Duration::ZERO),
        }
    }

    /// Moves the clock `by` forward.
    pub fn advance(&self, by: Duration) {
        let mut elapsed = match self.elapsed.lock() {
            Ok(elapsed) => elapsed,
            Err(poisoned) => poisoned.into_inner(),
        };
        *elapsed += by;
    }

    fn elapsed(&self) -> Duration {
        match self.elapsed.lock() {
            Ok(elapsed) => *elapsed,
            Err(poisoned) => *poisoned.into_inner(),
        }
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualClock {
    fn unix_time(&self) -> i64 {
        (self.unix_start + self.elapsed()).as_secs() as i64
    }
    fn instant(&self) -> Instant {
        self.start + self.elapsed()
    }
}

/// `Arc<ManualClock>` is a clock too, so that a test keeps a handle to move it.
impl<C: Clock> Clock for std::sync::Arc<C> {
    fn unix_time(&self) -> i64 {
        (**self).unix_time()
    }
    fn instant(&self) -> Instant {
        (**self).instant()
    }
}

fn unix_seconds(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
