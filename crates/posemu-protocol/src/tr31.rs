//! TR-31 key blocks, version `D` (ANSI X9.143 AES key block binding), spec 4.7.
//!
//! Layout: 16-character header, then the encrypted key data in hex, then the 16-byte MAC in hex.
//! Key data = 2-byte key length in bits ‖ key ‖ random padding to a whole AES block.
//! The encryption and MAC keys are derived from the KBPK with AES-CMAC (NIST SP 800-108
//! counter mode); the MAC is AES-CMAC over header ‖ clear key data and is the CBC IV.

use std::fmt;

use rand::RngCore;
use subtle::ConstantTimeEq;

use super::crypto::{aes_cmac, cbc_decrypt_raw, cbc_encrypt_raw, Key, BLOCK, KEY_LEN};

const HEADER_LEN: usize = 16;
const MAC_HEX_LEN: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Tr31Error {
    #[error("key block is {0} characters, shorter than a header and a MAC")]
    TooShort(usize),
    #[error("key block version is {0:?}, only version \"D\" (AES key block binding) is supported")]
    Version(char),
    #[error("key block length field {field:?} does not match the block's {actual} characters")]
    Length { field: String, actual: usize },
    #[error("key block header field {field} is {value:?}: {expected}")]
    HeaderField {
        field: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("key block has {0} optional blocks; posemu supports none")]
    OptionalBlocks(u32),
    #[error("key block body is not hex: {0}")]
    NotHex(String),
    #[error("encrypted key data is {0} bytes, not a positive multiple of 16")]
    DataLength(usize),
    #[error("key block MAC does not verify (wrong wrapping key, or the block was altered)")]
    Mac,
    #[error(
        "key length field says {bits} bits, which does not fit the {available} bytes of key data"
    )]
    KeyLength { bits: u16, available: usize },
    #[error("key block has non-ASCII characters")]
    NotAscii,
}

/// The header fields posemu uses (no optional blocks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Key usage, e.g. `K0`, `D0`, `P0`, `M7`.
    pub usage: [u8; 2],
    /// Algorithm: `A` (AES) or `H` (HMAC).
    pub algorithm: u8,
    /// Mode of use: `B`, `E`, `C`, …
    pub mode: u8,
    pub key_version: [u8; 2],
    pub exportability: u8,
}

impl Header {
    pub const fn new(usage: &[u8; 2], algorithm: u8, mode: u8) -> Self {
        Header {
            usage: *usage,
            algorithm,
            mode,
            key_version: *b"00",
            exportability: b'E',
        }
    }
    /// [POSEMU] TMK and KEK: `K0 A B`.
    pub const KEY_ENCRYPTION: Header = Header::new(b"K0", b'A', b'B');
    /// [POSEMU] MSK and TDK: `D0 A B`.
    pub const DATA_ENCRYPTION: Header = Header::new(b"D0", b'A', b'B');
    /// [POSEMU] TPK: `P0 A E`.
    pub const PIN_ENCRYPTION: Header = Header::new(b"P0", b'A', b'E');
    /// [POSEMU] MAC key: `M7 H C`.
    pub const MAC: Header = Header::new(b"M7", b'H', b'C');

    pub fn usage_str(&self) -> String {
        String::from_utf8_lossy(&self.usage).into_owned()
    }

    fn render(&self, total_len: usize) -> String {
        format!(
            "D{total_len:04}{}{}{}{}{}0000",
            self.usage_str(),
            self.algorithm as char,
            self.mode as char,
            String::from_utf8_lossy(&self.key_version),
            self.exportability as char,
        )
    }

