//! Fault injection (spec 6, sandbox side): latency, error answers with proper bodies and
//! `Retry-After`, dropped connections, a minimum poll interval, `PUT /sandbox/faults` at run
//! time, and seeded reproducibility.

use std::time::Duration;

use crate::sandbox_common::*;
use posemu_sandbox::FaultConfig;
use reqwest::Method;
use serde_json::{json, Value};

async fn put_faults(env: &Env, cfg: Value) -> Value {
    ok_json(
        env.req(Method::PUT, "/sandbox/faults")
            .json(&cfg)
            .send()
            .await,
    )
    .await
}

/// Starts paused: the injected latency is a tokio sleep in the sandbox, so virtual time shows
/// it exactly and the test waits for nothing. The client keeps no idle-pool timer, so the
/// sandbox's sleep is the only timer that can move the clock.
#[tokio::test(start_paused = true)]
async fn latency_fixed_and_uniform_range() {
    let env = start().await;
    let http = reqwest::Client::builder()
        .no_proxy()
        .pool_idle_timeout(None)
        .build()
        .unwrap();
    let get = |path: &str| http.get(format!("{}{path}", env.url)).send();
    put_faults(
        &env,
        json!({"seed": 3, "rules": [
            {"route": "/health/live", "latency_ms": 30000},
            {"route": "/pos/bootstrap", "latency_ms": [1000, 2000]}
        ]}),
    )
    .await;
    let t = tokio::time::Instant::now();
    assert_eq!(get("/health/live").await.unwrap().status(), 200);
    let took = t.elapsed();
    assert!(
        (Duration::from_millis(30_000)..Duration::from_millis(30_050)).contains(&took),
        "{took:?}"
    );
    let mut seen = Vec::new();
    for _ in 0..10 {
        let t = tokio::time::Instant::now();
        ok_json(
            env.dev_req(Method::POST, "/pos/bootstrap", &pax())
                .send()
                .await,
        )
        .await;
        let ms = t.elapsed().as_millis();
        assert!((1000..2050).contains(&ms), "{ms} ms");
        seen.push(ms);
    }
    seen.dedup();
    assert!(seen.len() > 1, "uniform, not fixed: {seen:?}");
    // Routes without a rule answer at once.
    let t = tokio::time::Instant::now();
    ok_json(env.dev_req(Method::GET, "/pos/status", &pax()).send().await).await;
    assert!(t.elapsed() < Duration::from_millis(50));
}

#[tokio::test]
async fn injected_errors_carry_the_envelope_and_retry_after() {
    let env = start().await;
    put_faults(
        &env,
        json!({"rules": [
            {"route": "/pos/status", "error_status": 503, "error_probability": 1.0, "retry_after_secs": 7},
            {"route": "/pos/bootstrap", "error_status": 429, "error_probability": 1.0},
            {"route": "/pos/pairing-code", "error_status": 500, "error_probability": 1.0},
            {"route": "/pos/attest", "error_status": 502, "error_probability": 1.0},
            {"route": "/client/session", "error_status": 418, "error_probability": 1.0}
        ]}),
    )
    .await;
    let dev = pax();
    let injected = Some(json!({"injected": true}));
    let (h, _) = expect_error(
        env.dev_req(Method::GET, "/pos/status", &dev).send().await,
        503,
        "Service unavailable",
        injected.clone(),
    )
    .await;
    assert_eq!(h["retry-after"], "7");
    let (h, _) = expect_error(
        env.dev_req(Method::POST, "/pos/bootstrap", &dev)
            .send()
            .await,
        429,
        "Too many requests",
        injected.clone(),
    )
    .await;
    assert_eq!(h["retry-after"], "1", "default Retry-After");
    let (h, _) = expect_error(
        env.dev_req(Method::POST, "/pos/pairing-code", &dev)
            .send()
            .await,
        500,
        "Failed to create pairing code",
        injected.clone(),
    )
    .await;
    assert!(h.get("retry-after").is_none());
    expect_error(
        env.dev_req(Method::POST, "/pos/attest", &dev).send().await,
        502,
        "Bad gateway",
        injected.clone(),
    )
    .await;
    expect_error(
        env.req(Method::POST, "/client/session")
            .json(&json!({}))
            .send()
            .await,
        418,
        "Injected fault 418",
        injected,
    )
    .await;
    // Nothing happened behind the faults.
    assert_eq!(env.sandbox.touched_devices(), 0);
}

#[tokio::test]
async fn dropped_connections_get_no_answer() {
    let env = start().await;
    put_faults(
        &env,
        json!({"rules": [{"route": "/pos/bootstrap", "drop_probability": 1.0}]}),
    )
    .await;
    for _ in 0..3 {
        let err = env
            .dev_req(Method::POST, "/pos/bootstrap", &pax())
            .send()
            .await
            .expect_err("no answer");
        assert!(!err.is_status() && !err.is_timeout(), "{err}");
    }
    ok_json(env.dev_req(Method::GET, "/pos/status", &pax()).send().await).await;
}

#[tokio::test]
async fn a_minimum_poll_interval_answers_429_per_device() {
    let env = start().await;
    put_faults(
        &env,
        json!({"rules": [{"route": "/pos/status", "min_poll_interval_ms": 3000}]}),
    )
    .await;
    let dev = pax();
    let other = profile_dev("sunmi-p2");
    env.status(&dev).await;
    env.clock.advance(Duration::from_millis(1200));
    let (h, _) = expect_error(
        env.dev_req(Method::GET, "/pos/status", &dev).send().await,
        429,
        "Polling too frequently",
        Some(json!({"min_poll_interval_ms": 3000})),
    )
    .await;
    assert_eq!(h["retry-after"], "2");
    env.status(&other).await;
    env.clock.advance(Duration::from_millis(1800));
    env.status(&dev).await;
    // Other routes are not rate limited.
    for _ in 0..3 {
        env.bootstrap(&dev).await;
    }
}

