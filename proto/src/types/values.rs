//! Validated values: frame ranges, content hashes, URLs, names that may become paths, volumes,
//! fencing tokens.

use std::fmt;

use super::FieldError;

/// An inclusive, non-empty range of non-negative frame numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct FrameRange {
    start: i32,
    end: i32,
}

impl FrameRange {
    /// `start..=end`; `field` names the range in errors.
    pub fn new(start: i32, end: i32, field: &str) -> Result<Self, FieldError> {
        if start < 0 {
            return Err(FieldError::new(format!("{field}.start"), "must be >= 0"));
        }
        if end < start {
            return Err(FieldError::new(format!("{field}.end"), "must be >= start"));
        }
        Ok(Self { start, end })
    }

    /// First frame.
    pub const fn start(&self) -> i32 {
        self.start
    }

    /// Last frame (inclusive).
    pub const fn end(&self) -> i32 {
        self.end
    }

    /// Number of frames. Widened: `0..=i32::MAX` holds 2^31 frames, one more than `i32` counts.
    pub const fn len(&self) -> i64 {
        self.end as i64 - self.start as i64 + 1
    }

    /// Never true: a range holds at least one frame.
    pub const fn is_empty(&self) -> bool {
        false
    }

    /// Whether `frame` is inside.
    pub const fn contains(&self, frame: i32) -> bool {
        frame >= self.start && frame <= self.end
    }

    /// Splits into consecutive chunks of at most `chunk_size` frames (`chunk_size` >= 1).
    pub fn chunks(&self, chunk_size: i32) -> Vec<FrameRange> {
        let chunk_size = chunk_size.max(1);
        let mut chunks = Vec::new();
        let mut start = self.start;
        while start <= self.end {
            let end = start.saturating_add(chunk_size - 1).min(self.end);
            chunks.push(FrameRange { start, end });
            if end == i32::MAX {
                break;
            }
            start = end + 1;
        }
        chunks
    }
}

impl fmt::Display for FrameRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.start, self.end)
    }
}

/// BLAKE3 digest of a file (32 bytes), written as 64 lowercase hex characters (also in JSON).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct ContentHash([u8; 32]);

impl From<ContentHash> for String {
    fn from(hash: ContentHash) -> Self {
        hash.to_hex()
    }
}

impl TryFrom<String> for ContentHash {
    type Error = FieldError;

    fn try_from(hex: String) -> Result<Self, FieldError> {
        Self::parse_hex(&hex, "blake3")
    }
}

impl ContentHash {
    /// Wraps raw digest bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Parses hex (either case); `field` names it in errors.
    pub fn parse_hex(hex: &str, field: &str) -> Result<Self, FieldError> {
        if hex.len() != 64 {
            return Err(FieldError::new(field, "must be 64 hex characters (BLAKE3)"));
        }
        let mut bytes = [0u8; 32];
        for (index, pair) in hex.as_bytes().chunks(2).enumerate() {
            let high = hex_value(pair[0]).ok_or_else(|| FieldError::new(field, "must be hexadecimal"))?;
            let low = hex_value(pair[1]).ok_or_else(|| FieldError::new(field, "must be hexadecimal"))?;
            bytes[index] = (high << 4) | low;
        }
        Ok(Self(bytes))
    }

    /// From a database `bytea`; anything but 32 bytes is refused.
    pub fn from_slice(bytes: &[u8], field: &str) -> Result<Self, FieldError> {
        let array: [u8; 32] = bytes
            .try_into()
            .map_err(|_| FieldError::new(field, "must be 32 bytes"))?;
        Ok(Self(array))
    }

    /// The digest bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut hex = String::with_capacity(64);
        for byte in self.0 {
            hex.push(DIGITS[usize::from(byte >> 4)] as char);
            hex.push(DIGITS[usize::from(byte & 0x0f)] as char);
        }
        hex
    }
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

impl fmt::Display for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContentHash({})", self.to_hex())
    }
}

/// An absolute http(s) URL without whitespace or control characters, at most 2048 bytes.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct HttpUrl(String);

