//! Runs one device's machine for real, in two halves: the [`Machine`] (the pure state machine
//! plus what it reads: the monotonic time, the wall clock, a seeded random source) turns an
//! event into effects; the [`Effector`] carries effects out (calls through a [`Caller`], timers
//! on tokio's clock, saves to a [`ProgressStore`]) and sends their results back as events on a
//! channel. The POS screen keeps the machine in its model and hands effects to its executor;
//! `posemu activate` uses both through a [`Driver`]; the fleet has its own scheduler.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::store::ProgressStore;
use posemu_device::progress::Progress;
use posemu_device::{update, DeviceEvent, DeviceState, Effect, Note, Now, Timer};
use posemu_protocol::api::{ApiAnswer, ApiCall, CallError};
use posemu_protocol::clock::Clock;

pub type CallFuture = Pin<Box<dyn Future<Output = Result<ApiAnswer, CallError>> + Send>>;

/// Makes a device's API calls (the HTTP client, or a fake in tests).
pub trait Caller: Send + Sync + 'static {
    fn call(&self, call: ApiCall) -> CallFuture;
}

/// The device machine and its inputs: no I/O, nothing spawned.
pub struct Machine {
    state: DeviceState,
    epoch: Instant,
    clock: Arc<dyn Clock>,
    rng: StdRng,
    warp: u32,
    /// [`Machine::stepped_ms`].
    stepped_ms: u64,
}

impl Machine {
    pub fn new(state: DeviceState, clock: Arc<dyn Clock>, seed: u64) -> Machine {
        Machine {
            state,
            epoch: Instant::now(),
            clock,
            rng: StdRng::seed_from_u64(seed),
            warp: 1,
            stepped_ms: 0,
        }
    }

    pub fn state(&self) -> &DeviceState {
        &self.state
    }

    pub fn state_mut(&mut self) -> &mut DeviceState {
        &mut self.state
    }

    /// Milliseconds on the machine's monotonic clock (tokio's, so paused time works), warped:
    /// the real time is read to the nanosecond before it is multiplied, so a warped clock moves
    /// by the millisecond too (not in steps of the warp factor, which made a timer that had
    /// waited its time out still read as early).
    pub fn now_ms(&self) -> u64 {
        let ms = self
            .epoch
            .elapsed()
            .as_nanos()
            .saturating_mul(self.warp as u128)
            / 1_000_000;
        u64::try_from(ms).unwrap_or(u64::MAX)
    }

    /// The machine's time ([`Machine::now_ms`]) at the last event it handled: the time of the
    /// notes that event made, read once (a note's `took` is a difference of such times, so a
    /// timeline stamped with this agrees with it exactly).
    pub fn stepped_ms(&self) -> u64 {
        self.stepped_ms
    }

    /// A number from the machine's seeded random source (a second machine over the same
    /// device, payments, draws its randomness here too).
    pub fn random(&mut self) -> u64 {
        self.rng.random()
    }

    /// What the machine reads for one step: its monotonic time, its wall clock and a random
    /// number. The payment machine over the same device takes its `Now` here too: the device
    /// has one clock.
    pub fn now(&mut self) -> Now {
        Now {
            mono_ms: self.now_ms(),
            wall_ms: self.clock.now().timestamp_millis(),
            random: self.rng.random(),
        }
    }

    /// Feeds one event to the machine; answers its effects (notes included), to carry out.
    pub fn step(&mut self, event: DeviceEvent) -> Vec<Effect> {
        let now = self.now();
        self.stepped_ms = now.mono_ms;
        update(&mut self.state, now, event)
    }
}

/// The real time to sleep for `after` of a machine's time warped by `warp`: rounded up, so
/// that when it is over the machine's clock ([`Machine::now_ms`]) has moved `after` at least and
/// the machine does not take its timer for an early one.
pub fn real_wait(after: Duration, warp: u32) -> Duration {
    let ns = after.as_nanos().div_ceil(warp.max(1) as u128);
    Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX))
}

