//! The device engine end to end: the real machine, driver, HTTP client and saved progress
//! against an in-process sandbox on 127.0.0.1. Timers run warped (1000× unless said), with the
//! sandbox on the same warped clock, so a 300 s code lifetime passes in 0.3 s: nothing sleeps
//! to wait out a poll.

use std::sync::Arc;
use std::time::Duration;

use posemu_client::merchant::sandbox_claim;
use posemu_client::{DeviceFaults, FaultHeader, HeaderSet};
use posemu_device::{DeviceEvent, Note, Phase};
use posemu_profile::{builtin_named, Profile};
use posemu_protocol::clock::WarpClock;
use posemu_protocol::wire::DeviceStatus;
use posemu_runtime::{DeviceSession, Home, SessionOptions};
use posemu_sandbox::{FaultConfig, FaultRule, Sandbox, SandboxConfig};

const WARP: u32 = 1000;

fn pax() -> Profile {
    builtin_named("pax-a920").unwrap()
}

async fn sandbox(clock: &WarpClock, tweak: impl FnOnce(&mut SandboxConfig)) -> Sandbox {
    let mut cfg = SandboxConfig {
        clock: Arc::new(clock.clone()),
        ..SandboxConfig::default()
    };
    tweak(&mut cfg);
    Sandbox::start(cfg).await.unwrap()
}

struct Device {
    session: DeviceSession,
    notes: Vec<Note>,
    /// Claim each code as soon as it is shown.
    claim: bool,
}

impl Device {
    fn open(home: &Home, profile: Profile, url: &str, clock: &WarpClock, warp: u32) -> Device {
        Device::with(home, profile, url, clock, warp, DeviceFaults::NONE)
    }

    fn with(
        home: &Home,
        profile: Profile,
        url: &str,
        clock: &WarpClock,
        warp: u32,
        faults: DeviceFaults,
    ) -> Device {
        let mut opts = SessionOptions::new(url);
        opts.time_warp = warp;
        opts.faults = faults;
        let session = DeviceSession::open(home, profile, &opts, Arc::new(clock.clone())).unwrap();
        let _ = session.driver.sender().send(DeviceEvent::Start);
        Device {
            session,
            notes: Vec::new(),
            claim: false,
        }
    }

    /// Pumps events until `done` holds for a note (or the phase), failing after 20 s of real time.
    async fn until(&mut self, what: &str, done: impl Fn(&Note, &Phase) -> bool) -> Note {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let ev = tokio::time::timeout_at(deadline, self.session.events.recv())
                .await
                .unwrap_or_else(|_| panic!("no {what} within 20 s; notes: {:#?}", self.notes))
                .expect("events flow while the driver lives");
            for n in self.session.driver.handle(ev) {
                self.notes.push(n.clone());
                if self.claim {
                    if let Note::CodeShown { .. } = n {
                        let t = self.session.transport.clone();
                        let id = self.session.profile.device_id.clone();
                        tokio::spawn(async move { sandbox_claim(&t, &id, None).await });
                    }
                }
                if done(&n, &self.session.driver.state().phase) {
                    return n;
                }
            }
        }
    }

    async fn ready(&mut self) {
        self.until("activation", |n, _| matches!(n, Note::Activated { .. }))
            .await;
        assert_eq!(self.session.driver.state().phase, Phase::Ready);
    }

    async fn failure(&mut self) -> posemu_device::Failure {
        match self
            .until("failure", |n, _| matches!(n, Note::Failed(_)))
            .await
        {
            Note::Failed(f) => f,
            _ => unreachable!(),
        }
    }
}

