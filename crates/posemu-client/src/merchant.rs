//! The merchant's side of step 4, so that a device can be claimed unattended: the sandbox
//! helpers (`/sandbox/devices/{id}/claim`, `…/expire-code`) and, for real servers, a merchant
//! session (`/client/session` → `/session/initiate` → `POST /pos/claim`).

use std::fmt;
use std::time::{Duration, Instant};

use chrono::Utc;
use parking_lot::Mutex;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::call::{fill_response, json};
use super::exchange::{Exchange, ExchangeLog};
use super::transport::{Outgoing, Transport};
use posemu_protocol::api::{CallError, Secret};
use posemu_protocol::text::escape_control;
use posemu_protocol::wire::{
    paths, ClaimRequest, ClaimResponse, ClientSessionRequest, ClientSessionResponse,
    SessionInitiateRequest, SessionInitiateResponse,
};

/// What the merchant side was doing when it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MerchantAction {
    SandboxClaim,
    SandboxExpireCode,
    SandboxReset,
    SandboxSettle,
    Login,
    InitiateSession,
    Claim,
}

impl MerchantAction {
    /// The step name used in the exchange log.
    pub fn step(self) -> &'static str {
        match self {
            MerchantAction::SandboxClaim => "sandbox-claim",
            MerchantAction::SandboxExpireCode => "sandbox-expire-code",
            MerchantAction::SandboxReset => "sandbox-reset",
            MerchantAction::SandboxSettle => "sandbox-settle",
            MerchantAction::Login => "merchant-login",
            MerchantAction::InitiateSession => "merchant-session",
            MerchantAction::Claim => "claim",
        }
    }
}

impl fmt::Display for MerchantAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MerchantAction::SandboxClaim => "claiming through the sandbox helper",
            MerchantAction::SandboxExpireCode => "expiring the code through the sandbox helper",
            MerchantAction::SandboxReset => "resetting the device through the sandbox helper",
            MerchantAction::SandboxSettle => "settling through the sandbox helper",
            MerchantAction::Login => "merchant sign-in (POST /client/session)",
            MerchantAction::InitiateSession => "merchant session (POST /session/initiate)",
            MerchantAction::Claim => "claiming the code (POST /pos/claim)",
        })
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{action} failed: {source}")]
pub struct MerchantError {
    pub action: MerchantAction,
    #[source]
    pub source: CallError,
}

impl MerchantError {
    /// The HTTP status, if the server answered.
    pub fn status(&self) -> Option<u16> {
        self.source.status()
    }

    /// The error envelope's message, if the server sent one (`Pairing code expired`, …).
    pub fn message(&self) -> Option<&str> {
        match &self.source {
            CallError::Http { error: Some(e), .. } => Some(&e.message),
            _ => None,
        }
    }
}

/// The answer of the sandbox's claim and expire-code helpers, for display only: the HTTP status
/// alone says whether it worked (spec 5), so every field may be missing (empty) and a body
/// that is not this JSON at all reads as all empty. Server text, so control characters are
/// escaped already.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxCodeAction {
    /// `claimed` or `expired`.
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub device_id: String,
    #[serde(default)]
    pub pairing_code: String,
}

impl SandboxCodeAction {
    fn escaped(mut self) -> Self {
        for s in [
            &mut self.status,
            &mut self.device_id,
            &mut self.pairing_code,
        ] {
            if let std::borrow::Cow::Owned(e) = escape_control(s) {
                *s = e;
            }
        }
        self
    }
}

/// A helper's 2xx body as `T` if it is one, else `T::default()`: helpers are judged by status.
fn lenient<T: DeserializeOwned + Default>(body: &[u8]) -> T {
    serde_json::from_slice(body).unwrap_or_default()
}

/// A path segment with everything but `[A-Za-z0-9-_.]` percent-encoded, so that an odd device
/// id cannot walk to another route.
fn path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.') && s != "." && s != ".." {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Sends a JSON request and decodes a 2xx JSON answer; records the exchange if `log`.
async fn exchange<T: DeserializeOwned>(
    transport: &Transport,
    action: MerchantAction,
    path: &str,
    bearer: Option<&str>,
    body: Option<Vec<u8>>,
    log: Option<&ExchangeLog>,
) -> Result<T, MerchantError> {
    let body = exchange_raw(transport, action, path, bearer, body, log).await?;
    json(action.step(), &body).map_err(|source| MerchantError { action, source })
}

