//! The terminal's brain, with no I/O: the activation state machine, its poll policy and the
//! key-set handling. The TUI, `activate` and the fleet all run this same machine.

pub mod api;
