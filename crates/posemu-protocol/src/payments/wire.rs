//! Payment wire types (spec 7.5, 7.6, 7.8, 7.12): the plaintexts inside the MSK envelopes and
//! the sandbox's plain-JSON settle answer. Field names and order are the spec's.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::card::{masked_pan, Brand};
use super::money::Money;

/// `entry_mode` (spec 7.6) and its ISO 8583 `pos_entry_mode` (7.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryMode {
    Chip,
    Contactless,
    Swipe,
    Manual,
}

impl EntryMode {
    pub const ALL: [EntryMode; 4] = [
        EntryMode::Chip,
        EntryMode::Contactless,
        EntryMode::Swipe,
        EntryMode::Manual,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EntryMode::Chip => "chip",
            EntryMode::Contactless => "contactless",
            EntryMode::Swipe => "swipe",
            EntryMode::Manual => "manual",
        }
    }

    pub fn parse(s: &str) -> Option<EntryMode> {
        Self::ALL.into_iter().find(|m| m.as_str() == s)
    }

    /// [POSEMU] `gateway.pos_entry_mode`: `05` chip, `07` contactless, `90` swipe, `01` manual.
    pub fn pos_entry_mode(self) -> &'static str {
        match self {
            EntryMode::Chip => "05",
            EntryMode::Contactless => "07",
            EntryMode::Swipe => "90",
            EntryMode::Manual => "01",
        }
    }
}

/// [POSEMU] decline codes of spec 7.7, with their ISO 8583 field 39 codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeclineCode {
    InvalidCardNumber,
    ExpiredCard,
    IncorrectPin,
    PinRequired,
    DoNotHonor,
    InsufficientFunds,
    IssuerUnavailable,
}

impl DeclineCode {
    pub const ALL: [DeclineCode; 7] = [
        DeclineCode::InvalidCardNumber,
        DeclineCode::ExpiredCard,
        DeclineCode::IncorrectPin,
        DeclineCode::PinRequired,
        DeclineCode::DoNotHonor,
        DeclineCode::InsufficientFunds,
        DeclineCode::IssuerUnavailable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeclineCode::InvalidCardNumber => "invalid_card_number",
            DeclineCode::ExpiredCard => "expired_card",
            DeclineCode::IncorrectPin => "incorrect_pin",
            DeclineCode::PinRequired => "pin_required",
            DeclineCode::DoNotHonor => "do_not_honor",
            DeclineCode::InsufficientFunds => "insufficient_funds",
            DeclineCode::IssuerUnavailable => "issuer_unavailable",
        }
    }

    /// ISO 8583 field 39 (`gateway.response_code`).
    pub fn response_code(self) -> &'static str {
        match self {
            DeclineCode::InvalidCardNumber => "14",
            DeclineCode::ExpiredCard => "54",
            DeclineCode::IncorrectPin => "55",
            DeclineCode::PinRequired => "65",
            DeclineCode::DoNotHonor => "05",
            DeclineCode::InsufficientFunds => "51",
            DeclineCode::IssuerUnavailable => "91",
        }
    }

    /// Words for a cardholder-facing screen.
    pub fn words(self) -> &'static str {
        match self {
            DeclineCode::InvalidCardNumber => "Invalid card number",
            DeclineCode::ExpiredCard => "Expired card",
            DeclineCode::IncorrectPin => "Incorrect PIN",
            DeclineCode::PinRequired => "PIN required",
            DeclineCode::DoNotHonor => "Do not honor",
            DeclineCode::InsufficientFunds => "Insufficient funds",
            DeclineCode::IssuerUnavailable => "Issuer unavailable",
        }
    }
}

impl fmt::Display for DeclineCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// ISO 8583 field 39 of an approval, and of a partial approval (spec 7.7).
pub const RESPONSE_APPROVED: &str = "00";
pub const RESPONSE_PARTIAL: &str = "10";

/// The card as read (spec 7.6). `Debug` masks the PAN and hides the expiry.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardData {
    pub pan: String,
    pub exp_month: u32,
    pub exp_year: u32,
}

impl fmt::Debug for CardData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CardData")
            .field("pan", &masked_pan(&self.pan))
            .finish_non_exhaustive()
    }
}

/// The plaintext of `POST /pos/charge` (spec 7.6), as the device builds it. Absent optional
/// fields are not serialized. `Debug` shows no PAN, expiry or PIN block.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChargeRequest {
    pub amount: Money,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tip: Option<Money>,
    pub entry_mode: EntryMode,
    pub card: CardData,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin_block: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_partial_approval: Option<bool>,
}

impl fmt::Debug for ChargeRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChargeRequest")
            .field("amount", &self.amount)
            .field("tip", &self.tip)
            .field("entry_mode", &self.entry_mode)
            .field("card", &self.card)
            .field("pin_block", &self.pin_block.as_ref().map(|_| "***"))
            .field("reference", &self.reference)
            .field("allow_partial_approval", &self.allow_partial_approval)
            .finish()
    }
}

