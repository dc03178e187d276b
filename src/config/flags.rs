//! `[flags]`.

use toml::de::DeValue;

use super::reader::{Problems, Table, wrong_type};

/// Every key of `[flags]` in file order; a value that is not a boolean is
/// reported and read as false.
pub(super) fn read_flags(p: &mut Problems, root: &Table<'_, '_>) -> Vec<(String, bool)> {
    let t = root.table(p, "flags", "[flags]".into());
    t.entries()
        .into_iter()
        .map(|(name, _, v)| {
            let value = match v.get_ref() {
                DeValue::Boolean(b) => *b,
                _ => {
                    let hint = format!("write {name} = true or {name} = false");
                    wrong_type(p, v, "true or false", hint);
                    false
                }
            };
            (name.to_owned(), value)
        })
        .collect()
}
