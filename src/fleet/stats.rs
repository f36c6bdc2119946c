//! What a fleet run counts while it runs: per-endpoint latency histograms, errors by code,
//! devices per state, time to activate and poll lateness. Each scheduler worker owns one
//! [`Stats`] behind a mutex; the dashboard and the report add the workers' copies together.
//!
//! Histograms are HDR histograms (3 significant digits), serialized as base64 of the V2
//! deflate encoding, so reports of shards merge exactly (bucket by bucket, not by averaging
//! percentiles).

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use posemu_device::{Phase, Step};
use posemu_protocol::api::CallError;

/// An HDR histogram of `u64` values (µs everywhere in fleet reports) that
/// serializes to a base64 string and merges exactly.
#[derive(Clone)]
pub struct Hist(pub Histogram<u64>);

impl Default for Hist {
    fn default() -> Self {
        // 3 significant digits, auto-resizing: small until large values arrive.
        Hist(Histogram::new(3).expect("3 significant digits is a valid HDR precision"))
    }
}

impl fmt::Debug for Hist {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hist(n={}, max={})", self.0.len(), self.0.max())
    }
}

impl Hist {
    pub fn record(&mut self, v: u64) {
        // `record` grows an auto-resizing histogram; `saturating_record` would clamp instead
        if self.0.record(v).is_err() {
            self.0.saturating_record(v);
        }
    }

    pub fn len(&self) -> u64 {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Adds `other` into `self`, exactly. Both are auto-resizing, so this cannot fail.
    pub fn add(&mut self, other: &Hist) {
        let _ = self.0.add(&other.0);
    }

    /// The value at quantile `q` (0–1), `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        (!self.0.is_empty()).then(|| self.0.value_at_quantile(q))
    }

    pub fn max(&self) -> Option<u64> {
        (!self.0.is_empty()).then(|| self.0.max())
    }

    pub fn mean(&self) -> Option<f64> {
        (!self.0.is_empty()).then(|| self.0.mean())
    }

    pub fn encode(&self) -> String {
        let mut buf = Vec::new();
        // Serializing into a Vec only fails for histograms too large to encode at all.
        let _ = V2DeflateSerializer::new().serialize(&self.0, &mut buf);
        base64::engine::general_purpose::STANDARD.encode(buf)
    }

    pub fn decode(s: &str) -> Result<Hist, String> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(s.trim())
            .map_err(|e| format!("histogram is not base64: {e}"))?;
        let mut h: Histogram<u64> = Deserializer::new()
            .deserialize(&mut bytes.as_slice())
            .map_err(|e| format!("histogram does not decode: {e:?}"))?;
        h.auto(true);
        Ok(Hist(h))
    }
}

impl Serialize for Hist {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.encode())
    }
}

impl<'de> Deserialize<'de> for Hist {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Hist, D::Error> {
        let s = String::deserialize(d)?;
        Hist::decode(&s).map_err(serde::de::Error::custom)
    }
}

/// Where a device is, as the fleet counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum State {
    /// Not started yet (the ramp has not reached it).
    Waiting,
    Bootstrap,
    PairingCode,
    /// Showing its code and polling status.
    Polling,
    Attest,
    Keys,
    Config,
    TerminalParameters,
    Activate,
    /// Activated: counted, then dropped from memory.
    Ready,
    Failed,
    UpdateRequired,
}

impl State {
    pub const ALL: [State; 12] = [
        State::Waiting,
        State::Bootstrap,
        State::PairingCode,
        State::Polling,
        State::Attest,
        State::Keys,
        State::Config,
        State::TerminalParameters,
        State::Activate,
        State::Ready,
        State::Failed,
        State::UpdateRequired,
    ];

    pub fn name(self) -> &'static str {
        match self {
            State::Waiting => "waiting",
            State::Bootstrap => "bootstrap",
            State::PairingCode => "pairing-code",
            State::Polling => "polling",
            State::Attest => "attest",
            State::Keys => "keys",
            State::Config => "config",
            State::TerminalParameters => "terminal-parameters",
            State::Activate => "activate",
            State::Ready => "activated",
            State::Failed => "failed",
            State::UpdateRequired => "update-required",
        }
    }

    pub fn of(phase: &Phase) -> State {
        match phase {
            Phase::Off => State::Waiting,
            Phase::Pairing => State::Polling,
            Phase::Step(s) => match s {
                Step::Bootstrap => State::Bootstrap,
                Step::PairingCode => State::PairingCode,
                Step::Status => State::Polling,
                Step::Attest => State::Attest,
                Step::Keys => State::Keys,
                Step::Config => State::Config,
                Step::TerminalParameters => State::TerminalParameters,
                Step::Activate => State::Activate,
            },
            Phase::UpdateRequired { .. } => State::UpdateRequired,
            Phase::Ready => State::Ready,
            Phase::Failed(_) => State::Failed,
        }
    }

    /// Settled: the device will do nothing more by itself.
    pub fn is_settled(self) -> bool {
        matches!(self, State::Ready | State::Failed | State::UpdateRequired)
    }
}

