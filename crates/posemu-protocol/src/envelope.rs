//! MSK envelopes `TR31-DATA` and `TR31-DATA-CHUNKED` (spec 4.8).

use std::io::{Read, Write};

use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;
use rand::RngCore;
use serde::{Deserialize, Serialize};

use super::crypto::{cbc_decrypt_pkcs7, cbc_encrypt_pkcs7, kcv, Key, BLOCK};
use super::rules::ENVELOPE_CHUNK_BYTES;

pub const FORMAT_SINGLE: &str = "TR31-DATA";
pub const FORMAT_CHUNKED: &str = "TR31-DATA-CHUNKED";
pub const MODE_CBC: &str = "CBC";
pub const GZIP: &str = "gzip";
/// Decompressed payloads above this are refused (a gzip bomb guard).
pub const MAX_PLAINTEXT_BYTES: u64 = 16 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("envelope is not valid JSON of the documented shape: {0}")]
    Shape(String),
    #[error("unknown envelope format {0:?} (expected \"TR31-DATA\" or \"TR31-DATA-CHUNKED\")")]
    Format(String),
    #[error("unsupported mode {0:?} (expected \"CBC\")")]
    Mode(String),
    #[error("unsupported content_encoding {0:?} (expected \"gzip\")")]
    ContentEncoding(String),
    #[error("{field} is not hex: {reason}")]
    Hex { field: String, reason: String },
    #[error("{field}: {reason}")]
    Decrypt { field: String, reason: String },
    #[error("key_kcv {got} does not match the MSK's KCV {expected}")]
    Kcv { got: String, expected: String },
    #[error("chunked envelope has no chunks")]
    NoChunks,
    #[error("gzip payload is corrupt: {0}")]
    Gzip(String),
    #[error("payload is larger than {MAX_PLAINTEXT_BYTES} bytes once decompressed")]
    TooLarge,
}

/// A single block, `TR31-DATA`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataEnvelope {
    pub format: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_encoding: Option<String>,
    pub ciphertext: String,
    pub initialization_vector: String,
    pub mode: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_kcv: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Chunk {
    pub ciphertext: String,
    pub initialization_vector: String,
    pub mode: String,
}

/// `TR31-DATA-CHUNKED`: gzip bytes cut into parts, each encrypted on its own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkedEnvelope {
    pub format: String,
    pub content_encoding: String,
    pub mode: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_kcv: Option<String>,
    pub chunks: Vec<Chunk>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Envelope {
    Single(DataEnvelope),
    Chunked(ChunkedEnvelope),
}

impl Envelope {
    /// Parses either format, dispatching on `format`.
    pub fn from_json(bytes: &[u8]) -> Result<Envelope, EnvelopeError> {
        let v: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| EnvelopeError::Shape(e.to_string()))?;
        Self::from_value(v)
    }

    pub fn from_value(v: serde_json::Value) -> Result<Envelope, EnvelopeError> {
        let format = v
            .get("format")
            .and_then(|f| f.as_str())
            .ok_or_else(|| EnvelopeError::Shape("missing string field `format`".into()))?
            .to_string();
        let shape = |e: serde_json::Error| EnvelopeError::Shape(e.to_string());
        match format.as_str() {
            FORMAT_SINGLE => Ok(Envelope::Single(serde_json::from_value(v).map_err(shape)?)),
            FORMAT_CHUNKED => Ok(Envelope::Chunked(serde_json::from_value(v).map_err(shape)?)),
            _ => Err(EnvelopeError::Format(format)),
        }
    }

    pub fn key_kcv(&self) -> Option<&str> {
        match self {
            Envelope::Single(e) => e.key_kcv.as_deref(),
            Envelope::Chunked(e) => e.key_kcv.as_deref(),
        }
    }
}

fn encrypt_part(msk: &Key, part: &[u8], rng: &mut (impl RngCore + ?Sized)) -> (String, String) {
    let mut iv = [0u8; BLOCK];
    rng.fill_bytes(&mut iv);
    seal_with_iv(msk, part, &iv)
}

fn seal_with_iv(msk: &Key, part: &[u8], iv: &[u8; BLOCK]) -> (String, String) {
    (
        hex::encode_upper(cbc_encrypt_pkcs7(msk, iv, part)),
        hex::encode_upper(iv),
    )
}

