//! `[defaults]`: the backends and fallback routes inherit.

use super::BackendId;
use super::backends::BackendNames;
use super::fallback::{FallbackPatch, read_fallback};
use super::reader::{Problems, Table, Value, expect_str, field};
use super::rollout::{RollbackPatch, read_rollback};

const DEFAULTS_KEYS: &[&str] = &["legacy", "new", "fallback", "rollback"];

/// A backend name and the offset where it was written (`None`: the built-in default).
#[derive(Clone, Copy)]
pub(super) struct NameRef<'a> {
    pub(super) name: &'a str,
    pub(super) at: Option<usize>,
}

pub(super) struct Defaults<'a> {
    /// Offset of `[defaults]`, or 0 when absent.
    pub(super) at: usize,
    pub(super) legacy: NameRef<'a>,
    pub(super) new: NameRef<'a>,
    pub(super) fallback: FallbackPatch,
    /// `[defaults.rollback]`: when written, every route has a rollback.
    pub(super) rollback: RollbackPatch,
}

pub(super) fn read_defaults<'a>(p: &mut Problems, root: &Table<'a, '_>) -> Defaults<'a> {
    let t = root.table(p, "defaults", "[defaults]".into());
    t.check_keys(p, DEFAULTS_KEYS);
    let fallback_table = t.table(p, "fallback", "[defaults.fallback]".into());
    let fallback = read_fallback(p, &fallback_table);
    let rollback_table = t.table(p, "rollback", "[defaults.rollback]".into());
    let rollback = read_rollback(p, &rollback_table);
    Defaults {
        at: t.at,
        legacy: field(p, &t, "legacy", backend_ref).unwrap_or(NameRef {
            name: "legacy",
            at: None,
        }),
        new: field(p, &t, "new", backend_ref).unwrap_or(NameRef {
            name: "new",
            at: None,
        }),
        fallback,
        rollback,
    }
}

/// A backend named by `[defaults]` or a route (its existence is checked by the caller).
pub(super) fn backend_ref<'a>(p: &mut Problems, v: &'a Value<'_>) -> Option<NameRef<'a>> {
    let hint = "write the name of a [backends.NAME] table, like \"legacy\"";
    let name = expect_str(p, v, "a backend name", hint)?;
    Some(NameRef {
        name,
        at: Some(v.span().start),
    })
}

/// The id of `defaults.legacy`, which must exist (0 after reporting it missing).
pub(super) fn resolve_default_legacy(
    p: &mut Problems,
    backends: &BackendNames<'_>,
    d: &Defaults<'_>,
) -> BackendId {
    if let Some(id) = backends.find(d.legacy.name) {
        return id;
    }
    let name = d.legacy.name;
    let message = match d.legacy.at {
        Some(_) => format!("default legacy backend \"{name}\" is not defined"),
        None => format!("no backend \"{name}\": [defaults] legacy is \"{name}\" when not set"),
    };
    p.add(
        d.legacy.at.unwrap_or(d.at),
        message,
        backends.hint_for(name),
    );
    BackendId::new(0)
}
