//! The only place that talks HTTP for a device (reqwest): headers, signing, envelopes,
//! timeouts, and the exchange log.
