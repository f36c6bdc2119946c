//! The fleet's scheduler: a few worker tasks, each owning a slab of devices and one set of timers
//! ([`timers`]: a timing wheel),
//! run the device state machine (`device::update`, the same machine as the POS screen) for
//! thousands of devices without a task or a timer per device.
//!
//! A sleeping device costs its boxed state and a timer entry per pending timer. Each worker
//! drives its own calls (a `FuturesUnordered` of at most its share of `--max-in-flight`); calls
//! beyond that wait in a queue as plain data, so an overloaded fleet queues a few bytes per call
//! rather than a live request each, and poll lateness includes that wait. Timers are deadlines
//! the machine checks itself, so the timers never remove entries: an entry whose deadline no
//! longer matches the device's is skipped when it comes up.

use std::collections::VecDeque;
use std::future::Future;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures_util::stream::{FuturesUnordered, StreamExt};
use futures_util::FutureExt;
use parking_lot::Mutex;
use posemu_client::SharedHeaders;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::watch;
use tokio::time::Instant;

mod calls;
mod feed;
mod pay;
pub mod timers;

use super::devices::DeviceSource;
use super::dist::Dist;
use super::stats::{error_key, truncate_chars, Endpoint, State, Stats, MAX_REASON_CHARS};
use posemu_client::merchant::{claim_code, ClaimOutcome};
use posemu_client::{DeviceFaults, DeviceIdentity, Transport};
use posemu_device::poll::{deadline, uniform_between};
use posemu_device::{
    update, DeviceConfig, DeviceEvent, DeviceState, Effect, Note, Now, Step, Timer,
};
use posemu_protocol::api::{ApiAnswer, ApiCall, CallError, PayAnswer, PayCall};
use posemu_protocol::text::escape_control;

/// How a fleet claims codes, unattended (the client's one auto-claim, [`claim_code`]).
pub use posemu_client::merchant::ClaimVia as ClaimMode;

/// What every worker shares.
pub struct Plan {
    pub transport: Transport,
    pub server: String,
    /// The User-Agent (and the fleet identity key id) every device shares.
    pub headers: SharedHeaders,
    pub app_version: String,
    /// Each device's poll interval is drawn uniformly from this range.
    pub poll: (Duration, Duration),
    /// Test knob: keep poll intervals below the spec's 3 s (set past the machine's clamp).
    pub unclamped_poll: bool,
    pub spread_first_poll: bool,
    pub faults: Vec<super::fault_shares::FaultShare>,
    pub claim: Option<(ClaimMode, Dist)>,
    /// Devices started per second; 0 starts them all at once.
    pub ramp_per_sec: f64,
    pub connection_per_device: bool,
    /// Calls in flight per worker (bounds the sockets of a shared pool).
    pub in_flight_per_worker: usize,
    pub epoch: Instant,
    pub seed: u64,
    /// Activated terminals charge (`--charges-per-minute`) instead of leaving memory.
    pub charges: Option<super::charges::ChargePlan>,
    /// Devices of all workers not settled yet: payments sent once it is 0 count as sent
    /// after the whole fleet activated.
    pub unsettled: std::sync::atomic::AtomicU64,
    /// With payments: where the terminal-parameters calls run, with a pool of their own (the
    /// run's multi-threaded runtime). Their answers are the heaviest to decode on the device
    /// side (hex, AES, gunzip and a hash of ~200 KB, ~0.9 ms in one piece): on a worker's
    /// thread they held up every other answer of that worker, charges and polls included.
    pub offload: Option<(tokio::runtime::Handle, Transport)>,
}

impl Plan {
    pub fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// When the device at ramp position `k` starts, ms after the epoch.
    fn start_ms(&self, k: u64) -> u64 {
        if self.ramp_per_sec <= 0.0 {
            0
        } else {
            (k as f64 * 1000.0 / self.ramp_per_sec) as u64
        }
    }
}