impl HttpUrl {
    /// Validates `url`; `field` names it in errors.
    pub fn parse(url: &str, field: &str) -> Result<Self, FieldError> {
        if url.is_empty() {
            return Err(FieldError::new(field, "is required"));
        }
        if url.len() > 2048 {
            return Err(FieldError::new(field, "must be at most 2048 bytes"));
        }
        let lower = url.to_ascii_lowercase();
        let rest = lower
            .strip_prefix("https://")
            .or_else(|| lower.strip_prefix("http://"))
            .ok_or_else(|| FieldError::new(field, "must be an http:// or https:// URL"))?;
        let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if host.is_empty() || host.starts_with('@') || host.starts_with(':') {
            return Err(FieldError::new(field, "must name a host"));
        }
        if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(FieldError::new(
                field,
                "must not contain whitespace or control characters",
            ));
        }
        Ok(Self(url.to_owned()))
    }

    /// The URL text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A name that may end up in a file path or a command line: composition names (free text, but
/// no path separators, `..`, or control characters) and output names (a strict file stem).
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct SafeName(String);

impl SafeName {
    /// An After Effects composition name: 1..=255 characters, no `/`, `\`, control characters,
    /// and not `.` or `..`. Spaces, quotes and Unicode are fine (AE allows them).
    pub fn composition(name: &str, field: &str) -> Result<Self, FieldError> {
        if name.is_empty() {
            return Err(FieldError::new(field, "is required"));
        }
        if name.chars().count() > 255 {
            return Err(FieldError::new(field, "must be at most 255 characters"));
        }
        if name.chars().any(|c| c == '/' || c == '\\' || c.is_control()) {
            return Err(FieldError::new(
                field,
                "must not contain path separators or control characters",
            ));
        }
        if name.trim() == "." || name.trim() == ".." {
            return Err(FieldError::new(field, "must not be a relative path component"));
        }
        Ok(Self(name.to_owned()))
    }

    /// A file stem: 1..=100 of `A-Z a-z 0-9 . _ -`, not starting with `.` or `-`.
    pub fn file_stem(name: &str, field: &str) -> Result<Self, FieldError> {
        if name.is_empty() {
            return Err(FieldError::new(field, "is required"));
        }
        if name.len() > 100 {
            return Err(FieldError::new(field, "must be at most 100 characters"));
        }
        if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            return Err(FieldError::new(
                field,
                "may only contain letters, digits, '.', '_' and '-'",
            ));
        }
        if name.starts_with('.') || name.starts_with('-') {
            return Err(FieldError::new(field, "must not start with '.' or '-'"));
        }
        Ok(Self(name.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SafeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Audio gain from 0.0 (silent) to 1.0 (unchanged).
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd, serde::Serialize, serde::Deserialize)]
pub struct Volume(f64);

impl Volume {
    /// Validates `value`; NaN and values outside 0..=1 are refused.
    pub fn new(value: f64, field: &str) -> Result<Self, FieldError> {
        if !(0.0..=1.0).contains(&value) {
            return Err(FieldError::new(field, "must be between 0.0 and 1.0"));
        }
        Ok(Self(value))
    }

    /// The gain.
    pub const fn get(&self) -> f64 {
        self.0
    }
}

/// A lease's fencing token: strictly increasing across all leases; a report must present the
/// token of the live lease or it changes nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct LeaseToken(i64);

impl LeaseToken {
    /// Wraps a token; `field` names it in errors. Tokens are positive.
    pub fn new(value: i64, field: &str) -> Result<Self, FieldError> {
        if value <= 0 {
            return Err(FieldError::new(field, "must be a positive lease token"));
        }
        Ok(Self(value))
    }

