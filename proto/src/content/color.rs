//! Colours as users pick them: `#RRGGBB` or `#RRGGBBAA`, stored and sent as `#RRGGBBAA`.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::types::FieldError;

/// An 8-bit RGBA colour (alpha 255 when the user gave none).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct Color {
    /// Red.
    pub r: u8,
    /// Green.
    pub g: u8,
    /// Blue.
    pub b: u8,
    /// Alpha (255: opaque).
    pub a: u8,
}

impl Color {
    /// Parses `#RRGGBB` or `#RRGGBBAA` (hex digits of either case); `field` names it in errors.
    pub fn parse(text: &str, field: &str) -> Result<Self, FieldError> {
        let malformed = || FieldError::new(field, "must be #RRGGBB or #RRGGBBAA (hex digits)");
        let digits = text.strip_prefix('#').ok_or_else(malformed)?;
        if !(digits.len() == 6 || digits.len() == 8) || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(malformed());
        }
        let byte = |at: usize| u8::from_str_radix(&digits[at..at + 2], 16).map_err(|_| malformed());
        Ok(Self {
            r: byte(0)?,
            g: byte(2)?,
            b: byte(4)?,
            a: if digits.len() == 8 { byte(6)? } else { 255 },
        })
    }

    /// `#RRGGBBAA`, upper-case.
    pub fn to_hex(self) -> String {
        format!("#{:02X}{:02X}{:02X}{:02X}", self.r, self.g, self.b, self.a)
    }

    /// The components from 0.0 to 1.0, as After Effects' colour properties take them.
    pub fn to_unit(self) -> [f64; 4] {
        [self.r, self.g, self.b, self.a].map(|c| f64::from(c) / 255.0)
    }
}

impl fmt::Display for Color {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl From<Color> for String {
    fn from(color: Color) -> Self {
        color.to_hex()
    }
}

impl TryFrom<String> for Color {
    type Error = FieldError;

    fn try_from(text: String) -> Result<Self, FieldError> {
        Self::parse(&text, "color")
    }
}
