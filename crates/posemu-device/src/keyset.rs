//! Installing a key set (spec 4.7): unwrap top-down ZMK → TMK → KEK → MSK/TPK/TDK/MAC, check
//! each block's header and each KCV, and refuse the whole set on the first problem.

use base64::Engine;

use super::progress::SavedKeySet;
use posemu_protocol::api::Secret;
use posemu_protocol::crypto::{kcv, key_from_slice, Key};
use posemu_protocol::tr31::{self, Header};
use posemu_protocol::wire::{KeysResponse, WrappedKey};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeySetError {
    #[error("{key}: key_block is not base64")]
    NotBase64 { key: &'static str },
    #[error("{key}: {source}")]
    Block {
        key: &'static str,
        source: tr31::Tr31Error,
    },
    #[error("{key}: TR-31 header is {found}, expected {expected}")]
    Header {
        key: &'static str,
        found: String,
        expected: String,
    },
    #[error("{key}: unwrapped key is {0} bytes, expected 32", .len)]
    Length { key: &'static str, len: usize },
    #[error("{key}: KCV is {computed} but the server said {claimed}")]
    Kcv {
        key: &'static str,
        computed: String,
        claimed: String,
    },
}

/// The installed keys; key bytes never show in `Debug`.
#[derive(Debug, Clone)]
pub struct InstalledKeys {
    pub key_set_id: String,
    pub expires_at: String,
    pub msk: Secret<Key>,
    pub tpk: Secret<Key>,
    pub tdk: Secret<Key>,
    pub mac: Secret<Key>,
    /// The `key_id` of the `mac` entry: the `X-Key-Id` of payment requests (spec 7.2).
    pub mac_key_id: String,
    /// `(name, kcv)` top-down.
    pub kcvs: Vec<(String, String)>,
}

impl InstalledKeys {
    pub fn summary(&self) -> SavedKeySet {
        SavedKeySet {
            key_set_id: self.key_set_id.clone(),
            expires_at: self.expires_at.clone(),
            kcvs: self.kcvs.clone(),
        }
    }
}

fn describe(h: &Header) -> String {
    format!(
        "{} {} {}",
        h.usage_str(),
        h.algorithm as char,
        h.mode as char
    )
}

fn install(
    name: &'static str,
    kbpk: &Key,
    w: &WrappedKey,
    expected: Header,
    kcvs: &mut Vec<(String, String)>,
) -> Result<Key, KeySetError> {
    let text = base64::engine::general_purpose::STANDARD
        .decode(w.key_block.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or(KeySetError::NotBase64 { key: name })?;
    let (header, bytes) =
        tr31::unwrap(kbpk, &text).map_err(|source| KeySetError::Block { key: name, source })?;
    if (header.usage, header.algorithm, header.mode)
        != (expected.usage, expected.algorithm, expected.mode)
    {
        return Err(KeySetError::Header {
            key: name,
            found: describe(&header),
            expected: describe(&expected),
        });
    }
    let key = *key_from_slice(&bytes).map_err(|_| KeySetError::Length {
        key: name,
        len: bytes.len(),
    })?;
    let computed = kcv(&key);
    if !computed.eq_ignore_ascii_case(w.kcv.trim()) {
        return Err(KeySetError::Kcv {
            key: name,
            computed,
            claimed: w.kcv.clone(),
        });
    }
    kcvs.push((name.to_string(), computed));
    Ok(key)
}

/// Unwraps and checks the whole set under the device's ZMK.
pub fn unwrap_key_set(zmk: &Key, r: &KeysResponse) -> Result<InstalledKeys, KeySetError> {
    let k = &r.keys;
    let mut kcvs = Vec::with_capacity(6);
    let tmk = install("tmk", zmk, &k.tmk, Header::KEY_ENCRYPTION, &mut kcvs)?;
    let kek = install("kek", &tmk, &k.kek, Header::KEY_ENCRYPTION, &mut kcvs)?;
    let msk = install("msk", &kek, &k.msk, Header::DATA_ENCRYPTION, &mut kcvs)?;
    let tpk = install("tpk", &kek, &k.tpk, Header::PIN_ENCRYPTION, &mut kcvs)?;
    let tdk = install("tdk", &kek, &k.tdk, Header::DATA_ENCRYPTION, &mut kcvs)?;
    let mac = install("mac", &kek, &k.mac, Header::MAC, &mut kcvs)?;
    Ok(InstalledKeys {
        key_set_id: posemu_protocol::text::escape_control(&r.key_set.key_set_id).into_owned(),
        expires_at: posemu_protocol::text::escape_control(&r.key_set.expires_at).into_owned(),
        msk: Secret(msk),
        tpk: Secret(tpk),
        tdk: Secret(tdk),
        mac: Secret(mac),
        mac_key_id: k.mac.key_id.clone(),
        kcvs,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use posemu_protocol::wire::{KeySetInfo, Transport, WrappedKeys};
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn wrapped(kbpk: &Key, h: Header, key: &Key, rng: &mut StdRng) -> WrappedKey {
        let block = tr31::wrap(kbpk, h, key, rng);
        WrappedKey {
            key_id: "k".into(),
            key_block: base64::engine::general_purpose::STANDARD.encode(block),
            usage: "x".into(),
            wrapped_under: "x".into(),
            kcv: kcv(key),
        }
    }

    /// A valid key set under `zmk` whose MSK is `msk`.
    pub(crate) fn key_set(zmk: &Key, msk: &Key) -> KeysResponse {
        let mut rng = StdRng::seed_from_u64(7);
        let (tmk, kek) = ([1u8; 32], [2u8; 32]);
        KeysResponse {
            key_set: KeySetInfo {
                key_set_id: "ks-test".into(),
                issued_at: "2025-12-13T14:25:30Z".into(),
                expires_at: "2026-12-13T14:25:30Z".into(),
            },
            transport: Transport {
                format: "TR31".into(),
                version: "D".into(),
                encryption: "AES-256".into(),
                wrapped_under: "kek".into(),
            },
            keys: WrappedKeys {
                tmk: wrapped(zmk, Header::KEY_ENCRYPTION, &tmk, &mut rng),
                kek: wrapped(&tmk, Header::KEY_ENCRYPTION, &kek, &mut rng),
                msk: wrapped(&kek, Header::DATA_ENCRYPTION, msk, &mut rng),
                tpk: wrapped(&kek, Header::PIN_ENCRYPTION, &[4; 32], &mut rng),
                tdk: wrapped(&kek, Header::DATA_ENCRYPTION, &[5; 32], &mut rng),
                mac: wrapped(&kek, Header::MAC, &[6; 32], &mut rng),
            },
        }
    }

    #[test]
    fn installs_a_valid_set_top_down() {
        let zmk = [9u8; 32];
        let keys = unwrap_key_set(&zmk, &key_set(&zmk, &[3; 32])).unwrap();
        assert_eq!(keys.msk.expose(), &[3u8; 32]);
        let names: Vec<&str> = keys.kcvs.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["tmk", "kek", "msk", "tpk", "tdk", "mac"]);
        assert!(!format!("{keys:?}").contains("3, 3"), "key bytes in Debug");
    }

    #[test]
    fn refuses_a_wrong_kcv_naming_the_key() {
        let zmk = [9u8; 32];
        let mut set = key_set(&zmk, &[3; 32]);
        set.keys.tdk.kcv = "000000".into();
        let err = unwrap_key_set(&zmk, &set).unwrap_err();
        assert!(matches!(err, KeySetError::Kcv { key: "tdk", .. }), "{err}");
        assert!(err.to_string().starts_with("tdk: KCV is"));
    }

    #[test]
    fn refuses_a_wrong_zmk_tampered_block_and_swapped_usage() {
        let zmk = [9u8; 32];
        let set = key_set(&zmk, &[3; 32]);
        let err = unwrap_key_set(&[8; 32], &set).unwrap_err();
        assert!(
            matches!(err, KeySetError::Block { key: "tmk", .. }),
            "{err}"
        );

        let mut bad = set.clone();
        bad.keys.msk.key_block = "!!!".into();
        assert_eq!(
            unwrap_key_set(&zmk, &bad).unwrap_err(),
            KeySetError::NotBase64 { key: "msk" }
        );

        let mut swapped = set.clone();
        swapped.keys.tpk = set.keys.tdk.clone();
        let err = unwrap_key_set(&zmk, &swapped).unwrap_err();
        assert!(
            matches!(err, KeySetError::Header { key: "tpk", .. }),
            "{err}"
        );
    }
}