/// A plain (not compressed) `TR31-DATA` envelope with the given IV.
pub fn seal_single_with_iv(msk: &Key, plaintext: &[u8], iv: &[u8; BLOCK]) -> DataEnvelope {
    let (ciphertext, initialization_vector) = seal_with_iv(msk, plaintext, iv);
    DataEnvelope {
        format: FORMAT_SINGLE.into(),
        content_encoding: None,
        ciphertext,
        initialization_vector,
        mode: MODE_CBC.into(),
        key_kcv: Some(kcv(msk)),
    }
}

/// A plain `TR31-DATA` envelope with a fresh random IV.
pub fn seal_single(msk: &Key, plaintext: &[u8], rng: &mut (impl RngCore + ?Sized)) -> DataEnvelope {
    let mut iv = [0u8; BLOCK];
    rng.fill_bytes(&mut iv);
    seal_single_with_iv(msk, plaintext, &iv)
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::default());
    enc.write_all(data).expect("writing to a Vec");
    enc.finish().expect("writing to a Vec")
}

/// The end of many gzip members, compressed once: its raw DEFLATE blocks, CRC and length.
///
/// [`gzip_with_tail`] puts a short per-request prefix in front of it without compressing the
/// tail again: the prefix is deflated and sync-flushed (byte-aligned, no final block), then the
/// tail's own blocks follow. Its back-references stay within itself, so the spliced stream is
/// an ordinary gzip member of `prefix ++ tail`, which any decoder reads.
pub struct GzipTail {
    deflate: Vec<u8>,
    crc: flate2::Crc,
}

impl GzipTail {
    pub fn new(tail: &[u8]) -> GzipTail {
        let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), Compression::default());
        enc.write_all(tail).expect("writing to a Vec");
        let mut crc = flate2::Crc::new();
        crc.update(tail);
        GzipTail {
            deflate: enc.finish().expect("writing to a Vec"),
            crc,
        }
    }
}

/// One gzip member of `prefix ++ tail`, compressing only `prefix` (see [`GzipTail`]).
pub fn gzip_with_tail(prefix: &[u8], tail: &GzipTail) -> Vec<u8> {
    // header: magic, deflate, no flags, mtime 0, no extra flags, OS unknown (as GzEncoder)
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    let mut head = flate2::write::DeflateEncoder::new(Vec::new(), Compression::default());
    head.write_all(prefix).expect("writing to a Vec");
    head.flush().expect("writing to a Vec"); // a sync flush: byte-aligned, not final
    out.extend_from_slice(head.get_ref());
    out.extend_from_slice(&tail.deflate);
    let mut crc = flate2::Crc::new();
    crc.update(prefix);
    crc.combine(&tail.crc);
    out.extend_from_slice(&crc.sum().to_le_bytes());
    out.extend_from_slice(&crc.amount().to_le_bytes());
    out
}

/// Gzips `plaintext` and seals it: one gzip `TR31-DATA` if it fits one part, else chunked.
pub fn seal_gzip(msk: &Key, plaintext: &[u8], rng: &mut (impl RngCore + ?Sized)) -> Envelope {
    seal_gzip_parts(msk, plaintext, ENVELOPE_CHUNK_BYTES, rng)
}

pub fn seal_gzip_parts(
    msk: &Key,
    plaintext: &[u8],
    part: usize,
    rng: &mut (impl RngCore + ?Sized),
) -> Envelope {
    seal_gzipped_parts(msk, &gzip(plaintext), part, rng)
}

/// Seals bytes that are gzipped already (e.g. by [`gzip_with_tail`]), as [`seal_gzip`] does.
pub fn seal_gzipped(msk: &Key, gz: &[u8], rng: &mut (impl RngCore + ?Sized)) -> Envelope {
    seal_gzipped_parts(msk, gz, ENVELOPE_CHUNK_BYTES, rng)
}

fn seal_gzipped_parts(
    msk: &Key,
    gz: &[u8],
    part: usize,
    rng: &mut (impl RngCore + ?Sized),
) -> Envelope {
    if gz.len() <= part {
        let (ciphertext, initialization_vector) = encrypt_part(msk, gz, rng);
        return Envelope::Single(DataEnvelope {
            format: FORMAT_SINGLE.into(),
            content_encoding: Some(GZIP.into()),
            ciphertext,
            initialization_vector,
            mode: MODE_CBC.into(),
            key_kcv: Some(kcv(msk)),
        });
    }
    let chunks = gz
        .chunks(part)
        .map(|p| {
            let (ciphertext, initialization_vector) = encrypt_part(msk, p, rng);
            Chunk {
                ciphertext,
                initialization_vector,
                mode: MODE_CBC.into(),
            }
        })
        .collect();
    Envelope::Chunked(ChunkedEnvelope {
        format: FORMAT_CHUNKED.into(),
        content_encoding: GZIP.into(),
        mode: MODE_CBC.into(),
        key_kcv: Some(kcv(msk)),
        chunks,
    })
}

