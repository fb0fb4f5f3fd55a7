use std::time::Duration;

/// Waits that double from `first` up to `max`, each shortened by up to a quarter at
/// random so that many clients of one hub do not come back in step.
pub struct Backoff {
    first: Duration,
    next: Duration,
    max: Duration,
}

impl Backoff {
    pub fn new(first: Duration, max: Duration) -> Self {
        let first = first.min(max);
        Self {
            first,
            next: first,
            max,
        }
    }

    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        let jitter = getrandom::u32().unwrap_or(0) % 1000;
        delay.mul_f64(1.0 - f64::from(jitter) / 4000.0)
    }

    pub fn reset(&mut self) {
        self.next = self.first;
    }
}
