use std::time::{Duration, Instant, SystemTime};

use super::{Health, State};
use crate::config::{BackendConfig, HealthConfig, OutlierConfig};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn config(failures: u32, ejection: u64, max: u64) -> BackendConfig {
    let mut config = crate::route::testing::backend("new", 3002);
    config.connect_timeout = ms(100);
    config.timeout = ms(900);
    config.outlier = OutlierConfig {
        consecutive_failures: failures,
        ejection: ms(ejection),
        max_ejection: ms(max),
    };
    config
}

fn fail(health: &Health, times: u32, now: Instant) {
    for _ in 0..times {
        health.record(false, now);
    }
}

#[test]
fn ejects_after_consecutive_failures_only() {
    let t0 = Instant::now();
    let health = Health::new(&config(3, 1000, 10_000), t0);
    fail(&health, 2, t0);
    health.record(true, t0);
    fail(&health, 2, t0);
    assert_eq!(health.state(t0), State::Available);
    assert_eq!(health.consecutive_failures(), 2);
    fail(&health, 1, t0);
    assert_eq!(health.state(t0), State::Ejected);
    assert!(!health.admit(t0 + ms(999)));
    assert_eq!(health.ejections(), 1);
    let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(100);
    assert_eq!(health.ejected_until(t0, wall), Some(wall + ms(1000)));
}

#[test]
fn zero_failures_never_ejects() {
    let t0 = Instant::now();
    let health = Health::new(&config(0, 1000, 10_000), t0);
    fail(&health, 100, t0);
    assert_eq!(health.state(t0), State::Available);
    assert!(health.admit(t0));
}

#[test]
fn half_open_admits_one_trial_and_success_closes() {
    let t0 = Instant::now();
    let health = Health::new(&config(1, 1000, 10_000), t0);
    fail(&health, 1, t0);
    let later = t0 + ms(1000);
    assert_eq!(health.state(later), State::HalfOpen);
    assert!(health.admit(later));
    assert!(!health.admit(later));
    assert!(!health.admit(later + ms(500)));
    health.record(true, later + ms(10));
    assert_eq!(health.state(later), State::Available);
    assert!(health.admit(later) && health.admit(later));
}

#[test]
fn abandoned_trial_frees_its_slot_after_the_lease() {
    let t0 = Instant::now();
    let health = Health::new(&config(1, 1000, 10_000), t0);
    fail(&health, 1, t0);
    assert!(health.admit(t0 + ms(1000)));
    assert!(!health.admit(t0 + ms(1999)));
    assert!(health.admit(t0 + ms(2000)));
}

#[test]
fn failed_trial_doubles_up_to_the_cap_and_success_resets() {
    let t0 = Instant::now();
    let health = Health::new(&config(2, 1000, 3000), t0);
    let wall = SystemTime::UNIX_EPOCH;
    fail(&health, 2, t0);
    let mut now = t0;
    for expected in [2000, 3000, 3000] {
        let until = health.ejected_until(now, wall).unwrap();
        now += until.duration_since(wall).unwrap();
        assert!(health.admit(now));
        fail(&health, 1, now);
        assert_eq!(health.ejected_until(now, wall), Some(wall + ms(expected)));
    }
    assert_eq!(health.ejections(), 4);
    now += ms(3000);
    assert!(health.admit(now));
    health.record(true, now);
    fail(&health, 2, now);
    assert_eq!(health.ejected_until(now, wall), Some(wall + ms(1000)));
}

#[test]
fn late_failures_while_ejected_do_not_extend() {
    let t0 = Instant::now();
    let health = Health::new(&config(1, 1000, 10_000), t0);
    fail(&health, 1, t0);
    fail(&health, 5, t0 + ms(500));
    let wall = SystemTime::UNIX_EPOCH;
    assert_eq!(health.ejected_until(t0, wall), Some(wall + ms(1000)));
    assert_eq!(health.ejections(), 1);
}

#[test]
fn active_checks_use_both_thresholds() {
    let t0 = Instant::now();
    let mut config = config(5, 1000, 10_000);
    config.health = Some(HealthConfig {
        path: "/health".into(),
        interval: ms(100),
        timeout: ms(50),
        unhealthy_after: 3,
        healthy_after: 2,
    });
    let health = Health::new(&config, t0);
    let at = SystemTime::UNIX_EPOCH;
    for _ in 0..2 {
        health.record_check(false, "status-503".into(), at);
    }
    assert_eq!(health.state(t0), State::Available);
    health.record_check(false, "timeout".into(), at);
    assert_eq!(health.state(t0), State::Unhealthy);
    assert!(!health.admit(t0));
    health.record_check(true, "ok".into(), at);
    assert_eq!(health.state(t0), State::Unhealthy);
    health.record_check(true, "ok".into(), at);
    assert_eq!(health.state(t0), State::Available);
    assert_eq!(health.last_check().unwrap().result, "ok");
}

#[test]
fn reconfigure_keeps_state_and_applies_settings() {
    let t0 = Instant::now();
    let health = Health::new(&config(3, 1000, 10_000), t0);
    fail(&health, 2, t0);
    health.configure(&config(2, 5000, 10_000));
    fail(&health, 1, t0);
    let wall = SystemTime::UNIX_EPOCH;
    assert_eq!(health.ejected_until(t0, wall), Some(wall + ms(5000)));
    health.configure(&config(0, 5000, 10_000));
    assert_eq!(health.state(t0), State::Available);
}