fn check_mode(mode: &str) -> Result<(), EnvelopeError> {
    if mode == MODE_CBC {
        Ok(())
    } else {
        Err(EnvelopeError::Mode(mode.to_string()))
    }
}

fn decrypt_part(
    msk: &Key,
    name: &str,
    ciphertext: &str,
    iv: &str,
) -> Result<Vec<u8>, EnvelopeError> {
    let hexerr = |field: &str| {
        let field = format!("{name}{field}");
        move |e: hex::FromHexError| EnvelopeError::Hex {
            field,
            reason: e.to_string(),
        }
    };
    let ct = hex::decode(ciphertext).map_err(hexerr("ciphertext"))?;
    let iv = hex::decode(iv).map_err(hexerr("initialization_vector"))?;
    cbc_decrypt_pkcs7(msk, &iv, &ct).map_err(|e| EnvelopeError::Decrypt {
        field: format!("{name}ciphertext"),
        reason: e.to_string(),
    })
}

fn gunzip(gz: &[u8]) -> Result<Vec<u8>, EnvelopeError> {
    let mut out = Vec::new();
    GzDecoder::new(gz)
        .take(MAX_PLAINTEXT_BYTES + 1)
        .read_to_end(&mut out)
        .map_err(|e| EnvelopeError::Gzip(e.to_string()))?;
    if out.len() as u64 > MAX_PLAINTEXT_BYTES {
        return Err(EnvelopeError::TooLarge);
    }
    Ok(out)
}

fn decode_content(encoding: Option<&str>, data: Vec<u8>) -> Result<Vec<u8>, EnvelopeError> {
    match encoding {
        None => Ok(data),
        Some(GZIP) => gunzip(&data),
        Some(other) => Err(EnvelopeError::ContentEncoding(other.to_string())),
    }
}

