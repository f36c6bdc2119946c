//! The transactions view: this session's charges and the sandbox's list merged, cancel and
//! refund of the one selected, and settlement through the sandbox helper (spec 7.8–7.10, 7.12).

use super::*;

impl Sale {
    /// The transactions: the sandbox's list and this session's charges it lacks, newest first.
    pub fn charges(&self) -> Vec<&Charge> {
        let mut all: Vec<&Charge> = self.listed.iter().collect();
        for c in &self.session {
            if !self.listed.iter().any(|l| l.charge_id == c.charge_id) {
                all.push(c);
            }
        }
        all.sort_by(|a, b| b.created_at.cmp(&a.created_at));
        all
    }

    pub fn selected_charge(&self) -> Option<Charge> {
        self.charges().get(self.selected).map(|c| (*c).clone())
    }

    /// A fresher copy of a charge (an operation's answer, the sandbox's list) replaces the old.
    pub(super) fn remember(&mut self, c: &Charge) {
        self.session.retain(|s| s.charge_id != c.charge_id);
        self.session.insert(0, c.clone());
        self.session.truncate(SESSION_MAX);
        for l in self
            .listed
            .iter_mut()
            .filter(|l| l.charge_id == c.charge_id)
        {
            *l = c.clone();
        }
    }
}

/// Approved and not settled yet: cancel it (spec 7.10).
pub fn can_void(c: &Charge) -> bool {
    c.status == ChargeStatus::Approved && c.settlement.status == SettlementStatus::Pending
}

/// What is left to refund of a settled charge, if anything (spec 7.8).
pub fn refundable(c: &Charge) -> Option<Money> {
    let settled = c.settlement.status == SettlementStatus::Settled;
    let open = matches!(
        c.status,
        ChargeStatus::Approved | ChargeStatus::PartiallyRefunded
    );
    let left = c
        .approved_amount
        .as_ref()?
        .saturating_sub(c.refunded_amount.value);
    (settled && open && left.value > 0).then_some(left)
}

impl Model {
    pub(super) fn open_transactions(&mut self) -> Vec<Cmd> {
        let s = &mut self.sale;
        s.screen = Screen::Transactions;
        s.back = Screen::Transactions;
        s.outcome = None;
        s.receipt_of = None;
        s.list_note = Some("Loading the terminal's charges…".into());
        let (Some(generation), Some(tid)) = (
            self.generation(),
            self.device().and_then(|d| d.progress.terminal_id.clone()),
        ) else {
            self.sale.list_note = None;
            return Vec::new();
        };
        vec![Cmd::LoadCharges {
            generation,
            terminal_id: tid,
        }]
    }

    /// The transactions view reads the list again (after a settlement).
    pub(in crate::tui::model) fn sale_reload(&mut self) {
        if self.sale.screen == Screen::Transactions {
            let cmds = self.open_transactions();
            self.out.extend(cmds);
        }
    }

    pub(super) fn settle(&mut self) -> Vec<Cmd> {
        let (Some(generation), Some(terminal_id)) = (
            self.generation(),
            self.device().and_then(|d| d.progress.terminal_id.clone()),
        ) else {
            return Vec::new();
        };
        self.log(
            Level::Info,
            "settling the terminal's charges (sandbox helper)",
        );
        vec![Cmd::Settle {
            generation,
            terminal_id,
        }]
    }

    /// The sandbox's list arrived (or could not be read).
    pub(in crate::tui::model) fn charges_loaded(&mut self, result: Result<Vec<Charge>, String>) {
        let s = &mut self.sale;
        match result {
            Ok(list) => {
                s.list_note = None;
                for c in &list {
                    if let Some(mine) = s.session.iter_mut().find(|m| m.charge_id == c.charge_id) {
                        *mine = c.clone();
                    }
                }
                s.listed = list;
            }
            Err(e) => {
                s.list_note = Some(format!("This session's charges only: {e}"));
            }
        }
        let n = s.charges().len();
        s.selected = s.selected.min(n.saturating_sub(1));
    }
}