/// Sends a request; the body of a 2xx answer, else the error. Records the exchange if `log`.
async fn exchange_raw(
    transport: &Transport,
    action: MerchantAction,
    path: &str,
    bearer: Option<&str>,
    body: Option<Vec<u8>>,
    log: Option<&ExchangeLog>,
) -> Result<Vec<u8>, MerchantError> {
    let err = |source| MerchantError { action, source };
    let mut headers = HeaderMap::new();
    if body.is_some() {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    if let Some(token) = bearer {
        let mut v = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
            err(CallError::Decode(
                "the server's access token cannot be sent as a header".into(),
            ))
        })?;
        v.set_sensitive(true);
        headers.insert(AUTHORIZATION, v);
    }
    let out = Outgoing {
        method: Method::POST,
        url: transport.url(path),
        headers,
        body,
        timeout: None,
    };
    let now = Utc::now();
    let mut entry = log.map(|_| Exchange::sent(action.step(), now, &out));
    let started = Instant::now();
    let result = match transport.send(out).await {
        Ok(inc) => {
            if let Some(e) = entry.as_mut() {
                e.latency = started.elapsed();
                fill_response(e, &inc);
            }
            if inc.status.is_success() {
                Ok(inc.body)
            } else {
                Err(inc.to_http_error(now.into()))
            }
        }
        Err(e) => {
            if let Some(en) = entry.as_mut() {
                en.latency = started.elapsed();
            }
            Err(e)
        }
    };
    if let (Some(log), Some(mut e)) = (log, entry) {
        if let Err(err) = &result {
            e.error = Some(err.to_string());
        }
        log.record(e);
    }
    result.map_err(err)
}

/// Claims the device's pending code as its merchant would (sandbox only).
pub async fn sandbox_claim(
    transport: &Transport,
    device_id: &str,
    log: Option<&ExchangeLog>,
) -> Result<SandboxCodeAction, MerchantError> {
    let body = device_helper(
        transport,
        MerchantAction::SandboxClaim,
        "claim",
        device_id,
        log,
    )
    .await?;
    Ok(lenient::<SandboxCodeAction>(&body).escaped())
}

/// Expires the device's pending code now (sandbox only).
pub async fn sandbox_expire_code(
    transport: &Transport,
    device_id: &str,
    log: Option<&ExchangeLog>,
) -> Result<SandboxCodeAction, MerchantError> {
    let body = device_helper(
        transport,
        MerchantAction::SandboxExpireCode,
        "expire-code",
        device_id,
        log,
    )
    .await?;
    Ok(lenient::<SandboxCodeAction>(&body).escaped())
}

/// Puts the device back to `inactive` with no code and no keys (sandbox only), so that a
/// device restarted from scratch and the server agree. The answer's JSON for display
/// (`Null` when the body is not JSON): the status alone says it worked.
pub async fn sandbox_reset(
    transport: &Transport,
    device_id: &str,
    log: Option<&ExchangeLog>,
) -> Result<serde_json::Value, MerchantError> {
    let body = device_helper(
        transport,
        MerchantAction::SandboxReset,
        "reset",
        device_id,
        log,
    )
    .await?;
    Ok(lenient(&body))
}

/// `POST /sandbox/devices/{id}/{verb}` with no body (spec 5): the device helpers above.
async fn device_helper(
    transport: &Transport,
    action: MerchantAction,
    verb: &str,
    device_id: &str,
    log: Option<&ExchangeLog>,
) -> Result<Vec<u8>, MerchantError> {
    let path = format!("/sandbox/devices/{}/{verb}", path_segment(device_id));
    exchange_raw(transport, action, &path, None, None, log).await
}

/// How an unattended run claims codes.
#[derive(Debug, Clone)]
pub enum ClaimVia {
    /// `POST /sandbox/devices/{id}/claim`: claims whatever code of the device is pending.
    SandboxHelper,
    /// `POST /pos/claim` with the code, as a signed-in merchant (real servers).
    Merchant(std::sync::Arc<MerchantSession>),
}

/// What became of one [`claim_code`].
#[derive(Debug, Clone, PartialEq)]
pub enum ClaimOutcome {
    /// The server said 2xx: the device learns it at its next poll.
    Claimed,
    /// The code is not current any more: the device moved on to another code before the claim
    /// went out (no request; `None`), or the server has no pending code for it (the sandbox
    /// helper's 409; `/pos/claim`'s 404, 409 or 410): it was claimed, expired or replaced
    /// meanwhile. Not a failure: the device learns which at its next poll, and a new code
    /// gets a claim of its own.
    NotCurrent(Option<MerchantError>),
}

