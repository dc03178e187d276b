//! The path index: which route a request matches (SPEC §3.1).
//!
//! Routes are stored in a trie keyed by path segment. A lookup walks the request
//! path's segments once, one hash lookup per segment, to the deepest node that is
//! a prefix of the request path; from there it climbs through the precomputed
//! chain of ancestors that have routes, trying each node's routes in file order.
//! The cost is O(segments of the request path + routes tried on the way), not
//! O(routes), and a lookup does not allocate.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use http::HeaderMap;

use super::RequestInfo;
use crate::config::{HostMatch, RouteConfig};
use crate::path::normalize_path;

/// Index of a node in [`Router::nodes`]; the root is 0.
type NodeId = usize;

const ROOT: NodeId = 0;

/// The path index over a config's routes.
#[derive(Debug, Clone)]
pub struct Router {
    /// Node arena; `nodes[ROOT]` is the path `/`.
    nodes: Vec<Node>,
    /// Number of routes indexed.
    len: usize,
}

#[derive(Debug, Clone, Default)]
struct Node {
    /// Child nodes by the next path segment.
    children: HashMap<Box<str>, NodeId, BuildHasherDefault<SegmentHasher>>,
    /// Indices of the routes whose path ends at this node, in file order
    /// (ascending): the first whose conditions hold wins.
    routes: Vec<usize>,
    /// The nearest proper ancestor with routes: where a lookup goes next when no
    /// route here has its conditions hold.
    up: Option<NodeId>,
}

/// FNV-1a over a path segment. The trie is built from the config alone, so a
/// request cannot fill it with colliding keys: a keyed (SipHash) hash buys
/// nothing here, and FNV costs a fraction of it on short segments, at every
/// lookup and for every node of a 10,000-route reload.
#[derive(Debug)]
struct SegmentHasher(u64);

