//! Load generator of `benches/sandbox_charges.sh`: `POST /pos/charge` at a `posemu sandbox
//! --fleet-seed S` running as its own process.
//!
//! 1. Activates `--terminals` fleet devices (`POS-F0000000`, …) the way a device does, through
//!    `posemu_client::Transport::call` (identity derived from the seed, attest, keys unwrapped
//!    with `posemu_device::keyset::unwrap_key_set`, config, activate, the code claimed through the
//!    sandbox helper).
//! 2. Pre-builds `--requests` distinct charges with `posemu_client::payments::build` (the device's
//!    own request builder: envelope under the MSK with a fresh IV, fresh nonce, `Idempotency-Key`,
//!    HMAC over the exact body), round-robin over the terminals, each as raw HTTP/1.1 bytes. They
//!    are signed before the timed run, so signing costs the load generator nothing while it
//!    fires; the whole run must end within the 5-minute timestamp window (it is checked).
//! 3. Fires them over `--conns` keep-alive connections (raw tokio TCP, `--depth` requests in
//!    flight per connection; 1 = no pipelining, as wrk), on one thread. The first
//!    `--warmup` requests are not measured.
//! 4. Reads the sandbox process's CPU time (`--pid`, `/proc/PID/stat`) and `/proc/loadavg` at
//!    the edges of the timed part, checks through `GET /sandbox/terminals/{tid}/charges` that
//!    every 200 stored a charge, and prints one `key=value` line for the script.
//!
//! Usage: cargo run --release --example charge_load -- --url http://127.0.0.1:PORT --seed S
//!        [--terminals 100] [--requests 200000] [--warmup 20000] [--conns 64] [--depth 1]
//!        [--pid PID]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::Utc;
use hdrhistogram::Histogram;
use rand::rngs::StdRng;
use rand::SeedableRng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use posemu_client::payments::{build, Stamp};
use posemu_client::{sandbox_claim, DeviceFaults, DeviceIdentity, Transport, TransportConfig};
use posemu_device::keyset::unwrap_key_set;
use posemu_protocol::api::{ApiAnswer, ApiCall, PayCall, PayRequest, Secret};
use posemu_protocol::payments::pinblock;
use posemu_protocol::payments::wire::{CardData, ChargeRequest, EntryMode};
use posemu_protocol::payments::{new_idempotency_key, Money};
use posemu_protocol::provision::fleet_device_id;
use posemu_protocol::rules::DEFAULT_FLEET_PREFIX;
use posemu_protocol::wire::ActivationChecks;

const USER_AGENT: &str = "Viopay-POS/1.4.2 (Android 12; PAX-A920)";
/// Spec 7.2: the timestamp window; the run must end inside it.
const WINDOW: Duration = Duration::from_secs(300);

type Res<T> = Result<T, String>;

struct Args {
    url: String,
    seed: String,
    terminals: u32,
    requests: usize,
    warmup: usize,
    conns: usize,
    depth: usize,
    pid: Option<u32>,
}

