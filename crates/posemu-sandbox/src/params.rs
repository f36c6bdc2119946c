//! The sandbox's terminal parameters (spec 4.10): deterministic per device, ~200 KB of JSON that
//! gzips to roughly 15–20 KB. The device-independent bulk is built once and shared.

use std::sync::OnceLock;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use posemu_protocol::crypto::hmac_sha256;
use posemu_protocol::envelope::{gzip_with_tail, GzipTail};

fn bulk() -> &'static str {
    static BULK: OnceLock<String> = OnceLock::new();
    BULK.get_or_init(|| {
        let mut rng = StdRng::seed_from_u64(0x5EED_7E57);
        let mut hex = |n: usize| -> String { (0..n).map(|_| format!("{:02X}", rng.random::<u8>())).collect() };
        let aids = ["A0000000031010", "A0000000041010", "A0000000032010", "A0000000043060", "A00000002501", "A0000001523010"];
        let kernels: Vec<Value> = (0..aids.len() * 12)
            .map(|i| {
                json!({
                    "aid": aids[i % aids.len()], "kernel_id": format!("{:02}", i % 8 + 1),
                    "transaction_type": (["00", "01", "09", "20"][i % 4]),
                    "terminal_action_codes": {"default": "DC4000A800", "denial": "0010000000", "online": "DC4004F800"},
                    "floor_limit_minor": 0, "cvm_required_limit_minor": 5000, "contactless_transaction_limit_minor": 25000,
                    "tdol": "9F02065F2A029A039C0195059F3704", "ddol": "9F3704",
                    "terminal_risk_management_data": "6C7A000000000000", "application_version": "0002",
                })
            })
            .collect();
        let acquirers: Vec<Value> = (0..760)
            .map(|i| {
                json!({
                    "acquirer_id": format!("ACQ-{:05}", i), "bin_ranges": [{"from": format!("4{:05}0", i), "to": format!("4{:05}9", i)}],
                    "routing": (if i % 3 == 0 { "host-a" } else { "host-b" }), "currency": "EUR", "mcc": (["5411", "5812", "5999"][i % 3]),
                    "settlement_cutoff": "23:00", "refunds_allowed": i % 5 != 0, "preauth_allowed": true,
                })
            })
            .collect();
        let ca_keys: Vec<Value> = (0..28)
            .map(|i| {
                json!({
                    "rid": aids[i % aids.len()][..10].to_string(), "index": format!("{:02X}", i + 1),
                    "modulus": hex(248), "exponent": "03", "checksum": hex(20), "expiry": "1231",
                })
            })
            .collect();
        let body = json!({
            "emv_kernels": kernels, "acquirers": acquirers, "ca_public_keys": ca_keys,
            "contactless": {"enabled": true, "kernels": ["C-2", "C-3", "C-4", "C-6"]},
        });
        let s = body.to_string();
        s[1..s.len() - 1].to_string()
    })
}

/// The device's own start of its parameters: `{"device_id":…,…,` (the shared bulk follows).
fn head(device_id: &str, terminal_id: &str) -> String {
    let tag = hex::encode_upper(&hmac_sha256(b"posemu-params", device_id.as_bytes())[..8]);
    let head = json!({"device_id": device_id, "terminal_id": terminal_id, "parameters_version": format!("2025.12-{tag}")});
    let head = head.to_string();
    format!("{},", &head[..head.len() - 1])
}

/// The terminal-parameter JSON of one device (what [`gzipped_for_device`] compresses).
#[cfg(test)]
pub fn for_device(device_id: &str, terminal_id: &str) -> String {
    format!("{}{}}}", head(device_id, terminal_id), bulk())
}

/// [`for_device`] gzipped, compressing only the device's head: the shared bulk is deflated
/// once per process and spliced in (an activation storm gzipped 200 KB per device before).
pub fn gzipped_for_device(device_id: &str, terminal_id: &str) -> Vec<u8> {
    static TAIL: OnceLock<GzipTail> = OnceLock::new();
    let tail = TAIL.get_or_init(|| GzipTail::new(format!("{}}}", bulk()).as_bytes()));
    gzip_with_tail(head(device_id, terminal_id).as_bytes(), tail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn about_200_kb_gzipping_to_15_to_20_kb_and_deterministic() {
        let p = for_device("POS-8F3A2C91", "TID-004812");
        let v: Value = serde_json::from_str(&p).unwrap();
        assert_eq!(v["device_id"], "POS-8F3A2C91");
        assert!((180_000..260_000).contains(&p.len()), "{} bytes", p.len());
        let gz = posemu_protocol::envelope::gzip(p.as_bytes()).len();
        assert!((12_000..24_000).contains(&gz), "{gz} bytes gzipped");
        assert_eq!(p, for_device("POS-8F3A2C91", "TID-004812"));
        assert_ne!(p, for_device("POS-8F3A2C92", "TID-004812"));
    }

    #[test]
    #[ignore = "a timing: cargo test --release -p posemu-sandbox params -- --ignored --nocapture"]
    fn splicing_against_gzipping_the_whole() {
        use std::time::Instant;
        let n = 200;
        let t = Instant::now();
        for i in 0..n {
            let p = for_device(&format!("POS-F0{i:06X}"), "TID-004812");
            std::hint::black_box(posemu_protocol::envelope::gzip(p.as_bytes()));
        }
        let whole = t.elapsed() / n;
        let t = Instant::now();
        for i in 0..n {
            std::hint::black_box(gzipped_for_device(&format!("POS-F0{i:06X}"), "TID-004812"));
        }
        let spliced = t.elapsed() / n;
        println!("gzip of the whole document {whole:?}, spliced {spliced:?} per device");
    }

    #[test]
    fn the_spliced_gzip_is_the_same_document() {
        use std::io::Read;
        for id in ["POS-8F3A2C91", "POS-F0000001"] {
            let gz = gzipped_for_device(id, "TID-004812");
            let mut plain = String::new();
            flate2::read::GzDecoder::new(&gz[..])
                .read_to_string(&mut plain)
                .unwrap();
            assert_eq!(plain, for_device(id, "TID-004812"));
            assert!((12_000..24_000).contains(&gz.len()), "{} bytes", gz.len());
        }
    }
}
