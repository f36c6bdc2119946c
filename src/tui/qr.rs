//! The portal claim link as a QR code, drawn with half blocks: one terminal cell holds two
//! modules stacked (`▀` with the top module as foreground and the bottom as background), so a
//! 29-module code takes 33 × 17 cells with its quiet zone.

use qrcode::{EcLevel, QrCode};
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::widgets::Widget;

use super::theme::{QR_DARK, QR_LIGHT};

/// Light modules around the code; scanners want some, and the screen around is light too.
const QUIET: usize = 2;

/// A QR code's modules, computed once per link (not per frame).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QrMatrix {
    /// Modules per side, without the quiet zone.
    pub width: usize,
    /// Row-major, `true` = dark.
    dark: Vec<bool>,
}

impl QrMatrix {
    /// Encodes `text` at error correction M, or L when M would need a bigger symbol.
    pub fn encode(text: &str) -> Option<QrMatrix> {
        let m = QrCode::with_error_correction_level(text, EcLevel::M).ok();
        let l = QrCode::with_error_correction_level(text, EcLevel::L).ok();
        let code = match (m, l) {
            (Some(m), Some(l)) if l.width() < m.width() => l,
            (Some(m), _) => m,
            (None, l) => l?,
        };
        Some(QrMatrix {
            width: code.width(),
            dark: code
                .to_colors()
                .into_iter()
                .map(|c| c == qrcode::Color::Dark)
                .collect(),
        })
    }

    fn is_dark(&self, x: isize, y: isize) -> bool {
        let w = self.width as isize;
        if x < 0 || y < 0 || x >= w || y >= w {
            return false;
        }
        self.dark[(y * w + x) as usize]
    }

    /// Cells needed, quiet zone included: (columns, rows).
    pub fn cells(&self) -> (u16, u16) {
        let side = self.width + 2 * QUIET;
        (side as u16, side.div_ceil(2) as u16)
    }
}

/// Draws a [`QrMatrix`]. With colour: pure black on pure white whatever the terminal's theme.
/// Without (`NO_COLOR`): light modules as blocks, which phone scanners read on the dark
/// background most terminals have (as `qrencode -t UTF8` does).
pub struct QrWidget<'a> {
    pub matrix: &'a QrMatrix,
    pub color: bool,
}

impl Widget for QrWidget<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let (w, h) = self.matrix.cells();
        if area.width < w || area.height < h {
            return;
        }
        let q = QUIET as isize;
        for row in 0..h {
            for col in 0..w {
                let x = col as isize - q;
                let top = self.matrix.is_dark(x, 2 * row as isize - q);
                let bottom = self.matrix.is_dark(x, 2 * row as isize + 1 - q);
                let cell = &mut buf[(area.x + col, area.y + row)];
                if self.color {
                    let c = |dark| if dark { QR_DARK } else { QR_LIGHT };
                    cell.set_symbol("▀")
                        .set_style(Style::new().fg(c(top)).bg(c(bottom)));
                } else {
                    cell.set_symbol(match (top, bottom) {
                        (false, false) => "█",
                        (false, true) => "▀",
                        (true, false) => "▄",
                        (true, true) => " ",
                    })
                    .set_style(Style::new());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_portal_link_fits_a_version_3_symbol() {
        let m = QrMatrix::encode("http://127.0.0.1:41234/portal?code=K7M3NP").unwrap();
        assert_eq!(m.width, 29);
        assert_eq!(m.cells(), (33, 17));
        // finder pattern corners are dark, the quiet zone light
        assert!(m.is_dark(0, 0) && m.is_dark(28, 0) && m.is_dark(0, 28));
        assert!(!m.is_dark(-1, 0) && !m.is_dark(29, 29));
    }

    #[test]
    fn draws_two_modules_per_cell_and_nothing_when_too_small() {
        let m = QrMatrix::encode("K7M3NP").unwrap();
        let (w, h) = m.cells();
        let mut buf = Buffer::empty(Rect::new(0, 0, w, h));
        QrWidget {
            matrix: &m,
            color: false,
        }
        .render(buf.area, &mut buf);
        // row 1 of cells holds module rows 0 (top finder edge, dark) and 1 (dark at x=0)
        assert_eq!(buf[(QUIET as u16, 1)].symbol(), " ");
        assert_eq!(buf[(0, 0)].symbol(), "█", "quiet zone is light");
        let mut small = Buffer::empty(Rect::new(0, 0, w - 1, h));
        QrWidget {
            matrix: &m,
            color: true,
        }
        .render(small.area, &mut small);
        assert_eq!(small[(0, 0)].symbol(), " ");
    }
}
