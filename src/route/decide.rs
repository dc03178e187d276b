//! The decision (SPEC §3.2): legacy or new for a matched request, and the path
//! new gets.

use std::borrow::Cow;
use std::io::Write;
use std::net::IpAddr;
use std::time::SystemTime;

use http::header::COOKIE;

use super::hash::{BUCKETS, sticky_bucket};
use super::{
    BucketSource, Decision, Inputs, Reason, RequestInfo, RouteRuntime, Router, Target, Weight,
    WeightFrom,
};
use crate::config::{Config, RouteConfig, RouteId, Sticky};

/// The decision of SPEC §3.2, with the random draw, the clock and each
/// route's runtime state passed in.
///
/// In order: no route → `defaults.legacy` ([`Reason::NoRoute`]); the force
/// header names a side → that side ([`Reason::Forced`]); otherwise the
/// route's [`effective_weight`] at `inputs.now` — 0 when rolled back or its
/// flag is false — and the bucket `b` (from the sticky key, else
/// `inputs.draw`) send the request to new iff `b < weight`. Because `b` does
/// not depend on the weight, raising a weight (by hand or by the ramp) only
/// ever moves keys from legacy to new.
pub fn decide(
    config: &Config,
    router: &Router,
    req: &RequestInfo<'_>,
    inputs: Inputs,
    runtime: impl FnOnce(RouteId) -> RouteRuntime,
) -> Decision {
    let Some(index) = router.find(&config.routes, req) else {
        return Decision {
            route: None,
            target: Target::Legacy,
            backend: config.default_legacy,
            reason: Reason::NoRoute,
        };
    };
    let id = RouteId::new(index);
    let route = &config.routes[index];
    let (target, reason) = match forced(config, req) {
        Some(target) => (target, Reason::Forced),
        None => {
            let weight = effective_weight(route, inputs.now, runtime(id));
            match weight.from {
                WeightFrom::RolledBack => (Target::Legacy, Reason::RolledBack),
                WeightFrom::FlagOff => (Target::Legacy, Reason::FlagOff),
                from => {
                    let (bucket, source) = bucket(route, req, inputs.draw);
                    let target = if bucket < weight.bp {
                        Target::New
                    } else {
                        Target::Legacy
                    };
                    (
                        target,
                        Reason::Weight {
                            bucket,
                            source,
                            from,
                        },
                    )
                }
            }
        }
    };
    let backend = match target {
        Target::New => route.new,
        Target::Legacy => route.legacy,
    };
    Decision {
        route: Some(id),
        target,
        backend,
        reason,
    }
}

/// The side `server.force_header` names: `new` or `legacy`, case-insensitive;
/// any other value is ignored.
fn forced(config: &Config, req: &RequestInfo<'_>) -> Option<Target> {
    let value = req.headers.get(config.server.force_header.as_ref()?)?;
    let value = value.as_bytes();
    if value.eq_ignore_ascii_case(b"new") {
        Some(Target::New)
    } else if value.eq_ignore_ascii_case(b"legacy") {
        Some(Target::Legacy)
    } else {
        None
    }
}

/// The share the file alone gives the route now (its flag and ramp, no
/// runtime state), as a percentage: what `check`, `explain` and `diff` show.
pub fn file_weight_percent(route: &RouteConfig) -> f64 {
    effective_weight(route, SystemTime::now(), RouteRuntime::default()).percent()
}