fn parse_args() -> Res<Args> {
    let mut a = Args {
        url: String::new(),
        seed: String::new(),
        terminals: 100,
        requests: 200_000,
        warmup: 20_000,
        conns: 64,
        depth: 1,
        pid: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let v = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let num = |v: &str| {
            v.parse::<usize>()
                .map_err(|_| format!("{flag}: not a number: {v:?}"))
        };
        match flag.as_str() {
            "--url" => a.url = v,
            "--seed" => a.seed = v,
            "--terminals" => a.terminals = u32::try_from(num(&v)?).map_err(|e| e.to_string())?,
            "--requests" => a.requests = num(&v)?,
            "--warmup" => a.warmup = num(&v)?,
            "--conns" => a.conns = num(&v)?,
            "--depth" => a.depth = num(&v)?,
            "--pid" => a.pid = Some(u32::try_from(num(&v)?).map_err(|e| e.to_string())?),
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if a.url.is_empty() || a.seed.is_empty() {
        return Err("--url and --seed are required".into());
    }
    if a.terminals == 0 || a.conns == 0 || a.depth == 0 || a.requests <= a.warmup {
        return Err("--terminals, --conns, --depth above 0 and --requests above --warmup".into());
    }
    Ok(a)
}

/// An activated terminal: what a payment call needs.
struct Term {
    device_id: String,
    identity: DeviceIdentity,
    terminal_id: String,
    mac_key_id: String,
    mac: [u8; 32],
    msk: [u8; 32],
    tpk: [u8; 32],
    currency: String,
}

async fn step(t: &Transport, id: &DeviceIdentity, call: ApiCall) -> Res<ApiAnswer> {
    let step = call.step();
    let fut = t.call(
        id,
        &DeviceFaults::default(),
        &call,
        Utc::now(),
        &mut rand::rng(),
        None,
    );
    fut.await
        .map_err(|e| format!("{}: {step:?}: {e:?}", id.device_id()))
}

/// Bootstrap → pairing code → claim (sandbox helper) → attest → keys → config → activate.
async fn activate(t: Transport, seed: String, device_id: String) -> Res<Term> {
    let id = DeviceIdentity::derived(&seed, &device_id, USER_AGENT).map_err(|e| e.to_string())?;
    step(&t, &id, ApiCall::Bootstrap).await?;
    step(&t, &id, ApiCall::PairingCode).await?;
    sandbox_claim(&t, &device_id, None)
        .await
        .map_err(|e| format!("{device_id}: claim: {e}"))?;
    let ApiAnswer::Attest(a) = step(&t, &id, ApiCall::Attest { clock_offset_ms: 0 }).await? else {
        return Err("attest: unexpected answer".into());
    };
    let token = a.attestation_token;
    let ApiAnswer::Keys(k) = step(
        &t,
        &id,
        ApiCall::Keys {
            token: Secret(token.clone()),
        },
    )
    .await?
    else {
        return Err("keys: unexpected answer".into());
    };
    let zmk = posemu_protocol::provision::derive_zmk(&seed, &device_id);
    let keys = unwrap_key_set(&zmk, &k).map_err(|e| format!("{device_id}: keys: {e:?}"))?;
    let msk = *keys.msk.expose();
    let ApiAnswer::Config(cfg) = step(
        &t,
        &id,
        ApiCall::Config {
            token: Secret(token.clone()),
            msk: Secret(msk),
        },
    )
    .await?
    else {
        return Err("config: unexpected answer".into());
    };
    step(
        &t,
        &id,
        ApiCall::Activate {
            token: Secret(token),
            msk: Secret(msk),
            checks: ActivationChecks::ALL_OK,
        },
    )
    .await?;
    let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
    Ok(Term {
        device_id,
        identity: id,
        terminal_id: text(&cfg["terminal_id"]),
        mac_key_id: keys.mac_key_id.clone(),
        mac: *keys.mac.expose(),
        msk,
        tpk: *keys.tpk.expose(),
        currency: text(&cfg["emv"]["currency"]),
    })
}

/// The charge of request `i`: three in four contactless without a PIN (under the limit), one in
/// four chip with PIN 1234; Visa and Mastercard test cards; amounts that avoid the magic endings
/// of spec 7.7, so every charge is approved.
fn charge_of(i: usize, t: &Term, rng: &mut StdRng) -> ChargeRequest {
    let pan = if i.is_multiple_of(2) {
        "4242424242424242"
    } else {
        "5555555555554444"
    };
    let mut cents = 100 + (i as u64 * 37) % 4_800;
    while matches!(cents % 100, 5 | 10 | 51 | 54 | 55 | 65 | 68 | 91) {
        cents += 1;
    }
    let chip = i % 4 == 3;
    ChargeRequest {
        amount: Money::new(cents, t.currency.clone()),
        tip: None,
        entry_mode: if chip {
            EntryMode::Chip
        } else {
            EntryMode::Contactless
        },
        card: CardData {
            pan: pan.into(),
            exp_month: 12,
            exp_year: 2030,
        },
        pin_block: chip.then(|| pinblock::encipher(&t.tpk, "1234", pan, rng).unwrap_or_default()),
        reference: Some(format!("bench-{i}")),
        allow_partial_approval: None,
    }
}

/// One signed charge as raw HTTP/1.1 bytes.
fn raw_charge(i: usize, t: &Term, transport: &Transport, host: &str, rng: &mut StdRng) -> Vec<u8> {
    let faults = DeviceFaults::default();
    let call = PayCall {
        request: PayRequest::Charge(charge_of(i, t, rng)),
        idempotency_key: Some(new_idempotency_key(rng)),
        terminal_id: t.terminal_id.clone(),
        key_id: t.mac_key_id.clone(),
        mac_key: Secret(t.mac),
        msk: Secret(t.msk),
        clock_offset_ms: 0,
    };
    let stamp = Stamp::draw(Utc::now(), 0, &faults, rng);
    let p = build(transport, &t.identity, &faults, &call, &stamp);
    let mut out = format!("POST {} HTTP/1.1\r\nHost: {host}\r\n", p.path);
    for name in [
        "user-agent",
        "x-client-type",
        "x-terminal-id",
        "x-key-id",
        "x-timestamp",
        "x-nonce",
        "x-signature",
        "idempotency-key",
        "content-type",
    ] {
        if let Some(v) = p.header(name) {
            out.push_str(&format!("{name}: {v}\r\n"));
        }
    }
    out.push_str(&format!("content-length: {}\r\n\r\n", p.body.len()));
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(&p.body);
    bytes
}

/// What one connection saw.
struct ConnResult {
    hist: Histogram<u64>,
    statuses: BTreeMap<u16, u64>,
    failure: Option<String>,
}

/// Reads one response: its status; the body is skipped.
async fn read_response(s: &mut TcpStream, buf: &mut Vec<u8>) -> Res<u16> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = std::str::from_utf8(&buf[..end]).map_err(|_| "head not UTF-8")?;
            let status = head
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse::<u16>().ok())
                .ok_or_else(|| format!("bad status line: {:?}", head.lines().next()))?;
            let len = head
                .lines()
                .filter_map(|l| l.split_once(':'))
                .find(|(n, _)| n.trim().eq_ignore_ascii_case("content-length"))
                .and_then(|(_, v)| v.trim().parse::<usize>().ok())
                .ok_or("no content-length")?;
            let total = end + 4 + len;
            while buf.len() < total {
                read_more(s, buf).await?;
            }
            buf.drain(..total);
            return Ok(status);
        }
        read_more(s, buf).await?;
    }
}

