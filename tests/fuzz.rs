//! Byte fuzzers built on proptest (cargo-fuzz needs a nightly toolchain, which
//! the CI machine does not have). Each runs a bounded number of cases inside
//! `cargo test`, so `.ci/run` runs them on every push; a failing input is
//! shrunk and saved under `proptest-regressions/`.
//!
//! - config parsing and validation: arbitrary bytes, and the example config
//!   with bytes replaced, inserted and removed;
//! - the request path (path normalisation and matching, Host validation, the
//!   forwarded-header builder, trusted proxies, rate limits): arbitrary
//!   targets and header values through the proxy's service.
#![allow(clippy::unwrap_used)] // a panic is how a test or bench reports failure

mod support;

use std::path::Path;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use proptest::prelude::*;
use support::{TestBackend, TestService, config_with_server};

/// The example config every key is listed in.
const EXAMPLE: &str = include_str!("../config/strangler.toml");

/// A mutation of a byte string: at `at` (a fraction of its length), replace,
/// insert or remove `bytes`.
#[derive(Debug, Clone)]
enum Edit {
    Replace(f64, Vec<u8>),
    Insert(f64, Vec<u8>),
    Remove(f64, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    let bytes = prop::collection::vec(
        prop_oneof![
            any::<u8>(),
            Just(b'"'),
            Just(b'['),
            Just(b']'),
            Just(b'='),
            Just(b'\n'),
            Just(b'9'),
        ],
        1..8,
    );
    prop_oneof![
        (0.0..1.0f64, bytes.clone()).prop_map(|(at, b)| Edit::Replace(at, b)),
        (0.0..1.0f64, bytes).prop_map(|(at, b)| Edit::Insert(at, b)),
        (0.0..1.0f64, 1..16usize).prop_map(|(at, n)| Edit::Remove(at, n)),
    ]
}

fn apply(text: &mut Vec<u8>, edit: &Edit) {
    let index = |at: f64, len: usize| ((at * len as f64) as usize).min(len);
    match edit {
        Edit::Replace(at, bytes) => {
            let i = index(*at, text.len());
            let end = (i + bytes.len()).min(text.len());
            text.splice(i..end, bytes.iter().copied());
        }
        Edit::Insert(at, bytes) => {
            let i = index(*at, text.len());
            text.splice(i..i, bytes.iter().copied());
        }
        Edit::Remove(at, n) => {
            let i = index(*at, text.len());
            let end = (i + n).min(text.len());
            text.drain(i..end);
        }
    }
}

/// Parsing never panics; every error names a position inside the file.
fn parse_checked(text: &str) {
    let lines = text.lines().count().max(1);
    if let Err(errors) = strangler::config::parse(text, Path::new("fuzz.toml")) {
        let rendered = errors.to_string();
        assert!(!rendered.is_empty());
        for error in &errors.errors {
            assert!(
                error.line <= lines + 1,
                "line {} of {lines}: {rendered}",
                error.line
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn config_parsing_survives_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        parse_checked(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn config_parsing_survives_edits_of_the_example(edits in prop::collection::vec(edit(), 1..6)) {
        let mut text = EXAMPLE.as_bytes().to_vec();
        for e in &edits {
            apply(&mut text, e);
        }
        parse_checked(&String::from_utf8_lossy(&text));
    }
}

/// Header values and targets drawn from the bytes that break parsers.
fn wild(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just("/"),
            Just("."),
            Just(".."),
            Just("%2f"),
            Just("%2e"),
            Just("%00"),
            Just("%"),
            Just("\\"),
            Just("@"),
            Just(":"),
            Just(","),
            Just(";"),
            Just(" "),
            Just("a"),
            Just("1"),
            Just("10.0.0.1"),
            Just("::1"),
            Just("["),
            Just("]"),
            Just("?"),
            Just("#"),
            Just("é"),
        ],
        0..max,
    )
    .prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever the target and the Host, X-Forwarded-For, X-Forwarded-Proto,
    /// Cookie and Upgrade headers, the proxy answers (never panics), with the
    /// backend's 200 or one of its own statuses.
    #[test]
    fn the_request_path_survives_wild_requests(
        target in wild(12),
        host in wild(6),
        xff in wild(8),
        cookie in wild(6),
        upgrade in wild(3),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let (service, _backend) = service().await;
            let uri = format!("/{target}");
            let Ok(mut request) = Request::get(uri.as_str()).body(Full::<Bytes>::default()) else {
                return;
            };
            for (name, value) in [
                ("host", &host),
                ("x-forwarded-for", &xff),
                ("x-forwarded-proto", &xff),
                ("cookie", &cookie),
                ("cookie", &cookie),
                ("connection", &upgrade),
                ("upgrade", &upgrade),
            ] {
                if let Ok(value) = http::HeaderValue::from_str(value) {
                    request.headers_mut().append(name, value);
                }
            }
            let answer = service.send(request).await;
            let status = answer.status.as_u16();
            assert!(
                [200, 400, 429].contains(&status),
                "{uri} host {host:?} xff {xff:?}: {answer:?}"
            );
        });
    }
}

/// A proxy service with trusted proxies and a rate limit keyed by address,
/// in front of one backend.
async fn service() -> (TestService, TestBackend) {
    let backend = TestBackend::start("legacy").await;
    let toml = config_with_server(
        "trusted_proxies = [\"127.0.0.1/32\", \"10.0.0.0/8\", \"::1/128\"]",
        &backend.url(),
        &backend.url(),
        "[[routes]]\npath = \"/a\"\n[routes.rate_limit]\nrps = 1000\nburst = 1000\n",
    );
    (TestService::new(&toml), backend)
}
