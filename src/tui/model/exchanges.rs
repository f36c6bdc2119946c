//! The debug side's state: the exchange list (following the newest), the selected exchange's
//! detail lines and their scroll position.

use std::sync::Arc;

use ratatui::text::Line;

use super::Model;
use crate::tui::debug_lines::detail_lines;
use crate::tui::theme::Theme;
use posemu_client::Exchange;

/// The exchange list and the selected exchange's details.
pub struct DebugSide {
    exchanges: Vec<Arc<Exchange>>,
    selected: Option<usize>,
    /// Keep the newest exchange selected as new ones arrive.
    follow: bool,
    detail: Arc<Vec<Line<'static>>>,
    detail_of: Option<u64>,
    scroll: usize,
}

impl Default for DebugSide {
    fn default() -> Self {
        DebugSide {
            exchanges: Vec::new(),
            selected: None,
            follow: true,
            detail: Arc::new(Vec::new()),
            detail_of: None,
            scroll: 0,
        }
    }
}

impl DebugSide {
    pub fn exchanges(&self) -> &[Arc<Exchange>] {
        &self.exchanges
    }

    pub fn selected(&self) -> Option<usize> {
        self.selected
    }

    pub fn selected_exchange(&self) -> Option<&Arc<Exchange>> {
        self.selected.and_then(|i| self.exchanges.get(i))
    }

    /// The selected exchange's lines, as the details panel shows them.
    pub fn detail(&self) -> &Arc<Vec<Line<'static>>> {
        &self.detail
    }

    pub fn scroll(&self) -> usize {
        self.scroll
    }

    /// A new device: its exchanges so far, the newest selected.
    pub(super) fn reset(&mut self, exchanges: Vec<Arc<Exchange>>, theme: Theme) {
        self.selected = exchanges.len().checked_sub(1);
        self.exchanges = exchanges;
        self.follow = true;
        self.refresh(theme);
    }

    pub(super) fn push(&mut self, e: Arc<Exchange>, theme: Theme) {
        self.exchanges.push(e);
        let cap = posemu_runtime::session::EXCHANGE_LOG_CAPACITY;
        if self.exchanges.len() > cap {
            self.exchanges.remove(0);
            self.selected = self.selected.map(|s| s.saturating_sub(1));
        }
        if self.follow {
            self.selected = Some(self.exchanges.len() - 1);
            self.refresh(theme);
        }
    }

    fn refresh(&mut self, theme: Theme) {
        let id = self.selected_exchange().map(|e| e.id);
        if id != self.detail_of {
            self.detail_of = id;
            self.scroll = 0;
            self.detail = Arc::new(match self.selected_exchange() {
                Some(e) => detail_lines(e, theme),
                None => Vec::new(),
            });
        }
    }

    pub(super) fn select(&mut self, delta: isize, theme: Theme) {
        if self.exchanges.is_empty() {
            return;
        }
        let last = self.exchanges.len() - 1;
        let cur = self.selected.unwrap_or(last) as isize;
        let next = (cur + delta).clamp(0, last as isize) as usize;
        self.selected = Some(next);
        self.follow = next == last;
        self.refresh(theme);
    }

    /// Scrolls the details by `delta` rows, stopping at the last page of `page` (the panel's
    /// columns and rows: long values wrap).
    pub(super) fn scroll_by(&mut self, delta: isize, page: (u16, u16)) {
        let rows = crate::tui::view::wrapped_rows(&self.detail, page.0);
        let max = rows.saturating_sub(usize::from(page.1)) as isize;
        self.scroll = (self.scroll as isize + delta).clamp(0, max.max(0)) as usize;
    }

    /// Back to following the newest exchange (Esc).
    pub(super) fn follow_newest(&mut self, theme: Theme) {
        self.follow = true;
        self.selected = self.exchanges.len().checked_sub(1);
        self.refresh(theme);
    }
}

impl Model {
    pub(super) fn page(&self) -> isize {
        (self.size.1 as isize / 2).max(5)
    }

    /// The details panel's columns and rows.
    pub(super) fn detail_page(&self) -> (u16, u16) {
        crate::tui::view::detail_page(self)
    }
}
