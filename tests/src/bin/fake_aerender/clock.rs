//! Sleeping and stopwatches for this std-only program.
//!
//! The workspace bans `std::thread::sleep` and `std::time::Instant` so that async code can pause
//! time; this binary has no runtime and really has to wait, so the ban is lifted here only.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::time::{Duration, Instant};

/// Blocks the calling thread for `millis` milliseconds (no-op for 0).
pub fn sleep_ms(millis: u64) {
    if millis > 0 {
        std::thread::sleep(Duration::from_millis(millis));
    }
}

/// Blocks forever using no CPU (the "hung After Effects" posture).
pub fn sleep_forever() -> ! {
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// Spins forever on one core (the "stuck but busy" posture of nexrender #239).
pub fn burn_forever() -> ! {
    let mut counter: u64 = 0;
    loop {
        counter = std::hint::black_box(counter.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1));
    }
}

/// Measures elapsed wall time since its creation.
pub struct Stopwatch(Instant);

impl Stopwatch {
    pub fn start() -> Self {
        Self(Instant::now())
    }

    pub fn elapsed(&self) -> Duration {
        self.0.elapsed()
    }
}
