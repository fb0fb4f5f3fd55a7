//! The per-webhook rate limit: one token bucket per webhook, checked before a request's
//! body is read, so that a sender past its rate costs neither memory nor a row.
//!
//! Buckets live in memory, behind a std mutex held only for a few arithmetic operations
//! and never across an `.await`. A bucket that has refilled is the same as no bucket, so
//! full ones are dropped from time to time: the map holds only webhooks that sent lately.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use crate::domain::ids::WebhookId;

pub struct RateLimiter {
    /// Tokens added per second; `None` when the limit is off.
    per_second: Option<f64>,
    /// A bucket's size: how many requests may arrive at once after a quiet spell.
    burst: f64,
    buckets: Mutex<Buckets>,
}

struct Buckets {
    map: HashMap<WebhookId, Bucket>,
    /// The size at which full buckets are next swept out.
    sweep_at: usize,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The longest wait ever announced.
const MAX_WAIT: Duration = Duration::from_secs(86_400);

/// Fewest buckets before a sweep is worth it.
const MIN_SWEEP: usize = 1024;

impl RateLimiter {
    /// `per_second` of 0 turns the limit off; `burst` is at least 1.
    pub fn new(per_second: f64, burst: u32) -> Self {
        Self {
            per_second: (per_second > 0.0 && per_second.is_finite()).then_some(per_second),
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(Buckets {
                map: HashMap::new(),
                sweep_at: MIN_SWEEP,
            }),
        }
    }

    /// Takes a token for `webhook`, or says how long until one is there.
    pub fn check(&self, webhook: &WebhookId) -> Result<(), Duration> {
        self.check_at(webhook, Instant::now())
    }

    pub fn check_at(&self, webhook: &WebhookId, now: Instant) -> Result<(), Duration> {
        let Some(rate) = self.per_second else {
            return Ok(());
        };
        // A poisoned lock only means another request panicked mid-update of plain numbers.
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.map.len() >= buckets.sweep_at {
            let burst = self.burst;
            buckets
                .map
                .retain(|_, b| b.tokens + elapsed(b.at, now) * rate < burst);
            buckets.sweep_at = (buckets.map.len() * 2).max(MIN_SWEEP);
        }
        let bucket = buckets.map.entry(webhook.clone()).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        bucket.tokens = (bucket.tokens + elapsed(bucket.at, now) * rate).min(self.burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            // Past a day the answer is "much later" either way (and a huge wait would
            // not fit a `Duration`).
            Err(Duration::try_from_secs_f64((1.0 - bucket.tokens) / rate)
                .map_or(MAX_WAIT, |wait| wait.min(MAX_WAIT)))
        }
    }
}

impl RateLimiter {
    /// Gives back a token taken for `webhook` by a request that turned out not to count.
    pub fn refund(&self, webhook: &WebhookId) {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(bucket) = buckets.map.get_mut(webhook) {
            bucket.tokens = (bucket.tokens + 1.0).min(self.burst);
        }
    }
}

fn elapsed(from: Instant, to: Instant) -> f64 {
    to.saturating_duration_since(from).as_secs_f64()
}

/// `Retry-After` is in whole seconds: round up, so that a sender who waits that long finds
/// a token, and never say 0.
pub fn retry_after_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_the_sustained_rate() {
        let limiter = RateLimiter::new(2.0, 3);
        let id = WebhookId::generate();
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.check_at(&id, t0), Ok(()));
        }
        let wait = limiter.check_at(&id, t0).unwrap_err();
        assert_eq!(wait, Duration::from_millis(500));
        assert_eq!(retry_after_secs(wait), 1);
        // Half a second later one token is back, and only one.
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!(limiter.check_at(&id, t1), Ok(()));
        assert!(limiter.check_at(&id, t1).is_err());
        // A long quiet spell refills to the burst, not beyond.
        let t2 = t1 + Duration::from_secs(3600);
        for _ in 0..3 {
            assert_eq!(limiter.check_at(&id, t2), Ok(()));
        }
        assert!(limiter.check_at(&id, t2).is_err());
    }

    #[test]
    fn a_refunded_token_can_be_taken_again() {
        let limiter = RateLimiter::new(1.0, 2);
        let id = WebhookId::generate();
        let t = Instant::now();
        assert_eq!(limiter.check_at(&id, t), Ok(()));
        assert_eq!(limiter.check_at(&id, t), Ok(()));
        assert!(limiter.check_at(&id, t).is_err());
        limiter.refund(&id);
        assert_eq!(limiter.check_at(&id, t), Ok(()));
        // Never beyond the burst.
        for _ in 0..5 {
            limiter.refund(&id);
        }
        assert_eq!(limiter.check_at(&id, t), Ok(()));
        assert_eq!(limiter.check_at(&id, t), Ok(()));
        assert!(limiter.check_at(&id, t).is_err());
    }

    #[test]
    fn webhooks_have_buckets_of_their_own() {
        let limiter = RateLimiter::new(1.0, 1);
        let (a, b) = (WebhookId::generate(), WebhookId::generate());
        let t = Instant::now();
        assert_eq!(limiter.check_at(&a, t), Ok(()));
        assert!(limiter.check_at(&a, t).is_err());
        assert_eq!(limiter.check_at(&b, t), Ok(()));
    }

    #[test]
    fn zero_turns_the_limit_off() {
        let limiter = RateLimiter::new(0.0, 1);
        let id = WebhookId::generate();
        let t = Instant::now();
        for _ in 0..10_000 {
            assert_eq!(limiter.check_at(&id, t), Ok(()));
        }
    }

    #[test]
    fn slow_rates_wait_whole_seconds_rounded_up() {
        let limiter = RateLimiter::new(0.25, 1);
        let id = WebhookId::generate();
        let t = Instant::now();
        assert_eq!(limiter.check_at(&id, t), Ok(()));
        let wait = limiter
            .check_at(&id, t + Duration::from_millis(100))
            .unwrap_err();
        assert_eq!(retry_after_secs(wait), 4);
    }

    #[test]
    fn refilled_buckets_are_swept_out() {
        let limiter = RateLimiter::new(1000.0, 1);
        let t = Instant::now();
        for _ in 0..MIN_SWEEP {
            assert_eq!(limiter.check_at(&WebhookId::generate(), t), Ok(()));
        }
        let later = t + Duration::from_secs(1);
        assert_eq!(limiter.check_at(&WebhookId::generate(), later), Ok(()));
        let buckets = limiter.buckets.lock().unwrap();
        assert_eq!(buckets.map.len(), 1);
        assert_eq!(buckets.sweep_at, MIN_SWEEP);
    }
}