#[tokio::test]
async fn faults_are_read_and_replaced_at_run_time_and_validated() {
    let env = start().await;
    let v = ok_json(env.req(Method::GET, "/sandbox/faults").send().await).await;
    assert_eq!(v, json!({"rules": []}));
    let cfg = json!({"seed": 11, "rules": [{"route": "*", "error_status": 503,
        "error_probability": 0.25, "retry_after_secs": 2, "drop_probability": 0.0,
        "latency_ms": [0, 5]}]});
    assert_eq!(put_faults(&env, cfg.clone()).await, cfg);
    assert_eq!(
        ok_json(env.req(Method::GET, "/sandbox/faults").send().await).await,
        cfg
    );

    for (bad, message) in [
        (
            json!({"rules": [{"route": "/nope"}]}),
            "rules[1].route: \"/nope\" is not a route",
        ),
        (
            json!({"rules": [{"route": "*"}, {"route": "*", "drop_probability": 1.5}]}),
            "rules[2].drop_probability: 1.5 is not a probability between 0 and 1",
        ),
        (
            json!({"rules": [{"route": "*", "error_probability": 0.5}]}),
            "rules[1].error_status: is required when error_probability > 0",
        ),
        (
            json!({"rules": [{"route": "*", "error_status": 200, "error_probability": 0.5}]}),
            "rules[1].error_status: 200 is not an error status (400–599)",
        ),
        (
            json!({"rules": [{"route": "*", "latency_ms": [5, 1]}]}),
            "rules[1].latency_ms: [5, 1] must be [min, max]",
        ),
        (
            json!({"rules": [{"route": "/pos/keys", "min_poll_interval_ms": 10}]}),
            "rules[1].min_poll_interval_ms: applies to /pos/status only",
        ),
        (json!({"rulez": []}), "unknown field `rulez`"),
    ] {
        let (_, e) = expect_error_prefix(
            env.req(Method::PUT, "/sandbox/faults")
                .json(&bad)
                .send()
                .await,
            message,
        )
        .await;
        assert_eq!(e["message"], "Invalid fault configuration");
    }
    // A bad PUT leaves the faults as they were.
    assert_eq!(
        ok_json(env.req(Method::GET, "/sandbox/faults").send().await).await,
        cfg
    );
    put_faults(&env, json!({"rules": []})).await;
    for _ in 0..20 {
        env.status(&pax()).await;
    }
}

/// A 400 `Invalid fault configuration` whose `details.message` contains `needle`.
async fn expect_error_prefix(r: reqwest::Result<reqwest::Response>, needle: &str) -> ((), Value) {
    let r = r.unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    let detail = v["error"]["details"]["message"].as_str().unwrap_or("");
    assert!(detail.contains(needle), "{detail:?} lacks {needle:?}");
    ((), v["error"].clone())
}

#[tokio::test]
async fn the_star_route_never_blocks_the_sandbox_helpers() {
    let env = start().await;
    put_faults(
        &env,
        json!({"rules": [{"route": "*", "drop_probability": 1.0}]}),
    )
    .await;
    assert!(env
        .dev_req(Method::GET, "/pos/status", &pax())
        .send()
        .await
        .is_err());
    assert!(env.req(Method::GET, "/health/live").send().await.is_err());
    ok_json(env.req(Method::GET, "/sandbox/devices").send().await).await;
    let r = env.req(Method::GET, "/portal").send().await.unwrap();
    assert_eq!(r.status(), 200);
    put_faults(&env, json!({"rules": []})).await;
    ok_json(env.dev_req(Method::GET, "/pos/status", &pax()).send().await).await;
}

async fn dice(env: &Env, n: usize) -> Vec<u16> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(
            env.req(Method::GET, "/health/live")
                .send()
                .await
                .unwrap()
                .status()
                .as_u16(),
        );
    }
    out
}

#[tokio::test]
async fn the_same_seed_gives_the_same_faults() {
    let toml = "seed = 42\n[[rules]]\nroute = \"/health/live\"\nerror_status = 500\nerror_probability = 0.5\n";
    let cfg = FaultConfig::from_toml(toml).unwrap();
    // Set at start-up (as `--faults FILE` does) ...
    let env = start_with(|c| c.faults = cfg).await;
    let first = dice(&env, 64).await;
    assert!(first.contains(&200) && first.contains(&500), "{first:?}");
    // ... and again at run time: the dice start over.
    let json_cfg = json!({"seed": 42, "rules": [{"route": "/health/live", "error_status": 500, "error_probability": 0.5}]});
    put_faults(&env, json_cfg.clone()).await;
    assert_eq!(dice(&env, 64).await, first);
    // Another sandbox, same seed: same faults.
    let env2 = start().await;
    put_faults(&env2, json_cfg).await;
    assert_eq!(dice(&env2, 64).await, first);
    // Another seed: other faults.
    put_faults(
        &env2,
        json!({"seed": 43, "rules": [{"route": "/health/live", "error_status": 500, "error_probability": 0.5}]}),
    )
    .await;
    assert_ne!(dice(&env2, 64).await, first);
}