impl Default for SegmentHasher {
    fn default() -> Self {
        SegmentHasher(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for SegmentHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 ^= u64::from(byte);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

// === impl Router ===

impl Router {
    /// Indexes `routes` by path. Route paths are expected normalised (the config
    /// parser does it); they are normalised again here, and a trailing slash is
    /// ignored, so an index is never wrong for a path that slipped through.
    pub fn new(routes: &[RouteConfig]) -> Router {
        let mut router = Router {
            nodes: vec![Node::default()],
            len: routes.len(),
        };
        for (index, route) in routes.iter().enumerate() {
            let node = router.insert_path(&route.path);
            router.nodes[node].routes.push(index);
        }
        router.link_ancestors(ROOT, None);
        router
    }

    /// The number of routes indexed.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no route is indexed: every request goes to `defaults.legacy`.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The matching route's index into `routes` (the slice given to [`Router::new`]).
    ///
    /// The route with the longest path that is a segment-aware prefix of
    /// `req.path` wins; among routes with the same path, the first in file order
    /// whose conditions all hold. When none at the longest path holds, shorter
    /// matching paths are tried in turn.
    pub fn find(&self, routes: &[RouteConfig], req: &RequestInfo<'_>) -> Option<usize> {
        debug_assert_eq!(routes.len(), self.len, "find with another config's routes");
        let mut node = Some(self.deepest_with_routes(req.path));
        while let Some(id) = node {
            let n = &self.nodes[id];
            let hit = n
                .routes
                .iter()
                .copied()
                .find(|&i| routes.get(i).is_some_and(|r| conditions_hold(r, req)));
            if hit.is_some() {
                return hit;
            }
            node = n.up;
        }
        None
    }

    /// Walks `path`'s segments down the trie; returns the deepest node on the way
    /// that has routes, or the root (which may have none).
    fn deepest_with_routes(&self, path: &str) -> NodeId {
        let mut node = ROOT;
        let mut best = ROOT;
        // Empty segments (the leading one, a trailing slash) do not descend.
        for segment in path.split('/').filter(|s| !s.is_empty()) {
            match self.nodes[node].children.get(segment) {
                Some(&child) => node = child,
                None => break,
            }
            if !self.nodes[node].routes.is_empty() {
                best = node;
            }
        }
        best
    }

    /// The node for `path`, created with its ancestors as needed.
    fn insert_path(&mut self, path: &str) -> NodeId {
        let path = normalize_path(path);
        let mut node = ROOT;
        for segment in path.split('/').filter(|s| !s.is_empty()) {
            node = match self.nodes[node].children.get(segment) {
                Some(&child) => child,
                None => {
                    let child = self.nodes.len();
                    self.nodes.push(Node::default());
                    self.nodes[node].children.insert(segment.into(), child);
                    child
                }
            };
        }
        node
    }

    /// Sets every node's `up` link, depth-first from `node`, whose nearest proper
    /// ancestor with routes is `up`. Iterative: a config may nest deeply.
    fn link_ancestors(&mut self, node: NodeId, up: Option<NodeId>) {
        let mut stack = vec![(node, up)];
        while let Some((id, up)) = stack.pop() {
            self.nodes[id].up = up;
            let below = if self.nodes[id].routes.is_empty() {
                up
            } else {
                Some(id)
            };
            stack.extend(
                self.nodes[id]
                    .children
                    .values()
                    .map(|&child| (child, below)),
            );
        }
    }
}

// === conditions ===

/// Whether the route's `methods`, `host` and `headers` conditions all hold.
fn conditions_hold(route: &RouteConfig, req: &RequestInfo<'_>) -> bool {
    route
        .methods
        .as_ref()
        .is_none_or(|m| m.contains(req.method))
        && route
            .host
            .as_ref()
            .is_none_or(|h| host_matches(h, req.host))
        && headers_match(&route.headers, req.headers)
}

/// Every `(name, value)` is present: one of the request's values for `name` is
/// exactly `value`. Names are case-insensitive by [`http::HeaderName`].
fn headers_match(wanted: &[(http::HeaderName, http::HeaderValue)], headers: &HeaderMap) -> bool {
    wanted
        .iter()
        .all(|(name, value)| headers.get_all(name).iter().any(|v| v == value))
}

/// Compares the request's host, port stripped, ASCII case-insensitively.
/// A request without a host matches no host condition.
fn host_matches(cond: &HostMatch, host: Option<&str>) -> bool {
    let Some(host) = host.map(strip_port) else {
        return false;
    };
    match cond {
        HostMatch::Exact(want) => {
            host.eq_ignore_ascii_case(want)
                // An IPv6 literal may be configured with or without brackets.
                || host
                    .strip_prefix('[')
                    .and_then(|h| h.strip_suffix(']'))
                    .is_some_and(|h| h.eq_ignore_ascii_case(want))
        }
        HostMatch::Suffix(suffix) => {
            host.len() > suffix.len()
                && host.as_bytes()[host.len() - suffix.len()..]
                    .eq_ignore_ascii_case(suffix.as_bytes())
        }
    }
}

/// `host[:port]` → `host`, keeping an IPv6 literal's brackets (`[::1]:8080` →
/// `[::1]`), and dropping one trailing dot of a fully-qualified name.
fn strip_port(host: &str) -> &str {
    let host = if host.starts_with('[') {
        match host.find(']') {
            Some(end) => &host[..=end],
            None => host,
        }
    } else {
        host.split_once(':').map_or(host, |(h, _)| h)
    };
    host.strip_suffix('.').unwrap_or(host)
}

#[cfg(test)]
mod tests {
    use http::{HeaderValue, Method};

    use super::*;
    use crate::route::testing::{Req, RouteBuilder, route};

    fn find(routes: &[RouteConfig], req: Req) -> Option<&str> {
        let router = Router::new(routes);
        router
            .find(routes, &req.info())
            .map(|i| routes[i].name.as_str())
    }

    #[test]
    fn longest_segment_prefix_wins() {
        let routes = [
            route("root", "/"),
            route("api", "/api"),
            route("auth", "/api/auth"),
            route("login", "/api/auth/login"),
        ];
        let cases: &[(&str, &str)] = &[
            ("/", "root"),
            ("/x", "root"),
            ("/apix", "root"),
            ("/api", "api"),
            ("/api/", "api"),
            ("/api/authz", "api"),
            ("/api/auth", "auth"),
            ("/api/auth/", "auth"),
            ("/api/auth/logout", "auth"),
            ("/api/auth/login", "login"),
            ("/api/auth/login/x/y", "login"),
            ("/api/auth/loginx", "auth"),
        ];
        for &(path, want) in cases {
            assert_eq!(find(&routes, Req::get(path)), Some(want), "{path}");
        }
    }

    #[test]
    fn no_route_without_a_root_route() {
        let routes = [route("auth", "/api/auth")];
        assert_eq!(find(&routes, Req::get("/api")), None);
        assert_eq!(find(&routes, Req::get("/api/authz")), None);
        assert_eq!(find(&routes, Req::get("/")), None);
        assert_eq!(find(&[], Req::get("/")), None);
        assert!(Router::new(&[]).is_empty());
    }

    #[test]
    fn intermediate_nodes_without_routes_are_skipped() {
        let routes = [route("a", "/a"), route("abcd", "/a/b/c/d")];
        assert_eq!(find(&routes, Req::get("/a/b/c")), Some("a"));
        assert_eq!(find(&routes, Req::get("/a/b/c/d/e")), Some("abcd"));
    }

    #[test]
    fn same_path_first_in_file_order_wins() {
        let routes = [route("first", "/api"), route("second", "/api")];
        assert_eq!(find(&routes, Req::get("/api/x")), Some("first"));
    }

    #[test]
    fn method_condition() {
        let routes = [
            route("post", "/api").methods(&[Method::POST, Method::PUT]),
            route("other", "/api"),
        ];
        assert_eq!(
            find(&routes, Req::get("/api").method(Method::POST)),
            Some("post")
        );
        assert_eq!(
            find(&routes, Req::get("/api").method(Method::PUT)),
            Some("post")
        );
        assert_eq!(find(&routes, Req::get("/api")), Some("other"));
    }

    #[test]
    fn host_conditions() {
        let routes = [
            route("exact", "/").host(HostMatch::Exact("api.example.com".into())),
            route("wild", "/").host(HostMatch::Suffix(".example.com".into())),
            route("v6", "/").host(HostMatch::Exact("[::1]".into())),
            route("any", "/"),
        ];
        let cases: &[(Option<&str>, &str)] = &[
            (Some("api.example.com"), "exact"),
            (Some("API.Example.COM"), "exact"),
            (Some("api.example.com:8443"), "exact"),
            (Some("api.example.com."), "exact"),
            (Some("www.example.com"), "wild"),
            (Some("a.b.example.com:80"), "wild"),
            (Some("example.com"), "any"),
            (Some("notexample.com"), "any"),
            (Some(".example.com"), "any"),
            (Some("[::1]:8080"), "v6"),
            (Some("[::1]"), "v6"),
            (Some("[::2]:8080"), "any"),
            (None, "any"),
        ];
        for &(host, want) in cases {
            let req = Req::get("/x").host(host);
            assert_eq!(find(&routes, req), Some(want), "host {host:?}");
        }
    }

    #[test]
    fn ipv6_host_configured_without_brackets() {
        let routes = [route("v6", "/").host(HostMatch::Exact("::1".into()))];
        assert_eq!(
            find(&routes, Req::get("/").host(Some("[::1]:80"))),
            Some("v6")
        );
    }

    #[test]
    fn header_conditions() {
        let routes = [
            route("both", "/")
                .header("x-tenant", "beta")
                .header("x-canary", "1"),
            route("beta", "/").header("X-Tenant", "beta"),
            route("any", "/"),
        ];
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("x-tenant", "beta")], "beta"),
            (&[("X-TENANT", "beta")], "beta"),
            (&[("x-tenant", "Beta")], "any"),
            (&[("x-tenant", "beta "), ("x-tenant", "beta")], "beta"),
            (&[("x-tenant", "alpha"), ("x-tenant", "beta")], "beta"),
            (&[("x-tenant", "beta"), ("x-canary", "1")], "both"),
            (&[("x-canary", "1")], "any"),
            (&[], "any"),
        ];
        for &(headers, want) in cases {
            let mut req = Req::get("/");
            for &(n, v) in headers {
                req = req.header(n, v);
            }
            assert_eq!(find(&routes, req), Some(want), "headers {headers:?}");
        }
    }

