//! Crash-loop back-off: a function whose init keeps failing is not started again on every
//! invocation.
//!
//! Without it, a function whose init fails (it throws, exits, or overruns its `init_timeout`)
//! costs a process start and a whole init for every invocation that reaches it: under load a
//! fork storm that answers nothing but the same error, and up to `init_timeout` of waiting
//! for each caller. As Kubernetes' `CrashLoopBackOff` does for containers, after repeated
//! failures the next start waits a delay that doubles with each failure, and invocations
//! that arrive meanwhile fail at once with the last init error instead of starting a process.
//!
//! The numbers ([`CrashLoopPolicy::default`]) and why:
//! - **Back-off from the 2nd failed init in a row.** The first failure is not delayed: the
//!   next invocation starts a fresh process at once, as Lambda retries init on the next
//!   invocation, so a one-off failure (a database that was down for a moment) costs its own
//!   invocation only.
//! - **1 s, then doubling: 1, 2, 4, ... s.** Short enough that a developer who has just fixed the
//!   code waits about a second after the first failures; Kubernetes starts at 10 s, for
//!   services that restart rarely.
//! - **At most 5 minutes**, Kubernetes' cap: a function broken for good costs one start every
//!   5 minutes.
//! - **One start at a time once the delay is over** (half-open, as a circuit breaker): an
//!   invocation arriving while that start runs is refused as during the delay, so a burst at
//!   the end of a delay starts one process, not `max_instances`.
//! - **One successful init resets it.** Warm instances keep serving throughout: only new
//!   starts are gated. Gated starts include the `min_instances` refills of the pool.
//!
//! A refused invocation is an [`InvokeError::InitFailed`] (`FunctionInitError`, retryable)
//! with its [`BackOff`] set, the last init's error type and message, and the Lambda error type
//! [`BACKOFF_ERROR_TYPE`] (which its invocation record carries). Entering or extending a
//! back-off writes one `[gust]` line to the function's stderr (stored with its logs, printed
//! by `gust up` at warn), and the first good start after one a line on its stdout (info);
//! refused invocations write none, so a busy caller cannot flood the log.

use crate::error::InvokeError;
use std::time::{Duration, Instant};

/// The Lambda error type of an invocation refused by the back-off (`Gust.` for Gust's own).
pub const BACKOFF_ERROR_TYPE: &str = "Gust.CrashLoopBackOff";

/// When a function whose inits fail may start again. Machine-wide
/// ([`ExecutorConfig`](crate::ExecutorConfig)); tests shorten the delays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrashLoopPolicy {
    /// Failed inits in a row that start the back-off (at least 1).
    pub threshold: u32,
    /// The wait after `threshold` failures; it doubles with each further failure.
    pub first_delay: Duration,
    pub max_delay: Duration,
}

impl Default for CrashLoopPolicy {
    fn default() -> Self {
        Self {
            threshold: 2,
            first_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(300),
        }
    }
}

impl CrashLoopPolicy {
    /// How long the next start waits after `failures` failed inits in a row.
    pub fn delay(&self, failures: u32) -> Duration {
        if failures < self.threshold.max(1) {
            return Duration::ZERO;
        }
        let doublings = (failures - self.threshold.max(1)).min(31);
        self.first_delay.saturating_mul(1u32 << doublings).min(self.max_delay)
    }
}

/// Why an invocation was refused without a start: carried by [`InvokeError::InitFailed`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackOff {
    /// Failed inits in a row so far.
    pub failures: u32,
    /// When the next start may be tried; zero while one is under way.
    pub retry_in: Duration,
}

impl std::fmt::Display for BackOff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "in crash-loop back-off after {} failed inits in a row; ",
            self.failures
        )?;
        if self.retry_in.is_zero() {
            f.write_str("a new start is under way")
        } else {
            write!(f, "the next start is in {}", secs(self.retry_in))
        }
    }
}

/// `1.5s`, `40s`, `20ms`: a delay as people read it.
pub(crate) fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else if s >= 10.0 {
        format!("{s:.0}s")
    } else if s >= 0.1 {
        format!("{s:.1}s")
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// What a settled start changed, for the one log line it is worth.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Change {
    /// The function entered or stays in back-off: no start for `delay`.
    BackedOff { failures: u32, delay: Duration },
    /// A start succeeded after `failures` failed inits in a row (in back-off).
    Recovered { failures: u32 },
}

/// One function's crash-loop state, kept in its pool's state (under its lock).
#[derive(Debug)]
pub(crate) struct CrashLoop {
    policy: CrashLoopPolicy,
    failures: u32,
    /// The last failed init's error type and message.
    last: Option<(String, String)>,
    /// No start before this.
    until: Option<Instant>,
    /// The one start let through after a delay has not finished yet.
    probing: bool,
}

impl CrashLoop {
    pub fn new(policy: CrashLoopPolicy) -> Self {
        Self {
            policy,
            failures: 0,
            last: None,
            until: None,
            probing: false,
        }
    }

    fn backing_off(&self) -> bool {
        self.failures >= self.policy.threshold.max(1)
    }

    /// Whether a start may begin now: `Ok(probe)` (a probe is the one start after a delay and
    /// must be settled with `probe = true`), or the refusal to answer instead.
    pub fn admit(&mut self, now: Instant, function: &str) -> Result<bool, InvokeError> {
        if !self.backing_off() {
            return Ok(false);
        }
        let until = self.until.unwrap_or(now);
        if !self.probing && now >= until {
            self.probing = true;
            return Ok(true);
        }
        let (error_type, message) = self.last.clone().unwrap_or_default();
        Err(InvokeError::InitFailed {
            function: function.to_string(),
            error_type,
            message,
            backoff: Some(BackOff {
                failures: self.failures,
                retry_in: until.saturating_duration_since(now),
            }),
        })
    }

