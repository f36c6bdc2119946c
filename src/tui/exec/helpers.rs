//! The sandbox helpers of the POS screen (claim, expire, reset, settle): their calls and how
//! their failures are told.

use super::*;

/// Why a sandbox helper (claim, expire, reset) did not do its job.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HelperError {
    #[error(
        "This server is not a posemu sandbox (no /sandbox/ helpers): claim the code in the \
         merchant portal instead"
    )]
    NotASandbox,
    /// A reset against a real server: there is nothing to reset there.
    #[error("the server has no /sandbox/ helpers; restarting the device only")]
    NoHelpers,
    #[error("Sandbox: {0}")]
    Sandbox(String),
    #[error("{0}")]
    Other(String),
    /// The code is no longer pending on the server (claimed, expired or replaced meanwhile):
    /// information, not a failure.
    #[error(
        "Code {0} is no longer pending on the server (claimed, expired or replaced): the \
         terminal learns which at its next poll"
    )]
    NotCurrent(String),
}

/// A code as named in a message; a helper's answer may leave it out, the model never does.
fn shown(code: &str) -> String {
    if code.is_empty() {
        "on screen".into()
    } else {
        code.to_string()
    }
}

impl HelperError {
    /// What a helper's failure means. A posemu server without the helpers answers its route
    /// fallback; a reset against any other server's 404 only means there is no such helper.
    fn of(e: &MerchantError, action: SandboxAction, embedded: bool) -> HelperError {
        if action == SandboxAction::Reset {
            if !embedded && e.status() == Some(404) {
                return HelperError::NoHelpers;
            }
            return HelperError::Other(e.to_string());
        }
        if e.status() == Some(404) && e.message() == Some("Route not found") {
            return HelperError::NotASandbox;
        }
        match e.message() {
            Some(msg) => HelperError::Sandbox(msg.to_string()),
            None => HelperError::Other(e.to_string()),
        }
    }
}

impl Executor {
    pub(super) fn helper(&self, generation: u64, action: SandboxAction, code: String) {
        let Some(runner) = self.runner(generation) else {
            return;
        };
        let transport = runner.transport.clone();
        let device_id = runner.device_id.clone();
        let log = runner.log.clone();
        let embedded = runner.embedded;
        self.spawn(async move {
            let log = Some(&log);
            let result = match action {
                SandboxAction::Reset => {
                    // A reset is idempotent: once more when the connection was lost before
                    // any answer (a kept-alive connection the server closed as it was reused:
                    // the sandbox's idle timeout and the demo loop's wait are both 30 s).
                    let reset =
                        || posemu_client::merchant::sandbox_reset(&transport, &device_id, log);
                    let mut result = reset().await;
                    if result
                        .as_ref()
                        .is_err_and(|e| matches!(e.source, CallError::Network(_)))
                    {
                        result = reset().await;
                    }
                    result.map(|_| "device reset on the sandbox".to_string())
                }
                SandboxAction::Claim | SandboxAction::AutoClaim => {
                    // the one auto-claim of posemu; the model waited and checked the code is
                    // still on screen already
                    let claimed = claim_code(
                        &ClaimVia::SandboxHelper,
                        &transport,
                        &device_id,
                        &code,
                        Duration::ZERO,
                        || true,
                        log,
                    )
                    .await;
                    match claimed {
                        Ok(ClaimOutcome::Claimed) => Ok(format!(
                            "Code {} claimed: the terminal will notice at its next poll",
                            shown(&code)
                        )),
                        Ok(ClaimOutcome::NotCurrent(_)) => {
                            return Msg::Sandbox {
                                generation,
                                action,
                                result: Err(HelperError::NotCurrent(shown(&code))),
                            }
                        }
                        Err(e) => Err(e),
                    }
                }
                SandboxAction::Settle => return settle_msg(generation, None),
                SandboxAction::Expire => {
                    posemu_client::sandbox_expire_code(&transport, &device_id, log)
                        .await
                        .map(|_| {
                            format!(
                                "Code {} expired on the server: the terminal will notice at its \
                                 next poll",
                                shown(&code)
                            )
                        })
                }
            };
            Msg::Sandbox {
                generation,
                action,
                result: result.map_err(|e| HelperError::of(&e, action, embedded)),
            }
        });
    }
}

/// A sandbox helper's failure in a few words: the server's message and code, or the error.
pub(super) fn helper_text(e: &CallError) -> String {
    match (e.status(), e.error_body()) {
        (Some(404), Some(b)) if b.message == "Route not found" => {
            "this server is not a posemu sandbox (no /sandbox/ helpers)".into()
        }
        (_, Some(b)) => format!("{} ({})", b.message, b.code),
        _ => e.to_string(),
    }
}

/// The answer to [`Cmd::Settle`], as the sandbox helpers answer.
pub(super) fn settle_msg(
    generation: u64,
    result: Option<Result<posemu_protocol::payments::SettleResponse, CallError>>,
) -> Msg {
    let result = match result {
        None => Err(HelperError::Other("settling needs the terminal id".into())),
        Some(Ok(r)) => {
            let n: usize = r.batches.iter().map(|b| b.charge_ids.len()).sum();
            Ok(match r.batches.first() {
                Some(b) => format!(
                    "Settled {n} charge{} in batch {}",
                    if n == 1 { "" } else { "s" },
                    b.batch_id
                ),
                None => "Nothing to settle: no charge is pending".into(),
            })
        }
        Some(Err(e)) => Err(HelperError::Other(format!("Settle: {}", helper_text(&e)))),
    };
    Msg::Sandbox {
        generation,
        action: SandboxAction::Settle,
        result,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use posemu_client::merchant::MerchantAction;
    use posemu_protocol::api::CallError;
    use posemu_protocol::error::ErrorBody;

    fn failed(action: MerchantAction, status: u16, message: Option<&str>) -> MerchantError {
        MerchantError {
            action,
            source: CallError::Http {
                status,
                retry_after: None,
                error: message.map(|m| ErrorBody {
                    code: "E404".into(),
                    message: m.into(),
                    details: None,
                    trace_id: String::new(),
                }),
            },
        }
    }

    #[test]
    fn a_helper_failure_is_told_by_its_cause() {
        let claim = MerchantAction::SandboxClaim;
        let no_route = failed(claim, 404, Some("Route not found"));
        assert_eq!(
            HelperError::of(&no_route, SandboxAction::Claim, false),
            HelperError::NotASandbox
        );
        let unknown = failed(claim, 404, Some("Device not found"));
        assert_eq!(
            HelperError::of(&unknown, SandboxAction::AutoClaim, true),
            HelperError::Sandbox("Device not found".into())
        );
        let reset = failed(MerchantAction::SandboxReset, 404, None);
        assert_eq!(
            HelperError::of(&reset, SandboxAction::Reset, false),
            HelperError::NoHelpers
        );
        // the embedded sandbox always has the helpers: its 404 is a real failure
        assert!(matches!(
            HelperError::of(&reset, SandboxAction::Reset, true),
            HelperError::Other(_)
        ));
    }
}