    #[test]
    fn header_value_compared_as_bytes() {
        let routes = [route("bin", "/").header("x-k", "a\u{e9}")];
        let mut req = Req::get("/");
        req.headers.append(
            "x-k",
            HeaderValue::from_bytes("a\u{e9}".as_bytes()).unwrap(),
        );
        assert_eq!(find(&routes, req), Some("bin"));
    }

    #[test]
    fn falls_back_to_shorter_prefix_when_conditions_fail() {
        let routes = [
            route("root", "/"),
            route("api-beta", "/api").header("x-tenant", "beta"),
            route("auth-post", "/api/auth").methods(&[Method::POST]),
            route("auth-host", "/api/auth").host(HostMatch::Exact("a.test".into())),
        ];
        assert_eq!(find(&routes, Req::get("/api/auth/x")), Some("root"));
        assert_eq!(
            find(&routes, Req::get("/api/auth/x").header("x-tenant", "beta")),
            Some("api-beta")
        );
        assert_eq!(
            find(&routes, Req::get("/api/auth/x").host(Some("a.test"))),
            Some("auth-host")
        );
        assert_eq!(
            find(
                &routes,
                Req::get("/api/auth")
                    .method(Method::POST)
                    .host(Some("a.test"))
            ),
            Some("auth-post")
        );
    }