/// The endpoints a fleet calls: the device's eight steps, and the merchant's claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Endpoint {
    Step(Step),
    Claim,
}

pub const ENDPOINTS: usize = 9;

impl Endpoint {
    pub fn index(self) -> usize {
        match self {
            Endpoint::Step(s) => s as usize,
            Endpoint::Claim => 8,
        }
    }

    pub fn all() -> impl Iterator<Item = Endpoint> {
        Step::ALL
            .into_iter()
            .map(Endpoint::Step)
            .chain([Endpoint::Claim])
    }

    pub fn name(self) -> &'static str {
        match self {
            Endpoint::Step(s) => s.name(),
            Endpoint::Claim => "claim",
        }
    }

    pub fn from_name(name: &str) -> Option<Endpoint> {
        Endpoint::all().find(|e| e.name() == name)
    }
}

/// The key an error is counted under: the Viopay error `code` when the server sent an error
/// body (`4029`) and it looks like one (at most [`MAX_CODE_CHARS`] ASCII letters and digits),
/// else `HTTP 502`, `network`, `timeout` or `decode`.
pub fn error_key(e: &CallError) -> String {
    match e {
        CallError::Http { error: Some(b), .. }
            if !b.code.is_empty()
                && b.code.len() <= MAX_CODE_CHARS
                && b.code.bytes().all(|c| c.is_ascii_alphanumeric()) =>
        {
            b.code.clone()
        }
        CallError::Http { status, .. } => format!("HTTP {status}"),
        CallError::Network(_) => "network".into(),
        CallError::Timeout(_) => "timeout".into(),
        CallError::Decode(_) => "decode".into(),
    }
}

/// Distinct failure reasons kept; the rest are counted under [`OTHER`].
pub const MAX_FAILURE_KINDS: usize = 64;
/// Distinct error keys kept; the rest are counted under [`OTHER`]. A server that answers a
/// new error code per request cannot grow the fleet's memory or its report.
pub const MAX_ERROR_KINDS: usize = 64;
/// The longest error code counted as itself (Viopay's are 4 characters).
pub const MAX_CODE_CHARS: usize = 16;
/// Failure reasons are cut to this many characters.
pub const MAX_REASON_CHARS: usize = 200;
/// The key of everything past the caps.
pub const OTHER: &str = "other";

/// `s` cut to at most `max` characters (on a character boundary), with `…` if cut.
pub fn truncate_chars(mut s: String, max: usize) -> String {
    if let Some((i, _)) = s.char_indices().nth(max) {
        s.truncate(i);
        s.push('…');
    }
    s
}

/// Adds `n` under `key`, or under [`OTHER`] once `map` holds `cap` other keys.
pub fn add_capped(map: &mut BTreeMap<String, u64>, key: &str, n: u64, cap: usize) {
    if let Some(v) = map.get_mut(key) {
        *v = v.saturating_add(n);
        return;
    }
    let key = if map.len() >= cap { OTHER } else { key };
    let v = map.entry(key.to_string()).or_default();
    *v = v.saturating_add(n);
}

#[derive(Debug, Clone, Default)]
pub struct EndpointStats {
    /// Latency of every answered or failed request, µs.
    pub latency: Hist,
    pub errors: u64,
}

/// One worker's counts (or the sum of several).
#[derive(Debug, Clone)]
pub struct Stats {
    pub endpoints: [EndpointStats; ENDPOINTS],
    pub errors: BTreeMap<String, u64>,
    pub states: [i64; State::ALL.len()],
    /// Start to activated, µs.
    pub time_to_activate: Hist,
    /// How late status polls went out against their schedule, µs.
    pub poll_lateness: Hist,
    /// Why devices stopped, one line each.
    pub failures: BTreeMap<String, u64>,
    /// Payments of activated terminals (`--charges-per-minute`).
    pub pay: super::pay_stats::PayStats,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            endpoints: Default::default(),
            errors: BTreeMap::new(),
            states: [0; State::ALL.len()],
            time_to_activate: Hist::default(),
            poll_lateness: Hist::default(),
            failures: BTreeMap::new(),
            pay: Default::default(),
        }
    }
}

