//! The debug side's state: the exchange list (following the newest), the selected exchange's
//! detail lines and their scroll position.

use std::sync::Arc;

use super::Model;
use crate::tui::debug_lines::detail_lines;
use posemu_client::Exchange;

impl Model {
    pub(super) fn on_exchange(&mut self, e: Arc<Exchange>) {
        self.exchanges.push(e);
        let cap = posemu_runtime::session::EXCHANGE_LOG_CAPACITY;
        if self.exchanges.len() > cap {
            self.exchanges.remove(0);
            self.selected = self.selected.map(|s| s.saturating_sub(1));
        }
        if self.follow {
            self.selected = Some(self.exchanges.len() - 1);
            self.refresh_detail();
        }
    }

    pub(super) fn refresh_detail(&mut self) {
        let id = self.selected_exchange().map(|e| e.id);
        if id != self.detail_of {
            self.detail_of = id;
            self.detail_scroll = 0;
            self.detail = Arc::new(match self.selected_exchange() {
                Some(e) => detail_lines(e, self.theme),
                None => Vec::new(),
            });
        }
    }

    pub(super) fn select(&mut self, delta: isize) {
        if self.exchanges.is_empty() {
            return;
        }
        let last = self.exchanges.len() - 1;
        let cur = self.selected.unwrap_or(last) as isize;
        let next = (cur + delta).clamp(0, last as isize) as usize;
        self.selected = Some(next);
        self.follow = next == last;
        self.refresh_detail();
    }

    pub(super) fn scroll(&mut self, delta: isize) {
        let max = self.detail.len().saturating_sub(1) as isize;
        self.detail_scroll = (self.detail_scroll as isize + delta).clamp(0, max) as usize;
    }

    pub(super) fn page(&self) -> isize {
        (self.size.1 as isize / 2).max(5)
    }
}
