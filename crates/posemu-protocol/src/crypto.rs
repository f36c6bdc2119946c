//! Primitives shared by the protocol pieces: HMAC-SHA256, AES-256-CBC, AES-CMAC and the KCV.

use aes::Aes256;
use cbc::cipher::block_padding::{NoPadding, Pkcs7};
use cbc::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use cmac::Cmac;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Every key posemu handles is AES-256 (spec 4.7).
pub const KEY_LEN: usize = 32;
pub const BLOCK: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("key must be {KEY_LEN} bytes (AES-256), got {0}")]
    KeyLength(usize),
    #[error("initialization vector must be 16 bytes, got {0}")]
    IvLength(usize),
    #[error("ciphertext length {0} is not a positive multiple of 16")]
    CiphertextLength(usize),
    #[error("bad padding (wrong key or corrupted ciphertext)")]
    Padding,
}

pub type Key = [u8; KEY_LEN];

pub fn key_from_slice(key: &[u8]) -> Result<&Key, CryptoError> {
    key.try_into()
        .map_err(|_| CryptoError::KeyLength(key.len()))
}

fn iv_from_slice(iv: &[u8]) -> Result<&[u8; BLOCK], CryptoError> {
    iv.try_into().map_err(|_| CryptoError::IvLength(iv.len()))
}

pub fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(msg);
    mac.finalize().into_bytes().into()
}

/// Constant-time check of an HMAC-SHA256 tag.
pub fn hmac_sha256_verify(key: &[u8], msg: &[u8], tag: &[u8]) -> bool {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(msg);
    mac.verify_slice(tag).is_ok()
}

pub fn aes_cmac(key: &Key, msg: &[u8]) -> [u8; BLOCK] {
    let mut mac = <Cmac<Aes256> as Mac>::new_from_slice(key).expect("32-byte key");
    mac.update(msg);
    mac.finalize().into_bytes().into()
}

/// [POSEMU] key check value: AES-CMAC of 16 zero bytes, first 3 bytes, 6 uppercase hex.
pub fn kcv(key: &Key) -> String {
    hex::encode_upper(&aes_cmac(key, &[0u8; BLOCK])[..3])
}

/// AES-256-CBC with PKCS#7 padding.
pub fn cbc_encrypt_pkcs7(key: &Key, iv: &[u8; BLOCK], plaintext: &[u8]) -> Vec<u8> {
    cbc::Encryptor::<Aes256>::new(key.into(), iv.into()).encrypt_padded_vec_mut::<Pkcs7>(plaintext)
}

pub fn cbc_decrypt_pkcs7(key: &Key, iv: &[u8], ciphertext: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let iv = iv_from_slice(iv)?;
    if ciphertext.is_empty() || !ciphertext.len().is_multiple_of(BLOCK) {
        return Err(CryptoError::CiphertextLength(ciphertext.len()));
    }
    cbc::Decryptor::<Aes256>::new(key.into(), iv.into())
        .decrypt_padded_vec_mut::<Pkcs7>(ciphertext)
        .map_err(|_| CryptoError::Padding)
}

/// AES-256-CBC over whole blocks, no padding (TR-31 key data).
pub fn cbc_encrypt_raw(key: &Key, iv: &[u8; BLOCK], data: &[u8]) -> Result<Vec<u8>, CryptoError> {
    if data.is_empty() || !data.len().is_multiple_of(BLOCK) {
        return Err(CryptoError::CiphertextLength(data.len()));
    }
    Ok(cbc::Encryptor::<Aes256>::new(key.into(), iv.into())
        .encrypt_padded_vec_mut::<NoPadding>(data))
}

pub fn cbc_decrypt_raw(key: &Key, iv: &[u8; BLOCK], data: &[u8]) -> Result<Vec<u8>, CryptoError> {
    if data.is_empty() || !data.len().is_multiple_of(BLOCK) {
        return Err(CryptoError::CiphertextLength(data.len()));
    }
    cbc::Decryptor::<Aes256>::new(key.into(), iv.into())
        .decrypt_padded_vec_mut::<NoPadding>(data)
        .map_err(|_| CryptoError::Padding)
}

/// Parses 64 hex characters (either case, surrounding blanks ignored) into a key. The error
/// says what is wrong without echoing the secret.
pub fn key_from_hex(s: &str) -> Result<Key, String> {
    let s = s.trim();
    if let Some((i, c)) = s.chars().enumerate().find(|(_, c)| !c.is_ascii_hexdigit()) {
        return Err(format!(
            "has {c:?} at position {}, expected 64 hex characters (32 bytes)",
            i + 1
        ));
    }
    let bytes = hex::decode(s).ok().filter(|b| b.len() == KEY_LEN);
    bytes.and_then(|b| b.try_into().ok()).ok_or_else(|| {
        format!(
            "is {} hex characters, expected 64 (32 bytes)",
            s.chars().count()
        )
    })
}

/// SHA-256 as lowercase hex.
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(Sha256::digest(data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kcv_vectors_from_the_spec() {
        assert_eq!(kcv(&[0x11; 32]), "FE1B05");
        let msk: Key = core::array::from_fn(|i| i as u8);
        assert_eq!(kcv(&msk), "377822");
    }

    #[test]
    fn cbc_pkcs7_round_trip_and_bad_inputs() {
        let key = [7u8; 32];
        let iv = [1u8; 16];
        let ct = cbc_encrypt_pkcs7(&key, &iv, b"hello");
        assert_eq!(cbc_decrypt_pkcs7(&key, &iv, &ct).unwrap(), b"hello");
        assert_eq!(
            cbc_decrypt_pkcs7(&key, &iv[..3], &ct),
            Err(CryptoError::IvLength(3))
        );
        assert_eq!(
            cbc_decrypt_pkcs7(&key, &iv, &ct[..5]),
            Err(CryptoError::CiphertextLength(5))
        );
        assert_eq!(
            cbc_decrypt_pkcs7(&[8u8; 32], &iv, &ct),
            Err(CryptoError::Padding)
        );
    }

    #[test]
    fn key_from_hex_reports_what_is_wrong() {
        assert!(key_from_hex(&"ab".repeat(32)).is_ok());
        assert_eq!(
            key_from_hex(&format!(" {} ", "AB".repeat(32))),
            Ok([0xAB; 32])
        );
        assert_eq!(
            key_from_hex("a z").unwrap_err(),
            "has ' ' at position 2, expected 64 hex characters (32 bytes)"
        );
        assert_eq!(
            key_from_hex("abcd").unwrap_err(),
            "is 4 hex characters, expected 64 (32 bytes)"
        );
        assert_eq!(
            key_from_hex(&"a".repeat(63)).unwrap_err(),
            "is 63 hex characters, expected 64 (32 bytes)"
        );
    }
}