impl Stats {
    pub fn request(&mut self, ep: Endpoint, latency_us: u64, error: Option<String>) {
        let e = &mut self.endpoints[ep.index()];
        e.latency.record(latency_us);
        if let Some(key) = error {
            e.errors += 1;
            add_capped(&mut self.errors, &key, 1, MAX_ERROR_KINDS);
        }
    }

    pub fn moved(&mut self, from: State, to: State) {
        self.states[from as usize] -= 1;
        self.states[to as usize] += 1;
    }

    pub fn failure(&mut self, why: String) {
        let why = truncate_chars(why, MAX_REASON_CHARS);
        add_capped(&mut self.failures, &why, 1, MAX_FAILURE_KINDS);
    }

    pub fn requests(&self) -> u64 {
        self.endpoints.iter().map(|e| e.latency.len()).sum()
    }

    pub fn error_count(&self) -> u64 {
        self.endpoints.iter().map(|e| e.errors).sum()
    }

    pub fn count(&self, s: State) -> i64 {
        self.states[s as usize]
    }

    pub fn add(&mut self, o: &Stats) {
        for (a, b) in self.endpoints.iter_mut().zip(&o.endpoints) {
            a.latency.add(&b.latency);
            a.errors += b.errors;
        }
        for (k, v) in &o.errors {
            add_capped(&mut self.errors, k, *v, MAX_ERROR_KINDS);
        }
        for (a, b) in self.states.iter_mut().zip(o.states) {
            *a += b;
        }
        self.time_to_activate.add(&o.time_to_activate);
        self.poll_lateness.add(&o.poll_lateness);
        for (k, v) in &o.failures {
            add_capped(&mut self.failures, k, *v, MAX_FAILURE_KINDS);
        }
        self.pay.add(&o.pay);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_round_trip_and_merge_exactly() {
        let mut a = Hist::default();
        let mut b = Hist::default();
        for v in [1u64, 10, 100, 1_000, 123_456, 30_000_000] {
            a.record(v);
            b.record(v * 3);
        }
        let a2 = Hist::decode(&a.encode()).unwrap();
        assert_eq!(a2.0, a.0);
        let mut sum = a2.clone();
        sum.add(&Hist::decode(&b.encode()).unwrap());
        let mut direct = a.clone();
        direct.add(&b);
        assert_eq!(sum.0, direct.0);
        assert_eq!(sum.len(), 12);
        assert!(Hist::decode("not base64!").unwrap_err().contains("base64"));
        assert!(Hist::decode("AAAA").is_err());
    }

    #[test]
    fn error_kinds_and_reasons_are_bounded() {
        let mut s = Stats::default();
        for i in 0..1000 {
            let e = CallError::Http {
                status: 503,
                retry_after: None,
                error: Some(posemu_protocol::ErrorBody {
                    code: format!("{i}{}", "x".repeat(i % 3 * 50)),
                    message: String::new(),
                    details: None,
                    trace_id: String::new(),
                }),
            };
            s.request(Endpoint::Step(Step::Status), 1, Some(error_key(&e)));
            s.failure(format!("{i} {}", "ü".repeat(10_000)));
        }
        assert_eq!(s.errors.len(), MAX_ERROR_KINDS + 1);
        assert_eq!(s.errors.values().sum::<u64>(), 1000);
        assert!(s.errors.keys().all(|k| k.len() <= MAX_CODE_CHARS));
        assert_eq!(s.failures.len(), MAX_FAILURE_KINDS + 1);
        assert!(s
            .failures
            .keys()
            .all(|k| k.chars().count() <= MAX_REASON_CHARS + 1));
        let mut sum = Stats::default();
        sum.add(&s);
        sum.add(&s);
        assert_eq!(sum.errors.len(), MAX_ERROR_KINDS + 1);
        assert_eq!(sum.errors.values().sum::<u64>(), 2000);
    }

    #[test]
    fn endpoints_have_unique_names_and_indices() {
        let names: Vec<_> = Endpoint::all().map(|e| e.name()).collect();
        assert_eq!(names.len(), ENDPOINTS);
        for (i, e) in Endpoint::all().enumerate() {
            assert_eq!(e.index(), i);
            assert_eq!(Endpoint::from_name(e.name()), Some(e));
        }
    }
}