#[tokio::test]
async fn a_clean_activation_saves_its_progress_and_logs_every_exchange() {
    let clock = WarpClock::new(WARP);
    let sb = sandbox(&clock, |_| {}).await;
    let tmp = tempfile::tempdir().unwrap();
    let home = Home::at(tmp.path());
    let mut dev = Device::open(&home, pax(), &sb.url(), &clock, WARP);
    dev.claim = true;
    dev.ready().await;

    let steps: Vec<&str> = dev
        .notes
        .iter()
        .filter_map(|n| match n {
            Note::StepDone { step, .. } => Some(step.name()),
            _ => None,
        })
        .collect();
    assert_eq!(
        steps,
        [
            "bootstrap",
            "pairing-code",
            "attest",
            "keys",
            "config",
            "terminal-parameters",
            "activate"
        ]
    );
    let saved = dev
        .session
        .store
        .load("POS-8F3A2C91", &sb.url())
        .unwrap()
        .unwrap();
    assert_eq!(saved.status, DeviceStatus::Activated);
    assert!(saved.terminal_id.unwrap().starts_with("TID-"));
    assert_eq!(saved.merchant_name.as_deref(), Some("Demo Merchant"));
    assert!(saved.parameters.unwrap().bytes > 100_000);
    let text = std::fs::read_to_string(dev.session.store.path()).unwrap();
    let p = pax();
    for secret in [
        hex::encode_upper(p.identity_secret),
        hex::encode_upper(p.zmk),
    ] {
        assert!(
            !text.contains(&secret),
            "secrets stay out of the state file"
        );
    }
    let paths: Vec<String> = dev
        .session
        .log
        .entries()
        .iter()
        .map(|e| e.path().to_string())
        .collect();
    assert!(paths.contains(&"/pos/terminal-parameters".to_string()));
    assert_eq!(paths.last().map(String::as_str), Some("/pos/activate"));
}

#[tokio::test]
async fn an_expired_code_is_replaced_and_the_new_one_claimed() {
    let clock = WarpClock::new(WARP);
    let sb = sandbox(&clock, |_| {}).await;
    let tmp = tempfile::tempdir().unwrap();
    let mut dev = Device::open(&Home::at(tmp.path()), pax(), &sb.url(), &clock, WARP);
    let first = match dev
        .until("a code", |n, _| matches!(n, Note::CodeShown { .. }))
        .await
    {
        Note::CodeShown { code, .. } => code,
        _ => unreachable!(),
    };
    dev.until("expiry", |n, _| matches!(n, Note::CodeExpired { .. }))
        .await;
    let second = match dev
        .until("a new code", |n, _| matches!(n, Note::CodeShown { .. }))
        .await
    {
        Note::CodeShown { code, .. } => code,
        _ => unreachable!(),
    };
    assert_ne!(first, second);
    let claimed = sandbox_claim(&dev.session.transport, "POS-8F3A2C91", None)
        .await
        .unwrap();
    assert_eq!(claimed.pairing_code, second);
    dev.ready().await;
}

#[tokio::test]
async fn a_429_with_retry_after_is_honoured_then_polling_goes_on() {
    let clock = WarpClock::new(WARP);
    let faults = FaultConfig {
        seed: Some(1),
        rules: vec![FaultRule {
            route: "/pos/status".into(),
            error_status: Some(429),
            error_probability: 1.0,
            retry_after_secs: Some(20),
            ..FaultRule::default()
        }],
    };
    let sb = sandbox(&clock, |c| c.faults = faults).await;
    let tmp = tempfile::tempdir().unwrap();
    let mut dev = Device::open(&Home::at(tmp.path()), pax(), &sb.url(), &clock, WARP);
    let note = dev
        .until("a slow-down", |n, _| matches!(n, Note::SlowDown { .. }))
        .await;
    assert_eq!(
        note,
        Note::SlowDown {
            wait: Duration::from_secs(20),
            interval: Duration::from_secs(8)
        }
    );
    let slowed_at = dev.session.log.last().unwrap().started_at;
    reqwest::Client::new()
        .put(format!("{}/sandbox/faults", sb.url()))
        .body("{}")
        .send()
        .await
        .unwrap();
    dev.until("the next poll", |n, _| matches!(n, Note::Polled { .. }))
        .await;
    let next = dev.session.log.last().unwrap();
    assert_eq!(next.path(), "/pos/status");
    let waited = (next.started_at - slowed_at).num_milliseconds();
    assert!(waited >= 19_000, "polled again after {waited} ms, not 20 s");
    dev.claim = true;
    sandbox_claim(&dev.session.transport, "POS-8F3A2C91", None)
        .await
        .unwrap();
    dev.ready().await;
}

