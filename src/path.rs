//! Request path normalisation (SPEC §3.1): the form that is matched and forwarded.
//!
//! A leaf: [`crate::config`] normalises route paths and [`crate::route`] request
//! paths with the same function, so the two compare equal.

use std::borrow::Cow;

/// Normalises the path part of a request URI (no query).
///
/// In one pass, segment by segment:
/// - percent-encoded *unreserved* characters (`ALPHA DIGIT - . _ ~`) are decoded and
///   the hex digits of every other escape are uppercased (RFC 3986 §6.2.2), so
///   `/%61pi` is `/api` and `%2f` is `%2F`. `%2F` stays encoded: it is not a
///   separator. A `%` not followed by two hex digits is encoded as `%25`: left
///   alone it could form a new escape with decoded text (`%E%61` would become
///   `%Ea`), and normalising twice must change nothing;
/// - dot-segments are resolved (RFC 3986 §5.2.4), also when percent-encoded
///   (`%2e`, `.%2E`, ...), never going above the root;
/// - repeated slashes are merged.
///
/// A trailing slash is kept, and a path ending in a dot-segment ends with a slash
/// (`/a/b/.` → `/a/b/`, `/a/..` → `/`). An empty path is `/`; a path that does not
/// start with `/` is taken relative to the root.
///
/// Returns [`Cow::Borrowed`] when the path is already normal, so the common case
/// does not allocate. The result always starts with `/`.
pub fn normalize_path(path: &str) -> Cow<'_, str> {
    if path.is_empty() {
        Cow::Borrowed("/")
    } else if is_normal(path) {
        Cow::Borrowed(path)
    } else {
        Cow::Owned(normalize_owned(path))
    }
}

/// True when [`normalize_path`] would return `path` unchanged.
fn is_normal(path: &str) -> bool {
    let Some(rest) = path.strip_prefix('/') else {
        return false;
    };
    let mut segments = rest.split('/');
    // `split` always yields at least one item; only the last may be empty
    // (a trailing slash, or the root itself).
    let last = segments.next_back().unwrap_or("");
    segments.all(|s| !s.is_empty() && is_normal_segment(s)) && is_normal_segment(last)
}

fn is_normal_segment(segment: &str) -> bool {
    segment != "." && segment != ".." && escapes_are_canonical(segment.as_bytes())
}

/// Every `%` in `segment` starts an escape that would be neither decoded nor
/// changed (a reserved or non-ASCII byte, uppercase hex).
fn escapes_are_canonical(segment: &[u8]) -> bool {
    let mut i = 0;
    while i < segment.len() {
        if segment[i] == b'%' {
            let Some(byte) = escape_at(segment, i) else {
                return false;
            };
            let upper =
                !segment[i + 1].is_ascii_lowercase() && !segment[i + 2].is_ascii_lowercase();
            if is_unreserved(byte) || !upper {
                return false;
            }
            i += 2;
        }
        i += 1;
    }
    true
}

/// The slow path: rebuild the path segment by segment.
fn normalize_owned(path: &str) -> String {
    let mut out: Vec<u8> = Vec::with_capacity(path.len() + 1);
    // Whether the output must end with `/`: the last input segment was empty or a
    // dot-segment.
    let mut trailing_slash = true;
    for raw in path.split('/') {
        let start = out.len();
        out.push(b'/');
        push_segment(&mut out, raw.as_bytes());
        match &out[start + 1..] {
            b"" | b"." => {
                out.truncate(start);
                trailing_slash = true;
            }
            b".." => {
                out.truncate(start);
                pop_segment(&mut out);
                trailing_slash = true;
            }
            _ => trailing_slash = false,
        }
    }
    if trailing_slash || out.is_empty() {
        out.push(b'/');
    }
    // Only ASCII escapes were replaced by ASCII bytes, so the UTF-8 of `path` is intact.
    String::from_utf8(out).expect("normalisation keeps UTF-8 valid")
}

/// Appends `segment` with its escapes normalised.
fn push_segment(out: &mut Vec<u8>, segment: &[u8]) {
    let mut i = 0;
    while i < segment.len() {
        match escape_at(segment, i) {
            Some(byte) if is_unreserved(byte) => {
                out.push(byte);
                i += 3;
            }
            Some(_) => {
                out.extend_from_slice(&[
                    b'%',
                    segment[i + 1].to_ascii_uppercase(),
                    segment[i + 2].to_ascii_uppercase(),
                ]);
                i += 3;
            }
            None if segment[i] == b'%' => {
                out.extend_from_slice(b"%25");
                i += 1;
            }
            None => {
                out.push(segment[i]);
                i += 1;
            }
        }
    }
}

