//! The host of payments for one device session: brings the device up (activation, with an
//! optional auto-claim through the sandbox helper), then runs the payment machine
//! ([`posemu_device::payment`]) with real calls ([`posemu_client::Transport::pay`]), its retry
//! timer on tokio's clock, and a PIN pad. A device restarted from saved progress fetches its keys
//! again first (the machine asks, this host feeds `DeviceEvent::Rekey` to the device machine).

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use rand::RngCore;
use tokio::sync::mpsc;

use super::driver::real_wait;
use super::session::{profile_identity, DeviceSession};
use posemu_client::merchant::sandbox_claim;
use posemu_client::{DeviceFaults, DeviceIdentity, IdentityError};
use posemu_device::payment::{
    self, PayEffect, PayEvent, PayNote, PayOp, PayOutcome, PayPhase, Payments,
};
use posemu_device::{DeviceEvent, DeviceState, Failure, Note, Now, Phase};
use posemu_protocol::api::{CallError, PayAnswer, Secret};
use posemu_protocol::clock::Clock;
use posemu_protocol::payments::Money;

/// Something to show while the device comes up or pays, and when.
#[derive(Debug)]
pub struct Shown<'a> {
    /// The device's time (its machine's clock, [`crate::Driver::now_ms`]: ms since it
    /// started, warped) of what is shown: for a note, the reading of the machine step that
    /// made it (the device machine's [`crate::Driver::stepped_ms`], or the payment machine's
    /// step on the same clock), so a step's `took` is exactly the gap between the `at_ms` of
    /// its start and its end. Shown in the order the clock was read (a re-key's device notes
    /// follow the payment note that asked for it), so it never goes back.
    pub at_ms: u64,
    pub what: Showing<'a>,
}

#[derive(Debug)]
pub enum Showing<'a> {
    /// A note of the device machine, and the device as the step that made it left it.
    Device(&'a Note, &'a DeviceState),
    Pay(&'a PayNote),
    /// The pairing code was claimed through the sandbox helper.
    AutoClaimed,
}

/// Why the device did not come up.
#[derive(Debug, thiserror::Error)]
pub enum UpError {
    #[error("{0}")]
    Failed(Box<Failure>),
    #[error("update required: app {version} is below the server's minimum {min}")]
    UpdateRequired { version: String, min: String },
    #[error("auto-claim failed: {0} (--auto-claim needs a posemu sandbox)")]
    AutoClaim(String),
    #[error("the device stopped")]
    Closed,
}

type Sleep = Pin<Box<tokio::time::Sleep>>;

pub struct PayRunner<'a> {
    session: &'a mut DeviceSession,
    pay: Payments,
    identity: DeviceIdentity,
    faults: DeviceFaults,
    clock: Arc<dyn Clock>,
    warp: u32,
    auto_claim: Option<Duration>,
    claims_tx: mpsc::UnboundedSender<Result<(), String>>,
    claims: mpsc::UnboundedReceiver<Result<(), String>>,
    /// The device's time of the payment machine's last step (its notes' `at_ms`).
    stepped_ms: u64,
}

/// A PIN pad: `None` when the cardholder will not (or cannot) enter one.
pub type PinPad<'p> = &'p mut dyn FnMut() -> Option<Secret<String>>;