#[tokio::test]
async fn an_unreachable_server_is_retried_with_backoff_until_it_comes_back() {
    let clock = WarpClock::new(WARP);
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}");
    let tmp = tempfile::tempdir().unwrap();
    let mut dev = Device::open(&Home::at(tmp.path()), pax(), &url, &clock, WARP);
    for attempt in 1..=3u32 {
        let n = dev
            .until("a backoff", |n, _| matches!(n, Note::Backoff { .. }))
            .await;
        let Note::Backoff {
            attempt: a, delay, ..
        } = n
        else {
            unreachable!()
        };
        assert_eq!(a, attempt);
        assert!(delay <= Duration::from_secs(1 << (attempt - 1)));
    }
    let _sb = sandbox(&clock, |c| {
        c.listen = format!("127.0.0.1:{port}").parse().unwrap()
    })
    .await;
    dev.claim = true;
    dev.ready().await;
}

#[tokio::test]
async fn a_restart_mid_flow_resumes_from_saved_progress() {
    let clock = WarpClock::new(WARP);
    let sb = sandbox(&clock, |c| c.code_ttl = Duration::from_secs(3_000)).await;
    let tmp = tempfile::tempdir().unwrap();
    let home = Home::at(tmp.path());

    // quit while the code is shown: the same code is polled again on restart
    let mut dev = Device::open(&home, pax(), &sb.url(), &clock, WARP);
    let Note::CodeShown { code, .. } = dev
        .until("a code", |n, _| matches!(n, Note::CodeShown { .. }))
        .await
    else {
        unreachable!()
    };
    drop(dev);
    let mut dev = Device::open(&home, pax(), &sb.url(), &clock, WARP);
    let resumed = dev
        .until("the code again", |n, _| matches!(n, Note::CodeShown { .. }))
        .await;
    assert!(
        matches!(&resumed, Note::CodeShown { code: c, resumed: true, .. } if *c == code),
        "{resumed:?}"
    );

    // quit once claimed: the restart attests without a new code
    sandbox_claim(&dev.session.transport, "POS-8F3A2C91", None)
        .await
        .unwrap();
    dev.until("the claim", |n, _| matches!(n, Note::Claimed))
        .await;
    drop(dev);
    let mut dev = Device::open(&home, pax(), &sb.url(), &clock, WARP);
    dev.ready().await;
    assert!(!dev
        .notes
        .iter()
        .any(|n| matches!(n, Note::CodeShown { .. })));

    // activated: ready at once, no call made
    drop(dev);
    let mut dev = Device::open(&home, pax(), &sb.url(), &clock, WARP);
    dev.until("ready", |n, _| matches!(n, Note::ReadyFromSaved))
        .await;
    assert!(dev.session.log.is_empty());
}

#[tokio::test]
async fn an_unknown_device_stops_with_the_servers_error() {
    let clock = WarpClock::new(WARP);
    let sb = sandbox(&clock, |c| c.profiles.clear()).await;
    let tmp = tempfile::tempdir().unwrap();
    let mut dev = Device::open(&Home::at(tmp.path()), pax(), &sb.url(), &clock, WARP);
    let f = dev.failure().await;
    assert_eq!(f.http_status(), Some(404));
    assert_eq!(f.code(), Some("4004"));
    assert!(f.message().contains("Device not found"), "{}", f.message());
    assert!(f.trace_id().is_some_and(|t| t.len() == 32));
    assert!(f.hint().contains("not provisioned"));
}

