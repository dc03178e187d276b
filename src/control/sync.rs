//! This proxy's runtime state against the fleet's: which local changes to
//! send, and which fleet records to apply. Works on a [`Snapshot`], no I/O.
//!
//! A change is local when the runtime state differs from what the link saw
//! (or applied) last time: `applied`. It becomes a record, merged into the
//! fleet's state and written to Redis. Then the fleet's state is applied to
//! every route and flag that did not change meanwhile; what the link
//! applies is not a local change, so it is never sent back (no echo).

use std::collections::BTreeMap;

use tracing::{error, warn};

use super::record::{Field, Fleet, Record, ms, time};
use crate::runtime::Trip;
use crate::snapshot::Snapshot;

/// The runtime state of a snapshot's routes and flags, as records see it.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct Local {
    routes: BTreeMap<String, LocalRoute>,
    flags: BTreeMap<String, Option<(bool, u64)>>,
}

#[derive(Debug, Default, Clone, PartialEq)]
struct LocalRoute {
    /// (basis points, set at ms).
    weight: Option<(u16, u64)>,
    /// (reason, since ms).
    trip: Option<(String, u64)>,
}

pub(crate) fn capture(snapshot: &Snapshot) -> Local {
    let mut local = Local::default();
    for route in snapshot.routes() {
        local
            .routes
            .insert(route.config.name.clone(), capture_route(route));
    }
    for (name, _, flag) in snapshot.flags() {
        let value = flag.override_info().map(|o| (o.value, ms(o.set_at)));
        local.flags.insert(name.to_owned(), value);
    }
    local
}

fn capture_route(route: &crate::snapshot::CompiledRoute) -> LocalRoute {
    let state = &route.handles.state;
    LocalRoute {
        weight: state.override_info().map(|o| (o.value, ms(o.set_at))),
        trip: state.trip_info().map(|t| (t.reason, ms(t.since))),
    }
}

/// The records of what changed from `applied` to `current`, made by `me` at
/// `now` (ms). A set keeps its own time; a clear or a resume, which has
/// none, is dated `now`, and never before the record it ends.
pub(crate) fn changes(
    current: &Local,
    applied: &Local,
    fleet: &Fleet,
    me: &str,
    now: u64,
) -> Vec<(Field, Record)> {
    let after = |field: &Field| fleet.get(field).map_or(now, |r| now.max(r.at + 1));
    let mut out = Vec::new();
    let none = LocalRoute::default();
    for (name, route) in &current.routes {
        let was = applied.routes.get(name).unwrap_or(&none);
        if route.weight != was.weight {
            let field = Field::Override(name.clone());
            let record = match route.weight {
                Some((bp, at)) => Record {
                    weight: Some(f64::from(bp) / 100.0),
                    ..Record::bare(at, me)
                },
                None => Record::bare(after(&field), me),
            };
            out.push((field, record));
        }
        if route.trip != was.trip {
            match &route.trip {
                Some((reason, since)) => {
                    let record = Record {
                        reason: Some(reason.clone()),
                        ..Record::bare(*since, me)
                    };
                    out.push((Field::Trip(name.clone()), record));
                }
                None => {
                    let at = after(&Field::Trip(name.clone()));
                    out.push((Field::Resume(name.clone()), Record::bare(at, me)));
                }
            }
        }
    }
    for (name, value) in &current.flags {
        if applied.flags.get(name).copied().flatten() != *value {
            let field = Field::Flag(name.clone());
            let record = match value {
                Some((v, at)) => Record {
                    value: Some(*v),
                    ..Record::bare(*at, me)
                },
                None => Record::bare(after(&field), me),
            };
            out.push((field, record));
        }
    }
    out
}

/// Applies the fleet's state to every route and flag of `snapshot` whose
/// runtime state is still what `current` captured (one that changed since
/// is a local change, sent at the next round). Returns whether anything
/// changed, and the new `applied`: the state after, except for what changed
/// meanwhile, which keeps its `current` value so the next round sends it.
pub(crate) fn apply(snapshot: &Snapshot, fleet: &Fleet, current: &Local) -> (bool, Local) {
    let mut changed = false;
    let mut applied = current.clone();
    for route in snapshot.routes() {
        let name = route.config.name.as_str();
        let now = capture_route(route);
        if current.routes.get(name) != Some(&now) {
            continue;
        }
        apply_route(route, fleet, &now, &mut changed);
        applied.routes.insert(name.to_owned(), capture_route(route));
    }
    for (name, _, flag) in snapshot.flags() {
        let now = flag.override_info().map(|o| (o.value, ms(o.set_at)));
        if current.flags.get(name) != Some(&now) {
            continue;
        }
        if fleet.get(&Field::Flag(name.to_owned())).is_some() {
            let wanted = fleet.flag_override(name);
            if wanted != now {
                changed = true;
                match wanted {
                    Some((value, at)) => {
                        flag.set(value, time(at));
                        warn!(flag = name, value, "flag override set by the fleet");
                    }
                    None => {
                        flag.clear();
                        warn!(flag = name, "flag override cleared by the fleet");
                    }
                }
            }
        }
        let after = flag.override_info().map(|o| (o.value, ms(o.set_at)));
        applied.flags.insert(name.to_owned(), after);
    }
    (changed, applied)
}

