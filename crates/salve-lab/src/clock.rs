//! Simulated time. The lab runs its own clock that moves `scale` simulated seconds per real
//! second, so a 60-minute CU install takes 6 s at `--time-scale 600`.
//!
//! In a running lab the clock follows tokio's clock, so tests with paused time
//! (`#[tokio::test(start_paused = true)]`) drive it without waiting. The SSH ForceCommand mode,
//! where every command is a new process, follows the wall clock from a recorded origin instead.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

/// Where real elapsed time is measured from.
#[derive(Debug, Clone, Copy)]
enum Base {
    Tokio(tokio::time::Instant),
    Wall(Timestamp),
}

/// A scaled clock: `now() = epoch + real elapsed × scale`.
#[derive(Debug, Clone, Copy)]
pub struct SimClock {
    epoch: Timestamp,
    scale: f64,
    base: Base,
}

/// What is persisted so that later processes continue the same clock.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClockRecord {
    pub epoch: Timestamp,
    pub scale: f64,
    /// Wall-clock moment that corresponds to `epoch`.
    pub wall_origin: Timestamp,
}

impl SimClock {
    /// A clock on tokio time starting now at `epoch`. Must run inside a tokio runtime when
    /// time is paused; otherwise any context works.
    pub fn start(epoch: Timestamp, scale: f64) -> Self {
        Self {
            epoch,
            scale: sanitize(scale),
            base: Base::Tokio(tokio::time::Instant::now()),
        }
    }

    /// A clock on wall time, continuing from a record.
    pub fn resume(record: &ClockRecord) -> Self {
        Self {
            epoch: record.epoch,
            scale: sanitize(record.scale),
            base: Base::Wall(record.wall_origin),
        }
    }

    /// The record a wall-clock continuation needs, as of now.
    pub fn record(&self) -> ClockRecord {
        ClockRecord {
            epoch: self.now(),
            scale: self.scale,
            wall_origin: Timestamp::now(),
        }
    }

    pub fn scale(&self) -> f64 {
        self.scale
    }

    fn real_elapsed(&self) -> Duration {
        match self.base {
            Base::Tokio(start) => start.elapsed(),
            Base::Wall(origin) => {
                Duration::try_from(Timestamp::now().duration_since(origin)).unwrap_or_default()
            }
        }
    }

    /// Simulated now.
    pub fn now(&self) -> Timestamp {
        let sim = self.real_elapsed().mul_f64(self.scale);
        let sim = SignedDuration::try_from(sim).unwrap_or(SignedDuration::MAX);
        self.epoch.saturating_add(sim).unwrap_or(self.epoch)
    }

    /// Real time that `sim` simulated time takes.
    pub fn real(&self, sim: Duration) -> Duration {
        sim.div_f64(self.scale)
    }

    /// Sleep for `sim` simulated time.
    pub async fn sleep(&self, sim: Duration) {
        tokio::time::sleep(self.real(sim)).await;
    }

    /// Sleep until the simulated moment `at` (returns at once if it has passed).
    pub async fn sleep_until(&self, at: Timestamp) {
        let left = at.duration_since(self.now());
        if let Ok(left) = Duration::try_from(left) {
            self.sleep(left).await;
        }
    }
}

fn sanitize(scale: f64) -> f64 {
    if scale.is_finite() && scale > 0.0 {
        scale
    } else {
        1.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn scaled_sleep_moves_simulated_time() {
        let epoch: Timestamp = "2021-03-10T08:00:00Z".parse().unwrap();
        let clock = SimClock::start(epoch, 600.0);
        let real = tokio::time::Instant::now();
        clock.sleep(Duration::from_secs(3600)).await;
        assert_eq!(real.elapsed(), Duration::from_secs(6));
        assert_eq!(
            clock.now(),
            "2021-03-10T09:00:00Z".parse::<Timestamp>().unwrap()
        );
    }

    #[test]
    fn bad_scales_fall_back_to_real_time() {
        let c = SimClock::start(Timestamp::UNIX_EPOCH, f64::NAN);
        assert_eq!(c.scale(), 1.0);
    }
}
