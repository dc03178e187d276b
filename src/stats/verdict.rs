//! The rollback verdict (SPEC §3.6): a pure function of the route's
//! `[routes.rollback]` and new's statistics over the window.

use std::time::Duration;

use super::window::Summary;
use crate::config::RollbackConfig;

/// Why new's statistics trip the route, in words an operator reads in the
/// log and `/routes` (`error_rate 12.5% over 60s, 40 attempts > 5%`); `None`
/// while they do not. Fewer than `min_requests` attempts give no verdict.
pub(crate) fn verdict(
    rollback: &RollbackConfig,
    new: &Summary,
    window: Duration,
) -> Option<String> {
    if new.attempts < rollback.min_requests {
        return None;
    }
    let over = format!("{}s", window.as_secs());
    let rate = new.error_rate();
    if rate > rollback.max_error_rate {
        return Some(format!(
            "error_rate {}% over {over}, {} attempts > {}%",
            round2(rate),
            new.attempts,
            round1(rollback.max_error_rate)
        ));
    }
    let max_p95 = rollback.max_p95?;
    let p95 = new.percentile(0.95)?;
    (p95 > max_p95).then(|| {
        format!(
            "p95 {}ms over {over}, {} attempts > {}ms",
            round1(p95.as_secs_f64() * 1000.0),
            new.attempts,
            round1(max_p95.as_secs_f64() * 1000.0)
        )
    })
}

/// To one decimal, printed without a trailing `.0`.
fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// To two decimals, so a rate just over its threshold does not read as equal.
fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::stats::window::Window;

    const WINDOW: Duration = Duration::from_secs(60);

    fn rollback(max_p95: Option<u64>) -> RollbackConfig {
        RollbackConfig {
            window: WINDOW,
            min_requests: 20,
            max_error_rate: 5.0,
            max_p95: max_p95.map(Duration::from_millis),
        }
    }

    /// `attempts` attempts on new, `failures` of them failed, each answered in `latency_ms`.
    fn new_side(attempts: u64, failures: u64, latency_ms: u64) -> Summary {
        let origin = Instant::now();
        let w = Window::new(WINDOW, origin);
        for i in 0..attempts {
            w.record(
                origin,
                i < failures,
                Some(Duration::from_millis(latency_ms)),
            );
        }
        w.summary(origin)
    }

    #[test]
    fn min_requests_guards_both_verdicts() {
        let r = rollback(Some(100));
        assert_eq!(verdict(&r, &new_side(19, 19, 5_000), WINDOW), None);
        assert!(verdict(&r, &new_side(20, 20, 5), WINDOW).is_some());
    }

    #[test]
    fn error_rate_must_exceed_the_threshold() {
        let r = rollback(None);
        // 1 in 20 is exactly 5%: not above it.
        assert_eq!(verdict(&r, &new_side(20, 1, 5), WINDOW), None);
        assert_eq!(
            verdict(&r, &new_side(40, 5, 5), WINDOW).as_deref(),
            Some("error_rate 12.5% over 60s, 40 attempts > 5%")
        );
    }

    #[test]
    fn max_p95() {
        assert_eq!(
            verdict(&rollback(None), &new_side(50, 0, 900), WINDOW),
            None
        );
        assert_eq!(
            verdict(&rollback(Some(500)), &new_side(50, 0, 300), WINDOW),
            None
        );
        let why = verdict(&rollback(Some(500)), &new_side(50, 0, 700), WINDOW).unwrap();
        assert!(why.starts_with("p95 7"), "{why}");
        assert!(why.ends_with("over 60s, 50 attempts > 500ms"), "{why}");
        // Failures without an answer carry no latency: no p95 verdict.
        let origin = Instant::now();
        let w = Window::new(WINDOW, origin);
        for _ in 0..30 {
            w.record(origin, false, None);
        }
        assert_eq!(
            verdict(&rollback(Some(1)), &w.summary(origin), WINDOW),
            None
        );
    }
}