    fn parse(h: &str, actual_len: usize) -> Result<Header, Tr31Error> {
        let b = h.as_bytes();
        if b[0] != b'D' {
            return Err(Tr31Error::Version(b[0] as char));
        }
        let field = &h[1..5];
        if field.parse::<usize>().ok() != Some(actual_len) {
            return Err(Tr31Error::Length {
                field: field.to_string(),
                actual: actual_len,
            });
        }
        let check = |ok: bool, name: &'static str, value: &str, expected: &'static str| {
            if ok {
                Ok(())
            } else {
                Err(Tr31Error::HeaderField {
                    field: name,
                    value: value.to_string(),
                    expected,
                })
            }
        };
        let usage = &h[5..7];
        check(
            usage.bytes().all(|c| c.is_ascii_alphanumeric()),
            "key usage",
            usage,
            "two letters or digits",
        )?;
        check(
            b[7].is_ascii_uppercase(),
            "algorithm",
            &h[7..8],
            "an uppercase letter",
        )?;
        check(
            b[8].is_ascii_uppercase(),
            "mode of use",
            &h[8..9],
            "an uppercase letter",
        )?;
        check(
            b[9..11].iter().all(u8::is_ascii_alphanumeric),
            "key version",
            &h[9..11],
            "two letters or digits",
        )?;
        check(
            matches!(b[11], b'E' | b'N' | b'S'),
            "exportability",
            &h[11..12],
            "E, N or S",
        )?;
        let opt = &h[12..14];
        match opt.parse::<u32>() {
            Ok(0) => {}
            Ok(n) => return Err(Tr31Error::OptionalBlocks(n)),
            Err(_) => check(false, "optional block count", opt, "two digits")?,
        }
        check(&h[14..16] == "00", "reserved", &h[14..16], "\"00\"")?;
        Ok(Header {
            usage: [b[5], b[6]],
            algorithm: b[7],
            mode: b[8],
            key_version: [b[9], b[10]],
            exportability: b[11],
        })
    }
}

impl fmt::Display for Header {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {}",
            self.usage_str(),
            self.algorithm as char,
            self.mode as char
        )
    }
}

/// Derivation data of X9.143 for an AES-256 KBPK: counter ‖ usage ‖ 00 ‖ algorithm ‖ length.
fn derive(kbpk: &Key, usage: u16) -> Key {
    let mut out = [0u8; KEY_LEN];
    for (i, half) in out.chunks_mut(BLOCK).enumerate() {
        let counter = i as u8 + 1;
        let [u0, u1] = usage.to_be_bytes();
        // algorithm 0004 = AES-256, length 0100 = 256 bits
        let data = [counter, u0, u1, 0x00, 0x00, 0x04, 0x01, 0x00];
        half.copy_from_slice(&aes_cmac(kbpk, &data));
    }
    out
}

fn keys(kbpk: &Key) -> (Key, Key) {
    (derive(kbpk, 0x0000), derive(kbpk, 0x0001))
}

/// Wraps `key` under `kbpk` into a version-D key block (padding drawn from `rng`).
pub fn wrap(kbpk: &Key, header: Header, key: &[u8], rng: &mut (impl RngCore + ?Sized)) -> String {
    let (kbek, kbmk) = keys(kbpk);
    let clear_len = (2 + key.len()).div_ceil(BLOCK) * BLOCK;
    let mut clear = Vec::with_capacity(clear_len);
    clear.extend_from_slice(&((key.len() * 8) as u16).to_be_bytes());
    clear.extend_from_slice(key);
    let mut pad = vec![0u8; clear_len - clear.len()];
    rng.fill_bytes(&mut pad);
    clear.extend_from_slice(&pad);

    let total = HEADER_LEN + clear_len * 2 + MAC_HEX_LEN;
    let head = header.render(total);
    let mut mac_input = head.as_bytes().to_vec();
    mac_input.extend_from_slice(&clear);
    let mac = aes_cmac(&kbmk, &mac_input);
    let enc = cbc_encrypt_raw(&kbek, &mac, &clear).expect("whole blocks");
    format!("{head}{}{}", hex::encode_upper(enc), hex::encode_upper(mac))
}