const NO_DEADLINE: u64 = u64::MAX;
/// Timer slots per device: the machine's three, the merchant's claim, the next charge and the
/// payment machine's retry.
const CLAIM: usize = 3;
const CHARGE: usize = 4;
const PAY_RETRY: usize = 5;
const SLOTS: usize = 6;

fn timer_slot(t: Timer) -> usize {
    match t {
        Timer::Poll => 0,
        Timer::CodeExpiry => 1,
        Timer::Retry => 2,
    }
}

const TIMERS: [Timer; 3] = [Timer::Poll, Timer::CodeExpiry, Timer::Retry];

/// A started, unsettled device.
struct Dev {
    state: DeviceState,
    identity: DeviceIdentity,
    /// Its own connection pool with `--connection-per-device` (boxed: most devices share the
    /// worker's, and a `Transport` inline would cost each 120 bytes).
    transport: Option<Box<Transport>>,
    /// How it misbehaves (`--faulty`); usually not at all.
    faults: DeviceFaults,
    due: [u64; SLOTS],
    st: State,
    /// Payments, once activated with `--charges-per-minute`.
    till: Option<Box<pay::Till>>,
}

enum Slot {
    Waiting,
    Live(Box<Dev>),
    /// Settled: counted in the stats, memory given back.
    Done,
}

/// A finished call.
enum Done {
    Answer {
        slot: u32,
        call: u32,
        step: Step,
        result: Result<ApiAnswer, CallError>,
        latency_us: u64,
    },
    Claimed {
        slot: u32,
        /// The error, and whether it is worth retrying at all.
        error: Option<(CallError, bool)>,
        latency_us: u64,
    },
    Paid {
        slot: u32,
        call: u32,
        op: super::pay_stats::PayOp,
        /// Sent after the whole fleet had settled.
        steady: bool,
        result: Result<PayAnswer, CallError>,
        latency_us: u64,
    },
    Settled {
        slot: u32,
        charge_id: String,
        result: Result<(), CallError>,
        latency_us: u64,
    },
}

type InFlight = FuturesUnordered<Pin<Box<dyn Future<Output = Done> + Send>>>;

/// A call waiting for room in flight: plain data.
enum Queued {
    Call {
        slot: u32,
        id: u32,
        call: ApiCall,
        /// The poll's scheduled time (ms), for lateness.
        poll_deadline: Option<u64>,
    },
    Claim {
        slot: u32,
    },
    Pay {
        slot: u32,
        id: u32,
        call: Box<PayCall>,
    },
    Settle {
        slot: u32,
        charge_id: String,
    },
}

/// One worker: the devices at ramp positions `k ≡ index (mod workers)` of `positions`.
pub struct Worker {
    plan: Arc<Plan>,
    /// This worker's own connection pool (its connections live on its thread).
    transport: Transport,
    /// What every device of the run shares (server, app version), cloned per device without
    /// copying its strings.
    config: DeviceConfig,
    source: DeviceSource,
    /// First fleet position of this shard.
    base: u32,
    index: u32,
    workers: u32,
    slots: Vec<Slot>,
    next_start: usize,
    unsettled: usize,
    /// Activated terminals kept to charge.
    charging: usize,
    timers: timers::Timers,
    in_flight: InFlight,
    queue: VecDeque<Queued>,
    rng: StdRng,
    stats: Arc<Mutex<Stats>>,
}

/// Starts and timers handled per turn of the loop before answers are read again.
const BATCH: usize = 2048;