fn apply_route(
    route: &crate::snapshot::CompiledRoute,
    fleet: &Fleet,
    now: &LocalRoute,
    changed: &mut bool,
) {
    let name = route.config.name.as_str();
    let state = &route.handles.state;
    if fleet.get(&Field::Override(name.to_owned())).is_some() {
        let wanted = fleet.weight_override(name);
        if wanted != now.weight {
            *changed = true;
            match wanted {
                Some((bp, at)) => {
                    state.set_override(bp, time(at));
                    warn!(
                        route = name,
                        weight = f64::from(bp) / 100.0,
                        "override set by the fleet"
                    );
                }
                None => {
                    state.clear_override();
                    warn!(route = name, "override cleared by the fleet");
                }
            }
        }
    }
    let known = fleet.get(&Field::Trip(name.to_owned())).is_some()
        || fleet.get(&Field::Resume(name.to_owned())).is_some();
    if known {
        match (fleet.trip(name), &now.trip) {
            (Some(trip), None) => {
                *changed = true;
                let reason = trip.reason.clone().unwrap_or_default();
                state.trip(Trip {
                    reason: reason.clone(),
                    since: time(trip.at),
                });
                error!(
                    route = name,
                    %reason,
                    by = %trip.by,
                    "route rolled back by the fleet: every request goes to legacy until POST /routes/NAME/resume"
                );
            }
            (Some(trip), Some((_, since))) if *since != trip.at => {
                // Tripped here too; the fleet keeps the first trip's figures.
                *changed = true;
                state.restore_trip(Trip {
                    reason: trip.reason.clone().unwrap_or_default(),
                    since: time(trip.at),
                });
            }
            (None, Some(_)) => {
                *changed = true;
                state.resume();
                route.handles.stats.new.clear();
                warn!(
                    route = name,
                    "route resumed by the fleet: the rollback is armed again with new's statistics cleared"
                );
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(weight: Option<(u16, u64)>, trip: Option<u64>, flag: Option<(bool, u64)>) -> Local {
        let mut local = Local::default();
        let route = LocalRoute {
            weight,
            trip: trip.map(|at| ("bad".to_owned(), at)),
        };
        local.routes.insert("r".into(), route);
        local.flags.insert("f".into(), flag);
        local
    }

    #[test]
    fn nothing_changed_sends_nothing() {
        let state = local(Some((100, 5)), Some(6), Some((true, 7)));
        assert!(changes(&state, &state, &Fleet::default(), "me", 10).is_empty());
    }

    #[test]
    fn sets_keep_their_time_and_clears_come_after_what_they_clear() {
        let before = local(Some((100, 5)), Some(6), Some((true, 7)));
        let mut fleet = Fleet::default();
        fleet.merge(Field::Override("r".into()), Record::bare(50, "other"));
        fleet.merge(Field::Trip("r".into()), Record::bare(60, "other"));
        // Cleared, resumed and cleared here at 10, by a clock behind the
        // records': each is dated after the record it ends.
        let after = local(None, None, None);
        let sent = changes(&after, &before, &fleet, "me", 10);
        assert_eq!(
            sent,
            vec![
                (Field::Override("r".into()), Record::bare(51, "me")),
                (Field::Resume("r".into()), Record::bare(61, "me")),
                (Field::Flag("f".into()), Record::bare(10, "me")),
            ]
        );
        // Set here: the records carry the times of the sets.
        let sent = changes(&before, &after, &fleet, "me", 99);
        assert_eq!(sent[0].1.at, 5);
        assert_eq!(sent[0].1.weight, Some(1.0));
        assert_eq!(
            sent[1],
            (
                Field::Trip("r".into()),
                Record {
                    reason: Some("bad".into()),
                    ..Record::bare(6, "me")
                }
            )
        );
        assert_eq!(sent[2].1.value, Some(true));
    }

    /// State restored from `state_file` is sent like a change made here, so
    /// the fleet's merge rules decide against what Redis holds.
    #[test]
    fn restored_state_is_sent_at_the_first_round() {
        let restored = local(Some((2500, 5)), None, None);
        let sent = changes(&restored, &Local::default(), &Fleet::default(), "me", 9);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].0, Field::Override("r".into()));
    }
}