async fn read_more(s: &mut TcpStream, buf: &mut Vec<u8>) -> Res<()> {
    let mut chunk = [0u8; 16 * 1024];
    let n = s.read(&mut chunk).await.map_err(|e| e.to_string())?;
    if n == 0 {
        return Err("connection closed by the sandbox".into());
    }
    buf.extend_from_slice(&chunk[..n]);
    Ok(())
}

/// Fires `reqs` in order on one connection, `depth` in flight.
async fn connection(addr: String, reqs: Vec<&'static [u8]>, depth: usize) -> ConnResult {
    let mut r = ConnResult {
        hist: Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds"),
        statuses: BTreeMap::new(),
        failure: None,
    };
    let mut s = match TcpStream::connect(&addr).await {
        Ok(s) => s,
        Err(e) => {
            r.failure = Some(format!("connect: {e}"));
            return r;
        }
    };
    let _ = s.set_nodelay(true);
    let mut buf = Vec::with_capacity(32 * 1024);
    let mut sent = std::collections::VecDeque::with_capacity(depth);
    let mut next = 0;
    while next < reqs.len() || !sent.is_empty() {
        while next < reqs.len() && sent.len() < depth {
            if let Err(e) = s.write_all(reqs[next]).await {
                r.failure = Some(format!("write: {e}"));
                return r;
            }
            sent.push_back(Instant::now());
            next += 1;
        }
        match read_response(&mut s, &mut buf).await {
            Ok(status) => {
                let t0 = sent.pop_front().unwrap_or_else(Instant::now);
                let us = t0.elapsed().as_micros().max(1) as u64;
                let _ = r.hist.record(us.min(60_000_000));
                *r.statuses.entry(status).or_default() += 1;
            }
            Err(e) => {
                r.failure = Some(e);
                return r;
            }
        }
    }
    r
}

