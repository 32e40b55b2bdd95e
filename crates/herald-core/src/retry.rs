//! Retry arithmetic for deliveries: how an attempt's outcome is classified and when (or
//! whether) the next attempt happens. Pure functions; the delivery engine supplies the
//! clock and the random jitter.

use std::time::Duration;

use crate::subscription::RetryPolicy;
use crate::Millis;

/// What an attempt's result means for the delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    /// Failed, may be tried again; `retry_after` is the receiver's hint (429/503).
    Retryable {
        retry_after: Option<Duration>,
    },
    /// Failed in a way another try cannot fix (e.g. 400, 404) or the receiver asked to stop.
    Final,
}

/// Classify an HTTP answer. Only 2xx is success; `abort` is the receiver's
/// `webhook-delivery: abort-message` header.
pub fn classify(
    status: u16,
    non_retryable: &[u16],
    abort: bool,
    retry_after: Option<Duration>,
) -> Outcome {
    if (200..300).contains(&status) {
        Outcome::Delivered
    } else if abort || non_retryable.contains(&status) {
        Outcome::Final
    } else if status == 429 || status == 503 {
        Outcome::Retryable { retry_after }
    } else {
        Outcome::Retryable { retry_after: None }
    }
}

/// Parse a `Retry-After` value: delay-seconds or an HTTP date (relative to `now`).
pub fn parse_retry_after(value: &str, now: std::time::SystemTime) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate_parse(v)?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

fn httpdate_parse(v: &str) -> Option<std::time::SystemTime> {
    chrono::DateTime::parse_from_rfc2822(v)
        .ok()
        .map(|d| std::time::UNIX_EPOCH + Duration::from_secs(d.timestamp().max(0) as u64))
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    RetryAt(Millis),
    /// No attempts or age left: dead-letter.
    Exhausted,
}