    #[test]
    fn route_paths_are_normalised_when_indexed() {
        let routes = [route("a", "/api/"), route("b", "//x/./y")];
        assert_eq!(find(&routes, Req::get("/api/z")), Some("a"));
        assert_eq!(find(&routes, Req::get("/x/y")), Some("b"));
    }

    #[test]
    fn percent_encoded_segments_match_by_their_normal_form() {
        let routes = [route("slash", "/a%2Fb"), route("a", "/a")];
        assert_eq!(find(&routes, Req::get("/a%2Fb/c")), Some("slash"));
        assert_eq!(find(&routes, Req::get("/a/b")), Some("a"));
    }

    #[test]
    fn ten_thousand_routes() {
        let mut routes = vec![route("root", "/")];
        for i in 0..10_000 {
            let (a, b) = (i / 100, i % 100);
            routes.push(route(&format!("r{i}"), &format!("/svc{a}/v{b}")));
        }
        // Same-path routes with conditions at the end of the file.
        routes.push(route("svc7-post", "/svc7").methods(&[Method::POST]));
        let router = Router::new(&routes);
        assert_eq!(router.len(), 10_002);
        for i in (0..10_000).step_by(37) {
            let (a, b) = (i / 100, i % 100);
            let req = Req::get(&format!("/svc{a}/v{b}/items/42"));
            let got = router
                .find(&routes, &req.info())
                .map(|i| routes[i].name.as_str());
            assert_eq!(got, Some(format!("r{i}").as_str()));
        }
        let miss = Req::get("/svc1/v100");
        assert_eq!(router.find(&routes, &miss.info()), Some(0));
        let post = Req::get("/svc7/x").method(Method::POST);
        assert_eq!(router.find(&routes, &post.info()), Some(10_001));
    }

    #[test]
    fn strip_port_cases() {
        let cases = [
            ("example.com", "example.com"),
            ("example.com:8080", "example.com"),
            ("example.com.", "example.com"),
            ("[::1]:8080", "[::1]"),
            ("[::1]", "[::1]"),
            ("[2001:db8::1]:443", "[2001:db8::1]"),
            ("127.0.0.1:80", "127.0.0.1"),
        ];
        for (input, want) in cases {
            assert_eq!(strip_port(input), want, "{input}");
        }
    }
}