    /// The raw value.
    pub const fn get(&self) -> i64 {
        self.0
    }
}

impl fmt::Display for LeaseToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ranges validate their ends and name the field.
    #[test]
    fn frame_range_validation() {
        assert_eq!(
            FrameRange::new(5, 4, "frame_range").unwrap_err().field,
            "frame_range.end"
        );
        assert_eq!(
            FrameRange::new(-1, 4, "frame_range").unwrap_err().field,
            "frame_range.start"
        );
        let range = FrameRange::new(0, 0, "r").unwrap();
        assert_eq!(range.len(), 1);
        // The widest range a client can send must not overflow (it once panicked the handler).
        let widest = FrameRange::new(0, i32::MAX, "frame_range").unwrap();
        assert_eq!(widest.len(), 1_i64 << 31);
        assert!(range.contains(0) && !range.contains(1));
    }

    /// Chunks cover the range exactly, in order, with a short last chunk.
    #[test]
    fn frame_range_chunks_cover_exactly() {
        let range = FrameRange::new(10, 34, "r").unwrap();
        let chunks = range.chunks(10);
        let bounds: Vec<(i32, i32)> = chunks.iter().map(|c| (c.start(), c.end())).collect();
        assert_eq!(bounds, [(10, 19), (20, 29), (30, 34)]);
        assert_eq!(range.chunks(100).len(), 1);
        assert_eq!(range.chunks(1).len(), 25);
        let top = FrameRange::new(i32::MAX - 1, i32::MAX, "r").unwrap();
        assert_eq!(top.chunks(7).len(), 1);
    }

    /// Hashes round-trip through hex and refuse bad input.
    #[test]
    fn content_hash_hex() {
        let hex = "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262";
        let hash = ContentHash::parse_hex(hex, "h").unwrap();
        assert_eq!(hash.to_hex(), hex);
        assert_eq!(ContentHash::parse_hex(&hex.to_uppercase(), "h").unwrap(), hash);
        assert!(ContentHash::parse_hex(&hex[1..], "h").is_err());
        assert!(ContentHash::parse_hex(&format!("zz{}", &hex[2..]), "h").is_err());
        assert!(ContentHash::from_slice(&[0u8; 31], "h").is_err());
    }

    /// Only absolute http(s) URLs with a host pass.
    #[test]
    fn http_url_validation() {
        assert!(HttpUrl::parse("https://cdn.example.com/t.aep", "u").is_ok());
        assert!(HttpUrl::parse("HTTP://127.0.0.1:8080/x", "u").is_ok());
        for bad in [
            "",
            "ftp://x/y",
            "file:///etc/passwd",
            "https://",
            "https:///x",
            "http://a b",
            "javascript:alert(1)",
        ] {
            assert!(HttpUrl::parse(bad, "u").is_err(), "{bad} should be refused");
        }
    }

    /// Composition names allow AE's free text but nothing that traverses paths.
    #[test]
    fn composition_names() {
        assert!(SafeName::composition("_Example 1 “final”", "c").is_ok());
        for bad in ["", "..", "a/b", "a\\b", "a\nb"] {
            assert!(SafeName::composition(bad, "c").is_err(), "{bad:?} should be refused");
        }
        assert!(SafeName::composition(&"x".repeat(256), "c").is_err());
    }

    /// Output names are strict file stems.
    #[test]
    fn output_names() {
        assert!(SafeName::file_stem("frames_v2.final", "o").is_ok());
        for bad in ["", "../x", "a/b", ".hidden", "-rf", "a b", "ä"] {
            assert!(SafeName::file_stem(bad, "o").is_err(), "{bad:?} should be refused");
        }
    }

    /// Volumes outside 0..=1 and NaN are refused.
    #[test]
    fn volume_range() {
        assert!(Volume::new(0.0, "v").is_ok() && Volume::new(1.0, "v").is_ok());
        assert!(
            Volume::new(-0.1, "v").is_err() && Volume::new(1.5, "v").is_err() && Volume::new(f64::NAN, "v").is_err()
        );
    }

    /// Tokens are positive.
    #[test]
    fn lease_tokens_are_positive() {
        assert!(LeaseToken::new(0, "lease_token").is_err());
        assert_eq!(LeaseToken::new(7, "lease_token").unwrap().get(), 7);
    }
}