/// The route's share for new at `now` (SPEC §3.2 steps 2–5): 0 when rolled
/// back; else an override's weight; else 0 when its flag (or the flag's
/// override) is false; else the ramp's step once the ramp has started; else
/// the file's `weight`.
pub fn effective_weight(route: &RouteConfig, now: SystemTime, runtime: RouteRuntime) -> Weight {
    if runtime.tripped {
        return Weight {
            bp: 0,
            from: WeightFrom::RolledBack,
        };
    }
    if let Some(bp) = runtime.weight_override {
        return Weight {
            bp,
            from: WeightFrom::Override,
        };
    }
    let flag = runtime
        .flag_override
        .or(route.flag.as_ref().map(|(_, value)| *value));
    if flag == Some(false) {
        return Weight {
            bp: 0,
            from: WeightFrom::FlagOff,
        };
    }
    let ramp = route
        .ramp
        .as_ref()
        .and_then(|ramp| Some((ramp, ramp.step_at(now)?)));
    match ramp {
        Some((ramp, step)) => Weight {
            bp: ramp.steps_bp[step],
            from: WeightFrom::Ramp { step },
        },
        None => Weight {
            bp: route.weight_bp,
            from: WeightFrom::File,
        },
    }
}

/// The request's bucket in `0..10000` and where it came from.
fn bucket(route: &RouteConfig, req: &RequestInfo<'_>, draw: u16) -> (u16, BucketSource) {
    let random = (draw % BUCKETS, BucketSource::Random);
    let Some(sticky) = &route.sticky else {
        return random;
    };
    let found = match sticky {
        // An empty value counts as no key, as for cookies and query parameters.
        Sticky::Header(name) => req.headers.get(name).filter(|v| !v.is_empty()).map(|v| {
            (
                sticky_bucket(&route.cohort, v.as_bytes()),
                BucketSource::Header,
            )
        }),
        Sticky::Cookie(name) => cookie_value(req.headers, name)
            .map(|v| (sticky_bucket(&route.cohort, v), BucketSource::Cookie)),
        Sticky::Query(name) => req.query.and_then(|q| query_value(q, name)).map(|v| {
            (
                sticky_bucket(&route.cohort, v.as_bytes()),
                BucketSource::Query,
            )
        }),
        Sticky::Ip => Some((ip_bucket(&route.cohort, req.client_ip), BucketSource::Ip)),
    };
    found.unwrap_or(random)
}

/// The value of the first cookie called `name` (case-sensitive) in the request's
/// `Cookie` header(s), as sent: not unquoted, not decoded. An empty value counts as
/// absent, so that clients sending `name=` are not all put in one bucket.
pub(crate) fn cookie_value<'h>(headers: &'h http::HeaderMap, name: &str) -> Option<&'h [u8]> {
    headers
        .get_all(COOKIE)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b';'))
        .find_map(|pair| {
            let pair = pair.trim_ascii();
            let eq = pair.iter().position(|&b| b == b'=')?;
            let (n, v) = (pair[..eq].trim_ascii(), pair[eq + 1..].trim_ascii());
            (n == name.as_bytes()).then_some(v)
        })
        .filter(|v| !v.is_empty())
}

/// The value of the first query parameter called `name` in `query` (`a=1&b=2`),
/// raw: neither the name nor the value is percent-decoded or `+`-decoded, so
/// `?uid=a%20b` keys on the text `a%20b`. An empty or missing value counts as absent.
fn query_value<'q>(query: &'q str, name: &str) -> Option<&'q str> {
    query
        .split('&')
        .find_map(|pair| {
            let (n, v) = pair.split_once('=').unwrap_or((pair, ""));
            (n == name).then_some(v)
        })
        .filter(|v| !v.is_empty())
}

/// The bucket of a client address, keyed on its text form (`192.0.2.7`,
/// `2001:db8::1`). An IPv4-mapped IPv6 address (`::ffff:192.0.2.7`, as seen by a
/// dual-stack listener) is keyed as its IPv4 form, so a client keeps its bucket
/// whichever listener it reached. Does not allocate.
fn ip_bucket(cohort: &str, ip: IpAddr) -> u16 {
    // The longest IPv6 text form is 45 bytes.
    let mut buf = [0u8; 64];
    let len = {
        let mut cursor = &mut buf[..];
        let room = cursor.len();
        // Cannot fail: the buffer is larger than any address's text.
        let _ = write!(cursor, "{}", ip.to_canonical());
        room - cursor.len()
    };
    sticky_bucket(cohort, &buf[..len])
}

