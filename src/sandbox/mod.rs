//! The embedded Viopay server (axum): every endpoint and rule of the spec, in memory.
