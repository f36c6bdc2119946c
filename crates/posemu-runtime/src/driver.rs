//! Runs one device's machine for real: carries out its effects (calls through a [`Caller`],
//! timers on tokio's clock, saves to a [`ProgressStore`]) and feeds the results back as
//! events on a channel. The TUI and `posemu activate` own a `Driver` and pump that channel;
//! the fleet has its own scheduler for the same machine.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::store::ProgressStore;
use posemu_device::{update, DeviceEvent, DeviceState, Effect, Note, Now, Timer};
use posemu_protocol::api::{ApiAnswer, ApiCall, CallError};
use posemu_protocol::clock::Clock;

pub type CallFuture = Pin<Box<dyn Future<Output = Result<ApiAnswer, CallError>> + Send>>;

/// Makes a device's API calls (the HTTP client, or a fake in tests).
pub trait Caller: Send + Sync + 'static {
    fn call(&self, call: ApiCall) -> CallFuture;
}

pub struct Driver {
    state: DeviceState,
    caller: Arc<dyn Caller>,
    store: Option<ProgressStore>,
    tx: mpsc::UnboundedSender<DeviceEvent>,
    timers: HashMap<Timer, JoinHandle<()>>,
    epoch: Instant,
    clock: Arc<dyn Clock>,
    rng: StdRng,
    save_error: Option<String>,
    warp: u32,
    pace: std::time::Duration,
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
            state,
            caller,
            store,
            tx,
            timers: HashMap::new(),
            epoch: Instant::now(),
            clock,
            rng: StdRng::seed_from_u64(seed),
            save_error: None,
            warp: 1,
            pace: std::time::Duration::ZERO,
        };
        (d, rx)
    }

    /// Runs the device's timers `factor` times faster (tests and demos of long waits: a 3 s
    /// poll takes 3 ms at 1000). Pair it with a [`posemu_protocol::clock::WarpClock`] of the same factor.
    pub fn with_warp(mut self, factor: u32) -> Driver {
        self.warp = factor.max(1);
        self
    }

    /// Holds every call (but status polls) this long before sending it, so each step stays
    /// on screen long enough to explain in a demo (`posemu demo --pace slow`).
    pub fn with_pace(mut self, pace: std::time::Duration) -> Driver {
        self.pace = pace;
        self
    }

    pub fn state(&self) -> &DeviceState {
        &self.state
    }

    /// The machine's state, for a second machine over the same device (payments).
    pub fn state_mut(&mut self) -> &mut DeviceState {
        &mut self.state
    }

    /// Milliseconds on the machine's monotonic clock (tokio's, so paused time works).
    pub fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64 * self.warp as u64
    }

    /// A sender for events from elsewhere (commands such as `Restart`).
    pub fn sender(&self) -> mpsc::UnboundedSender<DeviceEvent> {
        self.tx.clone()
    }

    /// The last failure to save progress, once.
    pub fn take_save_error(&mut self) -> Option<String> {
        self.save_error.take()
    }

    /// Feeds one event to the machine, carries out its effects, returns its notes.
    pub fn handle(&mut self, event: DeviceEvent) -> Vec<Note> {
        let now = Now {
            mono_ms: self.now_ms(),
            wall_ms: self.clock.now().timestamp_millis(),
            random: self.rng.random(),
        };
        let mut notes = Vec::new();
        for effect in update(&mut self.state, now, event) {
            match effect {
                Effect::Call { id, call } => {
                    let pace = match call {
                        ApiCall::Status => std::time::Duration::ZERO,
                        _ => self.pace,
                    };
                    let caller = self.caller.clone();
                    let tx = self.tx.clone();
                    tokio::spawn(async move {
                        if !pace.is_zero() {
                            tokio::time::sleep(pace).await;
                        }
                        let result = caller.call(call).await;
                        let _ = tx.send(DeviceEvent::Answer { call: id, result });
                    });
                }
                Effect::Wait { timer, after } => {
                    let tx = self.tx.clone();
                    let after = after / self.warp;
                    let task = tokio::spawn(async move {
                        tokio::time::sleep(after).await;
                        let _ = tx.send(DeviceEvent::Timer(timer));
                    });
                    if let Some(old) = self.timers.insert(timer, task) {
                        old.abort();
                    }
                }
                Effect::Cancel(timer) => {
                    if let Some(old) = self.timers.remove(&timer) {
                        old.abort();
                    }
                }
                Effect::Save => {
                    if let Some(store) = &self.store {
                        if let Err(e) = store.save(&self.state.progress) {
                            tracing::warn!("cannot save progress: {e}");
                            self.save_error = Some(e.to_string());
                        }
                    }
                }
                Effect::Note(n) => notes.push(n),
            }
        }
        notes
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        for (_, t) in self.timers.drain() {
            t.abort();
        }
    }
}
