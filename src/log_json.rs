//! The JSON log line, written straight into the line buffer.
//!
//! tracing-subscriber's own JSON format serialises each event through serde
//! into an `io::Write` adaptor that re-checks UTF-8 on every small write, and
//! formats every display value into a `String` first: for the access log,
//! which writes one event per request, that cost more than the request's own
//! routing. [`JsonLines`] writes the same shape (`timestamp`, `level`,
//! `fields`, `target`, and `span`/`spans` when inside one) with no allocation
//! of its own, escaping as it goes.

use std::cell::RefCell;
use std::fmt::{self, Write};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormattedFields};
use tracing_subscriber::registry::{LookupSpan, SpanRef};

/// One JSON object per line, as tracing-subscriber's `json()` writes it.
#[derive(Clone, Copy, Debug, Default)]
pub struct JsonLines;

impl<S> FormatEvent<S, JsonFields> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, JsonFields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        // The line is made in a `String` of this thread (appends the
        // compiler sees through) and handed to the writer once, rather than
        // a dynamic call per piece; a value whose formatting logs gets a
        // fresh buffer.
        thread_local! {
            static LINE: RefCell<String> = const { RefCell::new(String::new()) };
        }
        LINE.with(|line| match line.try_borrow_mut() {
            Ok(mut line) => {
                line.clear();
                format_line(&mut line, ctx, event);
                writer.write_str(&line)
            }
            Err(_) => {
                let mut line = String::new();
                format_line(&mut line, ctx, event);
                writer.write_str(&line)
            }
        })
    }
}

fn format_line<S>(out: &mut String, ctx: &FmtContext<'_, S, JsonFields>, event: &Event<'_>)
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let meta = event.metadata();
    out.push_str("{\"timestamp\":\"");
    out.push_str(Timestamp::new(std::time::SystemTime::now()).as_str());
    out.push_str("\",\"level\":\"");
    out.push_str(meta.level().as_str());
    out.push_str("\",\"fields\":{");
    event.record(&mut Fields { out, first: true });
    out.push_str("},\"target\":");
    write_string(out, meta.target());
    let current = event
        .parent()
        .and_then(|id| ctx.span(id))
        .or_else(|| ctx.lookup_current());
    if let Some(current) = current {
        out.push_str(",\"span\":");
        write_span(out, &current);
        out.push_str(",\"spans\":[");
        for (i, span) in current.scope().from_root().enumerate() {
            if i > 0 {
                out.push(',');
            }
            write_span(out, &span);
        }
        out.push(']');
    }
    out.push_str("}\n");
}

