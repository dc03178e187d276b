//! The link to Redis: one task that subscribes to the fleet's changes,
//! sends this proxy's, resyncs the whole state every [`RESYNC_EVERY`] and,
//! with `fleet_statistics`, adds and reads the fleet's statistics every
//! [`STATS_EVERY`]. Every call has a timeout of at most [`CALL_TIMEOUT`]; a
//! failed call ends the session, and the task connects again.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures_util::StreamExt;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, RedisError, Script};
use tracing::{error, info, warn};

use super::ControlStatus;
use super::fleet_stats;
use super::record::{Field, Fleet, Record, decode_message, ms};
use super::sync::{self, Local};
use crate::config::ControlConfig;
use crate::runtime::Trip;
use crate::snapshot::{SharedSnapshot, Snapshot};
use crate::stats::{FleetFigures, Summary};

/// The longest any Redis call may take (SPEC §3.10: at most 1 s).
const CALL_TIMEOUT: Duration = Duration::from_secs(1);
/// How often the whole state is read again (SPEC: at least every 5 s).
const RESYNC_EVERY: Duration = Duration::from_secs(2);
/// How often statistics are sent and the fleet's read and judged.
const STATS_EVERY: Duration = Duration::from_secs(1);
/// The pause between two connection attempts while Redis is unreachable.
const RETRY_EVERY: Duration = Duration::from_millis(500);

/// Writes a record to `override:` / `flag:` / `resume:` fields when it is
/// newer than the field's (greater `at`, then `by`), publishes it, and
/// returns the record the field holds afterwards.
const SET_IF_NEWER: &str = r#"
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur then
  local ok, rec = pcall(cjson.decode, cur)
  local at = tonumber(ARGV[3])
  if ok and type(rec) == 'table' and tonumber(rec.at) and
     (tonumber(rec.at) > at or (tonumber(rec.at) == at and tostring(rec.by) >= ARGV[4])) then
    return cur
  end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('PUBLISH', KEYS[2], ARGV[1] .. '\n' .. ARGV[2])
return ARGV[2]
"#;

/// Records a trip unless one stands already (the first wins) or a resume
/// later than it exists (it is stale); publishes it when recorded. Returns
/// the trip field's record afterwards (or nil).
const TRIP: &str = r#"
local cur = redis.call('HGET', KEYS[1], ARGV[1])
local res = redis.call('HGET', KEYS[1], ARGV[2])
local at = tonumber(ARGV[4])
local resumed = -1
if res then
  local ok, r = pcall(cjson.decode, res)
  if ok and type(r) == 'table' and tonumber(r.at) then resumed = tonumber(r.at) end
end
if cur then
  local ok, t = pcall(cjson.decode, cur)
  if ok and type(t) == 'table' and tonumber(t.at) and resumed <= tonumber(t.at) then
    return cur
  end
end
if resumed > at then return cur end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('PUBLISH', KEYS[2], ARGV[1] .. '\n' .. ARGV[3])
return ARGV[3]
"#;

/// Why a session ended.
#[derive(Debug, thiserror::Error)]
enum LinkError {
    #[error("{0}")]
    Redis(#[from] RedisError),
    #[error("no answer within {CALL_TIMEOUT:?}")]
    Timeout,
    #[error("the subscription was closed")]
    Unsubscribed,
}

/// Runs `call` with the link's timeout.
async fn timed<T>(
    call: impl std::future::Future<Output = Result<T, RedisError>>,
) -> Result<T, LinkError> {
    match tokio::time::timeout(CALL_TIMEOUT, call).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(LinkError::Timeout),
    }
}

