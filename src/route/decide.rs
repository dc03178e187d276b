//! The decision (SPEC §3.2): legacy or new for a matched request, and the path
//! new gets.

use std::borrow::Cow;
use std::io::Write;
use std::net::IpAddr;

use http::header::COOKIE;

use super::hash::{BUCKETS, sticky_bucket};
use super::{BucketSource, Decision, Reason, RequestInfo, Router, Target};
use crate::config::{Config, RouteConfig, RouteId, Sticky};

/// The decision of SPEC §3.2. `draw` is a uniformly random number in `0..10000`,
/// used only when the request has no sticky key (a larger one is reduced mod
/// 10000).
///
/// In order: no route → `defaults.legacy` ([`Reason::NoRoute`]); the route's
/// flag is false → legacy ([`Reason::FlagOff`]); otherwise the bucket `b` — from
/// the sticky key, else `draw` — sends the request to new iff `b < weight_bp`.
/// Because `b` does not depend on the weight, raising a weight only ever moves
/// keys from legacy to new.
pub fn decide(config: &Config, router: &Router, req: &RequestInfo<'_>, draw: u16) -> Decision {
    let Some(index) = router.find(&config.routes, req) else {
        return Decision {
            route: None,
            target: Target::Legacy,
            backend: config.default_legacy,
            reason: Reason::NoRoute,
        };
    };
    let route = &config.routes[index];
    let (target, reason) = if matches!(route.flag, Some((_, false))) {
        (Target::Legacy, Reason::FlagOff)
    } else {
        let (bucket, source) = bucket(route, req, draw);
        let target = if bucket < route.weight_bp {
            Target::New
        } else {
            Target::Legacy
        };
        (target, Reason::Weight { bucket, source })
    };
    let backend = match target {
        Target::New => route.new,
        Target::Legacy => route.legacy,
    };
    Decision {
        route: Some(RouteId::new(index)),
        target,
        backend,
        reason,
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

    use proptest::prelude::*;

    use super::*;
    use crate::route::testing::{LEGACY, NEW, OTHER_LEGACY, Req, RouteBuilder, config, route};

    fn decide_one(route: RouteConfig, req: Req, draw: u16) -> Decision {
        let config = config(vec![route]);
        let router = Router::new(&config.routes);
        decide(&config, &router, &req.info(), draw)
    }

    #[test]
    fn no_route_goes_to_default_legacy() {
        let config = config(vec![route("auth", "/api/auth").legacy(OTHER_LEGACY)]);
        let router = Router::new(&config.routes);
        let d = decide(&config, &router, &Req::get("/other").info(), 0);
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
                    source: BucketSource::Random
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
            Reason::Weight { bucket, source } => (bucket, source),
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
            match decide(&cfg, &router, &req.info(), 0).reason {
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