/// Checks the KCV (if present), decrypts every part, joins them and gunzips if needed.
pub fn open(msk: &Key, env: &Envelope) -> Result<Vec<u8>, EnvelopeError> {
    if let Some(got) = env.key_kcv() {
        let expected = kcv(msk);
        if !got.eq_ignore_ascii_case(&expected) {
            return Err(EnvelopeError::Kcv {
                got: got.to_string(),
                expected,
            });
        }
    }
    match env {
        Envelope::Single(e) => {
            check_mode(&e.mode)?;
            let data = decrypt_part(msk, "", &e.ciphertext, &e.initialization_vector)?;
            decode_content(e.content_encoding.as_deref(), data)
        }
        Envelope::Chunked(e) => {
            check_mode(&e.mode)?;
            if e.chunks.is_empty() {
                return Err(EnvelopeError::NoChunks);
            }
            let mut joined = Vec::new();
            for (i, c) in e.chunks.iter().enumerate() {
                check_mode(&c.mode)?;
                joined.extend(decrypt_part(
                    msk,
                    &format!("chunks[{i}]."),
                    &c.ciphertext,
                    &c.initialization_vector,
                )?);
            }
            decode_content(Some(&e.content_encoding), joined)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::StdRng, SeedableRng};

    fn msk() -> Key {
        core::array::from_fn(|i| i as u8)
    }

    const PLAIN: &[u8] = br#"{"emv_ready":true,"keys_installed":true,"network_ok":true}"#;

    #[test]
    fn a_spliced_gzip_reads_as_prefix_then_tail() {
        let mut rng = StdRng::seed_from_u64(7);
        let tail_text: Vec<u8> = (0..150_000u32)
            .map(|i| b"abcdefgh,{}\"0123"[(i as usize * 7 + (rng.next_u32() % 3) as usize) % 16])
            .collect();
        let tail = GzipTail::new(&tail_text);
        for prefix in [&b""[..], b"{\"device_id\":\"POS-1\",", &[b'x'; 70_000][..]] {
            let gz = gzip_with_tail(prefix, &tail);
            let whole = [prefix, &tail_text[..]].concat();
            // a strict single-member decoder, as the device uses
            assert_eq!(
                gunzip(&gz).unwrap(),
                whole,
                "prefix of {} bytes",
                prefix.len()
            );
            let mut multi = Vec::new();
            flate2::read::MultiGzDecoder::new(&gz[..])
                .read_to_end(&mut multi)
                .unwrap();
            assert_eq!(multi, whole);
        }
        // and it is as small as gzipping the whole again, give or take a few bytes
        let whole = gzip(&tail_text);
        let spliced = gzip_with_tail(b"", &tail);
        assert!(
            spliced.len() <= whole.len() + 16,
            "{} vs {}",
            spliced.len(),
            whole.len()
        );
        // sealed and opened like any gzip envelope
        let env = seal_gzipped(&msk(), &spliced, &mut rng);
        assert_eq!(open(&msk(), &env).unwrap(), tail_text);
    }
    const CT: &str = "C8FBF8568F20B47BA27456FB44249BFF57D3906F1DF23C5838757D8EA8EE3DAC49489D4634BE46AEB78E63B039AEC2BECACBF5FE1D2E3880A815DA8C500D45B8";

    #[test]
    fn spec_vector() {
        let iv: [u8; 16] = core::array::from_fn(|i| i as u8);
        let env = seal_single_with_iv(&msk(), PLAIN, &iv);
        assert_eq!(env.ciphertext, CT);
        assert_eq!(
            env.initialization_vector,
            "000102030405060708090A0B0C0D0E0F"
        );
        assert_eq!(env.key_kcv.as_deref(), Some("377822"));
        assert_eq!(open(&msk(), &Envelope::Single(env)).unwrap(), PLAIN);
    }

    #[test]
    fn parses_documented_json_and_tolerates_missing_kcv() {
        let json = format!(
            r#"{{"format":"TR31-DATA","ciphertext":"{CT}","initialization_vector":"000102030405060708090A0B0C0D0E0F","mode":"CBC"}}"#
        );
        let env = Envelope::from_json(json.as_bytes()).unwrap();
        assert_eq!(open(&msk(), &env).unwrap(), PLAIN);
    }

    #[test]
    fn chunked_round_trip_of_a_large_payload() {
        let mut rng = StdRng::seed_from_u64(1);
        let big: Vec<u8> = (0..200_000u32)
            .flat_map(|i| (i.wrapping_mul(2654435761) >> 13).to_le_bytes())
            .collect();
        let env = seal_gzip(&msk(), &big, &mut rng);
        let Envelope::Chunked(c) = &env else {
            panic!("expected chunked")
        };
        assert!(c.chunks.len() > 1);
        let reparsed = Envelope::from_json(&serde_json::to_vec(&env).unwrap()).unwrap();
        assert_eq!(open(&msk(), &reparsed).unwrap(), big);
    }

    #[test]
    fn small_gzip_payload_is_a_single_gzip_envelope() {
        let mut rng = StdRng::seed_from_u64(2);
        let env = seal_gzip(&msk(), PLAIN, &mut rng);
        let Envelope::Single(s) = &env else {
            panic!("expected single")
        };
        assert_eq!(s.content_encoding.as_deref(), Some("gzip"));
        assert_eq!(open(&msk(), &env).unwrap(), PLAIN);
    }

    #[test]
    fn tampering_fails_cleanly() {
        let mut rng = StdRng::seed_from_u64(3);
        let env = seal_gzip_parts(&msk(), &vec![b'x'; 50_000], 64, &mut rng);
        let json = serde_json::to_string(&env).unwrap();
        // flip every hex character of the first chunk's ciphertext in turn
        let start = json.find("\"ciphertext\":\"").unwrap() + 14;
        for i in start..start + 64 {
            let mut b = json.clone().into_bytes();
            b[i] = if b[i] == b'0' { b'1' } else { b'0' };
            let r = Envelope::from_json(&b).and_then(|e| open(&msk(), &e));
            // CBC garbles the part, and gzip's CRC (or padding) catches it
            assert!(r.is_err(), "flip at {i} accepted");
        }
        let e = open(&[9u8; 32], &env).unwrap_err();
        assert!(matches!(e, EnvelopeError::Kcv { .. }), "{e}");
        assert!(matches!(
            Envelope::from_json(b"{}"),
            Err(EnvelopeError::Shape(_))
        ));
        assert!(matches!(
            Envelope::from_json(br#"{"format":"X"}"#),
            Err(EnvelopeError::Format(_))
        ));
        let mut bad = seal_single_with_iv(&msk(), PLAIN, &[0; 16]);
        bad.initialization_vector = "00".into();
        assert!(open(&msk(), &Envelope::Single(bad))
            .unwrap_err()
            .to_string()
            .contains("initialization vector"));
    }
}
