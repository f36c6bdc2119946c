//! Which devices a fleet runs: derived from a seed (spec section 5), or read from a file of
//! pre-provisioned devices with their secrets (for real servers).

use std::collections::HashSet;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use posemu_client::HeaderValue;
use serde::Deserialize;

use posemu_client::{DeviceIdentity, IdentityError, SharedHeaders};
use posemu_protocol::api::Secret;
use posemu_protocol::crypto::{key_from_hex, Key};
use posemu_protocol::headers::is_valid_device_id;
use posemu_protocol::provision::{derive_zmk, fleet_device_id};

/// The highest derived index: ids carry 6 hex digits.
pub const MAX_DERIVED_INDEX: u32 = 0xFF_FFFF;

/// One pre-provisioned device from `--devices-file`.
#[derive(Clone)]
pub struct FileDevice {
    pub device_id: String,
    pub key_id: String,
    pub identity_secret: Key,
    pub zmk: Key,
}

impl fmt::Debug for FileDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileDevice")
            .field("device_id", &self.device_id)
            .field("key_id", &self.key_id)
            .field("identity_secret", &"<redacted>")
            .field("zmk", &"<redacted>")
            .finish()
    }
}

/// Where the fleet's identities come from. Position `p` (0-based) is the fleet's p-th device.
#[derive(Clone)]
pub enum DeviceSource {
    /// `POS-{prefix}{first + p as 6 hex}`, secrets derived from the seed.
    Derived {
        seed: Secret<String>,
        prefix: String,
        first: u32,
    },
    File(Arc<Vec<FileDevice>>),
}

impl fmt::Debug for DeviceSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSource::Derived { prefix, first, .. } => f
                .debug_struct("Derived")
                .field("seed", &"<redacted>")
                .field("prefix", prefix)
                .field("first", first)
                .finish(),
            DeviceSource::File(d) => write!(f, "File({} devices)", d.len()),
        }
    }
}

impl DeviceSource {
    pub fn device_id(&self, pos: u32) -> String {
        match self {
            DeviceSource::Derived { prefix, first, .. } => fleet_device_id(prefix, first + pos),
            DeviceSource::File(d) => d[pos as usize].device_id.clone(),
        }
    }

