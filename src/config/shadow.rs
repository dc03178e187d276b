//! `[routes.shadow]` (SPEC §2, §3.7).

use std::sync::Arc;

use http::HeaderName;
use toml::de::DeValue;

use super::fallback::replay_methods;
use super::reader::{
    Problems, Table, Value, expect_array, expect_bool, expect_int, expect_str, field, int_in, size,
    wrong_type,
};
use super::validate;
use super::{JsonPath, ShadowConfig};

const SHADOW_KEYS: &[&str] = &[
    "percent",
    "methods",
    "compare",
    "ignore_headers",
    "ignore_json",
    "max_body",
    "max_inflight",
    "noise_sample",
];

/// The most shadow requests a route may have in flight.
const MAX_INFLIGHT: i64 = 100_000;

/// The route's `[routes.shadow]`, `None` when the route has none. A key
/// that is invalid is reported and takes its default.
pub(super) fn read_shadow(p: &mut Problems, route: &Table<'_, '_>) -> Option<Arc<ShadowConfig>> {
    route.get("shadow")?;
    let t = route.table(p, "shadow", "[routes.shadow]".into());
    t.check_keys(p, SHADOW_KEYS);
    let mut config = ShadowConfig::default();
    if let Some(v) = field(p, &t, "percent", |p, v| percent(p, v, "percent")) {
        config.percent_bp = v;
    }
    if let Some(v) = field(p, &t, "methods", replay_methods) {
        config.methods = v;
    }
    if let Some(v) = field(p, &t, "compare", expect_bool) {
        config.compare = v;
    }
    if let Some(v) = field(p, &t, "ignore_headers", header_names) {
        config.ignore_headers = v;
    }
    if let Some(v) = field(p, &t, "ignore_json", json_paths) {
        config.ignore_json = v;
    }
    if let Some(v) = field(p, &t, "max_body", size) {
        config.max_body = v;
    }
    let hint = "write how many shadow requests may be in flight at once, like 64";
    if let Some(v) = field(p, &t, "max_inflight", |p, v| {
        int_in(p, v, 1, MAX_INFLIGHT, hint)
    }) {
        config.max_inflight = v;
    }
    if let Some(v) = field(p, &t, "noise_sample", |p, v| percent(p, v, "noise_sample")) {
        config.noise_sample_bp = v;
    }
    Some(Arc::new(config))
}

/// A percentage `0..=100` with up to 2 decimals, as basis points.
fn percent(p: &mut Problems, v: &Value<'_>, key: &str) -> Option<u16> {
    let hint = "write a percentage from 0 to 100 with at most 2 decimals, like 10 or 0.5";
    let percent = match v.get_ref() {
        DeValue::Integer(_) => expect_int(p, v, hint)? as f64,
        DeValue::Float(f) => f
            .as_str()
            .replace('_', "")
            .parse::<f64>()
            .unwrap_or(f64::NAN),
        _ => {
            wrong_type(p, v, "a number", hint);
            return None;
        }
    };
    validate::weight_bp(percent)
        .map_err(|message| p.add(v.span().start, message.replacen("weight", key, 1), hint))
        .ok()
}

fn header_names(p: &mut Problems, v: &Value<'_>) -> Option<Vec<HeaderName>> {
    let hint = "write a list of header names, like [\"date\", \"x-trace-id\"]";
    let items = expect_array(p, v, "an array of header names", hint)?;
    let names: Vec<Option<HeaderName>> = items
        .iter()
        .map(|item| {
            let s = expect_str(p, item, "a header name", hint)?;
            let name = validate::header_name(s);
            if name.is_none() {
                p.add(
                    item.span().start,
                    format!("invalid header name \"{s}\""),
                    hint,
                );
            }
            name
        })
        .collect();
    names.into_iter().collect()
}

