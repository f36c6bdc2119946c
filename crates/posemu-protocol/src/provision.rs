//! Derived provisioning of fleet devices from a seed (spec 5).

use super::crypto::{hmac_sha256, Key};

/// Identity secret = HMAC-SHA256(seed, `identity|{device_id}`).
pub fn derive_identity_secret(seed: &str, device_id: &str) -> Key {
    hmac_sha256(seed.as_bytes(), format!("identity|{device_id}").as_bytes())
}

/// ZMK = HMAC-SHA256(seed, `zmk|{device_id}`).
pub fn derive_zmk(seed: &str, device_id: &str) -> Key {
    hmac_sha256(seed.as_bytes(), format!("zmk|{device_id}").as_bytes())
}

/// `POS-{prefix}{index as 6 hex digits}`; `index` must be below 2^24.
pub fn fleet_device_id(prefix: &str, index: u32) -> String {
    format!("POS-{prefix}{index:06X}")
}

/// The index of `device_id` within the fleet `prefix`, if it belongs to it.
pub fn fleet_index(prefix: &str, device_id: &str) -> Option<u32> {
    let rest = device_id.strip_prefix("POS-")?.strip_prefix(prefix)?;
    if rest.len() != 6 || !rest.bytes().all(|b| matches!(b, b'0'..=b'9' | b'A'..=b'F')) {
        return None;
    }
    u32::from_str_radix(rest, 16).ok()
}

/// A fleet prefix is exactly 2 uppercase hex digits.
pub fn is_valid_fleet_prefix(prefix: &str) -> bool {
    prefix.len() == 2
        && prefix
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'A'..=b'F'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_vector() {
        assert_eq!(
            hex::encode_upper(derive_identity_secret("posemu-demo", "POS-F0000001")),
            "F427B06FC1531115C0A8E566549C974C544ECC80777EE6C22C29782089C64C5B"
        );
        assert_eq!(
            hex::encode_upper(derive_zmk("posemu-demo", "POS-F0000001")),
            "9ED6325064ECA0F2F6B4DE9546F919933FF21720CC98C5C83FA177BD3B2DD48E"
        );
    }

    #[test]
    fn fleet_ids() {
        assert_eq!(fleet_device_id("F0", 1), "POS-F0000001");
        assert_eq!(fleet_device_id("F0", 0xABCDEF), "POS-F0ABCDEF");
        assert_eq!(fleet_index("F0", "POS-F0ABCDEF"), Some(0xABCDEF));
        assert_eq!(fleet_index("F0", "POS-F1ABCDEF"), None);
        assert_eq!(fleet_index("F0", "POS-F0abcdef"), None);
        assert!(
            is_valid_fleet_prefix("F0")
                && !is_valid_fleet_prefix("f0")
                && !is_valid_fleet_prefix("F")
        );
    }
}
