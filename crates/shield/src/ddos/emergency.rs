//! Emergency mode: on when the whole gateway is flooded, off again only after a quiet cooldown.
//!
//! Once a second the controller sees how many requests arrived in that second. The threshold
//! is the configured one, or else a learned one: five times the baseline (a slow moving average
//! of calm seconds), never below a floor of 200 requests per second, so a quiet server does not
//! panic at its first busy minute. Over the threshold, or told of a distributed flood, it
//! enters emergency mode at once; it leaves only after `cooldown` seconds in a row under the
//! threshold, so it does not flap while an attack pulses.

/// The learned threshold never goes below this (requests per second).
pub const THRESHOLD_FLOOR: f64 = 200.0;
/// The learned threshold is this many times the calm baseline.
pub const BASELINE_MULTIPLE: f64 = 5.0;

/// A change of mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// Emergency mode starts.
    Enter,
    /// Emergency mode ends.
    Leave,
}

/// The automatic part of emergency mode (pure: seconds passed in).
#[derive(Debug, Clone, PartialEq)]
pub struct EmergencyController {
    configured_threshold: Option<f64>,
    cooldown_s: u64,
    baseline: f64,
    calm_seconds_seen: u64,
    on: bool,
    quiet_for_s: u64,
}

impl EmergencyController {
    /// A controller with a fixed threshold (requests per second) or a learned one (`None`).
    pub fn new(configured_threshold: Option<f64>, cooldown_s: u64) -> Self {
        EmergencyController {
            configured_threshold,
            cooldown_s,
            baseline: 0.0,
            calm_seconds_seen: 0,
            on: false,
            quiet_for_s: 0,
        }
    }

    /// Takes a new fixed threshold (or `None`: learned) and cooldown; what was learned stays.
    pub fn reconfigure(&mut self, configured_threshold: Option<f64>, cooldown_s: u64) {
        self.configured_threshold = configured_threshold;
        self.cooldown_s = cooldown_s;
    }

    /// The threshold in force (requests per second).
    pub fn threshold(&self) -> f64 {
        self.configured_threshold
            .unwrap_or_else(|| (self.baseline * BASELINE_MULTIPLE).max(THRESHOLD_FLOOR))
    }

    /// The learned calm rate (requests per second).
    pub fn baseline(&self) -> f64 {
        self.baseline
    }

    /// Whether emergency mode is on by the controller's judgement.
    pub fn is_on(&self) -> bool {
        self.on
    }

    /// One second passed with `requests` in it; `distributed_flood` when many addresses surge
    /// on one endpoint together.
    pub fn second(&mut self, requests: u64, distributed_flood: bool) -> Option<Transition> {
        let rate = requests as f64;
        let over = rate > self.threshold() || distributed_flood;
        if !over {
            // Only calm seconds teach the baseline, so an attack cannot raise its own bar.
            self.calm_seconds_seen += 1;
            let alpha = if self.calm_seconds_seen < 60 {
                1.0 / self.calm_seconds_seen as f64
            } else {
                1.0 / 600.0
            };
            self.baseline += alpha * (rate - self.baseline);
        }
        match (self.on, over) {
            (false, true) => {
                self.on = true;
                self.quiet_for_s = 0;
                Some(Transition::Enter)
            }
            (true, true) => {
                self.quiet_for_s = 0;
                None
            }
            (true, false) => {
                self.quiet_for_s += 1;
                if self.quiet_for_s >= self.cooldown_s {
                    self.on = false;
                    Some(Transition::Leave)
                } else {
                    None
                }
            }
            (false, false) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enters_over_the_learned_threshold_and_leaves_after_the_cooldown() {
        let mut c = EmergencyController::new(None, 300);
        for _ in 0..120 {
            assert_eq!(c.second(100, false), None);
        }
        assert!((c.baseline() - 100.0).abs() < 1.0);
        assert!((c.threshold() - 500.0).abs() < 5.0);
        assert_eq!(
            c.second(450, false),
            None,
            "busy but under five times the baseline"
        );
        assert_eq!(c.second(2_000, false), Some(Transition::Enter));
        // An attack that pulses does not make it flap.
        for i in 0..1_000 {
            let load = if i % 100 == 0 { 2_000 } else { 100 };
            assert_eq!(c.second(load, false), None, "second {i}");
        }
        assert!(c.is_on());
        assert_eq!(c.second(2_000, false), None, "the attack is still on");
        for _ in 0..299 {
            assert_eq!(c.second(100, false), None);
        }
        assert_eq!(c.second(100, false), Some(Transition::Leave));
    }

    #[test]
    fn the_floor_keeps_a_quiet_server_calm_and_attacks_do_not_teach_the_baseline() {
        let mut c = EmergencyController::new(None, 10);
        for _ in 0..100 {
            c.second(1, false);
        }
        assert_eq!(c.threshold(), THRESHOLD_FLOOR);
        assert_eq!(c.second(150, false), None);
        assert_eq!(c.second(5_000, false), Some(Transition::Enter));
        for _ in 0..100 {
            c.second(5_000, false);
        }
        assert_eq!(
            c.threshold(),
            THRESHOLD_FLOOR,
            "attack seconds are not learned"
        );
    }

    #[test]
    fn a_distributed_flood_or_a_fixed_threshold_enters_too() {
        let mut c = EmergencyController::new(Some(1_000.0), 5);
        assert_eq!(c.second(999, false), None);
        assert_eq!(c.second(10, true), Some(Transition::Enter));
        for _ in 0..4 {
            assert_eq!(c.second(10, false), None);
        }
        assert_eq!(c.second(10, false), Some(Transition::Leave));
        assert_eq!(c.second(1_001, false), Some(Transition::Enter));
    }
}