fn json_paths(p: &mut Problems, v: &Value<'_>) -> Option<Vec<JsonPath>> {
    let hint = "write JSON paths like \"$.meta.generated_at\" or \"$.items[*].id\"; `*` matches any key or index";
    let items = expect_array(p, v, "an array of JSON paths", hint)?;
    let paths: Vec<Option<JsonPath>> = items
        .iter()
        .map(|item| {
            let s = expect_str(p, item, "a JSON path", hint)?;
            JsonPath::parse(s)
                .map_err(|message| p.add(item.span().start, message, hint))
                .ok()
        })
        .collect();
    paths.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{MethodSet, parse};
    use http::Method;
    use std::path::Path;

    fn route_with(shadow: &str) -> String {
        format!(
            r#"
[backends.legacy]
url = "http://127.0.0.1:3001"
[backends.new]
url = "http://127.0.0.1:3002"
[[routes]]
name = "api"
path = "/api"
{shadow}
"#
        )
    }

    fn load(text: &str) -> Result<crate::config::Config, crate::config::ConfigErrors> {
        parse(text, Path::new("test.toml"))
    }

    #[test]
    fn defaults_are_the_spec_values() {
        let config = load(&route_with("[routes.shadow]\n")).unwrap();
        let shadow = config.routes[0].shadow.as_deref().unwrap();
        assert_eq!(shadow, &ShadowConfig::default());
        assert_eq!(shadow.percent_bp, 1000);
        assert_eq!(shadow.noise_sample_bp, 500);
        assert_eq!(shadow.max_inflight, 64);
        assert_eq!(shadow.max_body, 1 << 20);
        assert!(shadow.compare);
        assert!(shadow.methods.contains(&Method::HEAD));
        assert!(!shadow.methods.contains(&Method::POST));
        assert!(load(&route_with("")).unwrap().routes[0].shadow.is_none());
    }

    #[test]
    fn every_key_is_read() {
        let config = load(&route_with(
            r#"[routes.shadow]
percent = 12.5
methods = ["*"]
compare = false
ignore_headers = ["X-Trace"]
ignore_json = ["$.a[*].b", "$[\"c.d\"]"]
max_body = "2KiB"
max_inflight = 3
noise_sample = 100
"#,
        ))
        .unwrap();
        let shadow = config.routes[0].shadow.as_deref().unwrap();
        assert_eq!(shadow.percent_bp, 1250);
        assert_eq!(shadow.methods, MethodSet::Any);
        assert!(!shadow.compare);
        assert_eq!(shadow.ignore_headers, [HeaderName::from_static("x-trace")]);
        assert_eq!(shadow.ignore_json.len(), 2);
        assert_eq!(shadow.max_body, 2048);
        assert_eq!(shadow.max_inflight, 3);
        assert_eq!(shadow.noise_sample_bp, 10_000);
    }

    #[test]
    fn bad_values_are_reported_with_their_position() {
        let errors = load(&route_with(
            r#"[routes.shadow]
percent = 101
methods = ["GET", "NOT A METHOD"]
ignore_json = ["meta.x"]
max_inflight = 0
noise_sampel = 5
"#,
        ))
        .unwrap_err()
        .errors;
        let messages: Vec<String> = errors
            .iter()
            .map(|e| format!("{}:{} {}", e.line, e.column, e.message))
            .collect();
        assert_eq!(errors.len(), 5, "{messages:#?}");
        assert!(
            messages[0].contains("percent 101 is out of range"),
            "{messages:#?}"
        );
        assert!(messages[1].contains("invalid method"), "{messages:#?}");
        assert!(
            messages[2].contains("does not start with '$'"),
            "{messages:#?}"
        );
        assert!(
            messages[3].contains("out of range 1..=100000"),
            "{messages:#?}"
        );
        assert!(
            messages[4].contains("unknown key \"noise_sampel\""),
            "{messages:#?}"
        );
        assert_eq!(
            errors[4].hint.as_deref(),
            Some("did you mean \"noise_sample\"?")
        );
    }
}