impl ChargeRequest {
    /// The plaintext as the exchange log shows it (spec 7.11): `card.pan` masked, `pin_block`
    /// as `***`, and no expiry.
    pub fn redacted_json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if let Some(card) = v.get_mut("card").and_then(|c| c.as_object_mut()) {
            card.insert("pan".into(), masked_pan(&self.card.pan).into());
            card.insert("exp_month".into(), "**".into());
            card.insert("exp_year".into(), "****".into());
        }
        if self.pin_block.is_some() {
            v["pin_block"] = "***".into();
        }
        v
    }
}

/// `reason` of a refund (spec 7.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefundReason {
    #[default]
    RequestedByCustomer,
    Duplicate,
    Fraudulent,
    Other,
}

impl RefundReason {
    pub const ALL: [RefundReason; 4] = [
        RefundReason::RequestedByCustomer,
        RefundReason::Duplicate,
        RefundReason::Fraudulent,
        RefundReason::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RefundReason::RequestedByCustomer => "requested_by_customer",
            RefundReason::Duplicate => "duplicate",
            RefundReason::Fraudulent => "fraudulent",
            RefundReason::Other => "other",
        }
    }

    pub fn parse(s: &str) -> Option<RefundReason> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// A refund's `amount`: the currency may be left out (it defaults to the charge's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundAmount {
    #[serde(with = "minor_string")]
    pub value: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
}

/// The plaintext of `POST /pos/charge/{id}/refund` (spec 7.8).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundRequest {
    pub amount: RefundAmount,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<RefundReason>,
}

mod minor_string {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        let s = String::deserialize(d)?;
        super::super::money::parse_minor_or_zero(&s)
            .ok_or_else(|| serde::de::Error::custom("not a minor-unit string"))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChargeStatus {
    Approved,
    Declined,
    Cancelled,
    PartiallyRefunded,
    Refunded,
}

impl ChargeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ChargeStatus::Approved => "approved",
            ChargeStatus::Declined => "declined",
            ChargeStatus::Cancelled => "cancelled",
            ChargeStatus::PartiallyRefunded => "partially_refunded",
            ChargeStatus::Refunded => "refunded",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SettlementStatus {
    Pending,
    Settled,
    None,
}

impl SettlementStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SettlementStatus::Pending => "pending",
            SettlementStatus::Settled => "settled",
            SettlementStatus::None => "none",
        }
    }
}

/// `online_pin` when a PIN block deciphered and held the test PIN, else `none` (spec 7.14).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cvm {
    OnlinePin,
    None,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardSummary {
    pub brand: Brand,
    pub masked_pan: String,
    pub last4: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gateway {
    pub acquirer: String,
    pub response_code: String,
    pub rrn: String,
    pub stan: String,
    pub pos_entry_mode: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settlement {
    pub status: SettlementStatus,
    pub batch_id: Option<String>,
    pub settled_at: Option<String>,
}

/// The charge object (spec 7.5): every field always present, `null` where there is no value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Charge {
    pub charge_id: String,
    pub terminal_id: String,
    pub merchant_id: String,
    pub status: ChargeStatus,
    pub amount: Money,
    pub tip: Money,
    pub total: Money,
    pub approved_amount: Option<Money>,
    pub partial_approval: bool,
    pub refunded_amount: Money,
    pub entry_mode: EntryMode,
    pub card: CardSummary,
    pub cvm: Cvm,
    pub auth_code: Option<String>,
    pub decline_code: Option<DeclineCode>,
    pub reference: Option<String>,
    pub gateway: Gateway,
    pub settlement: Settlement,
    pub refunds: Vec<Refund>,
    pub created_at: String,
    pub cancelled_at: Option<String>,
}

/// `status` of a refund: the sandbox's refunds always succeed (spec 7.8).
pub const REFUND_SUCCEEDED: &str = "succeeded";

/// A refund (spec 7.8). `charge` is present in the refund answer and absent inside
/// `charge.refunds`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refund {
    pub refund_id: String,
    pub charge_id: String,
    pub status: String,
    pub amount: Money,
    pub reason: RefundReason,
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub charge: Option<Box<Charge>>,
}

/// One batch of `POST /sandbox/settle` (spec 7.12).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettleBatch {
    pub batch_id: String,
    pub terminal_id: String,
    pub charge_ids: Vec<String>,
    pub total: Money,
}

/// The 200 of `POST /sandbox/settle` (spec 7.12).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettleResponse {
    pub settled_at: String,
    pub batches: Vec<SettleBatch>,
}

/// The 200 of `GET /sandbox/terminals/{tid}/charges` (spec 7.12), newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TerminalCharges {
    pub terminal_id: String,
    pub charges: Vec<Charge>,
}