/// Unwraps a version-D key block: checks the header, verifies the MAC, returns header and key.
pub fn unwrap(kbpk: &Key, block: &str) -> Result<(Header, Vec<u8>), Tr31Error> {
    if !block.is_ascii() {
        return Err(Tr31Error::NotAscii);
    }
    if block.len() < HEADER_LEN + MAC_HEX_LEN + 2 * BLOCK {
        return Err(Tr31Error::TooShort(block.len()));
    }
    let header = Header::parse(&block[..HEADER_LEN], block.len())?;
    let body = &block[HEADER_LEN..block.len() - MAC_HEX_LEN];
    let enc = hex::decode(body).map_err(|e| Tr31Error::NotHex(e.to_string()))?;
    let mac: [u8; BLOCK] = hex::decode(&block[block.len() - MAC_HEX_LEN..])
        .map_err(|e| Tr31Error::NotHex(e.to_string()))?
        .try_into()
        .map_err(|_| Tr31Error::Mac)?;
    if enc.is_empty() || !enc.len().is_multiple_of(BLOCK) {
        return Err(Tr31Error::DataLength(enc.len()));
    }
    let (kbek, kbmk) = keys(kbpk);
    let clear = cbc_decrypt_raw(&kbek, &mac, &enc).map_err(|_| Tr31Error::DataLength(enc.len()))?;
    let mut mac_input = block.as_bytes()[..HEADER_LEN].to_vec();
    mac_input.extend_from_slice(&clear);
    if !bool::from(aes_cmac(&kbmk, &mac_input).ct_eq(&mac)) {
        return Err(Tr31Error::Mac);
    }
    let bits = u16::from_be_bytes([clear[0], clear[1]]);
    let len = bits as usize / 8;
    if !bits.is_multiple_of(8) || len == 0 || 2 + len > clear.len() {
        return Err(Tr31Error::KeyLength {
            bits,
            available: clear.len() - 2,
        });
    }
    Ok((header, clear[2..2 + len].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::kcv;
    use rand::{rngs::StdRng, SeedableRng};

    const KBPK: &str = "00112233445566778899AABBCCDDEEFF00112233445566778899AABBCCDDEEFF";
    const BLOCK_VECTOR: &str = "D0144K0AB00E00007B9A06E8D4FC33FCC23A8A5568E5A6CF26B3894263D93083AB1985BFD73B16DA66F005D9550BFB478D531CED472224E727D92FDB42CB8DA3BDE23AF81EF64F47";

    fn kbpk() -> Key {
        crate::crypto::key_from_hex(KBPK).unwrap()
    }

    #[test]
    fn spec_unwrap_vector() {
        let (header, key) = unwrap(&kbpk(), BLOCK_VECTOR).unwrap();
        assert_eq!(header, Header::KEY_ENCRYPTION);
        assert_eq!(key, vec![0x11; 32]);
        assert_eq!(kcv(&key.try_into().unwrap()), "FE1B05");
    }

    #[test]
    fn wrap_round_trips_every_header_and_is_144_chars() {
        let mut rng = StdRng::seed_from_u64(7);
        for h in [
            Header::KEY_ENCRYPTION,
            Header::DATA_ENCRYPTION,
            Header::PIN_ENCRYPTION,
            Header::MAC,
        ] {
            let key = [0x5Au8; 32];
            let block = wrap(&kbpk(), h, &key, &mut rng);
            assert_eq!(block.len(), 144);
            assert_eq!(unwrap(&kbpk(), &block).unwrap(), (h, key.to_vec()));
        }
    }

    #[test]
    fn every_flipped_character_is_rejected_without_panicking() {
        for i in 0..BLOCK_VECTOR.len() {
            let mut b = BLOCK_VECTOR.as_bytes().to_vec();
            b[i] = if b[i] == b'0' { b'1' } else { b'0' };
            let s = String::from_utf8(b).unwrap();
            assert!(unwrap(&kbpk(), &s).is_err(), "flip at {i} accepted");
        }
    }

    #[test]
    fn wrong_kbpk_and_malformed_blocks_give_clear_errors() {
        assert_eq!(unwrap(&[0u8; 32], BLOCK_VECTOR), Err(Tr31Error::Mac));
        assert_eq!(unwrap(&kbpk(), "D0016"), Err(Tr31Error::TooShort(5)));
        let b = BLOCK_VECTOR.replacen('D', "B", 1);
        assert_eq!(unwrap(&kbpk(), &b), Err(Tr31Error::Version('B')));
        let short = &BLOCK_VECTOR[..BLOCK_VECTOR.len() - 2];
        assert!(matches!(
            unwrap(&kbpk(), short),
            Err(Tr31Error::Length { .. })
        ));
        let e = unwrap(&kbpk(), &BLOCK_VECTOR.replacen("7B9A", "ZZZZ", 1)).unwrap_err();
        assert!(e.to_string().contains("not hex"), "{e}");
        assert_eq!(
            unwrap(&kbpk(), "é".repeat(80).as_str()),
            Err(Tr31Error::NotAscii)
        );
    }
}
