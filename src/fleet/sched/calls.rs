//! Sending a worker's calls: a device's API call (on the worker's pool, or on the run's
//! runtime for terminal parameters when terminals take payments) and a merchant's claim. Each
//! becomes one future in the worker's `in_flight`, which ends in a [`Done`].

use super::*;

impl Worker {
    /// Sends a queued call of device `j` (if it is still live).
    pub(super) fn send(&mut self, j: usize, id: u32, call: ApiCall, poll_deadline: Option<u64>) {
        let Slot::Live(dev) = &self.slots[j] else {
            return; // settled since: nothing waits for the answer
        };
        if let Some(d) = poll_deadline {
            let now_us = self.plan.epoch.elapsed().as_micros() as u64;
            self.stats
                .lock()
                .poll_lateness
                .record(now_us.saturating_sub(d * 1000));
        }
        let step = call.step();
        let slot = j as u32;
        let offload = match (&self.plan.offload, &call, &dev.transport) {
            (Some(o), ApiCall::TerminalParameters { .. }, None) => Some(o),
            _ => None,
        };
        let transport = match offload {
            Some((_, transport)) => transport,
            None => dev.transport.as_deref().unwrap_or(&self.transport),
        };
        let fut = transport.call(
            &dev.identity,
            &dev.faults,
            &call,
            Utc::now(),
            &mut self.rng,
            None,
        );
        let done = move |(result, latency_us)| Done::Answer {
            slot,
            call: id,
            step,
            result,
            latency_us,
        };
        match offload {
            Some((runtime, _)) => {
                let task = runtime.spawn(timed(fut));
                self.in_flight.push(Box::pin(async move {
                    done(task.await.unwrap_or_else(|e| {
                        let e = CallError::Network(format!("the call's task ended: {e}"));
                        (Err(e), 0)
                    }))
                }));
            }
            None => self
                .in_flight
                .push(Box::pin(async move { done(timed(fut).await) })),
        }
    }

    pub(super) fn send_claim(&mut self, j: usize) {
        let Slot::Live(dev) = &self.slots[j] else {
            return;
        };
        // only a code on screen can be typed in; a new code schedules its own claim
        let Some(code) = dev.state.code.as_ref().map(|c| c.code.clone()) else {
            return;
        };
        if dev.st != State::Polling {
            return;
        }
        let Some((mode, _)) = &self.plan.claim else {
            return;
        };
        let device_id = dev.identity.device_id().to_string();
        let transport = self.transport.clone();
        let via = mode.clone();
        let slot = j as u32;
        self.in_flight.push(Box::pin(async move {
            // the timers did the waiting and the code was checked just above: no delay, current
            let r = claim_code(
                &via,
                &transport,
                &device_id,
                &code,
                Duration::ZERO,
                || true,
                None,
            );
            let (r, latency_us) = timed(r).await;
            let error = match r {
                Ok(ClaimOutcome::Claimed) | Ok(ClaimOutcome::NotCurrent(None)) => None,
                // counted as the answer it was, but never retried: the code is gone
                Ok(ClaimOutcome::NotCurrent(Some(e))) => Some((e.source, false)),
                Err(e) => Some((e.source, true)),
            };
            Done::Claimed {
                slot,
                error,
                latency_us,
            }
        }));
    }
}

/// `fut`'s output and how long it took, in µs: the latency every request of the fleet records.
pub(super) async fn timed<T>(fut: impl Future<Output = T>) -> (T, u64) {
    let started = Instant::now();
    let out = fut.await;
    (out, started.elapsed().as_micros() as u64)
}