/// Fires every request over `conns` connections; request `i` goes to connection `i % conns`.
async fn fire(addr: &str, reqs: &[&'static [u8]], conns: usize, depth: usize) -> Vec<ConnResult> {
    let mut tasks = Vec::with_capacity(conns);
    for c in 0..conns {
        let mine: Vec<&'static [u8]> = reqs.iter().skip(c).step_by(conns).copied().collect();
        tasks.push(tokio::spawn(connection(addr.to_string(), mine, depth)));
    }
    let mut out = Vec::with_capacity(conns);
    for t in tasks {
        if let Ok(r) = t.await {
            out.push(r);
        }
    }
    out
}

/// utime + stime of a process, in seconds.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // fields after the command name, which is in parentheses and may hold spaces
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    Some(ticks as f64 / hz.max(1) as f64)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split(' ').next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

async fn charges_stored(url: &str, terms: &[Term]) -> Res<u64> {
    let client = reqwest::Client::new();
    let mut total = 0;
    for t in terms {
        let v: serde_json::Value = client
            .get(format!(
                "{url}/sandbox/terminals/{}/charges?limit=1",
                t.terminal_id
            ))
            .send()
            .await
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        total += v["total"].as_u64().unwrap_or(0);
    }
    Ok(total)
}

async fn run(a: Args) -> Res<()> {
    let transport =
        Transport::new(&a.url, TransportConfig::default()).map_err(|e| e.to_string())?;
    let host = a
        .url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();

    let t0 = Instant::now();
    let mut terms = Vec::with_capacity(a.terminals as usize);
    let ids: Vec<String> = (0..a.terminals)
        .map(|i| fleet_device_id(DEFAULT_FLEET_PREFIX, i))
        .collect();
    for chunk in ids.chunks(16) {
        let mut tasks = Vec::new();
        for id in chunk {
            tasks.push(tokio::spawn(activate(
                transport.clone(),
                a.seed.clone(),
                id.clone(),
            )));
        }
        for t in tasks {
            terms.push(t.await.map_err(|e| e.to_string())??);
        }
    }
    let mut tids: Vec<&str> = terms.iter().map(|t| t.terminal_id.as_str()).collect();
    tids.sort_unstable();
    tids.dedup();
    eprintln!(
        "activated {} fleet devices ({} .. {}, {} distinct terminal ids) in {:.1} s",
        terms.len(),
        terms.first().map_or("", |t| t.device_id.as_str()),
        terms.last().map_or("", |t| t.device_id.as_str()),
        tids.len(),
        t0.elapsed().as_secs_f64()
    );
    let before = charges_stored(&a.url, &terms).await?;

    let t1 = Instant::now();
    let mut rng = StdRng::from_rng(&mut rand::rng());
    let mut bytes = 0usize;
    let reqs: Vec<&'static [u8]> = (0..a.requests)
        .map(|i| {
            let r = raw_charge(i, &terms[i % terms.len()], &transport, &host, &mut rng);
            bytes += r.len();
            &*Vec::leak(r)
        })
        .collect();
    let signed_at = Instant::now();
    eprintln!(
        "pre-signed {} charges ({:.0} MB) in {:.1} s; firing {} warm-up, then {} timed, over {} \
         keep-alive connections, depth {}",
        a.requests,
        bytes as f64 / 1e6,
        t1.elapsed().as_secs_f64(),
        a.warmup,
        a.requests - a.warmup,
        a.conns,
        a.depth
    );
    let addr = host.clone();
    let (warm, timed) = reqs.split_at(a.warmup);
    let warm_results = fire(&addr, warm, a.conns, a.depth).await;

    let load_before = loadavg();
    let cpu_before = a.pid.and_then(cpu_seconds);
    let start = Instant::now();
    let results = fire(&addr, timed, a.conns, a.depth).await;
    let secs = start.elapsed().as_secs_f64();
    let cpu_after = a.pid.and_then(cpu_seconds);
    let load_after = loadavg();
    let in_window = signed_at.elapsed() < WINDOW - Duration::from_secs(5);

    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("bounds");
    let mut statuses: BTreeMap<u16, u64> = BTreeMap::new();
    let mut failures = Vec::new();
    let mut warm_errors = 0u64;
    for r in &warm_results {
        warm_errors += r
            .statuses
            .iter()
            .filter(|(s, _)| **s != 200)
            .map(|(_, n)| n)
            .sum::<u64>();
        failures.extend(r.failure.clone());
    }
    for r in results {
        let _ = hist.add(&r.hist);
        for (s, n) in r.statuses {
            *statuses.entry(s).or_default() += n;
        }
        failures.extend(r.failure);
    }
    let ok = statuses.get(&200).copied().unwrap_or(0);
    let errors: u64 = statuses
        .iter()
        .filter(|(s, _)| **s != 200)
        .map(|(_, n)| n)
        .sum();
    let stored = charges_stored(&a.url, &terms).await?.saturating_sub(before);
    let all_ok = warm_results
        .iter()
        .map(|r| r.statuses.get(&200).copied().unwrap_or(0))
        .sum::<u64>()
        + ok;
    let cpu = match (cpu_before, cpu_after) {
        (Some(b), Some(e)) => format!("{:.2}", e - b),
        _ => "?".into(),
    };
    let cpu_ms_per_charge = match (cpu_before, cpu_after) {
        (Some(b), Some(e)) if ok > 0 => format!("{:.1}", (e - b) * 1e6 / ok as f64),
        _ => "?".into(),
    };
    let status_text: Vec<String> = statuses.iter().map(|(s, n)| format!("{s}:{n}")).collect();
    println!(
        "charges={ok} seconds={secs:.2} rate={:.0} p50_us={} p99_us={} max_us={} errors={errors} \
         warmup_errors={warm_errors} statuses={} stored={stored} sent_ok={all_ok} \
         sandbox_cpu_s={cpu} sandbox_cpu_us_per_charge={cpu_ms_per_charge} \
         load_before={load_before} load_after={load_after} terminals={} conns={} depth={}",
        ok as f64 / secs,
        hist.value_at_quantile(0.5),
        hist.value_at_quantile(0.99),
        hist.max(),
        if status_text.is_empty() {
            "-".into()
        } else {
            status_text.join(",")
        },
        terms.len(),
        a.conns,
        a.depth,
    );
    if !failures.is_empty() {
        return Err(format!(
            "{} connections failed, first: {}",
            failures.len(),
            failures[0]
        ));
    }
    if !in_window {
        return Err("the run outlasted the 5-minute timestamp window; use fewer --requests".into());
    }
    if stored != all_ok {
        return Err(format!(
            "{all_ok} charges answered 200 but the sandbox stored {stored}"
        ));
    }
    Ok(())
}

fn main() {
    let code = match parse_args() {
        Err(e) => {
            eprintln!("charge_load: {e}");
            2
        }
        Ok(a) => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime");
            match rt.block_on(run(a)) {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("charge_load: {e}");
                    1
                }
            }
        }
    };
    std::process::exit(code);
}
