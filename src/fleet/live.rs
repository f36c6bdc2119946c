//! A running fleet seen from outside: sums of the workers' stats, the stop switch, and the
//! watcher that ends the run on `--duration` or Ctrl-C and drives the progress display.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::report::RunConfig;
use super::stats::{State, Stats};
use super::Ui;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// Every device activated or stopped.
    Settled,
    Duration,
    /// Ctrl-C, or `q` on the dashboard.
    Interrupted,
}

impl StopReason {
    pub fn name(self) -> &'static str {
        match self {
            StopReason::Settled => "settled",
            StopReason::Duration => "duration",
            StopReason::Interrupted => "interrupted",
        }
    }
}

pub struct LiveTally {
    stats: Vec<Arc<Mutex<Stats>>>,
    pub epoch: Instant,
    /// Devices of this run.
    pub devices: u64,
    pub config: RunConfig,
    stop_tx: watch::Sender<bool>,
    reason: Mutex<Option<StopReason>>,
    done_tx: watch::Sender<bool>,
}

/// The counts that matter first, on the dashboard and the progress lines: devices activated,
/// failed (failed or update required), in progress (started, not settled) and waiting (not
/// started yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    pub activated: u64,
    pub failed: u64,
    pub in_progress: u64,
    pub waiting: u64,
}

impl Totals {
    pub fn of(s: &Stats) -> Totals {
        let n = |st: State| s.count(st).max(0) as u64;
        let mut t = Totals {
            activated: n(State::Ready),
            failed: n(State::Failed).saturating_add(n(State::UpdateRequired)),
            in_progress: 0,
            waiting: n(State::Waiting),
        };
        for st in State::ALL {
            if !st.is_settled() && st != State::Waiting {
                t.in_progress = t.in_progress.saturating_add(n(st));
            }
        }
        t
    }
}

/// Request counts of the last seconds, for rates and the sparkline.
#[derive(Debug, Default)]
pub struct Rates {
    last_total: u64,
    last_at: Option<Instant>,
    pub per_second: VecDeque<u64>,
}

impl Rates {
    pub const KEEP: usize = 300;

    /// Records the total now; answers the rate since the previous call.
    pub fn tick(&mut self, total: u64) -> u64 {
        let now = Instant::now();
        let rate = match self.last_at {
            Some(t) => {
                let dt = (now - t).as_secs_f64().max(1e-3);
                ((total - self.last_total.min(total)) as f64 / dt).round() as u64
            }
            None => 0,
        };
        self.last_total = total;
        self.last_at = Some(now);
        self.per_second.push_back(rate);
        if self.per_second.len() > Self::KEEP {
            self.per_second.pop_front();
        }
        rate
    }

    pub fn current(&self) -> u64 {
        self.per_second.back().copied().unwrap_or(0)
    }
}

impl LiveTally {
    pub fn new(
        stats: Vec<Arc<Mutex<Stats>>>,
        epoch: Instant,
        devices: u64,
        config: RunConfig,
        stop_tx: watch::Sender<bool>,
    ) -> LiveTally {
        LiveTally {
            stats,
            epoch,
            devices,
            config,
            stop_tx,
            reason: Mutex::new(None),
            done_tx: watch::channel(false).0,
        }
    }

    /// The workers' stats added up.
    pub fn snapshot(&self) -> Stats {
        let mut total = Stats::default();
        for s in &self.stats {
            total.add(&s.lock());
        }
        total
    }

    /// Asks the workers to stop; the first reason given wins.
    pub fn stop(&self, why: StopReason) {
        self.reason.lock().get_or_insert(why);
        // `send` would drop the value when no receiver is left; the switch must stay on
        self.stop_tx.send_replace(true);
    }

    pub fn stop_reason(&self) -> Option<StopReason> {
        *self.reason.lock()
    }

    /// The workers have all returned.
    ///
    /// `send_replace`, not `send`: `send` keeps the old value when nobody has subscribed yet,
    /// and the watcher subscribes from a task of its own, which may not have run when a fleet
    /// that fails at once finishes (it then waited for a `true` that never came: the run hung).
    pub fn finish(&self) {
        self.done_tx.send_replace(true);
    }

    pub fn is_finished(&self) -> bool {
        *self.done_tx.borrow()
    }

    pub fn finished(&self) -> watch::Receiver<bool> {
        self.done_tx.subscribe()
    }

