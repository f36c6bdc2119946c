//! Words and numbers as the screen shows them.

pub(super) fn status_word(s: posemu_protocol::wire::PairingCodeStatus) -> &'static str {
    use posemu_protocol::wire::PairingCodeStatus as P;
    match s {
        P::None => "none",
        P::Pending => "pending",
        P::Used => "used",
        P::Expired => "expired",
    }
}
