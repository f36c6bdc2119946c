//! The flags every one-device mode shares (the POS screen, `activate`, `demo`), and opening
//! the device they describe: against `--server`, or an embedded sandbox started in-process.

use std::sync::Arc;
use std::time::Duration;

use posemu_client::{DeviceFaults, FaultHeader, TransportConfig};
use posemu_profile::Profile;
use posemu_protocol::clock::{Clock, SystemClock};
use posemu_runtime::{DeviceSession, Home, SessionOptions};
use posemu_sandbox::{Sandbox, SandboxConfig};

#[derive(Debug, Clone, clap::Args)]
pub struct DeviceArgs {
    /// Device profile: a name (user profiles, then shipped ones) or a path to a .toml file.
    #[arg(long, value_name = "NAME|PATH", default_value = posemu_profile::DEFAULT_PROFILE)]
    pub profile: String,
    /// Viopay server base URL; without it posemu starts its embedded sandbox in-process.
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
    /// Seconds between status polls while waiting for the merchant (3–5).
    #[arg(long, value_name = "SECS", default_value = "3", value_parser = parse_poll)]
    pub poll_interval: Duration,
    /// Forget this device's saved progress and start from power-on.
    #[arg(long)]
    pub fresh: bool,
    /// Go on even if the server's min_supported_version is above the profile's app version.
    #[arg(long)]
    pub ignore_min_version: bool,
    /// Time allowed to connect to the server.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub connect_timeout: Duration,
    /// Time allowed for one request.
    #[arg(long, value_name = "DURATION", default_value = "15s", value_parser = parse_duration)]
    pub request_timeout: Duration,
    /// Embedded sandbox only: pairing-code lifetime in seconds.
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub code_ttl: Option<u64>,

    /// Run timers N times faster, the embedded sandbox's clock too (tests).
    #[arg(long, value_name = "N", default_value_t = 1, hide = true)]
    pub time_warp: u32,

    /// Fault: shift X-Timestamp by this much (e.g. 10m, -90s).
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true, value_parser = parse_signed_duration, help_heading = "Device faults")]
    pub clock_skew: Option<i64>,
    /// Fault: sign attestations with a wrong identity secret.
    #[arg(long, help_heading = "Device faults")]
    pub bad_secret: bool,
    /// Fault: send the same nonce on every attestation.
    #[arg(long, help_heading = "Device faults")]
    pub reuse_nonce: bool,
    /// Fault: leave this header out (repeatable), e.g. X-Client-Type.
    #[arg(long, value_name = "HEADER", help_heading = "Device faults")]
    pub drop_header: Vec<FaultHeader>,
    /// Fault: send a malformed value for this header (repeatable).
    #[arg(long, value_name = "HEADER", help_heading = "Device faults")]
    pub malform_header: Vec<FaultHeader>,
}

/// What [`DeviceArgs::open`] gives: the device, and the sandbox it talks to if embedded.
pub struct OpenDevice {
    pub session: DeviceSession,
    pub sandbox: Option<Sandbox>,
    pub server: String,
}

impl DeviceArgs {
    pub fn faults(&self) -> DeviceFaults {
        let mut f = DeviceFaults {
            clock_skew_ms: self.clock_skew.unwrap_or(0),
            wrong_secret: self.bad_secret,
            reuse_nonce: self.reuse_nonce,
            ..DeviceFaults::NONE
        };
        for h in &self.drop_header {
            f.drop_headers.insert(*h);
        }
        for h in &self.malform_header {
            f.malform_headers.insert(*h);
        }
        f
    }

    /// Resolves the profile, starts the embedded sandbox if there is no `--server`, loads saved
    /// progress. Must run inside a tokio runtime. Errors are ready to show as they are.
    pub async fn open(&self) -> Result<OpenDevice, String> {
        let home = Home::discover().map_err(|e| e.to_string())?;
        let profile = home
            .find_profile(&self.profile)
            .map_err(|e| format!("--profile: {e}"))?;
        let clock = self.clock();
        let (sandbox, server, progress_key) = match &self.server {
            Some(url) => (None, url.trim_end_matches('/').to_string(), None),
            None => {
                let sb = Sandbox::start(self.sandbox_config(&profile, clock.clone()))
                    .await
                    .map_err(|e| format!("embedded sandbox: {e}"))?;
                let url = sb.url();
                (Some(sb), url, Some("embedded-sandbox".to_string()))
            }
        };
        if self.code_ttl.is_some() && sandbox.is_none() {
            return Err("--code-ttl applies to the embedded sandbox only (no --server)".into());
        }
        let opts = self.session_options(&server, progress_key);
        let session =
            DeviceSession::open(&home, profile, &opts, clock).map_err(|e| e.to_string())?;
        Ok(OpenDevice {
            session,
            sandbox,
            // as shown on screens: credentials go out as basic auth only (the transport has them)
            server: posemu_protocol::text::strip_userinfo(&server).into_owned(),
        })
    }

    /// The wall clock: the system's, or one running `--time-warp` times faster.
    pub fn clock(&self) -> Arc<dyn Clock> {
        if self.time_warp > 1 {
            Arc::new(posemu_protocol::clock::WarpClock::new(self.time_warp))
        } else {
            Arc::new(SystemClock)
        }
    }

    /// The embedded sandbox for `profile`: on `clock`, with `--code-ttl`, and the profile
    /// provisioned if it is not a shipped one.
    pub fn sandbox_config(&self, profile: &Profile, clock: Arc<dyn Clock>) -> SandboxConfig {
        let mut cfg = SandboxConfig {
            clock,
            ..SandboxConfig::default()
        };
        if let Some(ttl) = self.code_ttl {
            cfg.code_ttl = Duration::from_secs(ttl);
        }
        // a user profile that the sandbox does not know yet is provisioned too
        if !cfg
            .profiles
            .iter()
            .any(|p| p.device_id == profile.device_id)
        {
            cfg.profiles.push(profile.clone());
        }
        cfg
    }

    /// The device session's options against `server`; progress is saved under `progress_key`
    /// if given (see [`SessionOptions::progress_key`]).
    pub fn session_options(&self, server: &str, progress_key: Option<String>) -> SessionOptions {
        SessionOptions {
            server: server.to_string(),
            poll_interval: self.poll_interval,
            fresh: self.fresh,
            faults: self.faults(),
            ignore_min_version: self.ignore_min_version,
            transport: TransportConfig {
                connect_timeout: self.connect_timeout,
                request_timeout: self.request_timeout,
                ..TransportConfig::default()
            },
            progress_key,
            time_warp: self.time_warp,
            pace: Duration::ZERO,
        }
    }
}

fn parse_poll(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s).or_else(|_| parse_duration(&format!("{s}s")))?;
    if !(Duration::from_secs(3)..=Duration::from_secs(5)).contains(&d) {
        return Err(format!("{s} is outside 3–5 s (spec 4.3)"));
    }
    Ok(d)
}

use posemu_protocol::duration::{parse as parse_duration, parse_signed as parse_signed_duration};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units_and_signs() {
        assert_eq!(parse_signed_duration("10m"), Ok(600_000));
        assert_eq!(parse_signed_duration("-90s"), Ok(-90_000));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("4.5s"), Ok(Duration::from_millis(4_500)));
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("ten").unwrap_err().contains("500ms"));
        assert!(parse_duration("5").is_err());
        assert_eq!(parse_poll("4"), Ok(Duration::from_secs(4)));
        assert!(parse_poll("2").unwrap_err().contains("3–5"));
    }
}