/// Carries out a machine's effects; results come back as events on its channel.
pub struct Effector {
    caller: Arc<dyn Caller>,
    store: Option<ProgressStore>,
    tx: mpsc::UnboundedSender<DeviceEvent>,
    timers: HashMap<Timer, JoinHandle<()>>,
    warp: u32,
    pace: Duration,
    /// Counts this effector's calls on the wire (after the pace), if someone asked to know.
    in_flight: Option<Arc<AtomicUsize>>,
}

/// One call on the wire, counted in an in-flight counter until it drops (answered or aborted).
pub struct InFlight(Option<Arc<AtomicUsize>>);

impl InFlight {
    pub fn new(counter: Option<&Arc<AtomicUsize>>) -> InFlight {
        if let Some(c) = counter {
            c.fetch_add(1, Ordering::SeqCst);
        }
        InFlight(counter.cloned())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(c) = &self.0 {
            c.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl Effector {
    /// Counts the calls on the wire in `counter` (the POS screen's executor: a test on paused
    /// time holds the clock while real I/O is under way).
    pub fn count_in_flight(&mut self, counter: Arc<AtomicUsize>) {
        self.in_flight = Some(counter);
    }

    /// A sender for events from elsewhere (commands such as `Restart`).
    pub fn sender(&self) -> mpsc::UnboundedSender<DeviceEvent> {
        self.tx.clone()
    }

    /// Makes `call` (held for the pace first, but status polls); its answer comes back as
    /// `DeviceEvent::Answer`.
    pub fn call(&self, id: u32, call: ApiCall) {
        let pace = match call {
            ApiCall::Status => Duration::ZERO,
            _ => self.pace,
        };
        let caller = self.caller.clone();
        let tx = self.tx.clone();
        let counter = self.in_flight.clone();
        // counted from now, or after the pace: a paced call waits on a timer first
        let counted = pace.is_zero().then(|| InFlight::new(counter.as_ref()));
        tokio::spawn(async move {
            let on_wire = match counted {
                Some(c) => c,
                None => {
                    tokio::time::sleep(pace).await;
                    InFlight::new(counter.as_ref())
                }
            };
            let result = caller.call(call).await;
            let _ = tx.send(DeviceEvent::Answer { call: id, result });
            drop(on_wire);
        });
    }

    /// Fires `DeviceEvent::Timer(timer)` after `after` (warped), replacing one pending.
    pub fn wait(&mut self, timer: Timer, after: Duration) {
        let tx = self.tx.clone();
        let after = real_wait(after, self.warp);
        let task = tokio::spawn(async move {
            tokio::time::sleep(after).await;
            let _ = tx.send(DeviceEvent::Timer(timer));
        });
        if let Some(old) = self.timers.insert(timer, task) {
            old.abort();
        }
    }

    pub fn cancel(&mut self, timer: Timer) {
        if let Some(old) = self.timers.remove(&timer) {
            old.abort();
        }
    }

    /// Persists `progress` (nothing without a store).
    pub fn save(&self, progress: &Progress) -> Result<(), String> {
        match &self.store {
            Some(store) => store.save(progress).map_err(|e| {
                tracing::warn!("cannot save progress: {e}");
                e.to_string()
            }),
            None => Ok(()),
        }
    }
}

impl Drop for Effector {
    fn drop(&mut self) {
        for (_, t) in self.timers.drain() {
            t.abort();
        }
    }
}

/// A machine and its effector together: `handle` steps the machine and carries out at once.
pub struct Driver {
    pub machine: Machine,
    pub effector: Effector,
    save_error: Option<String>,
}

impl Driver {
    /// A driver and the channel its events arrive on; send `DeviceEvent::Start` to begin.
    pub fn new(
        state: DeviceState,
        caller: Arc<dyn Caller>,
        store: Option<ProgressStore>,
        clock: Arc<dyn Clock>,
        seed: u64,
    ) -> (Driver, mpsc::UnboundedReceiver<DeviceEvent>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let d = Driver {
            machine: Machine::new(state, clock, seed),
            effector: Effector {
                caller,
                store,
                tx,
                timers: HashMap::new(),
                warp: 1,
                pace: Duration::ZERO,
                in_flight: None,
            },
            save_error: None,
        };
        (d, rx)
    }

    /// Runs the device's timers `factor` times faster (tests and demos of long waits: a 3 s
    /// poll takes 3 ms at 1000). Pair it with a [`posemu_protocol::clock::WarpClock`] of the same factor.
    pub fn with_warp(mut self, factor: u32) -> Driver {
        self.machine.warp = factor.max(1);
        self.effector.warp = factor.max(1);
        self
    }

    /// Holds every call (but status polls) this long before sending it, so each step stays
    /// on screen long enough to explain in a demo (`posemu demo --pace slow`).
    pub fn with_pace(mut self, pace: Duration) -> Driver {
        self.effector.pace = pace;
        self
    }

    pub fn state(&self) -> &DeviceState {
        self.machine.state()
    }

    /// The machine's state, for a second machine over the same device (payments).
    pub fn state_mut(&mut self) -> &mut DeviceState {
        self.machine.state_mut()
    }

    pub fn now_ms(&self) -> u64 {
        self.machine.now_ms()
    }

    /// [`Machine::stepped_ms`]: the time of the notes [`Driver::handle`] just answered.
    pub fn stepped_ms(&self) -> u64 {
        self.machine.stepped_ms()
    }

    pub fn sender(&self) -> mpsc::UnboundedSender<DeviceEvent> {
        self.effector.sender()
    }

    /// The last failure to save progress, once.
    pub fn take_save_error(&mut self) -> Option<String> {
        self.save_error.take()
    }

    /// The two halves, to keep apart (the POS screen's model keeps the machine).
    pub fn into_parts(self) -> (Machine, Effector) {
        (self.machine, self.effector)
    }

    /// Feeds one event to the machine, carries out its effects, returns its notes.
    pub fn handle(&mut self, event: DeviceEvent) -> Vec<Note> {
        let mut notes = Vec::new();
        for effect in self.machine.step(event) {
            match effect {
                Effect::Call { id, call } => self.effector.call(id, call),
                Effect::Wait { timer, after } => self.effector.wait(timer, after),
                Effect::Cancel(timer) => self.effector.cancel(timer),
                Effect::Save => {
                    if let Err(e) = self.effector.save(&self.machine.state.progress) {
                        self.save_error = Some(e);
                    }
                }
                Effect::Note(n) => notes.push(n),
            }
        }
        notes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use posemu_device::DeviceConfig;
    use posemu_protocol::clock::SystemClock;

    struct NoCalls;

    impl Caller for NoCalls {
        fn call(&self, _: ApiCall) -> CallFuture {
            Box::pin(std::future::pending())
        }
    }

    fn driver(warp: u32) -> (Driver, mpsc::UnboundedReceiver<DeviceEvent>) {
        let config = DeviceConfig::new("POS-8F3A2C91", "http://x", "1.4.2", [9; 32]);
        let (d, rx) = Driver::new(
            DeviceState::new(config),
            Arc::new(NoCalls),
            None,
            Arc::new(SystemClock),
            1,
        );
        (d.with_warp(warp), rx)
    }

    /// A warped clock moves by the millisecond, and a warped timer fires once the machine's
    /// clock has reached its due time (the machine ignores a timer that reads as early: a
    /// payment retry or a poll would then wait forever). Here the driver starts half a real
    /// millisecond past tokio's timer ticks, as it does in a real run.
    #[tokio::test(start_paused = true)]
    async fn a_warped_clock_is_fine_grained_and_its_timers_are_never_early() {
        tokio::time::advance(Duration::from_micros(500)).await;
        let (mut d, mut rx) = driver(100);
        let start = d.now_ms();
        assert_eq!(start, 0);
        d.effector.wait(Timer::Retry, Duration::from_millis(927));
        assert!(matches!(
            rx.recv().await,
            Some(DeviceEvent::Timer(Timer::Retry))
        ));
        assert!(d.now_ms() >= start + 927, "woke at {} ms", d.now_ms());

        let (d, _rx) = driver(100);
        tokio::time::advance(Duration::from_micros(1_500)).await;
        assert_eq!(d.now_ms(), 150);
        assert_eq!(
            real_wait(Duration::from_millis(927), 100).as_nanos(),
            9_270_000
        );
        assert_eq!(real_wait(Duration::from_millis(1), 3).as_nanos(), 333_334);
    }
}