/// Removes the last `/segment` of `out`; nothing at the root.
fn pop_segment(out: &mut Vec<u8>) {
    let cut = out.iter().rposition(|&b| b == b'/').unwrap_or(0);
    out.truncate(cut);
}

/// The byte encoded by a `%XX` escape starting at `i`, if there is one.
fn escape_at(s: &[u8], i: usize) -> Option<u8> {
    if s.get(i) != Some(&b'%') {
        return None;
    }
    let hi = hex_value(*s.get(i + 1)?)?;
    let lo = hex_value(*s.get(i + 2)?)?;
    Some(hi << 4 | lo)
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// RFC 3986 §2.3 `unreserved`.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn normalisation_table() {
        let cases: &[(&str, &str)] = &[
            // Already normal.
            ("/", "/"),
            ("/api", "/api"),
            ("/api/auth/login", "/api/auth/login"),
            ("/a/b/", "/a/b/"),
            ("/a.b/c..d/...", "/a.b/c..d/..."),
            ("/%2F", "/%2F"),
            ("/a%20b", "/a%20b"),
            ("/caf\u{e9}", "/caf\u{e9}"),
            // Empty and relative.
            ("", "/"),
            ("a/b", "/a/b"),
            ("*", "/*"),
            // Repeated slashes.
            ("//", "/"),
            ("///a//b///", "/a/b/"),
            ("/a//b", "/a/b"),
            // Dot-segments.
            ("/.", "/"),
            ("/..", "/"),
            ("/./a", "/a"),
            ("/a/.", "/a/"),
            ("/a/..", "/"),
            ("/a/b/..", "/a/"),
            ("/a/b/.", "/a/b/"),
            ("/a/./b", "/a/b"),
            ("/a/../b", "/b"),
            ("/a/b/../../c", "/c"),
            ("/../../a", "/a"),
            ("/a/../../../b/", "/b/"),
            ("/a/./../b/./c/..", "/b/"),
            (".", "/"),
            ("..", "/"),
            ("../a", "/a"),
            // Percent-encoded dot-segments.
            ("/%2e", "/"),
            ("/%2E/a", "/a"),
            ("/a/%2e%2e", "/"),
            ("/a/%2E%2E/b", "/b"),
            ("/a/.%2e/b", "/b"),
            ("/a/%2e./b", "/b"),
            ("/a/b/%2e%2e/%2e%2e/%2e%2e/c", "/c"),
            ("/api/%2e%2e/admin", "/admin"),
            // Decoding unreserved, uppercasing the rest.
            ("/%61pi", "/api"),
            ("/%41%5a%30%2D%5F%7E", "/AZ0-_~"),
            ("/a%2fb", "/a%2Fb"),
            ("/a%2Fb/..", "/"),
            ("/a%2f..%2fb", "/a%2F..%2Fb"),
            ("/%c3%a9", "/%C3%A9"),
            ("/%20", "/%20"),
            ("/%3a", "/%3A"),
            // A `%` that starts no escape is encoded, so no new escape can form.
            ("/%", "/%25"),
            ("/%zz", "/%25zz"),
            ("/%4", "/%254"),
            ("/%4g/%61", "/%254g/a"),
            ("/%E%61", "/%25Ea"),
            ("/%%32%65", "/%252e"),
        ];
        for &(input, want) in cases {
            assert_eq!(normalize_path(input), want, "normalize_path({input:?})");
            // Idempotent.
            assert_eq!(normalize_path(want), want, "normalize_path({want:?}) again");
        }
    }

    #[test]
    fn normal_paths_are_borrowed() {
        for path in [
            "/",
            "/api",
            "/a/b/",
            "/%2F",
            "/a%20b/c",
            "/caf\u{e9}",
            "/%25zz",
            "/a..b",
        ] {
            assert!(
                matches!(normalize_path(path), Cow::Borrowed(_)),
                "{path:?} was copied"
            );
        }
        for path in ["", "/a//b", "/a/.", "/%61", "/%2f", "a", "/%", "/%zz"] {
            let got = normalize_path(path);
            assert!(is_normal(&got), "{path:?} → {got:?} is not normal");
        }
    }

    proptest! {
        /// On paths made of the tricky characters: the result is normal (starts with
        /// `/`, no empty or dot-segment, canonical escapes), and normalising it again
        /// changes nothing and borrows.
        #[test]
        fn output_is_normal_and_stable(path in "[/.%2eEfF6a1z]{0,24}") {
            let once = normalize_path(&path).into_owned();
            prop_assert!(is_normal(&once), "{:?} → {:?}", path, once);
            prop_assert!(!once.contains("//"));
            let again = normalize_path(&once);
            prop_assert!(matches!(again, Cow::Borrowed(_)));
            prop_assert_eq!(again, once.as_str());
        }
    }
}