    /// A start's init failed.
    pub fn failed(&mut self, probe: bool, now: Instant, error_type: &str, message: &str) -> Option<Change> {
        if probe {
            self.probing = false;
        }
        self.failures = self.failures.saturating_add(1);
        self.last = Some((error_type.to_string(), message.to_string()));
        if !self.backing_off() {
            return None;
        }
        let delay = self.policy.delay(self.failures);
        self.until = Some(now + delay);
        Some(Change::BackedOff {
            failures: self.failures,
            delay,
        })
    }

    /// A start succeeded: the back-off is over.
    pub fn succeeded(&mut self) -> Option<Change> {
        let was = self.backing_off().then_some(self.failures);
        *self = Self::new(self.policy);
        was.map(|failures| Change::Recovered { failures })
    }

    /// A start ended without an init verdict (the process could not be spawned, or the start
    /// was cancelled): a probe gives its turn back, nothing is counted.
    pub fn abandoned(&mut self, probe: bool) {
        if probe {
            self.probing = false;
        }
    }

    /// When a start may be tried next: `None` while a probe runs (its end wakes the pool),
    /// else now or the end of the delay.
    pub fn next_start(&self, now: Instant) -> Option<Instant> {
        if !self.backing_off() {
            return Some(now);
        }
        if self.probing {
            return None;
        }
        Some(self.until.map_or(now, |u| u.max(now)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn the_delay_starts_at_the_threshold_doubles_and_is_capped() {
        let p = CrashLoopPolicy::default();
        let delays: Vec<u64> = (0..=12).map(|n| p.delay(n).as_secs()).collect();
        assert_eq!(delays, [0, 0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(p.delay(u32::MAX), p.max_delay, "no overflow however long it fails");
        let eager = CrashLoopPolicy {
            threshold: 1,
            first_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(250),
        };
        assert_eq!(eager.delay(0), Duration::ZERO);
        assert_eq!(eager.delay(1), Duration::from_millis(100));
        assert_eq!(eager.delay(2), Duration::from_millis(200));
        assert_eq!(eager.delay(3), Duration::from_millis(250));
        let zero = CrashLoopPolicy { threshold: 0, ..eager };
        assert_eq!(zero.delay(0), Duration::ZERO, "a threshold of 0 means 1");
    }

    #[test]
    fn the_first_failure_is_not_delayed_and_the_second_starts_the_back_off() {
        let mut c = CrashLoop::new(CrashLoopPolicy::default());
        let t0 = Instant::now();
        assert!(!c.admit(t0, "f").unwrap());
        assert_eq!(c.failed(false, t0, "Error", "db down"), None, "no back-off yet");
        assert!(!c.admit(t0, "f").unwrap(), "the next start is not delayed");
        assert_eq!(
            c.failed(false, t0, "Error", "db still down"),
            Some(Change::BackedOff { failures: 2, delay: S })
        );
        let refused = c.admit(t0 + S / 4, "f").unwrap_err();
        let InvokeError::InitFailed {
            error_type,
            message,
            backoff: Some(b),
            ..
        } = &refused
        else {
            panic!("{refused:?}")
        };
        assert_eq!((error_type.as_str(), message.as_str()), ("Error", "db still down"));
        assert_eq!(
            b,
            &BackOff {
                failures: 2,
                retry_in: S * 3 / 4
            }
        );
        assert_eq!(refused.code(), "FunctionInitError");
        assert_eq!(refused.lambda_error_type(), BACKOFF_ERROR_TYPE);
        assert_eq!(refused.retry_after(), Some(S * 3 / 4));
        assert!(refused.retryable());
        let text = refused.to_string();
        assert!(
            text.contains("in crash-loop back-off after 2 failed inits in a row; the next start is in 0.8s"),
            "{text}"
        );
        assert!(text.contains("Error: db still down"), "{text}");
        assert_eq!(c.next_start(t0), Some(t0 + S));
    }

    #[test]
    fn after_the_delay_one_start_is_let_through_and_its_failure_doubles_the_delay() {
        let mut c = CrashLoop::new(CrashLoopPolicy::default());
        let t0 = Instant::now();
        c.failed(false, t0, "E", "1");
        c.failed(false, t0, "E", "2");
        let t1 = t0 + S;
        assert!(c.admit(t1, "f").unwrap(), "the probe");
        let during = c.admit(t1, "f").unwrap_err();
        assert!(during.to_string().contains("a new start is under way"), "{during}");
        assert_eq!(c.next_start(t1), None, "the probe's end wakes the pool");
        // A start admitted before the back-off ends after it: it counts, the probe stays.
        c.failed(false, t1, "E", "late");
        assert!(c.admit(t1 + S * 10, "f").is_err(), "still one probe at a time");
        assert_eq!(
            c.failed(true, t1, "E", "probe"),
            Some(Change::BackedOff {
                failures: 4,
                delay: S * 4
            })
        );
        assert!(c.admit(t1 + S * 3, "f").is_err());
        assert!(c.admit(t1 + S * 4, "f").unwrap());
        // A probe that never reached init (spawn failed, cancelled) gives its turn back.
        c.abandoned(true);
        assert!(c.admit(t1 + S * 4, "f").unwrap());
        assert_eq!(c.succeeded(), Some(Change::Recovered { failures: 4 }));
        assert!(!c.admit(t1 + S * 4, "f").unwrap(), "reset");
        c.failed(false, t1, "E", "once");
        assert_eq!(c.succeeded(), None, "a single failure was no back-off");
        assert_eq!(c.failures, 0);
    }
}