impl Worker {
    pub fn new(
        plan: Arc<Plan>,
        source: DeviceSource,
        positions: Range<u32>,
        index: u32,
        workers: u32,
        stats: Arc<Mutex<Stats>>,
    ) -> Result<Worker, String> {
        let len = positions.len() as u32;
        let mine = if index < len {
            ((len - index - 1) / workers + 1) as usize
        } else {
            0
        };
        let mut slots = Vec::with_capacity(mine);
        slots.resize_with(mine, || Slot::Waiting);
        stats.lock().states[State::Waiting as usize] += mine as i64;
        let rng =
            StdRng::seed_from_u64(plan.seed ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let transport = plan.transport.direct_pool().map_err(|e| e.to_string())?;
        let mut config = DeviceConfig::new("", &plan.server, &plan.app_version, [0; 32]);
        config.spread_first_poll = plan.spread_first_poll;
        Ok(Worker {
            transport,
            config,
            plan,
            source,
            base: positions.start,
            index,
            workers,
            slots,
            next_start: 0,
            unsettled: mine,
            charging: 0,
            timers: timers::Timers::default(),
            in_flight: FuturesUnordered::new(),
            queue: VecDeque::new(),
            rng,
            stats,
        })
    }

    fn settled_one(&mut self) {
        self.unsettled -= 1;
        let before = self
            .plan
            .unsettled
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        if before == 1 && self.plan.charges.is_some() {
            // the last device of the run settled: the activation's buffers are free, and
            // charging terminals stay for a long time
            super::procstat::release_free_memory();
        }
    }

    /// Ramp position of local slot `j` (0-based within the shard).
    fn ramp_pos(&self, j: usize) -> u64 {
        j as u64 * self.workers as u64 + self.index as u64
    }

    /// Runs the worker on a thread of its own with a single-threaded runtime: its calls, their
    /// connections and its timers all stay on that thread (no cross-thread wake-ups per request).
    pub fn spawn_thread(
        self,
        stop: watch::Receiver<bool>,
    ) -> std::io::Result<tokio::sync::oneshot::Receiver<()>> {
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        std::thread::Builder::new()
            .name(format!("fleet-worker-{}", self.index))
            .spawn(move || {
                rt.block_on(self.run(stop));
                let _ = done_tx.send(());
            })?;
        Ok(done_rx)
    }

    /// Runs until every device has settled or `stop` turns true.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        loop {
            if *stop.borrow() || self.unsettled + self.charging == 0 {
                break;
            }
            let mut busy = self.start_due();
            busy |= self.fire_due();
            self.send_queued();
            // answers already in: handle them without sleeping
            for _ in 0..BATCH {
                match self.in_flight.next().now_or_never() {
                    Some(Some(done)) => self.on_done(done),
                    _ => break,
                }
            }
            self.send_queued();
            if self.unsettled + self.charging == 0 {
                break;
            }
            if busy {
                tokio::task::yield_now().await;
                continue;
            }
            let next = self.next_deadline();
            let sleep = tokio::time::sleep_until(
                self.plan.epoch + Duration::from_millis(next.min(u64::MAX / 4)),
            );
            tokio::select! {
                biased;
                r = stop.changed() => if r.is_err() { break },
                Some(done) = self.in_flight.next(), if !self.in_flight.is_empty() => self.on_done(done),
                _ = sleep => {}
            }
        }
    }

    /// Moves queued calls into flight while there is room.
    fn send_queued(&mut self) {
        while self.in_flight.len() < self.plan.in_flight_per_worker {
            match self.queue.pop_front() {
                Some(Queued::Call {
                    slot,
                    id,
                    call,
                    poll_deadline,
                }) => self.send(slot as usize, id, call, poll_deadline),
                Some(Queued::Claim { slot }) => self.send_claim(slot as usize),
                Some(Queued::Pay { slot, id, call }) => self.send_pay(slot as usize, id, *call),
                Some(Queued::Settle { slot, charge_id }) => {
                    self.send_settle(slot as usize, charge_id)
                }
                None => return,
            }
        }
    }

    fn next_deadline(&self) -> u64 {
        let timer = self.timers.next_due().unwrap_or(NO_DEADLINE);
        let start = if self.next_start < self.slots.len() {
            self.plan.start_ms(self.ramp_pos(self.next_start))
        } else {
            NO_DEADLINE
        };
        timer.min(start)
    }

    /// Starts the devices whose ramp time has come; true if more are due right now.
    fn start_due(&mut self) -> bool {
        let now = self.plan.now_ms();
        for _ in 0..BATCH {
            let j = self.next_start;
            if j >= self.slots.len() || self.plan.start_ms(self.ramp_pos(j)) > now {
                return false;
            }
            self.next_start += 1;
            self.start(j);
        }
        true
    }

    fn start(&mut self, j: usize) {
        let pos = self.base + self.ramp_pos(j) as u32;
        let stats = self.stats.clone();
        let made = self.source.identity(pos, &self.plan.headers);
        let (identity, zmk) = match made {
            Ok(x) => x,
            Err(e) => {
                // cannot happen for validated sources; count it rather than panic
                let mut s = stats.lock();
                s.moved(State::Waiting, State::Failed);
                s.failure(format!("identity: {e}"));
                self.slots[j] = Slot::Done;
                self.settled_one();
                return;
            }
        };
        let transport = if self.plan.connection_per_device {
            self.transport.separate_pool().ok().map(Box::new)
        } else {
            None
        };
        let mut cfg = self.config.for_device(identity.device_id(), zmk);
        let (lo, hi) = self.plan.poll;
        let interval = uniform_between(lo, hi, self.rng.random());
        cfg.poll_interval = interval;
        let mut state = DeviceState::new(cfg);
        if self.plan.unclamped_poll {
            state.config.poll_interval = interval;
        }
        self.slots[j] = Slot::Live(Box::new(Dev {
            state,
            identity,
            transport,
            faults: super::fault_shares::draw(&self.plan.faults, || self.rng.random::<f64>()),
            due: [NO_DEADLINE; SLOTS],
            st: State::Waiting,
            till: None,
        }));
        self.feed(j, DeviceEvent::Start, None);
    }

    /// Fires due timers; true if more are due right now.
    fn fire_due(&mut self) -> bool {
        let now = self.plan.now_ms();
        for _ in 0..BATCH {
            let Some((deadline, j, kind)) = self.timers.pop_due(now) else {
                return false;
            };
            let (j, kind) = (j as usize, kind as usize);
            let Slot::Live(dev) = &mut self.slots[j] else {
                continue;
            };
            if dev.due[kind] != deadline {
                continue; // replaced or cancelled since
            }
            dev.due[kind] = NO_DEADLINE;
            if kind == CLAIM {
                self.queue.push_back(Queued::Claim { slot: j as u32 });
            } else if kind == CHARGE {
                self.charge_due(j);
            } else if kind == PAY_RETRY {
                self.feed_pay(j, posemu_device::payment::PayEvent::Timer);
            } else {
                let poll_deadline = (kind == 0).then_some(deadline);
                self.feed(j, DeviceEvent::Timer(TIMERS[kind]), poll_deadline);
            }
        }
        true
    }

    fn on_done(&mut self, d: Done) {
        match d {
            Done::Answer {
                slot,
                call,
                step,
                result,
                latency_us,
            } => {
                self.stats.lock().request(
                    Endpoint::Step(step),
                    latency_us,
                    result.as_ref().err().map(error_key),
                );
                self.feed(slot as usize, DeviceEvent::Answer { call, result }, None);
            }
            Done::Claimed {
                slot,
                error,
                latency_us,
            } => {
                let retry = error.as_ref().is_some_and(|(e, may_retry)| {
                    *may_retry && (e.is_transient() || e.status() == Some(429))
                });
                self.stats.lock().request(
                    Endpoint::Claim,
                    latency_us,
                    error.as_ref().map(|(e, _)| error_key(e)),
                );
                if retry {
                    // the merchant tries again shortly; a code that expires meanwhile gets its own
                    let after = 1000 + self.rng.random_range(0..1000);
                    if let Slot::Live(dev) = &mut self.slots[slot as usize] {
                        let at = self.plan.now_ms() + after;
                        dev.due[CLAIM] = at;
                        self.timers.push(at, slot, CLAIM as u8);
                    }
                }
            }
            Done::Paid {
                slot,
                call,
                op,
                steady,
                result,
                latency_us,
            } => self.on_paid(slot as usize, call, (op, steady), result, latency_us),
            Done::Settled {
                slot,
                charge_id,
                result,
                latency_us,
            } => self.on_settled(slot as usize, charge_id, result, latency_us),
        }
    }
}
