//! Colours of the POS screen, in one place, and `NO_COLOR` (https://no-color.org): without
//! colour every style falls back to bold, dim and reverse so the screen still reads.

use ratatui::style::{Color, Modifier, Style};

/// The palette. `color: false` means `NO_COLOR` is set (or a test asked for it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Theme {
    pub color: bool,
}

/// Viopay's brand violet.
const BRAND: Color = Color::Rgb(109, 40, 217);
const BRAND_SOFT: Color = Color::Rgb(237, 233, 254);
const INK: Color = Color::Rgb(24, 24, 32);
const MUTED: Color = Color::Rgb(107, 107, 122);
const SCREEN: Color = Color::Rgb(250, 250, 252);
const BEZEL: Color = Color::Rgb(38, 38, 44);
const BEZEL_EDGE: Color = Color::Rgb(118, 118, 130);
const GREEN: Color = Color::Rgb(22, 150, 70);
const AMBER: Color = Color::Rgb(202, 120, 0);
const RED: Color = Color::Rgb(210, 38, 38);
const TRACK: Color = Color::Rgb(222, 222, 230);
/// The QR code is drawn with exactly these two, so that scanners see pure black on white.
pub const QR_DARK: Color = Color::Rgb(0, 0, 0);
pub const QR_LIGHT: Color = Color::Rgb(255, 255, 255);

impl Theme {
    /// Colour unless `NO_COLOR` is set to anything non-empty.
    pub fn from_env() -> Theme {
        Theme {
            color: std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        }
    }

    fn pick(&self, colored: Style, plain: Style) -> Style {
        if self.color {
            colored
        } else {
            plain
        }
    }

    /// The device's body around the screen.
    pub fn bezel(&self) -> Style {
        self.pick(Style::new().fg(BEZEL_EDGE).bg(BEZEL), Style::new())
    }

    pub fn bezel_label(&self) -> Style {
        self.pick(
            Style::new().fg(Color::Rgb(200, 200, 210)).bg(BEZEL),
            Style::new().add_modifier(Modifier::BOLD),
        )
    }

    /// The screen's background and normal text.
    pub fn screen(&self) -> Style {
        self.pick(Style::new().fg(INK).bg(SCREEN), Style::new())
    }

    pub fn title(&self) -> Style {
        self.screen().add_modifier(Modifier::BOLD)
    }

    pub fn muted(&self) -> Style {
        self.pick(
            Style::new().fg(MUTED).bg(SCREEN),
            Style::new().add_modifier(Modifier::DIM),
        )
    }

    pub fn brand(&self) -> Style {
        self.pick(
            Style::new()
                .fg(BRAND)
                .bg(SCREEN)
                .add_modifier(Modifier::BOLD),
            Style::new().add_modifier(Modifier::BOLD),
        )
    }

    pub fn status_bar(&self) -> Style {
        self.pick(
            Style::new().fg(Color::Rgb(255, 255, 255)).bg(BRAND),
            Style::new().add_modifier(Modifier::REVERSED),
        )
    }

    pub fn ok(&self) -> Style {
        self.pick(
            Style::new()
                .fg(GREEN)
                .bg(SCREEN)
                .add_modifier(Modifier::BOLD),
            Style::new().add_modifier(Modifier::BOLD),
        )
    }

    pub fn warn(&self) -> Style {
        self.pick(
            Style::new()
                .fg(AMBER)
                .bg(SCREEN)
                .add_modifier(Modifier::BOLD),
            Style::new().add_modifier(Modifier::BOLD),
        )
    }

    pub fn bad(&self) -> Style {
        self.pick(
            Style::new().fg(RED).bg(SCREEN).add_modifier(Modifier::BOLD),
            Style::new().add_modifier(Modifier::BOLD),
        )
    }

    /// The big pairing code.
    pub fn code(&self) -> Style {
        self.pick(Style::new().fg(INK).bg(SCREEN), Style::new())
    }

    /// Filled and empty parts of the countdown bar.
    pub fn gauge(&self, fraction_left: f64) -> (Style, Style) {
        let fill = if fraction_left > 0.34 {
            BRAND
        } else if fraction_left > 0.12 {
            AMBER
        } else {
            RED
        };
        (
            self.pick(Style::new().fg(fill).bg(SCREEN), Style::new()),
            self.pick(
                Style::new().fg(TRACK).bg(SCREEN),
                Style::new().add_modifier(Modifier::DIM),
            ),
        )
    }

