//! Saved progress on disk: one JSON file per device and server under the data directory,
//! mode 0600, written atomically. A file that cannot be read back is moved aside (never
//! silently dropped) and reported.

use std::path::{Path, PathBuf};

use super::home::{write_private, Home, HomeError};
use posemu_device::progress::{Progress, PROGRESS_VERSION};
use posemu_protocol::crypto::sha256_hex;
use posemu_protocol::text::strip_userinfo;

#[derive(Debug, Clone)]
pub struct ProgressStore {
    path: PathBuf,
}

/// What `load` found besides a usable file.
#[derive(Debug, thiserror::Error)]
pub enum LoadProblem {
    #[error(
        "saved progress {file} was unreadable ({reason}); moved it to {moved_to} and started fresh"
    )]
    Corrupt {
        file: String,
        reason: String,
        moved_to: String,
    },
    #[error(
        "saved progress {file} is unreadable ({reason}) and could not be moved aside: {error}"
    )]
    Stuck {
        file: String,
        reason: String,
        error: String,
    },
}

impl ProgressStore {
    /// The store of `device_id` against `server` (progress against one server means nothing
    /// to another). Credentials in the URL are not part of the server (nor ever stored).
    pub fn new(home: &Home, device_id: &str, server: &str) -> ProgressStore {
        let server = strip_userinfo(server);
        let tag = &sha256_hex(server.as_bytes())[..12];
        ProgressStore {
            path: home.state_dir().join(format!("{device_id}-{tag}.json")),
        }
    }

    pub fn at(path: &Path) -> ProgressStore {
        ProgressStore {
            path: path.to_path_buf(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `Ok(None)` when nothing is saved; `Err` when a bad file was found (and moved aside).
    pub fn load(&self, device_id: &str, server: &str) -> Result<Option<Progress>, LoadProblem> {
        let server = &*strip_userinfo(server);
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.set_aside(format!("cannot read: {e}"))),
        };
        let reason = match serde_json::from_slice::<Progress>(&bytes) {
            Ok(p) if p.version != PROGRESS_VERSION => {
                format!("format version {} (expected {PROGRESS_VERSION})", p.version)
            }
            Ok(p) if p.device_id != device_id || &*p.server != server => format!(
                "it belongs to {} at {}, not {device_id} at {server}",
                p.device_id, p.server
            ),
            Ok(p) => return Ok(Some(p)),
            Err(e) => format!("not valid progress JSON: {e}"),
        };
        Err(self.set_aside(reason))
    }

    fn set_aside(&self, reason: String) -> LoadProblem {
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S");
        let moved = self.path.with_extension(format!("corrupt-{stamp}.json"));
        let file = self.path.display().to_string();
        match std::fs::rename(&self.path, &moved) {
            Ok(()) => LoadProblem::Corrupt {
                file,
                reason,
                moved_to: moved.display().to_string(),
            },
            Err(e) => LoadProblem::Stuck {
                file,
                reason,
                error: e.to_string(),
            },
        }
    }

    pub fn save(&self, p: &Progress) -> Result<(), HomeError> {
        let json = serde_json::to_vec_pretty(p).map_err(|e| HomeError::Invalid(e.to_string()))?;
        write_private(&self.path, &json)
    }

    /// Forgets the saved progress (`--fresh`).
    pub fn clear(&self) -> Result<(), HomeError> {
        match std::fs::remove_file(&self.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(HomeError::Io {
                path: self.path.display().to_string(),
                source: e,
            }),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use posemu_protocol::wire::DeviceStatus;

    #[test]
    fn saves_loads_and_clears() {
        let tmp = tempfile::tempdir().unwrap();
        let store = ProgressStore::new(&Home::at(tmp.path()), "POS-8F3A2C91", "http://a");
        assert!(store.load("POS-8F3A2C91", "http://a").unwrap().is_none());
        let mut p = Progress::new("POS-8F3A2C91", "http://a");
        p.status = DeviceStatus::Activated;
        p.terminal_id = Some("TID-000001".into());
        store.save(&p).unwrap();
        assert_eq!(store.load("POS-8F3A2C91", "http://a").unwrap(), Some(p));
        let other = ProgressStore::new(&Home::at(tmp.path()), "POS-8F3A2C91", "http://b");
        assert_ne!(other.path(), store.path(), "one file per server");
        store.clear().unwrap();
        store.clear().unwrap();
        assert!(store.load("POS-8F3A2C91", "http://a").unwrap().is_none());
    }

    #[test]
    fn a_corrupt_file_is_moved_aside_and_reported() {
        let tmp = tempfile::tempdir().unwrap();
        let store = ProgressStore::new(&Home::at(tmp.path()), "POS-8F3A2C91", "http://a");
        write_private(store.path(), b"{\"version\": 1, \"device_id\": ").unwrap();
        let err = store.load("POS-8F3A2C91", "http://a").unwrap_err();
        let LoadProblem::Corrupt { moved_to, .. } = &err else {
            panic!("{err}")
        };
        assert_eq!(
            std::fs::read(moved_to).unwrap(),
            b"{\"version\": 1, \"device_id\": ",
            "the bad file is kept"
        );
        assert!(err.to_string().contains("not valid progress JSON"), "{err}");
        assert!(store.load("POS-8F3A2C91", "http://a").unwrap().is_none());
    }
}