/// The path new gets: the route's matched prefix replaced by its `rewrite`.
///
/// `path` must be normalised. When the route has no `rewrite`, or `path` is not
/// under the route's path, it is returned as it is. The rest of the path after the
/// prefix is kept, trailing slash included, with no double slash at the joint:
/// route `/api/auth` with rewrite `/v2/auth` sends `/api/auth/login` as
/// `/v2/auth/login` and `/api/auth` as `/v2/auth`; rewrite `/` sends `/api/x` as
/// `/x`; the root route with rewrite `/v2` sends `/a` as `/v2/a`. Applies to the
/// new backend only; legacy always gets the path as it came.
pub fn rewrite_path<'p>(route: &RouteConfig, path: &'p str) -> Cow<'p, str> {
    let Some(rewrite) = route.rewrite.as_deref() else {
        return Cow::Borrowed(path);
    };
    let Some(rest) = strip_route_prefix(&route.path, path) else {
        return Cow::Borrowed(path);
    };
    let base = rewrite.trim_end_matches('/');
    let mut out = String::with_capacity(1 + base.len() + rest.len());
    if !base.is_empty() && !base.starts_with('/') {
        out.push('/');
    }
    out.push_str(base);
    out.push_str(rest);
    if out.is_empty() {
        out.push('/');
    }
    if out == path {
        Cow::Borrowed(path)
    } else {
        Cow::Owned(out)
    }
}

