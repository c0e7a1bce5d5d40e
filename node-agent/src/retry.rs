//! Back-off between retries of the control plane (registration, heartbeats, acquiring work,
//! delivering the outbox): exponential, capped, with *full jitter* — each delay is uniform in
//! `0..=min(cap, base × 2^failures)` — so a farm that lost its control plane does not come back
//! in lock-step when it restarts (AWS Architecture Blog, "Exponential Backoff And Jitter").

use std::time::Duration;

/// The back-off state of one retry loop.
#[derive(Clone, Debug)]
pub(crate) struct Backoff {
    base: Duration,
    cap: Duration,
    failures: u32,
}

impl Backoff {
    /// Starts at `base`, doubling per failure, never above `cap`.
    pub(crate) fn new(base: Duration, cap: Duration) -> Self {
        Self { base, cap, failures: 0 }
    }

    /// The delay before the next try after one more failure.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let delay = full_jitter(self.base, self.cap, self.failures, random_unit());
        self.failures = self.failures.saturating_add(1);
        delay
    }

    /// A success: the next failure starts from `base` again.
    pub(crate) fn reset(&mut self) {
        self.failures = 0;
    }
}

/// The delay after `failures` earlier failures: `unit` (in 0..1) of the ceiling
/// `min(cap, base × 2^failures)`.
pub(crate) fn full_jitter(base: Duration, cap: Duration, failures: u32, unit: f64) -> Duration {
    let ceiling = base.saturating_mul(2_u32.saturating_pow(failures.min(31))).min(cap);
    ceiling.mul_f64(unit.clamp(0.0, 1.0))
}

/// A uniform value in 0..1 (from a random UUID: no extra dependency for this). The low 53 bits
/// of a v4 UUID are random (its fixed version and variant bits are above them).
pub(crate) fn random_unit() -> f64 {
    const MANTISSA_BITS: u32 = 53;
    let random_bits = (uuid::Uuid::new_v4().as_u128() as u64) & ((1_u64 << MANTISSA_BITS) - 1);
    random_bits as f64 / (1_u64 << MANTISSA_BITS) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: Duration = Duration::from_millis(500);
    const CAP: Duration = Duration::from_secs(10);

    /// The ceiling doubles per failure up to the cap; the jitter picks a point from zero to it.
    #[test]
    fn ceiling_doubles_up_to_the_cap() {
        let top = |failures| full_jitter(BASE, CAP, failures, 1.0);
        assert_eq!(top(0), BASE);
        assert_eq!(top(1), Duration::from_secs(1));
        assert_eq!(top(4), Duration::from_secs(8));
        assert_eq!(top(5), CAP);
        assert_eq!(top(u32::MAX), CAP, "no overflow however many failures");
        assert_eq!(full_jitter(BASE, CAP, 3, 0.0), Duration::ZERO);
        assert_eq!(full_jitter(BASE, CAP, 3, 0.5), Duration::from_secs(2));
        assert_eq!(
            full_jitter(BASE, CAP, 3, 7.0),
            Duration::from_secs(4),
            "unit is clamped"
        );
    }

    /// Successive delays stay under the growing ceiling, are spread (not one fixed value, which
    /// is what made a farm reconnect in lock-step), and start over after a reset.
    #[test]
    fn delays_are_jittered_capped_and_reset() {
        let mut backoff = Backoff::new(BASE, CAP);
        let delays: Vec<Duration> = (0..200).map(|_| backoff.next_delay()).collect();
        for (failures, delay) in delays.iter().enumerate() {
            let ceiling = full_jitter(BASE, CAP, u32::try_from(failures).unwrap(), 1.0);
            assert!(
                *delay <= ceiling,
                "{delay:?} above {ceiling:?} after {failures} failures"
            );
        }
        let capped = &delays[10..];
        let distinct: std::collections::BTreeSet<Duration> = capped.iter().copied().collect();
        assert!(distinct.len() > 100, "full jitter spreads the delays: {distinct:?}");
        assert!(
            capped.iter().any(|delay| *delay < CAP / 4) && capped.iter().any(|delay| *delay > CAP * 3 / 4),
            "delays cover the whole range below the cap"
        );
        backoff.reset();
        assert!(backoff.next_delay() <= BASE);
    }

    /// The random unit stays in 0..1.
    #[test]
    fn random_unit_is_in_range() {
        for _ in 0..1000 {
            let unit = random_unit();
            assert!((0.0..1.0).contains(&unit), "{unit}");
        }
    }
}