impl<'a> PayRunner<'a> {
    /// `clock` and `warp` as the session was opened with; `auto_claim`: claim a shown pairing
    /// code through the sandbox helper after this delay.
    pub fn new(
        session: &'a mut DeviceSession,
        faults: DeviceFaults,
        clock: Arc<dyn Clock>,
        warp: u32,
        auto_claim: Option<Duration>,
    ) -> Result<PayRunner<'a>, IdentityError> {
        let identity = profile_identity(&session.profile)?;
        let (claims_tx, claims) = mpsc::unbounded_channel();
        Ok(PayRunner {
            session,
            pay: Payments::new(),
            identity,
            faults,
            clock,
            warp: warp.max(1),
            auto_claim,
            claims_tx,
            claims,
            stepped_ms: 0,
        })
    }

    pub fn device(&self) -> &DeviceState {
        self.session.driver.state()
    }

    pub fn session(&self) -> &DeviceSession {
        self.session
    }

    /// The device's time now ([`crate::Driver::now_ms`]), to stamp what is shown besides the
    /// machines' notes.
    pub fn now_ms(&self) -> u64 {
        self.session.driver.now_ms()
    }

    /// The terminal's currency (config `emv.currency`), once activated.
    pub fn currency(&self) -> Option<String> {
        payment::terminal_currency(self.device())
    }

    /// Feeds the device machine; claims a shown code if asked to.
    fn device_event(&mut self, ev: DeviceEvent, show: &mut dyn FnMut(Shown)) {
        let notes = self.session.driver.handle(ev);
        let at_ms = self.session.driver.stepped_ms();
        for note in notes {
            if let (Note::CodeShown { .. }, Some(delay)) = (&note, self.auto_claim) {
                let transport = self.session.transport.clone();
                let id = self.session.profile.device_id.clone();
                let tx = self.claims_tx.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    let r = sandbox_claim(&transport, &id, None).await;
                    let _ = tx.send(r.map(|_| ()).map_err(|e| e.to_string()));
                });
            }
            show(Shown {
                at_ms,
                what: Showing::Device(&note, self.session.driver.state()),
            });
        }
    }

    fn claimed(
        &mut self,
        r: Result<(), String>,
        show: &mut dyn FnMut(Shown),
    ) -> Result<(), UpError> {
        match r {
            Ok(()) => {
                show(Shown {
                    at_ms: self.now_ms(),
                    what: Showing::AutoClaimed,
                });
                Ok(())
            }
            Err(e) => Err(UpError::AutoClaim(e)),
        }
    }

    /// Powers the device on and runs it until it is ready (activated; a device activated
    /// before is ready at once, without keys until its first payment) or stops.
    pub async fn bring_up(&mut self, show: &mut dyn FnMut(Shown)) -> Result<(), UpError> {
        if self.device().phase == Phase::Off {
            self.device_event(DeviceEvent::Start, show);
        }
        loop {
            match &self.device().phase {
                Phase::Ready => return Ok(()),
                Phase::Failed(f) => return Err(UpError::Failed(f.clone())),
                Phase::UpdateRequired { version, min } => {
                    return Err(UpError::UpdateRequired {
                        version: version.clone(),
                        min: min.clone(),
                    })
                }
                _ => {}
            }
            tokio::select! {
                ev = self.session.events.recv() => match ev {
                    Some(ev) => self.device_event(ev, show),
                    None => return Err(UpError::Closed),
                },
                Some(r) = self.claims.recv() => self.claimed(r, show)?,
            }
        }
    }

    fn feed(&mut self, ev: PayEvent) -> Vec<PayEffect> {
        let now = Now {
            mono_ms: self.session.driver.now_ms(),
            wall_ms: self.clock.now().timestamp_millis(),
            random: rand::random(),
        };
        self.stepped_ms = now.mono_ms;
        payment::update(self.session.driver.state_mut(), &mut self.pay, now, ev)
    }

    /// Runs one operation to its outcome. `pin_pad` is asked when a charge is declined
    /// `pin_required` and no PIN was given up front.
    pub async fn run(
        &mut self,
        op: PayOp,
        pin_pad: PinPad<'_>,
        show: &mut dyn FnMut(Shown),
    ) -> PayOutcome {
        let mut seed = [0u8; 32];
        rand::rng().fill_bytes(&mut seed);
        let (tx, mut answers) = mpsc::unbounded_channel::<(u32, Result<PayAnswer, CallError>)>();
        let mut timer: Option<Sleep> = None;
        let mut rekeying = false;
        let mut fx = self.feed(PayEvent::Begin { op, seed });
        loop {
            for effect in std::mem::take(&mut fx) {
                match effect {
                    PayEffect::Call { id, call } => {
                        let fut = self.session.transport.pay(
                            &self.identity,
                            &self.faults,
                            &call,
                            self.clock.now(),
                            &mut rand::rng(),
                            Some(&self.session.log),
                        );
                        let tx = tx.clone();
                        tokio::spawn(async move {
                            let r = fut.await;
                            let _ = tx.send((id, r));
                        });
                    }
                    PayEffect::Wait(after) => {
                        timer = Some(Box::pin(tokio::time::sleep(real_wait(after, self.warp))));
                    }
                    PayEffect::Rekey => {
                        rekeying = true;
                        self.device_event(DeviceEvent::Rekey, show);
                    }
                    PayEffect::Note(n) => show(Shown {
                        at_ms: self.stepped_ms,
                        what: Showing::Pay(&n),
                    }),
                }
            }
            if rekeying {
                let why = match &self.device().phase {
                    Phase::Ready if self.device().can_pay() => Some(None),
                    Phase::Failed(f) => Some(Some(format!("{} — {}", f.message(), f.hint()))),
                    Phase::UpdateRequired { version, min } => Some(Some(format!(
                        "update required: app {version} is below the server's minimum {min}"
                    ))),
                    _ => None,
                };
                if let Some(why) = why {
                    rekeying = false;
                    fx = match why {
                        None => self.feed(PayEvent::KeysReady),
                        Some(w) => self.feed(PayEvent::Abort(w)),
                    };
                    continue;
                }
            }
            if let Some(o) = self.pay.outcome() {
                return o.clone();
            }
            if self.pay.phase == PayPhase::AwaitingPin {
                fx = match pin_pad() {
                    Some(pin) => self.feed(PayEvent::Pin(pin)),
                    None => self.feed(PayEvent::NoPin),
                };
                continue;
            }
            let due = async {
                match timer.as_mut() {
                    Some(t) => t.await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                Some((id, result)) = answers.recv() => {
                    fx = self.feed(PayEvent::Answer { call: id, result });
                }
                () = due => {
                    timer = None;
                    fx = self.feed(PayEvent::Timer);
                }
                ev = self.session.events.recv() => match ev {
                    Some(ev) => self.device_event(ev, show),
                    None => fx = self.feed(PayEvent::Abort("the device stopped".into())),
                },
                Some(r) = self.claims.recv() => {
                    if let Err(e) = self.claimed(r, show) {
                        fx = self.feed(PayEvent::Abort(e.to_string()));
                    }
                }
            }
        }
    }

    /// What is left to refund of a charge, read through the sandbox helper
    /// `GET /sandbox/charges/{id}` (the POS API has no read endpoint, spec 7.1).
    pub async fn refundable(&self, charge_id: &str) -> Result<Money, String> {
        let c = posemu_client::payments::sandbox_charge(&self.session.transport, charge_id)
            .await
            .map_err(|e| match e.error_body() {
                Some(b) => format!("{} ({})", b.message, b.code),
                None => e.to_string(),
            })?;
        let approved = c
            .approved_amount
            .ok_or_else(|| format!("charge {charge_id} was {}", c.status.as_str()))?;
        Ok(approved.saturating_sub(c.refunded_amount.value))
    }
}