    /// Ends the run after `duration` or on Ctrl-C, and shows progress, until [`LiveTally::finish`].
    pub fn watch(self: Arc<Self>, duration: Option<Duration>, ui: Ui) -> JoinHandle<()> {
        tokio::spawn(async move {
            let mut done = self.finished();
            let display = match ui {
                Ui::Quiet => None,
                Ui::ProgressLines => Some(tokio::spawn(self.clone().progress_lines())),
                Ui::Dashboard => Some(tokio::spawn(super::dashboard::run(self.clone()))),
            };
            let timer = async {
                match duration {
                    Some(d) => tokio::time::sleep(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::pin!(timer);
            let mut timer_live = true;
            let mut ctrl_c_live = ui != Ui::Dashboard; // the dashboard reads Ctrl-C as a key
            while !*done.borrow() {
                tokio::select! {
                    _ = &mut timer, if timer_live => {
                        timer_live = false;
                        self.stop(StopReason::Duration);
                    }
                    r = tokio::signal::ctrl_c(), if ctrl_c_live => {
                        ctrl_c_live = false;
                        if r.is_ok() {
                            self.stop(StopReason::Interrupted);
                        }
                    }
                    r = done.changed() => if r.is_err() { break },
                }
            }
            if let Some(d) = display {
                let _ = d.await;
            }
        })
    }

    /// One line a second on stderr (the CLI picks this only when stderr is a terminal).
    async fn progress_lines(self: Arc<Self>) {
        let mut done = self.finished();
        let mut rates = Rates::default();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.tick().await;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                // `wait_for` sees a finish that came before this task subscribed
                _ = done.wait_for(|d| *d) => return,
            }
            let s = self.snapshot();
            let rate = rates.tick(s.requests());
            eprintln!("{}", self.progress_line(&s, rate));
        }
    }

    /// `[   3.0s] 10 devices: activated 4, failed 1, in progress 5 | polling 3, keys 2 | …`:
    /// the totals first, then the busy steps.
    pub fn progress_line(&self, s: &Stats, rate: u64) -> String {
        let t = Totals::of(s);
        let states: Vec<String> = State::ALL
            .iter()
            .filter(|st| !st.is_settled() && **st != State::Waiting && s.count(**st) > 0)
            .map(|st| format!("{} {}", st.name(), s.count(*st)))
            .collect();
        let pay = if s.pay.is_empty() {
            String::new()
        } else {
            let o = &s.pay.outcomes;
            format!(
                " | {} charges: {} approved, {} declined, {} unknown",
                o.charges,
                o.approved + o.partially_approved,
                o.declined,
                o.unknown
            )
        };
        format!(
            "[{:>7.1}s] {} devices: activated {}, failed {}, in progress {}, waiting {} | {} | {} req/s | {} errors{pay}",
            self.epoch.elapsed().as_secs_f64(),
            self.devices,
            t.activated,
            t.failed,
            t.in_progress,
            t.waiting,
            if states.is_empty() { "-".to_string() } else { states.join(", ") },
            rate,
            s.error_count()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tally() -> Arc<LiveTally> {
        let config = RunConfig {
            posemu_version: "test".into(),
            fleet_devices: 5,
            device_source: "derived".into(),
            seed_fingerprint: None,
            server: "http://127.0.0.1:1".into(),
            ramp_per_sec: 0.0,
            poll: "3000ms-5000ms".into(),
            claim: None,
            duration_seconds: None,
            connection_per_device: false,
            device_faults: Vec::new(),
            max_in_flight: 1,
            workers: 1,
            charges: None,
        };
        let (stop_tx, _) = watch::channel(false);
        Arc::new(LiveTally::new(
            vec![Arc::new(Mutex::new(Stats::default()))],
            Instant::now(),
            5,
            config,
            stop_tx,
        ))
    }

    /// The hang of a fleet whose devices all failed at once: the workers returned and
    /// `finish` ran before the watcher's task had subscribed; the watcher then waited forever.
    #[tokio::test(start_paused = true)]
    async fn a_watcher_that_starts_after_the_finish_ends() {
        for ui in [Ui::Quiet, Ui::ProgressLines] {
            let live = tally();
            // on this single-threaded runtime the watcher's task cannot run before `finish`
            let watcher = live.clone().watch(None, ui);
            live.finish();
            assert!(live.is_finished());
            tokio::time::timeout(Duration::from_secs(3600), watcher)
                .await
                .unwrap_or_else(|_| panic!("{ui:?}: the watcher never ended"))
                .unwrap();
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_stop_with_no_worker_left_still_reads_as_stopped() {
        let live = tally();
        let rx = live.stop_tx.subscribe();
        drop(rx);
        live.stop(StopReason::Duration);
        assert!(*live.stop_tx.borrow());
        assert_eq!(live.stop_reason(), Some(StopReason::Duration));
    }

    #[test]
    fn totals_count_failed_with_update_required_and_exclude_waiting_from_in_progress() {
        let mut s = Stats::default();
        s.states[State::Waiting as usize] = 10;
        for to in [
            State::Ready,
            State::Ready,
            State::Failed,
            State::UpdateRequired,
            State::Polling,
            State::Keys,
        ] {
            s.moved(State::Waiting, to);
        }
        assert_eq!(
            Totals::of(&s),
            Totals {
                activated: 2,
                failed: 2,
                in_progress: 2,
                waiting: 4
            }
        );
    }
}