    /// The identity of device `pos` (a derived one shares `fleet`'s User-Agent and key id; one
    /// from a file its User-Agent) and its ZMK.
    pub fn identity(
        &self,
        pos: u32,
        fleet: &SharedHeaders,
    ) -> Result<(DeviceIdentity, Key), IdentityError> {
        match self {
            DeviceSource::Derived { seed, .. } => {
                let id = self.device_id(pos);
                let identity = DeviceIdentity::derived_with(seed.expose(), &id, fleet)?;
                Ok((identity, derive_zmk(seed.expose(), &id)))
            }
            DeviceSource::File(d) => {
                let dev = &d[pos as usize];
                let key_id =
                    HeaderValue::from_str(&dev.key_id).map_err(|_| IdentityError::HeaderValue {
                        field: "key id",
                        value: dev.key_id.clone(),
                    })?;
                let identity = DeviceIdentity::with_shared(
                    &dev.device_id,
                    SharedHeaders::new(fleet.user_agent().clone(), key_id),
                    dev.identity_secret,
                )?;
                Ok((identity, dev.zmk))
            }
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlFile {
    #[serde(default)]
    device: Vec<TomlDevice>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlDevice {
    device_id: String,
    identity_key_id: String,
    identity_secret_hex: String,
    zmk_hex: String,
}

const CSV_COLUMNS: [&str; 4] = [
    "device_id",
    "identity_key_id",
    "identity_secret_hex",
    "zmk_hex",
];

/// Reads `--devices-file`: TOML (`[[device]]` tables) if it ends in `.toml`, else CSV with the
/// header `device_id,identity_key_id,identity_secret_hex,zmk_hex`. Errors name the file, the
/// line or device, and the field.
pub fn load_devices_file(path: &Path) -> Result<Vec<FileDevice>, String> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| format!("{name}: {e}"))?;
    let is_toml = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("toml"));
    let devices = if is_toml {
        parse_toml(&text, &name)?
    } else {
        parse_csv(&text, &name)?
    };
    if devices.is_empty() {
        return Err(format!("{name}: no devices in the file"));
    }
    let mut seen = HashSet::new();
    for d in &devices {
        if !seen.insert(d.device_id.as_str()) {
            return Err(format!("{name}: device {} appears twice", d.device_id));
        }
    }
    Ok(devices)
}

fn device(
    where_: &str,
    id: &str,
    key_id: &str,
    secret_hex: &str,
    zmk_hex: &str,
) -> Result<FileDevice, String> {
    let id = id.trim();
    if !is_valid_device_id(id) {
        return Err(format!(
            "{where_}: device_id {id:?} is not \"POS-\" and 8 uppercase hex digits"
        ));
    }
    let key_id = key_id.trim();
    if key_id.is_empty() || HeaderValue::from_str(key_id).is_err() {
        return Err(format!(
            "{where_}: identity_key_id {key_id:?} must be non-empty visible ASCII"
        ));
    }
    // the values are secrets: say what is wrong, never echo them
    let secret = key_from_hex(secret_hex.trim())
        .map_err(|e| format!("{where_}: identity_secret_hex is not 64 hex digits ({e})"))?;
    let zmk = key_from_hex(zmk_hex.trim())
        .map_err(|e| format!("{where_}: zmk_hex is not 64 hex digits ({e})"))?;
    Ok(FileDevice {
        device_id: id.to_string(),
        key_id: key_id.to_string(),
        identity_secret: secret,
        zmk,
    })
}

fn parse_toml(text: &str, name: &str) -> Result<Vec<FileDevice>, String> {
    let file: TomlFile = toml::from_str(text).map_err(|e| format!("{name}: {e}"))?;
    file.device
        .iter()
        .enumerate()
        .map(|(i, d)| {
            device(
                &format!("{name}: [[device]] #{}", i + 1),
                &d.device_id,
                &d.identity_key_id,
                &d.identity_secret_hex,
                &d.zmk_hex,
            )
        })
        .collect()
}

fn parse_csv(text: &str, name: &str) -> Result<Vec<FileDevice>, String> {
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'));
    let Some((hl, header)) = lines.next() else {
        return Ok(Vec::new());
    };
    let cols: Vec<&str> = header.split(',').map(str::trim).collect();
    if cols != CSV_COLUMNS {
        return Err(format!(
            "{name}:{hl}: the header must be {:?}, found {header:?}",
            CSV_COLUMNS.join(",")
        ));
    }
    lines
        .map(|(ln, line)| {
            let f: Vec<&str> = line.split(',').collect();
            let at = format!("{name}:{ln}");
            if f.len() != CSV_COLUMNS.len() {
                return Err(format!(
                    "{at}: expected {} comma-separated fields, found {}",
                    CSV_COLUMNS.len(),
                    f.len()
                ));
            }
            device(&at, f[0], f[1], f[2], f[3])
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn csv_and_toml_files_load_with_precise_errors() {
        let dir = tempfile::tempdir().unwrap();
        let k = "ab".repeat(32);
        let csv = write(
            dir.path(),
            "d.csv",
            &format!(
                "# fleet\n{}\nPOS-00000001,k1,{k},{k}\n\nPOS-00000002,k1,{k},{k}\n",
                CSV_COLUMNS.join(",")
            ),
        );
        let d = load_devices_file(&csv).unwrap();
        assert_eq!(d.len(), 2);
        assert_eq!(d[1].device_id, "POS-00000002");
        assert!(!format!("{d:?}").contains(&k));

        let toml = write(
            dir.path(),
            "d.toml",
            &format!("[[device]]\ndevice_id = \"POS-0000000A\"\nidentity_key_id = \"k\"\nidentity_secret_hex = \"{k}\"\nzmk_hex = \"{k}\"\n"),
        );
        assert_eq!(
            load_devices_file(&toml).unwrap()[0].device_id,
            "POS-0000000A"
        );

        let bad = write(
            dir.path(),
            "bad.csv",
            &format!(
                "{}\nPOS-00000001,k1,{k},{k}\nPOS-00000002,k1,zz{k},{k}\n",
                CSV_COLUMNS.join(",")
            ),
        );
        let e = load_devices_file(&bad).unwrap_err();
        assert!(e.contains("bad.csv:3: identity_secret_hex"), "{e}");
        assert!(!e.contains(&k), "secrets are not echoed: {e}");

        let hdr = write(dir.path(), "h.csv", "id,secret\n");
        assert!(load_devices_file(&hdr)
            .unwrap_err()
            .contains("h.csv:1: the header"));
        let dup = write(
            dir.path(),
            "dup.csv",
            &format!(
                "{}\nPOS-00000001,k,{k},{k}\nPOS-00000001,k,{k},{k}\n",
                CSV_COLUMNS.join(",")
            ),
        );
        assert!(load_devices_file(&dup)
            .unwrap_err()
            .contains("appears twice"));
        let badid = write(
            dir.path(),
            "id.toml",
            &format!("[[device]]\ndevice_id = \"pos-1\"\nidentity_key_id = \"k\"\nidentity_secret_hex = \"{k}\"\nzmk_hex = \"{k}\"\n"),
        );
        assert!(load_devices_file(&badid)
            .unwrap_err()
            .contains("#1: device_id"));
        assert!(load_devices_file(&dir.path().join("missing.csv")).is_err());
    }

    #[test]
    fn derived_identities_follow_the_spec() {
        let src = DeviceSource::Derived {
            seed: Secret("posemu-demo".into()),
            prefix: "F0".into(),
            first: 1,
        };
        assert_eq!(src.device_id(0), "POS-F0000001");
        let ua = HeaderValue::from_static("Viopay-POS/1.4.2 (Android 12; PAX-A920)");
        let (id, zmk) = src.identity(0, &SharedHeaders::fleet(ua)).unwrap();
        assert_eq!(id.device_id(), "POS-F0000001");
        assert_eq!(
            hex::encode_upper(zmk),
            "9ED6325064ECA0F2F6B4DE9546F919933FF21720CC98C5C83FA177BD3B2DD48E"
        );
        assert!(!format!("{src:?}").contains("posemu-demo"));
    }
}
