//! The flags every one-device mode shares (the POS screen, `activate`, `demo`). They only
//! convert to the runtime's plain [`DeviceOptions`]; opening the device is the runtime's
//! ([`posemu_runtime::open_device`]).

use std::time::Duration;

use posemu_client::{DeviceFaults, FaultHeader};
pub use posemu_runtime::OpenDevice;
use posemu_runtime::{open_device, DeviceOptions, OpenError};

#[derive(Debug, Clone, clap::Args)]
pub struct DeviceArgs {
    /// Device profile: a name (user profiles, then shipped ones) or a path to a .toml file.
    #[arg(long, value_name = "NAME|PATH", default_value = posemu_profile::DEFAULT_PROFILE)]
    pub profile: String,
    /// Viopay server base URL; without it posemu starts its embedded sandbox in-process.
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
    /// Embedded sandbox only: where it listens. The POS screen's default is 127.0.0.1:8765
    /// (stable, so a portal tab or a scanned QR code keeps working), other modes take a free
    /// port; a busy port falls back to a free one and says so.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<std::net::SocketAddr>,
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

    /// The plain options these flags describe (what the runtime and the screen work with).
    pub fn options(&self) -> DeviceOptions {
        DeviceOptions {
            profile: self.profile.clone(),
            server: self.server.clone(),
            poll_interval: self.poll_interval,
            fresh: self.fresh,
            ignore_min_version: self.ignore_min_version,
            connect_timeout: self.connect_timeout,
            request_timeout: self.request_timeout,
            code_ttl: self.code_ttl.map(Duration::from_secs),
            time_warp: self.time_warp,
            faults: self.faults(),
            listen: self.listen.unwrap_or(DeviceOptions::default().listen),
            kept_sandbox: false,
        }
    }

    /// [`DeviceArgs::options`] for the POS screen: its embedded sandbox on the stable address
    /// unless `--listen` says otherwise.
    pub fn screen_options(&self) -> DeviceOptions {
        DeviceOptions {
            listen: self.listen.unwrap_or(posemu_runtime::STABLE_LISTEN),
            ..self.options()
        }
    }

    /// Opens the device these flags describe ([`posemu_runtime::open_device`]). Must run inside
    /// a tokio runtime; errors say which flag or file was at fault.
    pub async fn open(&self) -> Result<OpenDevice, OpenError> {
        open_device(&self.options()).await
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

#[cfg(test)]
mod listen_tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Flags {
        #[command(flatten)]
        device: DeviceArgs,
    }

    #[test]
    fn the_pos_screen_listens_on_the_stable_address_unless_told() {
        let f = Flags::parse_from(["posemu"]);
        assert_eq!(
            f.device.screen_options().listen.to_string(),
            "127.0.0.1:8765"
        );
        assert_eq!(
            f.device.options().listen.port(),
            0,
            "activate, pay: a free port"
        );
        let f = Flags::parse_from(["posemu", "--listen", "127.0.0.1:9001"]);
        assert_eq!(f.device.screen_options().listen.port(), 9001);
        assert_eq!(f.device.options().listen.port(), 9001);
    }
}
