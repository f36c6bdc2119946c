//! Where the pure device machine meets the world: its files (home, saved progress) and the
//! driver that carries out its effects for one device.
//!
//! In the workspace: the host. Depends on device, client, profile and protocol, and on the
//! sandbox to start an embedded one; only the root package (cli, tui, fleet) uses it.

pub mod driver;
pub mod home;
pub mod open;
pub mod payments;
pub mod session;
pub mod store;

pub use driver::{CallFuture, Caller, Driver, Effector, InFlight, Machine};
pub use home::Home;
pub use open::{
    open_device, open_device_in, remember_device, start_sandbox_or_free_port, DeviceOptions,
    OpenDevice, OpenError, EMBEDDED_PROGRESS_KEY, STABLE_LISTEN,
};
pub use payments::{PayRunner, Showing, Shown, UpError};
pub use session::{profile_identity, DeviceSession, HttpCaller, SessionError, SessionOptions};
pub use store::ProgressStore;
