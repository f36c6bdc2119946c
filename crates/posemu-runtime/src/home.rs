//! Where posemu keeps its files, and how `--profile NAME|PATH` finds a profile.
//!
//! `POSEMU_HOME=DIR` puts everything under `DIR/config` and `DIR/data` (tests, portable
//! installs); otherwise the platform's directories (`directories` crate), e.g. on Linux
//! `~/.config/posemu/` and `~/.local/share/posemu/`.

use std::path::{Path, PathBuf};

use posemu_profile::{self as profile, Profile, ProfileError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Home {
    pub config_dir: PathBuf,
    pub data_dir: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum HomeError {
    #[error("cannot find a home directory for posemu's files; set POSEMU_HOME=DIR")]
    NoHome,
    #[error(transparent)]
    Profile(#[from] ProfileError),
    #[error("no profile named {name:?}; available: {available}")]
    UnknownProfile { name: String, available: String },
    #[error("{0}")]
    Invalid(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

impl Home {
    pub fn discover() -> Result<Home, HomeError> {
        if let Some(dir) = std::env::var_os("POSEMU_HOME").filter(|d| !d.is_empty()) {
            return Ok(Home::at(Path::new(&dir)));
        }
        let dirs =
            directories::ProjectDirs::from("io", "viopay", "posemu").ok_or(HomeError::NoHome)?;
        Ok(Home {
            config_dir: dirs.config_dir().to_path_buf(),
            data_dir: dirs.data_dir().to_path_buf(),
        })
    }

    pub fn at(dir: &Path) -> Home {
        Home {
            config_dir: dir.join("config"),
            data_dir: dir.join("data"),
        }
    }

    /// The user's own profiles.
    pub fn profiles_dir(&self) -> PathBuf {
        self.config_dir.join("profiles")
    }

    /// Saved device progress, one file per device and server.
    pub fn state_dir(&self) -> PathBuf {
        self.data_dir.join("state")
    }

    /// Log files (the TUI owns the terminal, so logs go here).
    pub fn logs_dir(&self) -> PathBuf {
        self.data_dir.join("logs")
    }

    /// A profile by path (contains `/` or ends in `.toml`), else by name: the user's
    /// profiles first, then the shipped ones.
    pub fn find_profile(&self, spec: &str) -> Result<Profile, HomeError> {
        if spec.contains('/') || spec.ends_with(".toml") {
            return Ok(profile::load(Path::new(spec))?);
        }
        let user = self.profiles_dir().join(format!("{spec}.toml"));
        if user.exists() {
            return Ok(profile::load(&user)?);
        }
        profile::builtin_named(spec).ok_or_else(|| HomeError::UnknownProfile {
            name: spec.to_string(),
            available: self
                .list_profiles()
                .iter()
                .map(|(p, _)| match p {
                    Ok(p) => p.name.clone(),
                    Err(e) => e.file.clone(),
                })
                .collect::<Vec<_>>()
                .join(", "),
        })
    }

    /// Every profile: the user's (which may be broken: listed with their error) then the
    /// shipped ones not shadowed by a user profile of the same name.
    pub fn list_profiles(&self) -> Vec<(Result<Profile, ProfileError>, Origin)> {
        let mut out = Vec::new();
        let mut names = Vec::new();
        if let Ok(entries) = std::fs::read_dir(self.profiles_dir()) {
            let mut paths: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .collect();
            paths.sort();
            for p in paths {
                names.push(
                    p.file_stem()
                        .map(|s| s.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                );
                out.push((profile::load(&p), Origin::User));
            }
        }
        for p in profile::builtin() {
            if !names.contains(&p.name) {
                out.push((Ok(p), Origin::Shipped));
            }
        }
        out
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Shipped,
    User,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Shipped => "shipped",
            Origin::User => "user",
        }
    }
}

/// Writes `bytes` to `path` atomically (temp file in the same directory, then rename), the
/// file readable by its owner only; creates the directory (owner-only) if needed.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), HomeError> {
    use std::io::Write;
    let io = |source| HomeError::Io {
        path: path.display().to_string(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    create_private_dir(dir).map_err(io)?;
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default(),
        std::process::id()
    ));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let result = opts.open(&tmp).and_then(|mut f| {
        f.write_all(bytes)?;
        f.sync_all()
    });
    if let Err(e) = result.and_then(|_| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(e));
    }
    Ok(())
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_user_profiles_before_shipped_ones_and_names_the_choices_when_unknown() {
        let tmp = tempfile::tempdir().unwrap();
        let home = Home::at(tmp.path());
        assert_eq!(
            home.find_profile("pax-a920").unwrap().device_id,
            "POS-8F3A2C91"
        );
        let text = posemu_profile::BUILTIN[0]
            .1
            .replace("POS-8F3A2C91", "POS-00000001");
        write_private(&home.profiles_dir().join("pax-a920.toml"), text.as_bytes()).unwrap();
        assert_eq!(
            home.find_profile("pax-a920").unwrap().device_id,
            "POS-00000001"
        );
        let err = home.find_profile("nope").unwrap_err().to_string();
        assert!(err.contains("nope") && err.contains("sunmi-p2"), "{err}");
        let listed = home.list_profiles();
        assert_eq!(listed.iter().filter(|(_, o)| *o == Origin::User).count(), 1);
        assert_eq!(listed.len(), posemu_profile::BUILTIN.len());
    }

    #[cfg(unix)]
    #[test]
    fn private_files_are_owner_only_and_replaced_atomically() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("a/b/state.json");
        write_private(&p, b"one").unwrap();
        write_private(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        let mode = std::fs::metadata(&p).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let leftovers = std::fs::read_dir(p.parent().unwrap()).unwrap().count();
        assert_eq!(leftovers, 1, "no temp files left behind");
    }
}