/// The link's state, owned by its task.
struct Link {
    config: ControlConfig,
    snapshot: SharedSnapshot,
    status: Arc<ControlStatus>,
    /// This replica's id in records: host, process and a random suffix.
    me: String,
    /// `{prefix}state` and `{prefix}changes`.
    hash: String,
    channel: String,
    /// The fleet's state as last known, this proxy's changes included.
    fleet: Fleet,
    /// The runtime state after the last round: what differs from it now
    /// changed here.
    applied: Local,
    /// Records not yet written to Redis (made while cut off, or that Redis
    /// had lost): written back as soon as it answers.
    pending: BTreeMap<Field, Record>,
    /// What each local statistics slot had when last sent: (stats, side,
    /// slot number) → counts.
    sent: HashMap<(usize, &'static str, u64), Summary>,
    /// The fleet's counts of settled slots, by key: read once.
    settled: HashMap<String, Summary>,
    set_if_newer: Script,
    trip: Script,
}

/// The link's task: connects, runs a session until it fails, and between
/// sessions keeps recording local changes for when Redis answers again.
pub(super) async fn run(
    config: ControlConfig,
    snapshot: SharedSnapshot,
    status: Arc<ControlStatus>,
) {
    let mut link = Link {
        hash: format!("{}state", config.key_prefix),
        channel: format!("{}changes", config.key_prefix),
        me: replica_id(),
        config,
        snapshot,
        status,
        fleet: Fleet::default(),
        applied: Local::default(),
        pending: BTreeMap::new(),
        sent: HashMap::new(),
        settled: HashMap::new(),
        set_if_newer: Script::new(SET_IF_NEWER),
        trip: Script::new(TRIP),
    };
    info!(redis = %link.config.redis_shown(), replica = %link.me, "control: sharing runtime state through Redis");
    let changed = link.snapshot.load().state_changed.clone();
    // Whether being cut off was logged: once per outage (an unreachable
    // Redis at start is one too).
    let mut warned = false;
    loop {
        let ended = link.session(&mut warned).await;
        link.status.set_connected(false);
        link.forget_fleet_figures();
        if !warned {
            warned = true;
            warn!(
                redis = %link.config.redis_shown(),
                error = %ended,
                "control: Redis is unreachable; serving with the last fleet state known and this proxy's own statistics"
            );
        }
        // While cut off: local changes are recorded for later; retry soon.
        let retry = tokio::time::sleep(RETRY_EVERY);
        tokio::pin!(retry);
        loop {
            tokio::select! {
                () = &mut retry => break,
                () = changed.fleet.notified() => {
                    let _ = link.round(None, Vec::new()).await;
                }
            }
        }
    }
}

impl Link {
    /// Connects, writes back what is pending, reads the whole state, then
    /// follows the fleet until a call fails.
    async fn session(&mut self, warned: &mut bool) -> LinkError {
        match self.follow(warned).await {
            Ok(never) => match never {},
            Err(e) => e,
        }
    }