/// After `attempts_made` failed attempts (>= 1) of a delivery created at `created_at`,
/// decide the next one. `jitter_unit` is a random number in [-1, 1] (the caller's rng).
pub fn next_attempt(
    policy: &RetryPolicy,
    attempts_made: u32,
    created_at: Millis,
    now: Millis,
    retry_after: Option<Duration>,
    jitter_unit: f64,
) -> Next {
    if attempts_made >= policy.max_attempts() {
        return Next::Exhausted;
    }
    let base = policy.delay_before_attempt(attempts_made + 1);
    let jitter = policy.jitter.clamp(0.0, 1.0) * jitter_unit.clamp(-1.0, 1.0);
    let jittered =
        Duration::try_from_secs_f64(base.as_secs_f64() * (1.0 + jitter)).unwrap_or(Duration::MAX);
    let delay = match retry_after {
        Some(hint) => jittered.max(hint.min(policy.retry_after_max)),
        None => jittered,
    };
    let at = now.saturating_add(delay.as_millis().min(i64::MAX as u128) as i64);
    if let Some(max_age) = policy.max_age {
        if at > created_at.saturating_add(max_age.as_millis().min(i64::MAX as u128) as i64) {
            return Next::Exhausted;
        }
    }
    Next::RetryAt(at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::subscription::Backoff;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn classifies_statuses() {
        let nr = [400, 401, 403, 404, 413];
        assert_eq!(classify(204, &nr, false, None), Outcome::Delivered);
        assert_eq!(
            classify(302, &nr, false, None),
            Outcome::Retryable { retry_after: None }
        );
        assert_eq!(classify(404, &nr, false, None), Outcome::Final);
        assert_eq!(classify(500, &nr, true, None), Outcome::Final);
        assert_eq!(
            classify(429, &nr, false, Some(secs(3))),
            Outcome::Retryable {
                retry_after: Some(secs(3))
            }
        );
        assert_eq!(
            classify(500, &nr, false, Some(secs(3))),
            Outcome::Retryable { retry_after: None }
        );
    }

    #[test]
    fn default_schedule_is_svix_like() {
        let p = RetryPolicy::default();
        assert_eq!(p.max_attempts(), 8);
        let expected = [5, 300, 1800, 7200, 18000, 36000, 36000];
        for (i, s) in expected.iter().enumerate() {
            let attempts_made = i as u32 + 1;
            assert_eq!(
                next_attempt(&p, attempts_made, 0, 0, None, 0.0),
                Next::RetryAt(*s * 1000)
            );
        }
        assert_eq!(next_attempt(&p, 8, 0, 0, None, 0.0), Next::Exhausted);
    }

    #[test]
    fn jitter_stays_within_bounds() {
        let p = RetryPolicy::default();
        let Next::RetryAt(hi) = next_attempt(&p, 1, 0, 0, None, 1.0) else {
            panic!()
        };
        let Next::RetryAt(lo) = next_attempt(&p, 1, 0, 0, None, -1.0) else {
            panic!()
        };
        assert_eq!((lo, hi), (4500, 5500));
    }

    #[test]
    fn exponential_backoff_is_capped() {
        let p = RetryPolicy {
            backoff: Backoff::Exponential {
                initial: secs(1),
                multiplier: 2.0,
                max: secs(10),
            },
            max_attempts: Some(10),
            jitter: 0.0,
            ..RetryPolicy::default()
        };
        let delays: Vec<_> = (1..10)
            .map(|n| match next_attempt(&p, n, 0, 0, None, 0.0) {
                Next::RetryAt(at) => at / 1000,
                Next::Exhausted => -1,
            })
            .collect();
        assert_eq!(delays, [1, 2, 4, 8, 10, 10, 10, 10, 10]);
    }

    #[test]
    fn retry_after_is_honoured_up_to_its_cap() {
        let p = RetryPolicy {
            jitter: 0.0,
            retry_after_max: secs(60),
            ..RetryPolicy::default()
        };
        assert_eq!(
            next_attempt(&p, 1, 0, 0, Some(secs(30)), 0.0),
            Next::RetryAt(30_000)
        );
        assert_eq!(
            next_attempt(&p, 1, 0, 0, Some(secs(3600)), 0.0),
            Next::RetryAt(60_000)
        );
        assert_eq!(
            next_attempt(&p, 1, 0, 0, Some(secs(1)), 0.0),
            Next::RetryAt(5_000)
        );
    }

    #[test]
    fn max_age_ends_retries() {
        let p = RetryPolicy {
            jitter: 0.0,
            max_age: Some(secs(60)),
            ..RetryPolicy::default()
        };
        assert_eq!(next_attempt(&p, 1, 0, 0, None, 0.0), Next::RetryAt(5_000));
        assert_eq!(next_attempt(&p, 2, 0, 0, None, 0.0), Next::Exhausted);
    }

    #[test]
    fn huge_delays_saturate_instead_of_panicking() {
        let huge = Duration::from_secs(u64::MAX / 2);
        let p = RetryPolicy {
            backoff: Backoff::Schedule(vec![Duration::ZERO, huge]),
            jitter: 1.0,
            max_age: Some(huge),
            ..RetryPolicy::default()
        };
        assert!(
            matches!(next_attempt(&p, 1, 0, 0, None, 1.0), Next::RetryAt(at) if at == i64::MAX)
        );
        let e = RetryPolicy {
            backoff: Backoff::Exponential {
                initial: huge,
                multiplier: 100.0,
                max: huge,
            },
            max_attempts: Some(50),
            ..RetryPolicy::default()
        };
        assert!(matches!(
            next_attempt(&e, 40, 0, 0, None, 1.0),
            Next::RetryAt(_)
        ));
    }

    #[test]
    fn parses_retry_after_forms() {
        let now = std::time::UNIX_EPOCH + secs(1_000_000_000);
        assert_eq!(parse_retry_after("120", now), Some(secs(120)));
        assert_eq!(
            parse_retry_after("Sun, 09 Sep 2001 01:46:40 GMT", now),
            Some(secs(0))
        );
        assert_eq!(
            parse_retry_after("Sun, 09 Sep 2001 01:47:40 GMT", now),
            Some(secs(60))
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
