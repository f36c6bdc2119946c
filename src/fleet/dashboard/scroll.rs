//! Scrolling the dashboard's long panels: which panel has the focus, how far each is
//! scrolled, what a key does, and how the panels share the rows of a small terminal.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// The panels that scroll, in `Tab` order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Panel {
    Devices,
    Errors,
    Latency,
}

impl Panel {
    pub const SCROLLING: [Panel; 3] = [Panel::Devices, Panel::Errors, Panel::Latency];

    pub(super) fn index(self) -> usize {
        self as usize
    }
}

/// Which panel has the focus, and how far each one is scrolled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Scroll {
    pub focus: usize,
    pub offsets: [usize; Panel::SCROLLING.len()],
    /// Rows each panel can scroll by at the last frame (what did not fit).
    pub max: [usize; Panel::SCROLLING.len()],
}

impl Scroll {
    pub fn focused(&self) -> Panel {
        Panel::SCROLLING[self.focus % Panel::SCROLLING.len()]
    }

    pub fn offset(&self, p: Panel) -> usize {
        self.offsets[p.index()]
    }

    /// A scrolling key; false if `key` is not one.
    pub fn key(&mut self, key: KeyCode) -> bool {
        let n = Panel::SCROLLING.len();
        let page = 5;
        match key {
            KeyCode::Tab | KeyCode::Right => self.focus = (self.focus + 1) % n,
            KeyCode::BackTab | KeyCode::Left => self.focus = (self.focus + n - 1) % n,
            KeyCode::Down | KeyCode::Char('j') => self.by(1),
            KeyCode::Up | KeyCode::Char('k') => self.by(-1),
            KeyCode::PageDown => self.by(page),
            KeyCode::PageUp => self.by(-page),
            KeyCode::Home | KeyCode::Char('g') => self.by(isize::MIN / 2),
            KeyCode::End | KeyCode::Char('G') => self.by(isize::MAX / 2),
            _ => return false,
        }
        true
    }

    fn by(&mut self, delta: isize) {
        let i = self.focused().index();
        let to = (self.offsets[i] as isize).saturating_add(delta).max(0) as usize;
        self.offsets[i] = to.min(self.max[i]);
    }

    /// Takes the limits of the frame just drawn (a resize may have changed them).
    pub fn fit(&mut self, fit: &Fit) {
        self.max = fit.max;
        for (o, m) in self.offsets.iter_mut().zip(fit.max) {
            *o = (*o).min(m);
        }
    }
}

/// What a frame could not show: rows each scrolling panel can scroll by.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Fit {
    pub max: [usize; Panel::SCROLLING.len()],
}

/// What a key does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAction {
    /// Stop the run (`q`, Esc, Ctrl-C while it runs); the dashboard closes once it ended.
    Stop,
    /// Close the dashboard (the same keys once the run is over).
    Close,
    Scrolled,
    Nothing,
}

/// What `k` does, the run finished or not; scrolling keys move `scroll`.
pub fn key_action(k: KeyEvent, finished: bool, scroll: &mut Scroll) -> KeyAction {
    let ctrl_c = k.code == KeyCode::Char('c') && k.modifiers.contains(KeyModifiers::CONTROL);
    if ctrl_c || matches!(k.code, KeyCode::Char('q') | KeyCode::Esc) {
        return if finished {
            KeyAction::Close
        } else {
            KeyAction::Stop
        };
    }
    if scroll.key(k.code) {
        KeyAction::Scrolled
    } else {
        KeyAction::Nothing
    }
}

/// Rows the panel rows get out of `rows`: each its minimum first (as far as there are rows),
/// then one more row at a time to each that wants more, in order of importance, so the long
/// panels grow together; the last takes what is left.
pub(super) fn share(rows: u16, min: &[u16], want: &[u16]) -> Vec<u16> {
    let mut left = rows;
    let mut got: Vec<u16> = min
        .iter()
        .map(|&m| {
            let g = m.min(left);
            left -= g;
            g
        })
        .collect();
    while left > 0 {
        let mut grew = false;
        for (g, &w) in got.iter_mut().zip(want) {
            if left > 0 && *g < w {
                *g += 1;
                left -= 1;
                grew = true;
            }
        }
        if !grew {
            break;
        }
    }
    if let Some(last) = got.last_mut() {
        *last += left;
    }
    got
}

/// ` · 3–8 of 12` when `shown` rows of `total` from `offset` are not all of them.
pub(super) fn position(offset: usize, shown: usize, total: usize) -> String {
    if shown >= total {
        String::new()
    } else {
        format!(
            " · {}–{} of {total}",
            offset + 1,
            (offset + shown).min(total)
        )
    }
}
