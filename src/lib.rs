//! posemu: an emulator of a Viopay POS payment terminal, with an embedded Viopay sandbox.

pub mod protocol;