    async fn follow(&mut self, warned: &mut bool) -> Result<std::convert::Infallible, LinkError> {
        let client = redis::Client::open(self.config.redis.as_str())?;
        let options = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CALL_TIMEOUT))
            .set_response_timeout(Some(CALL_TIMEOUT));
        let mut conn = timed(client.get_multiplexed_async_connection_with_config(&options)).await?;
        let mut pubsub = timed(client.get_async_pubsub()).await?;
        timed(pubsub.subscribe(&self.channel)).await?;
        let mut messages = pubsub.into_on_message();
        // Subscribed first, so no change made from now on is missed.
        self.resync(&mut conn).await?;
        self.status.set_connected(true);
        *warned = false;
        info!(redis = %self.config.redis_shown(), "control: connected to Redis; fleet state read");
        let changed = self.snapshot.load().state_changed.clone();
        let mut resync = tokio::time::interval(RESYNC_EVERY);
        resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        resync.tick().await;
        let mut stats = tokio::time::interval(STATS_EVERY);
        stats.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = changed.fleet.notified() => self.round(Some(&mut conn), Vec::new()).await?,
                message = messages.next() => {
                    let Some(message) = message else {
                        return Err(LinkError::Unsubscribed);
                    };
                    let text: String = message.get_payload().unwrap_or_default();
                    let incoming: Vec<_> = decode_message(&text).into_iter().collect();
                    self.round(Some(&mut conn), incoming).await?;
                }
                _ = resync.tick() => self.resync(&mut conn).await?,
                _ = stats.tick(), if self.config.fleet_statistics => {
                    self.fleet_statistics(&mut conn).await?;
                }
            }
        }
    }

    /// Reads the whole state: merges it, writes back every record Redis
    /// lacks (it may have restarted empty), and applies the result.
    async fn resync(&mut self, conn: &mut MultiplexedConnection) -> Result<(), LinkError> {
        let all: HashMap<String, String> =
            timed(redis::cmd("HGETALL").arg(&self.hash).query_async(conn)).await?;
        let mut incoming = Vec::with_capacity(all.len());
        for (key, value) in &all {
            if let (Some(field), Some(record)) = (Field::parse(key), Record::decode(value)) {
                incoming.push((field, record));
            }
        }
        for (field, record) in self.fleet.iter() {
            if !all.contains_key(&field.key()) {
                self.pending.insert(field.clone(), record.clone());
            }
        }
        self.round(Some(conn), incoming).await?;
        self.status.synced(SystemTime::now());
        Ok(())
    }

    /// One exchange with the fleet: local changes become records (sent now
    /// when connected, else kept), `incoming` records are merged, and the
    /// result is applied to every route and flag that did not change meanwhile.
    async fn round(
        &mut self,
        conn: Option<&mut MultiplexedConnection>,
        incoming: Vec<(Field, Record)>,
    ) -> Result<(), LinkError> {
        let snapshot = self.snapshot.load_full();
        let current = sync::capture(&snapshot);
        let now = ms(SystemTime::now());
        for (field, record) in sync::changes(&current, &self.applied, &self.fleet, &self.me, now) {
            self.fleet.merge(field.clone(), record.clone());
            self.pending.insert(field, record);
        }
        for (field, record) in incoming {
            self.fleet.merge(field, record);
        }
        let written = match conn {
            Some(conn) => self.write_pending(conn).await,
            None => Ok(()),
        };
        let (changed, applied) = sync::apply(&snapshot, &self.fleet, &current);
        if changed {
            // Saved to state_file; not a change to send back.
            snapshot.state_changed.saver.notify_one();
        }
        self.applied = applied;
        written
    }

    /// Writes every pending record with its merge rule, and merges what
    /// each field holds afterwards.
    async fn write_pending(&mut self, conn: &mut MultiplexedConnection) -> Result<(), LinkError> {
        while let Some((field, record)) = self.pending.pop_first() {
            let json = record.encode();
            let key = field.key();
            let result: Result<Option<String>, LinkError> = match &field {
                Field::Trip(route) => {
                    let resume = Field::Resume(route.clone()).key();
                    let mut call = self.trip.prepare_invoke();
                    call.key(&self.hash)
                        .key(&self.channel)
                        .arg(&key)
                        .arg(&resume)
                        .arg(&json)
                        .arg(record.at);
                    timed(call.invoke_async(conn)).await
                }
                _ => {
                    let mut call = self.set_if_newer.prepare_invoke();
                    call.key(&self.hash)
                        .key(&self.channel)
                        .arg(&key)
                        .arg(&json)
                        .arg(record.at)
                        .arg(&record.by);
                    timed(call.invoke_async(conn)).await
                }
            };
            match result {
                Ok(held) => {
                    if let Some(held) = held.as_deref().and_then(Record::decode) {
                        self.fleet.merge(field, held);
                    }
                }
                Err(e) => {
                    self.pending.insert(field, record);
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Sends what every route's statistics gained since the last call, reads
    /// the fleet's window back, shows it, and trips a route its verdict
    /// condemns (the trip is then sent like any other).
    async fn fleet_statistics(
        &mut self,
        conn: &mut MultiplexedConnection,
    ) -> Result<(), LinkError> {
        let snapshot = self.snapshot.load_full();
        let now = Instant::now();
        let prefix = self.config.key_prefix.clone();
        let mut pipe = redis::pipe();
        let mut sent = HashMap::new();
        let mut writes = 0;
        for route in snapshot.routes() {
            let stats = &route.handles.stats;
            let origin_ms = ms(stats.origin_wall);
            for (side, window) in [("legacy", &stats.legacy), ("new", &stats.new)] {
                let slot_secs = window.slot_secs();
                let ttl = window.length().as_secs() + 2 * slot_secs + 10;
                for (epoch, counts) in window.slot_summaries(now) {
                    let id = (Arc::as_ptr(stats) as usize, side, epoch);
                    let base = self
                        .sent
                        .get(&id)
                        .filter(|b| b.attempts <= counts.attempts && b.failures <= counts.failures)
                        .cloned()
                        .unwrap_or_default();
                    let fields = fleet_stats::encode(&counts.minus(&base));
                    sent.insert(id, counts);
                    if fields.is_empty() {
                        continue;
                    }
                    let slot = fleet_stats::wall_slot(origin_ms, epoch, slot_secs);
                    let key = fleet_stats::key(&prefix, &route.config.name, side, slot_secs, slot);
                    for (field, n) in fields {
                        pipe.cmd("HINCRBY").arg(&key).arg(field).arg(n).ignore();
                    }
                    pipe.cmd("EXPIRE").arg(&key).arg(ttl).ignore();
                    writes += 1;
                }
            }
        }
        if writes > 0 {
            timed(pipe.query_async::<()>(conn)).await?;
        }
        self.sent = sent;

        // Each (route, side): its slots' keys, and which are settled (every
        // proxy has sent them: read once, then taken from `settled`).
        let now_ms = ms(SystemTime::now());
        let mut read = redis::pipe();
        let mut wanted: Vec<Vec<(String, bool)>> = Vec::new();
        for route in snapshot.routes() {
            let name = &route.config.name;
            let stats = &route.handles.stats;
            for (side, window) in [("legacy", &stats.legacy), ("new", &stats.new)] {
                let after = (side == "new")
                    .then(|| self.fleet.resumed_at(name))
                    .flatten();
                let slot_secs = window.slot_secs();
                let slots =
                    fleet_stats::window_slots(now_ms, slot_secs, window.slot_count(), after);
                let keys: Vec<(String, bool)> = slots
                    .into_iter()
                    .map(|slot| {
                        let key = fleet_stats::key(&prefix, name, side, slot_secs, slot);
                        let settled = fleet_stats::settled(now_ms, slot_secs, slot);
                        (key, settled)
                    })
                    .collect();
                for (key, settled) in &keys {
                    if !(*settled && self.settled.contains_key(key)) {
                        read.cmd("HGETALL").arg(key);
                    }
                }
                wanted.push(keys);
            }
        }
        let hashes: Vec<HashMap<String, u64>> = if read.cmd_iter().next().is_some() {
            timed(read.query_async(conn)).await?
        } else {
            Vec::new()
        };
        let mut hashes = hashes.into_iter();
        let mut settled = HashMap::new();
        let mut wanted = wanted.into_iter();
        let mut tripped = false;
        for route in snapshot.routes() {
            let mut sides = [Summary::default(), Summary::default()];
            for side in &mut sides {
                for (key, is_settled) in wanted.next().unwrap_or_default() {
                    let cached = is_settled.then(|| self.settled.remove(&key)).flatten();
                    let slot = match cached {
                        Some(slot) => slot,
                        None => {
                            let mut slot = Summary::default();
                            let hash = hashes.next().unwrap_or_default();
                            fleet_stats::add_hash(
                                &mut slot,
                                hash.iter().map(|(f, n)| (f.as_str(), *n)),
                            );
                            slot
                        }
                    };
                    side.add(&slot);
                    if is_settled {
                        settled.insert(key, slot);
                    }
                }
            }
            let [legacy, new] = sides;
            tripped |= judge(&snapshot, route, &new);
            route.handles.stats.set_fleet(Some(FleetFigures {
                legacy,
                new,
                read_at: Instant::now(),
            }));
        }
        // Slots that left every window are forgotten.
        self.settled = settled;
        if tripped {
            self.round(Some(conn), Vec::new()).await?;
        }
        Ok(())
    }

    /// Cut off: `/routes` shows this proxy's own statistics again.
    fn forget_fleet_figures(&self) {
        for route in self.snapshot.load().routes() {
            route.handles.stats.set_fleet(None);
        }
    }
}

/// Trips `route` when the fleet's statistics for new condemn it; true when it did.
fn judge(snapshot: &Snapshot, route: &crate::snapshot::CompiledRoute, new: &Summary) -> bool {
    let Some(rollback) = &route.config.rollback else {
        return false;
    };
    let state = &route.handles.state;
    if state.is_tripped() {
        return false;
    }
    let window = route.handles.stats.new.length();
    let Some(reason) = crate::stats::verdict::verdict(rollback, new, window) else {
        return false;
    };
    let trip = Trip {
        reason: format!("{reason}, across the fleet"),
        since: SystemTime::now(),
    };
    if !state.trip(trip.clone()) {
        return false;
    }
    error!(
        route = %route.config.name,
        reason = %trip.reason,
        "route rolled back on the fleet's statistics: every request goes to legacy until POST /routes/NAME/resume or a reload that changes the route"
    );
    snapshot.state_changed.saver.notify_one();
    true
}

/// `host-pid-xxxx`: unique per process, readable in records and logs.
fn replica_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "proxy".into());
    format!("{host}-{}-{:04x}", std::process::id(), fastrand::u16(..))
}