/// Whether a failed claim only says the code is no longer pending on the server.
fn is_stale(via: &ClaimVia, e: &MerchantError) -> bool {
    match via {
        ClaimVia::SandboxHelper => e.status() == Some(409),
        ClaimVia::Merchant(_) => matches!(e.status(), Some(404 | 409 | 410)),
    }
}

/// The one auto-claim: claims `code` of `device_id` once, after `delay` (chosen by the caller:
/// `--auto-claim DELAY`, a fleet's drawn delay, or zero when the caller waited already).
///
/// `still_current` tells whether the device still shows `code`; it is asked after the delay,
/// so a claim meant for a code that was replaced meanwhile never claims its successor (the
/// sandbox helper claims whatever is pending), and a claim that loses the race to a code change
/// is [`ClaimOutcome::NotCurrent`], not an error. Callers start one per code shown
/// (`Note::CodeShown`); a caller that checks currency itself passes `|| true`.
pub async fn claim_code(
    via: &ClaimVia,
    transport: &Transport,
    device_id: &str,
    code: &str,
    delay: Duration,
    still_current: impl Fn() -> bool + Send,
    log: Option<&ExchangeLog>,
) -> Result<ClaimOutcome, MerchantError> {
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if !still_current() {
        return Ok(ClaimOutcome::NotCurrent(None));
    }
    let result = match via {
        ClaimVia::SandboxHelper => sandbox_claim(transport, device_id, log).await.map(|_| ()),
        ClaimVia::Merchant(m) => m.claim(code, Some(device_id)).await.map(|_| ()),
    };
    match result {
        Ok(()) => Ok(ClaimOutcome::Claimed),
        Err(e) if is_stale(via, &e) => Ok(ClaimOutcome::NotCurrent(Some(e))),
        Err(e) => Err(e),
    }
}

/// Settles one charge now through `POST /sandbox/settle {"charge_id"}` (spec 7.12; sandbox
/// only: a real server answers 404 or 405).
pub async fn sandbox_settle_charge(
    transport: &Transport,
    charge_id: &str,
    log: Option<&ExchangeLog>,
) -> Result<posemu_protocol::payments::SettleResponse, MerchantError> {
    let body = serde_json::to_vec(&serde_json::json!({ "charge_id": charge_id })).map_err(|e| {
        MerchantError {
            action: MerchantAction::SandboxSettle,
            source: CallError::Decode(e.to_string()),
        }
    })?;
    exchange(
        transport,
        MerchantAction::SandboxSettle,
        posemu_protocol::payments::paths::SANDBOX_SETTLE,
        None,
        Some(body),
        log,
    )
    .await
}

/// Merchant API credentials (spec 4.5).
#[derive(Clone)]
pub struct MerchantCredentials {
    pub client_id: String,
    pub client_secret: Secret<String>,
    /// The `host` sent to `/session/initiate`.
    pub host: String,
}

impl MerchantCredentials {
    pub const DEFAULT_HOST: &'static str = "merchant.viopay.io";

    pub fn new(client_id: impl Into<String>, client_secret: impl Into<String>) -> Self {
        MerchantCredentials {
            client_id: client_id.into(),
            client_secret: Secret(client_secret.into()),
            host: Self::DEFAULT_HOST.into(),
        }
    }

    /// The sandbox's demo merchant.
    pub fn demo() -> Self {
        use posemu_protocol::rules::{DEMO_CLIENT_ID, DEMO_CLIENT_SECRET};
        Self::new(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET)
    }
}

impl fmt::Debug for MerchantCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MerchantCredentials")
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .field("host", &self.host)
            .finish()
    }
}

/// Who the session signed in as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MerchantInfo {
    pub merchant_id: String,
    pub merchant_name: String,
}

#[derive(Clone)]
struct Session {
    token: Secret<String>,
    /// Renew before this (the token's lifetime less a margin).
    renew_at: Instant,
    info: MerchantInfo,
}

/// A merchant's signed-in session. Shared by reference (`&self`), so one session serves every
/// claim of a fleet; it signs in on first use, again shortly before the token expires, and
/// again once if the server answers 401 anyway.
pub struct MerchantSession {
    transport: Transport,
    credentials: MerchantCredentials,
    session: Mutex<Option<Session>>,
    log: Option<ExchangeLog>,
}