/// Each device-side fault (spec 6) is answered by the sandbox with the spec's error.
#[tokio::test]
async fn every_device_fault_gets_the_documented_rejection() {
    // warp 10: the sandbox must still remember nonces (10 min) between two runs
    let clock = WarpClock::new(10);
    let sb = sandbox(&clock, |_| {}).await;
    let drop_ct = DeviceFaults {
        drop_headers: HeaderSet::default().with(FaultHeader::ClientType),
        ..DeviceFaults::NONE
    };
    let malform_id = DeviceFaults {
        malform_headers: HeaderSet::default().with(FaultHeader::DeviceId),
        ..DeviceFaults::NONE
    };
    let skew = DeviceFaults {
        clock_skew_ms: 600_000,
        ..DeviceFaults::NONE
    };
    let bad_secret = DeviceFaults {
        wrong_secret: true,
        ..DeviceFaults::NONE
    };
    let cases = [
        (drop_ct, 400, "X-Client-Type header is required"),
        (malform_id, 400, "X-Device-Id header is invalid"),
        (skew, 401, "Timestamp outside allowed window"),
        (bad_secret, 401, "Invalid signature"),
    ];
    for (faults, status, message) in cases {
        let tmp = tempfile::tempdir().unwrap();
        let mut dev = Device::with(&Home::at(tmp.path()), pax(), &sb.url(), &clock, 10, faults);
        dev.claim = true;
        let f = dev.failure().await;
        assert_eq!(f.http_status(), Some(status), "{faults:?}: {}", f.message());
        assert!(f.message().contains(message), "{}", f.message());
        reqwest::Client::new()
            .post(format!("{}/sandbox/devices/POS-8F3A2C91/reset", sb.url()))
            .send()
            .await
            .unwrap();
    }

    // a reused nonce passes once, then the next attestation is refused
    let reuse = DeviceFaults {
        reuse_nonce: true,
        ..DeviceFaults::NONE
    };
    let tmp = tempfile::tempdir().unwrap();
    let home = Home::at(tmp.path());
    let mut dev = Device::with(&home, pax(), &sb.url(), &clock, 10, reuse);
    dev.claim = true;
    dev.ready().await;
    drop(dev);
    let fresh = tempfile::tempdir().unwrap(); // no saved progress: attests again
    let mut dev = Device::with(&Home::at(fresh.path()), pax(), &sb.url(), &clock, 10, reuse);
    let f = dev.failure().await;
    assert_eq!(f.http_status(), Some(401));
    assert!(
        f.message().contains("Nonce already used"),
        "{}",
        f.message()
    );
}

#[tokio::test]
async fn an_old_app_shows_update_required_even_when_told_to_ignore_the_minimum() {
    let clock = WarpClock::new(WARP);
    let sb = sandbox(&clock, |c| {
        c.min_version = "1.5.0".into();
        c.enforce_min_version = true;
    })
    .await;
    let tmp = tempfile::tempdir().unwrap();
    let home = Home::at(tmp.path());
    let mut dev = Device::open(&home, pax(), &sb.url(), &clock, WARP);
    let n = dev
        .until("update required", |n, _| {
            matches!(n, Note::UpdateRequired { .. })
        })
        .await;
    assert_eq!(
        n,
        Note::UpdateRequired {
            version: "1.4.2".into(),
            min: "1.5.0".into()
        }
    );

    // ignoring the bootstrap's minimum, the enforcing server's 426 stops it at the next step
    let mut opts = SessionOptions::new(&sb.url());
    opts.time_warp = WARP;
    opts.ignore_min_version = true;
    let session = DeviceSession::open(&home, pax(), &opts, Arc::new(clock.clone())).unwrap();
    let _ = session.driver.sender().send(DeviceEvent::Start);
    let mut dev = Device {
        session,
        notes: Vec::new(),
        claim: false,
    };
    dev.until(
        "update required",
        |n, _| matches!(n, Note::UpdateRequired { min, .. } if min == "1.5.0"),
    )
    .await;
    assert!(matches!(
        dev.session.driver.state().phase,
        Phase::UpdateRequired { .. }
    ));
    assert_eq!(dev.session.log.last().unwrap().status, Some(426));
}
