//! The device's connection pool against a server that closes idle keep-alive connections
//! (the sandbox after 30 s): a request at that very moment must not meet a connection the
//! server is closing.

use chrono::Utc;
use posemu_client::{DeviceFaults, Transport, TransportConfig};
use posemu_profile::{builtin_named, DEFAULT_PROFILE};
use posemu_protocol::api::{ApiAnswer, ApiCall};
use posemu_sandbox::{Sandbox, SandboxConfig, DEFAULT_HEADER_READ_TIMEOUT};
use rand::rngs::StdRng;
use rand::SeedableRng;

#[tokio::test(start_paused = true)]
async fn a_call_when_the_server_closes_its_idle_connection_still_goes_through() {
    let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let transport = Transport::new(&sandbox.url(), TransportConfig::default()).unwrap();
    let identity =
        posemu_runtime::profile_identity(&builtin_named(DEFAULT_PROFILE).unwrap()).unwrap();
    let mut rng = StdRng::seed_from_u64(7);
    for round in 0..3 {
        let answer = transport
            .call(
                &identity,
                &DeviceFaults::NONE,
                &ApiCall::Bootstrap,
                Utc::now(),
                &mut rng,
                None,
            )
            .await;
        assert!(
            matches!(answer, Ok(ApiAnswer::Bootstrap(_))),
            "round {round}: {answer:?}"
        );
        // idle exactly as long as the sandbox keeps an idle connection open
        tokio::time::sleep(DEFAULT_HEADER_READ_TIMEOUT).await;
    }
}
