//! Why the device stopped, and what a person should do about it.

use std::fmt;

use super::machine::Step;
use posemu_protocol::api::CallError;
use posemu_protocol::text::escape_control;

#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    /// The flow step that stopped (an attest made on the way to keys counts as keys).
    pub step: Step,
    pub kind: FailureKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum FailureKind {
    /// The server said no (or could not be reached) in a way retrying will not fix.
    Call { step: Step, error: CallError },
    /// The key set failed to unwrap or a KCV did not match: refused (spec 4.7).
    KeySet(String),
    /// A 2xx answer the device cannot use.
    BadAnswer(String),
    /// The attestation token expired again right after attesting again.
    TokenExpiredTwice,
}

impl Failure {
    pub fn http_status(&self) -> Option<u16> {
        match &self.kind {
            FailureKind::Call { error, .. } => error.status(),
            _ => None,
        }
    }

    /// The Viopay error code (`4004`, …), if the server sent an error body.
    pub fn code(&self) -> Option<&str> {
        self.error_body().map(|b| b.code.as_str())
    }

    /// As the server sent it: escape it ([`escape_control`]) before showing it.
    pub fn trace_id(&self) -> Option<&str> {
        self.error_body()
            .map(|b| b.trace_id.as_str())
            .filter(|t| !t.is_empty())
    }

    fn error_body(&self) -> Option<&posemu_protocol::ErrorBody> {
        match &self.kind {
            FailureKind::Call { error, .. } => error.error_body(),
            _ => None,
        }
    }

    /// One line: what went wrong (server text escaped, see [`escape_control`]).
    pub fn message(&self) -> String {
        escape_control(&self.message_raw()).into_owned()
    }

    fn message_raw(&self) -> String {
        match &self.kind {
            FailureKind::Call { step, error } => match error.error_body() {
                Some(b) => format!("{} failed: {} ({})", step.name(), b.message, b.code),
                None => format!("{} failed: {error}", step.name()),
            },
            FailureKind::KeySet(why) => format!("key set refused: {why}"),
            FailureKind::BadAnswer(why) => format!("{} answer unusable: {why}", self.step.name()),
            FailureKind::TokenExpiredTwice => {
                "the attestation token expired again right after attesting".into()
            }
        }
    }

    /// What to do next, in words a person at the terminal can act on.
    pub fn hint(&self) -> &'static str {
        let FailureKind::Call { step, error } = &self.kind else {
            return match self.kind {
                FailureKind::KeySet(_) => {
                    "The server's keys do not match this device's ZMK: check the profile's zmk_hex."
                }
                _ => "The server answered something the terminal cannot use: check the server.",
            };
        };
        match (step, error.status()) {
            (_, Some(404)) => "This device is not provisioned on the server: check the profile and the server URL.",
            (_, Some(400)) => "The server rejected a request header or body: check the profile.",
            (Step::Attest, Some(401)) => {
                "Identity check failed: check the identity secret, key id and the device clock."
            }
            (_, Some(401) | Some(403)) => "The server refused the device's credentials.",
            (_, Some(409)) => "The device's state on the server does not allow this step.",
            (_, Some(422)) => "The device reported failed activation checks.",
            _ => "Press retry to try again.",
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}
