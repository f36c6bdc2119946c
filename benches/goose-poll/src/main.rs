//! Goose users that each play one terminal polling `GET /pos/status` every 3–5 s, with the
//! device headers of spec 3.1 and ids derived as `posemu fleet` derives them (POS-F0000001…).
//! Run: goose-poll --host http://127.0.0.1:PORT --users N --hatch-rate R --run-time 60s

use std::time::Duration;

use goose::client::GooseClientBuilder;
use goose::prelude::*;

const USER_AGENT: &str = "Viopay-POS/1.4.2 (Android 12; PAX-A920)";

async fn poll_status(user: &mut GooseUser) -> TransactionResult {
    let device_id = format!("POS-F0{:06X}", user.weighted_users_index + 1);
    let builder = user
        .get_request_builder(&GooseMethod::Get, "/pos/status")?
        .header("X-Device-Id", device_id)
        .header("User-Agent", USER_AGENT)
        .header("X-Client-Type", "pos");
    let request = GooseRequest::builder()
        .set_request_builder(builder)
        .name("status")
        .build();
    user.request(request).await?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), GooseError> {
    GooseAttack::initialize()?
        // one shared keep-alive pool, as posemu's default
        .set_client_builder_without_cookies(GooseClientBuilder::new().without_cookies())?
        .register_scenario(
            scenario!("Terminal")
                .set_wait_time(Duration::from_secs(3), Duration::from_secs(5))?
                .register_transaction(transaction!(poll_status)),
        )
        .execute()
        .await?;
    Ok(())
}