/// What follows `prefix` in `path` when `prefix` is a segment-aware prefix of it:
/// empty or starting with `/`.
fn strip_route_prefix<'p>(prefix: &str, path: &'p str) -> Option<&'p str> {
    let prefix = prefix.trim_end_matches('/');
    let rest = path.strip_prefix(prefix)?;
    (rest.is_empty() || rest.starts_with('/')).then_some(rest)
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};
    use std::time::Duration;

    use proptest::prelude::*;

    use super::*;
    use crate::route::testing::{LEGACY, NEW, OTHER_LEGACY, Req, RouteBuilder, config, route};

    /// Before any test ramp's start.
    fn t0() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000)
    }

    fn inputs(draw: u16) -> Inputs {
        Inputs { draw, now: t0() }
    }

    fn decide_one(route: RouteConfig, req: Req, draw: u16) -> Decision {
        decide_with(route, req, draw, RouteRuntime::default())
    }

    fn decide_with(route: RouteConfig, req: Req, draw: u16, runtime: RouteRuntime) -> Decision {
        let config = config(vec![route]);
        let router = Router::new(&config.routes);
        decide(&config, &router, &req.info(), inputs(draw), |_| runtime)
    }

    #[test]
    fn no_route_goes_to_default_legacy() {
        let config = config(vec![route("auth", "/api/auth").legacy(OTHER_LEGACY)]);
        let router = Router::new(&config.routes);
        let d = decide(
            &config,
            &router,
            &Req::get("/other").info(),
            inputs(0),
            |_| RouteRuntime::default(),
        );
        assert_eq!(
            d,
            Decision {
                route: None,
                target: Target::Legacy,
                backend: LEGACY,
                reason: Reason::NoRoute
            }
        );
    }

    #[test]
    fn flag_off_is_legacy_whatever_the_weight() {
        let r = route("a", "/")
            .weight(10_000)
            .flag("f", false)
            .legacy(OTHER_LEGACY);
        let d = decide_one(r, Req::get("/"), 0);
        assert_eq!(d.target, Target::Legacy);
        assert_eq!(d.backend, OTHER_LEGACY);
        assert_eq!(d.reason, Reason::FlagOff);
        assert_eq!(d.route, Some(RouteId::new(0)));
    }

    #[test]
    fn flag_on_uses_the_weight() {
        let r = route("a", "/").weight(10_000).flag("f", true);
        let d = decide_one(r, Req::get("/"), 9_999);
        assert_eq!((d.target, d.backend), (Target::New, NEW));
    }

    #[test]
    fn weight_zero_is_always_legacy_and_full_is_always_new() {
        for draw in [0, 1, 4_999, 9_998, 9_999] {
            let d = decide_one(route("a", "/").weight(0), Req::get("/"), draw);
            assert_eq!(
                (d.target, d.backend),
                (Target::Legacy, LEGACY),
                "draw {draw}"
            );
            let d = decide_one(route("a", "/").weight(10_000), Req::get("/"), draw);
            assert_eq!((d.target, d.backend), (Target::New, NEW), "draw {draw}");
        }
    }

    #[test]
    fn partial_weight_boundary() {
        for w in [1, 2_500, 3_333, 9_999] {
            let d = decide_one(route("a", "/").weight(w), Req::get("/"), w - 1);
            assert_eq!(d.target, Target::New, "weight {w} draw {}", w - 1);
            assert_eq!(
                d.reason,
                Reason::Weight {
                    bucket: w - 1,
                    source: BucketSource::Random,
                    from: WeightFrom::File,
                }
            );
            let d = decide_one(route("a", "/").weight(w), Req::get("/"), w);
            assert_eq!(d.target, Target::Legacy, "weight {w} draw {w}");
        }
    }

    #[test]
    fn out_of_range_draw_is_reduced() {
        let d = decide_one(route("a", "/").weight(10_000), Req::get("/"), u16::MAX);
        assert_eq!(d.target, Target::New);
    }

    /// The bucket the decision reports for `req` on a route sticky on `sticky`.
    fn bucket_of(sticky: Sticky, req: Req) -> (u16, BucketSource) {
        let r = route("a", "/").weight(5_000).sticky(sticky).cohort("c");
        match decide_one(r, req, 1234).reason {
            Reason::Weight { bucket, source, .. } => (bucket, source),
            other => panic!("unexpected reason {other:?}"),
        }
    }

    #[test]
    fn sticky_header_uses_the_first_value() {
        let sticky = Sticky::Header("x-user-id".parse().unwrap());
        let req = Req::get("/")
            .header("X-User-Id", "u1")
            .header("x-user-id", "u2");
        assert_eq!(
            bucket_of(sticky.clone(), req),
            (sticky_bucket("c", b"u1"), BucketSource::Header)
        );
        let req = Req::get("/").header("x-other", "u1");
        assert_eq!(bucket_of(sticky.clone(), req), (1234, BucketSource::Random));
        let req = Req::get("/").header("x-user-id", "");
        assert_eq!(bucket_of(sticky, req), (1234, BucketSource::Random));
    }

    #[test]
    fn sticky_cookie_parses_the_cookie_headers() {
        let sticky = Sticky::Cookie("uid".into());
        let cases: &[(&[&str], Option<&[u8]>)] = &[
            (&["uid=u1"], Some(b"u1")),
            (&["a=1; uid=u1; b=2"], Some(b"u1")),
            (&["a=1;uid=u1"], Some(b"u1")),
            (&["a=1", "uid=u1"], Some(b"u1")),
            (&["uid=u1; uid=u2"], Some(b"u1")),
            (&["uid=\"q\""], Some(b"\"q\"")),
            (&["x=a=b; uid=v=w"], Some(b"v=w")),
            (&["UID=u1"], None),
            (&["xuid=u1; uidx=u2"], None),
            (&["uid="], None),
            (&["uid"], None),
            (&[], None),
        ];
        for &(headers, want) in cases {
            let mut req = Req::get("/");
            for h in headers {
                req = req.header("cookie", h);
            }
            let want = match want {
                Some(key) => (sticky_bucket("c", key), BucketSource::Cookie),
                None => (1234, BucketSource::Random),
            };
            assert_eq!(bucket_of(sticky.clone(), req), want, "cookies {headers:?}");
        }
    }

    #[test]
    fn sticky_query_takes_the_raw_value() {
        let sticky = Sticky::Query("uid".into());
        let cases: &[(Option<&str>, Option<&str>)] = &[
            (Some("uid=u1"), Some("u1")),
            (Some("a=1&uid=u1&b=2"), Some("u1")),
            (Some("uid=u1&uid=u2"), Some("u1")),
            (Some("uid=a%20b"), Some("a%20b")),
            (Some("uid=a+b"), Some("a+b")),
            (Some("xuid=u1"), None),
            (Some("uid"), None),
            (Some("uid="), None),
            (Some(""), None),
            (None, None),
        ];
        for &(query, want) in cases {
            let req = Req::get("/").query(query);
            let want = match want {
                Some(key) => (sticky_bucket("c", key.as_bytes()), BucketSource::Query),
                None => (1234, BucketSource::Random),
            };
            assert_eq!(bucket_of(sticky.clone(), req), want, "query {query:?}");
        }
    }

    #[test]
    fn sticky_ip_uses_the_text_form() {
        let v4 = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));
        assert_eq!(
            bucket_of(Sticky::Ip, Req::get("/").ip(v4)),
            (sticky_bucket("c", b"192.0.2.7"), BucketSource::Ip)
        );
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(
            bucket_of(Sticky::Ip, Req::get("/").ip(v6)),
            (sticky_bucket("c", b"2001:db8::1"), BucketSource::Ip)
        );
        let mapped = IpAddr::V6(Ipv4Addr::new(192, 0, 2, 7).to_ipv6_mapped());
        assert_eq!(
            bucket_of(Sticky::Ip, Req::get("/").ip(mapped)),
            (sticky_bucket("c", b"192.0.2.7"), BucketSource::Ip)
        );
        let longest = IpAddr::V6(Ipv6Addr::new(
            0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xfffe,
        ));
        let text = longest.to_string();
        assert_eq!(
            bucket_of(Sticky::Ip, Req::get("/").ip(longest)),
            (sticky_bucket("c", text.as_bytes()), BucketSource::Ip)
        );
    }

    #[test]
    fn routes_in_one_cohort_share_buckets() {
        let sticky = Sticky::Header("x-user-id".parse().unwrap());
        let cfg = config(vec![
            route("a", "/a").sticky(sticky.clone()).cohort("shared"),
            route("b", "/b").sticky(sticky.clone()).cohort("shared"),
            route("c", "/c").sticky(sticky).cohort("other"),
        ]);
        let router = Router::new(&cfg.routes);
        let bucket = |path: &str, user: &str| {
            let req = Req::get(path).header("x-user-id", user);
            match decide(&cfg, &router, &req.info(), inputs(0), |_| {
                RouteRuntime::default()
            })
            .reason
            {
                Reason::Weight { bucket, .. } => bucket,
                other => panic!("unexpected reason {other:?}"),
            }
        };
        let mut differ = 0;
        for i in 0..100 {
            let user = format!("user-{i}");
            assert_eq!(bucket("/a", &user), bucket("/b", &user));
            if bucket("/a", &user) != bucket("/c", &user) {
                differ += 1;
            }
        }
        assert!(
            differ >= 95,
            "only {differ} of 100 users differ across cohorts"
        );
    }

    #[test]
    fn new_uses_the_routes_backends() {
        let r = route("a", "/")
            .weight(10_000)
            .new_backend(LEGACY)
            .legacy(NEW);
        let d = decide_one(r, Req::get("/"), 0);
        assert_eq!((d.target, d.backend), (Target::New, LEGACY));
    }

    proptest! {
        /// Raising a weight only moves keys from legacy to new.
        #[test]
        fn ramp_is_monotonic(
            key in "[ -~]{0,24}",
            cohort in "[a-z]{0,8}",
            a in 0u16..=10_000,
            b in 0u16..=10_000,
            draw in 0u16..10_000,
        ) {
            let (w1, w2) = (a.min(b), a.max(b));
            let value = http::HeaderValue::from_str(&key).ok().filter(|v| !v.is_empty());
            let target = |w: u16| {
                let r = route("a", "/")
                    .weight(w)
                    .cohort(&cohort)
                    .sticky(Sticky::Header("x-k".parse().unwrap()));
                let mut req = Req::get("/");
                if let Some(v) = &value {
                    req.headers.append("x-k", v.clone());
                }
                decide_one(r, req, draw).target
            };
            if target(w1) == Target::New {
                prop_assert_eq!(target(w2), Target::New);
            }
        }
    }

    /// A route ramping 10 → 25 → 50 % every hour from `t0() + 1h`, file weight 5 %.
    fn ramping() -> RouteConfig {
        route("a", "/")
            .weight(500)
            .ramp(&[1_000, 2_500, 5_000], HOUR, t0() + HOUR)
    }

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn ramp_steps_at_their_boundaries() {
        let r = ramping();
        let at = |t: SystemTime| effective_weight(&r, t, RouteRuntime::default());
        let second = Duration::from_secs(1);
        let start = t0() + HOUR;
        // Before start: the file's weight.
        assert_eq!(at(t0()).bp, 500);
        assert_eq!(at(start - second).from, WeightFrom::File);
        let cases = [
            (start, 1_000, 0),
            (start + HOUR - second, 1_000, 0),
            (start + HOUR, 2_500, 1),
            (start + 2 * HOUR - second, 2_500, 1),
            (start + 2 * HOUR, 5_000, 2),
            // After the last step: it stays.
            (start + 300 * HOUR, 5_000, 2),
        ];
        for (t, bp, step) in cases {
            assert_eq!(
                at(t),
                Weight {
                    bp,
                    from: WeightFrom::Ramp { step }
                },
                "at {t:?}"
            );
        }
    }

    #[test]
    fn ramp_next_step_times() {
        let r = ramping();
        let ramp = r.ramp.as_ref().unwrap();
        let start = t0() + HOUR;
        assert_eq!(ramp.step_at(t0()), None);
        assert_eq!(ramp.next_at(t0()), Some(start));
        assert_eq!(ramp.next_at(start), Some(start + HOUR));
        assert_eq!(
            ramp.next_at(start + HOUR + HOUR / 2),
            Some(start + 2 * HOUR)
        );
        assert_eq!(ramp.next_at(start + 2 * HOUR), None);
    }

    #[test]
    fn the_decision_follows_the_ramp() {
        let config = config(vec![ramping()]);
        let router = Router::new(&config.routes);
        let at = |now, draw| {
            decide(
                &config,
                &router,
                &Req::get("/").info(),
                Inputs { draw, now },
                |_| RouteRuntime::default(),
            )
            .target
        };
        let start = t0() + HOUR;
        assert_eq!(at(t0(), 499), Target::New);
        assert_eq!(at(t0(), 500), Target::Legacy);
        assert_eq!(at(start, 999), Target::New);
        assert_eq!(at(start, 1_000), Target::Legacy);
        assert_eq!(at(start + HOUR, 2_499), Target::New);
        assert_eq!(at(start + HOUR, 2_500), Target::Legacy);
    }

    /// One case per rule of SPEC §3.2, each with the rules after it also
    /// applicable, so the order is what decides.
    #[test]
    fn decision_order() {
        let force = |r: RouteConfig, value: &str, runtime| {
            let mut config = config(vec![r]);
            config.server.force_header = Some("x-strangler-force".parse().unwrap());
            let router = Router::new(&config.routes);
            let req = Req::get("/").header("X-Strangler-Force", value);
            decide(&config, &router, &req.info(), inputs(0), |_| runtime)
        };
        let tripped = RouteRuntime {
            tripped: true,
            weight_override: Some(10_000),
            flag_override: Some(true),
        };
        let off = route("a", "/").weight(10_000).flag("f", false);
        // 1. The force header beats a trip, an override and a false flag.
        let d = force(off.clone(), "NEW", tripped);
        assert_eq!((d.target, d.reason), (Target::New, Reason::Forced));
        let d = force(
            route("a", "/").weight(10_000),
            "legacy",
            RouteRuntime::default(),
        );
        assert_eq!((d.target, d.reason), (Target::Legacy, Reason::Forced));
        // Another value is ignored.
        let d = force(off.clone(), "maybe", RouteRuntime::default());
        assert_eq!(d.reason, Reason::FlagOff);
        // 2. A trip beats an override of 100 and a flag overridden to true.
        let d = decide_with(off.clone(), Req::get("/"), 0, tripped);
        assert_eq!((d.target, d.reason), (Target::Legacy, Reason::RolledBack));
        // 3. An override beats the flag, the ramp and the file.
        let overridden = RouteRuntime {
            weight_override: Some(10_000),
            ..RouteRuntime::default()
        };
        let d = decide_with(off.clone(), Req::get("/"), 9_999, overridden);
        assert_eq!(d.target, Target::New);
        assert!(matches!(
            d.reason,
            Reason::Weight {
                from: WeightFrom::Override,
                ..
            }
        ));
        let zero = RouteRuntime {
            weight_override: Some(0),
            ..RouteRuntime::default()
        };
        let d = decide_with(ramping().weight(10_000), Req::get("/"), 0, zero);
        assert_eq!(d.target, Target::Legacy);
        // 4. The flag's override replaces the flag's value.
        let flag_on = RouteRuntime {
            flag_override: Some(true),
            ..RouteRuntime::default()
        };
        let d = decide_with(off.clone(), Req::get("/"), 0, flag_on);
        assert_eq!(d.target, Target::New);
        let flag_off = RouteRuntime {
            flag_override: Some(false),
            ..RouteRuntime::default()
        };
        let on = route("a", "/").weight(10_000).flag("f", true);
        let d = decide_with(on, Req::get("/"), 0, flag_off);
        assert_eq!((d.target, d.reason), (Target::Legacy, Reason::FlagOff));
        // 5. The weight.
        let d = decide_one(route("a", "/").weight(1), Req::get("/"), 0);
        assert_eq!(d.target, Target::New);
    }

    #[test]
    fn the_force_header_on_no_route_is_default_legacy() {
        let mut config = config(vec![route("a", "/a").weight(10_000)]);
        config.server.force_header = Some("x-force".parse().unwrap());
        let router = Router::new(&config.routes);
        let req = Req::get("/b").header("x-force", "new");
        let d = decide(&config, &router, &req.info(), inputs(0), |_| {
            RouteRuntime::default()
        });
        assert_eq!((d.target, d.reason), (Target::Legacy, Reason::NoRoute));
    }

    #[test]
    fn rewrite_table() {
        let cases: &[(&str, Option<&str>, &str, &str)] = &[
            (
                "/api/auth",
                Some("/v2/auth"),
                "/api/auth/login",
                "/v2/auth/login",
            ),
            ("/api/auth", Some("/v2/auth"), "/api/auth", "/v2/auth"),
            ("/api/auth", Some("/v2/auth"), "/api/auth/", "/v2/auth/"),
            ("/api/auth", Some("/v2/auth/"), "/api/auth/x", "/v2/auth/x"),
            ("/api", Some("/"), "/api/x", "/x"),
            ("/api", Some("/"), "/api", "/"),
            ("/api", Some("/"), "/api/", "/"),
            ("/", Some("/v2"), "/a", "/v2/a"),
            ("/", Some("/v2"), "/", "/v2/"),
            ("/", Some("/"), "/a/b", "/a/b"),
            ("/api", Some("v2"), "/api/x", "/v2/x"),
            // Not under the route, or no rewrite: unchanged.
            ("/api", Some("/v2"), "/apix", "/apix"),
            ("/api", None, "/api/x", "/api/x"),
        ];
        for &(path, rewrite, input, want) in cases {
            let mut r = route("r", path);
            r.rewrite = rewrite.map(str::to_owned);
            assert_eq!(
                rewrite_path(&r, input),
                want,
                "{path} → {rewrite:?} on {input}"
            );
        }
    }

    #[test]
    fn rewrite_without_change_borrows() {
        let r = route("r", "/api");
        assert!(matches!(rewrite_path(&r, "/api/x"), Cow::Borrowed(_)));
    }
}