    /// A POS key cap: green OK, yellow Clear, red Cancel.
    pub fn key_cap(&self, key: PosKey) -> Style {
        let (bg, fg) = match key {
            PosKey::Ok => (GREEN, Color::Rgb(255, 255, 255)),
            PosKey::Clear => (Color::Rgb(234, 179, 8), INK),
            PosKey::Cancel => (RED, Color::Rgb(255, 255, 255)),
            PosKey::Digit => (Color::Rgb(70, 70, 80), Color::Rgb(235, 235, 240)),
        };
        self.pick(
            Style::new().fg(fg).bg(bg).add_modifier(Modifier::BOLD),
            Style::new().add_modifier(Modifier::REVERSED | Modifier::BOLD),
        )
    }

    // The debug side and popups use the terminal's own background.

    pub fn panel_border(&self, focused: bool) -> Style {
        match (self.color, focused) {
            (true, true) => Style::new().fg(BRAND_SOFT).add_modifier(Modifier::BOLD),
            (true, false) => Style::new().fg(Color::Rgb(90, 90, 104)),
            (false, true) => Style::new().add_modifier(Modifier::BOLD),
            (false, false) => Style::new().add_modifier(Modifier::DIM),
        }
    }

    pub fn panel_title(&self, focused: bool) -> Style {
        let s = Style::new().add_modifier(Modifier::BOLD);
        match (self.color, focused) {
            (true, true) => s.fg(Color::Rgb(196, 181, 253)),
            (true, false) => s.fg(Color::Rgb(160, 160, 175)),
            (false, _) => s,
        }
    }

    pub fn text(&self) -> Style {
        Style::new()
    }

    pub fn dim(&self) -> Style {
        self.pick(
            Style::new().fg(Color::Rgb(140, 140, 155)),
            Style::new().add_modifier(Modifier::DIM),
        )
    }

    pub fn accent(&self) -> Style {
        self.pick(
            Style::new().fg(Color::Rgb(196, 181, 253)),
            Style::new().add_modifier(Modifier::BOLD),
        )
    }

    pub fn good_text(&self) -> Style {
        self.pick(Style::new().fg(Color::Rgb(74, 222, 128)), Style::new())
    }

    pub fn warn_text(&self) -> Style {
        self.pick(
            Style::new().fg(Color::Rgb(250, 204, 21)),
            Style::new().add_modifier(Modifier::BOLD),
        )
    }

    pub fn bad_text(&self) -> Style {
        self.pick(
            Style::new().fg(Color::Rgb(248, 113, 113)),
            Style::new().add_modifier(Modifier::BOLD),
        )
    }

    /// The selected row of a list.
    pub fn selected(&self, focused: bool) -> Style {
        match (self.color, focused) {
            (true, true) => Style::new()
                .bg(Color::Rgb(76, 29, 149))
                .fg(Color::Rgb(255, 255, 255)),
            (true, false) => Style::new().bg(Color::Rgb(50, 50, 62)),
            (false, true) => Style::new().add_modifier(Modifier::REVERSED),
            (false, false) => Style::new().add_modifier(Modifier::UNDERLINED),
        }
    }

    /// A key in the hint bar and the help.
    pub fn key(&self) -> Style {
        self.pick(
            Style::new()
                .fg(Color::Rgb(196, 181, 253))
                .add_modifier(Modifier::BOLD),
            Style::new().add_modifier(Modifier::BOLD),
        )
    }

    /// Demo mode's banner: a highlighter line people spot from across the room.
    pub fn banner(&self) -> Style {
        self.pick(
            Style::new()
                .fg(INK)
                .bg(Color::Rgb(250, 204, 21))
                .add_modifier(Modifier::BOLD),
            Style::new().add_modifier(Modifier::REVERSED | Modifier::BOLD),
        )
    }

    pub fn popup(&self) -> Style {
        self.pick(Style::new().bg(Color::Rgb(30, 30, 38)), Style::new())
    }

    pub fn toast(&self, level: Level) -> Style {
        let bg = match level {
            Level::Info => BRAND,
            Level::Good => GREEN,
            Level::Warn => AMBER,
            Level::Bad => RED,
        };
        self.pick(
            Style::new()
                .fg(Color::Rgb(255, 255, 255))
                .bg(bg)
                .add_modifier(Modifier::BOLD),
            Style::new().add_modifier(Modifier::REVERSED),
        )
    }
}

/// The POS keys drawn on the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PosKey {
    Ok,
    Clear,
    Cancel,
    Digit,
}

/// How a message should look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Good,
    Warn,
    Bad,
}