/// A span as `{...its fields..., "name": NAME}`, from the JSON object
/// [`JsonFields`] stored when the span was made.
fn write_span<S>(out: &mut String, span: &SpanRef<'_, S>)
where
    S: for<'a> LookupSpan<'a>,
{
    out.push('{');
    let extensions = span.extensions();
    let stored = extensions
        .get::<FormattedFields<JsonFields>>()
        .map(|fields| fields.fields.as_str());
    let inner = stored
        .and_then(|json| json.strip_prefix('{')?.strip_suffix('}'))
        .unwrap_or("");
    if !inner.is_empty() {
        out.push_str(inner);
        out.push(',');
    }
    out.push_str("\"name\":");
    write_string(out, span.name());
    out.push('}');
}

/// A UTC time as RFC 3339 with microseconds, `2026-12-02T10:21:01.123456Z`,
/// as tracing-subscriber writes it, on the stack.
struct Timestamp([u8; 27]);

impl Timestamp {
    fn new(time: std::time::SystemTime) -> Timestamp {
        let since = time
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let secs = since.as_secs();
        let (year, month, day) = civil_from_days(secs / 86_400);
        let of_day = secs % 86_400;
        let mut out = *b"0000-00-00T00:00:00.000000Z";
        let mut put = |at: usize, width: usize, mut value: u64| {
            for i in (at..at + width).rev() {
                out[i] = b'0' + (value % 10) as u8;
                value /= 10;
            }
        };
        put(0, 4, year);
        put(5, 2, month);
        put(8, 2, day);
        put(11, 2, of_day / 3600);
        put(14, 2, of_day / 60 % 60);
        put(17, 2, of_day % 60);
        put(20, 6, u64::from(since.subsec_micros()));
        Timestamp(out)
    }

    fn as_str(&self) -> &str {
        // Only ASCII digits and separators.
        std::str::from_utf8(&self.0).unwrap_or("")
    }
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard
/// Hinnant's `civil_from_days`), for days on or after the epoch.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// Writes an event's fields as `"name":value` pairs.
struct Fields<'a> {
    out: &'a mut String,
    first: bool,
}

impl Fields<'_> {
    /// Starts the entry of `field`: the comma, the name and the colon.
    fn key(&mut self, field: &Field) -> &mut String {
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
        write_string(self.out, field.name());
        self.out.push(':');
        self.out
    }
}

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        write_string(self.key(field), value);
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.key(field).push_str(itoa::Buffer::new().format(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.key(field).push_str(itoa::Buffer::new().format(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.key(field)
            .push_str(if value { "true" } else { "false" });
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        // As serde_json writes it: shortest round-trip form, `null` when
        // not finite.
        let out = self.key(field);
        if value.is_finite() {
            out.push_str(ryu::Buffer::new().format_finite(value));
        } else {
            out.push_str("null");
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        let out = self.key(field);
        out.push('"');
        // Writing to a String cannot fail.
        let _ = write!(Escaped(&mut *out), "{value}");
        out.push('"');
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let out = self.key(field);
        out.push('"');
        let _ = write!(Escaped(&mut *out), "{value:?}");
        out.push('"');
    }
}

/// `value` as a JSON string, quotes included.
fn write_string(out: &mut String, value: &str) {
    out.push('"');
    // Writing to a String cannot fail.
    let _ = Escaped(&mut *out).write_str(value);
    out.push('"');
}

/// Escapes what passes through for the inside of a JSON string, as
/// serde_json does: `"`, `\` and control characters; everything else as is.
struct Escaped<'a, W: Write>(&'a mut W);

impl<W: Write> Write for Escaped<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let bytes = s.as_bytes();
        let mut start = 0;
        for (i, &byte) in bytes.iter().enumerate() {
            if byte >= 0x20 && byte != b'"' && byte != b'\\' {
                continue;
            }
            // Every byte that needs escaping is ASCII: the cuts stay on
            // character boundaries.
            self.0.write_str(&s[start..i])?;
            match byte {
                b'"' => self.0.write_str("\\\"")?,
                b'\\' => self.0.write_str("\\\\")?,
                b'\n' => self.0.write_str("\\n")?,
                b'\r' => self.0.write_str("\\r")?,
                b'\t' => self.0.write_str("\\t")?,
                0x08 => self.0.write_str("\\b")?,
                0x0c => self.0.write_str("\\f")?,
                _ => {
                    const HEX: &[u8; 16] = b"0123456789abcdef";
                    self.0.write_str("\\u00")?;
                    self.0.write_char(char::from(HEX[usize::from(byte >> 4)]))?;
                    self.0
                        .write_char(char::from(HEX[usize::from(byte & 0xf)]))?;
                }
            }
            start = i + 1;
        }
        self.0.write_str(&s[start..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn escaped(s: &str) -> String {
        let mut out = String::new();
        write_string(&mut out, s);
        out
    }

    #[test]
    fn strings_are_escaped_as_serde_json_does() {
        for s in [
            "plain",
            "",
            "quote \" and backslash \\",
            "lines\nand\ttabs\r",
            "\u{0}\u{1}\u{8}\u{c}\u{1f}\u{7f}",
            "é ü 日本 🦀 </script>",
        ] {
            assert_eq!(escaped(s), serde_json::to_string(s).unwrap(), "{s:?}");
        }
    }

    /// The lines tracing-subscriber's `json()` and [`JsonLines`] write for
    /// the same events, parsed.
    fn both_formats(events: impl Fn()) -> (Vec<serde_json::Value>, Vec<serde_json::Value>) {
        use std::sync::{Arc, Mutex};
        #[derive(Clone, Default)]
        struct Buffer(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buffer {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let lines = |buffer: Buffer| -> Vec<serde_json::Value> {
            let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
            text.lines()
                .map(|line| {
                    let mut value: serde_json::Value = serde_json::from_str(line).unwrap();
                    value.as_object_mut().unwrap().remove("timestamp");
                    value
                })
                .collect()
        };
        let theirs = Buffer::default();
        let writer = theirs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_max_level(tracing::Level::DEBUG)
            .json()
            .finish();
        tracing::subscriber::with_default(subscriber, &events);
        let ours = Buffer::default();
        let writer = ours.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_max_level(tracing::Level::DEBUG)
            .json()
            .event_format(JsonLines)
            .finish();
        tracing::subscriber::with_default(subscriber, &events);
        (lines(theirs), lines(ours))
    }

    #[test]
    fn lines_match_tracing_subscribers_json() {
        let (theirs, ours) = both_formats(|| {
            let client: Option<std::net::IpAddr> = Some([127, 0, 0, 1].into());
            tracing::info!(
                target: "strangler::access",
                method = %http::Method::GET,
                path = "/a \"b\"\n",
                query = None::<&str>,
                client = client.map(tracing::field::display),
                status = 200u16,
                duration_ms = 1.25,
                whole = 2.0,
                negative = -3i64,
                ok = true,
                debug = ?vec!["x"],
            );
            let span = tracing::debug_span!("request", method = "GET", request_id = "r1");
            let _entered = span.enter();
            let inner = tracing::debug_span!("attempt");
            let _inner = inner.enter();
            tracing::warn!(error = %std::io::Error::other("boom"), "backend failed");
        });
        assert_eq!(theirs.len(), 2);
        assert_eq!(ours, theirs);
        assert_eq!(ours[0]["fields"]["client"], "127.0.0.1");
        assert!(ours[0]["fields"].get("query").is_none());
        assert_eq!(ours[1]["spans"][0]["request_id"], "r1");
    }

    #[test]
    fn timestamps_are_rfc3339_micros() {
        let epoch = std::time::UNIX_EPOCH;
        let mut seconds = 0u64;
        // Every few days over four centuries (leap years, century rules),
        // with odd times of day and microseconds.
        while seconds < 13_000_000_000 {
            let time = epoch + std::time::Duration::new(seconds, 123_456_789);
            let ours = Timestamp::new(time);
            assert_eq!(
                ours.as_str(),
                humantime::format_rfc3339_micros(time).to_string()
            );
            seconds += 86_400 * 3 + 3_607;
        }
    }

    #[test]
    fn numbers_are_written_as_serde_json_does() {
        for value in [0.0, 1.154, 2.0, 0.001, 123456.789] {
            let ours = ryu::Buffer::new().format_finite(value).to_owned();
            assert_eq!(ours, serde_json::to_string(&value).unwrap(), "{value}");
        }
        // Exponents are spelled `e308`, not `e+308`: the same number.
        for value in [1e-7, f64::MAX, f64::MIN_POSITIVE] {
            let mut buffer = ryu::Buffer::new();
            let ours = buffer.format_finite(value);
            assert_eq!(serde_json::from_str::<f64>(ours).unwrap(), value, "{ours}");
        }
    }
}