impl fmt::Debug for MerchantSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MerchantSession")
            .field("server", &self.transport.base_url())
            .field("credentials", &self.credentials)
            .field("signed_in", &self.session.lock().is_some())
            .finish()
    }
}

/// Renew the token when less than this much of its life is left.
const RENEW_MARGIN: Duration = Duration::from_secs(10);
/// [POSEMU] The longest merchant-token lifetime (`expires_in`) the client believes.
pub const MAX_MERCHANT_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

impl MerchantSession {
    pub fn new(transport: Transport, credentials: MerchantCredentials) -> Self {
        MerchantSession {
            transport,
            credentials,
            session: Mutex::new(None),
            log: None,
        }
    }

    /// Records the session's exchanges (tokens and the client secret redacted).
    pub fn with_log(mut self, log: ExchangeLog) -> Self {
        self.log = Some(log);
        self
    }

    /// The merchant signed in as, if signed in.
    pub fn merchant(&self) -> Option<MerchantInfo> {
        self.session.lock().as_ref().map(|s| s.info.clone())
    }

    /// Signs in and initiates a session now (also done by [`Self::claim`] when needed).
    pub async fn login(&self) -> Result<MerchantInfo, MerchantError> {
        let log = self.log.as_ref();
        let req = ClientSessionRequest {
            client_id: self.credentials.client_id.clone(),
            client_secret: self.credentials.client_secret.expose().clone(),
        };
        let started = Instant::now();
        let tok: ClientSessionResponse = exchange(
            &self.transport,
            MerchantAction::Login,
            paths::CLIENT_SESSION,
            None,
            Some(serde_json::to_vec(&req).unwrap_or_default()),
            log,
        )
        .await?;
        let init = SessionInitiateRequest {
            host: self.credentials.host.clone(),
        };
        let info: SessionInitiateResponse = exchange(
            &self.transport,
            MerchantAction::InitiateSession,
            paths::SESSION_INITIATE,
            Some(&tok.access_token),
            Some(serde_json::to_vec(&init).unwrap_or_default()),
            log,
        )
        .await?;
        let info = MerchantInfo {
            merchant_id: info.merchant_id,
            merchant_name: info.merchant_name,
        };
        // a server's lifetime is believed up to an hour (`Instant + u64::MAX s` would panic)
        let life = Duration::from_secs(tok.expires_in)
            .min(MAX_MERCHANT_TOKEN_LIFETIME)
            .saturating_sub(RENEW_MARGIN);
        *self.session.lock() = Some(Session {
            token: Secret(tok.access_token),
            renew_at: started.checked_add(life).unwrap_or(started),
            info: info.clone(),
        });
        Ok(info)
    }

    async fn token(&self) -> Result<Secret<String>, MerchantError> {
        let current = self
            .session
            .lock()
            .as_ref()
            .filter(|s| Instant::now() < s.renew_at)
            .map(|s| s.token.clone());
        match current {
            Some(t) => Ok(t),
            None => {
                self.login().await?;
                self.session
                    .lock()
                    .as_ref()
                    .map(|s| s.token.clone())
                    .ok_or_else(|| MerchantError {
                        action: MerchantAction::Login,
                        source: CallError::Decode("no session after signing in".into()),
                    })
            }
        }
    }

    /// Claims `pairing_code` (optionally naming the device, as the documented example does).
    pub async fn claim(
        &self,
        pairing_code: &str,
        device_id: Option<&str>,
    ) -> Result<ClaimResponse, MerchantError> {
        let body = serde_json::to_vec(&ClaimRequest {
            pairing_code: pairing_code.to_string(),
            device_id: device_id.map(str::to_string),
        })
        .unwrap_or_default();
        let send = |token: Secret<String>| {
            let body = body.clone();
            async move {
                exchange::<ClaimResponse>(
                    &self.transport,
                    MerchantAction::Claim,
                    paths::CLAIM,
                    Some(token.expose()),
                    Some(body),
                    self.log.as_ref(),
                )
                .await
            }
        };
        match send(self.token().await?).await {
            // The token died early (server restarted, clocks disagree): sign in once more.
            Err(e) if e.status() == Some(401) => {
                *self.session.lock() = None;
                send(self.token().await?).await
            }
            other => other,
        }
    }
}

#[cfg(test)]
#[path = "merchant_tests.rs"]
mod tests;
