//! Reading the PNG frames the aerender double writes: structure checked (signature, chunk CRCs,
//! IHDR, IEND), UTF-8 `iTXt` texts and RGB pixels decoded. The double writes 8-bit RGB with
//! stored deflate blocks and filter 0, which is all this reads.

use std::path::Path;

/// A decoded frame: size, `iTXt` texts in order, RGB pixels row by row.
#[derive(Debug)]
pub struct Frame {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// (keyword, text) of every `iTXt` chunk.
    pub texts: Vec<(String, String)>,
    /// Pixels, row-major.
    pub pixels: Vec<[u8; 3]>,
}

impl Frame {
    /// The text of the first `iTXt` chunk named `keyword`.
    pub fn text(&self, keyword: &str) -> Option<&str> {
        self.texts
            .iter()
            .find(|(name, _)| name == keyword)
            .map(|(_, text)| text.as_str())
    }
}

/// CRC-32 (ISO-HDLC) as PNG chunks carry it.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFF_u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xEDB8_8320 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

fn be_u32(bytes: &[u8], at: usize) -> Result<u32, String> {
    bytes
        .get(at..at + 4)
        .and_then(|slice| slice.try_into().ok())
        .map(u32::from_be_bytes)
        .ok_or_else(|| format!("truncated at byte {at}"))
}

/// Checks signature, chunk CRCs, an 8-bit RGB IHDR and IEND with nothing after; returns the size.
pub fn check_png(path: &Path) -> Result<(u32, u32), String> {
    let bytes = std::fs::read(path).map_err(|error| error.to_string())?;
    chunks(&bytes).map(|(size, _)| size)
}

/// A chunk's kind and data.
type Chunk<'a> = ([u8; 4], &'a [u8]);

/// The chunks of a valid PNG after its signature, and its size.
fn chunks(bytes: &[u8]) -> Result<((u32, u32), Vec<Chunk<'_>>), String> {
    if bytes.len() < 8 || bytes[..8] != [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A] {
        return Err("bad signature".into());
    }
    let (mut position, mut size, mut saw_end, mut found) = (8, None, false, Vec::new());
    while position + 12 <= bytes.len() {
        let length = be_u32(bytes, position)? as usize;
        let end = position + 12 + length;
        if end > bytes.len() {
            return Err("truncated chunk".into());
        }
        if crc32(&bytes[position + 4..end - 4]) != be_u32(bytes, end - 4)? {
            return Err("bad crc".into());
        }
        let kind: [u8; 4] = bytes[position + 4..position + 8].try_into().map_err(|_| "chunk kind")?;
        let data = &bytes[position + 8..end - 4];
        if &kind == b"IHDR" {
            if data.len() < 13 || data[8] != 8 || data[9] != 2 {
                return Err("not 8-bit RGB".into());
            }
            size = Some((be_u32(data, 0)?, be_u32(data, 4)?));
        }
        saw_end |= &kind == b"IEND";
        found.push((kind, data));
        position = end;
    }
    match (size, saw_end, position == bytes.len()) {
        (Some(size), true, true) => Ok((size, found)),
        _ => Err("missing IHDR/IEND or trailing bytes".into()),
    }
}

/// Reads and decodes a frame the double wrote.
pub fn read_frame(path: &Path) -> Result<Frame, String> {
    let bytes = std::fs::read(path).map_err(|error| format!("{}: {error}", path.display()))?;
    let ((width, height), chunks) = chunks(&bytes)?;
    let (mut texts, mut idat) = (Vec::new(), Vec::new());
    for (kind, data) in chunks {
        match &kind {
            b"iTXt" => {
                let keyword_end = data.iter().position(|byte| *byte == 0).ok_or("iTXt without keyword")?;
                // Compression flag, method, empty language tag, empty translated keyword.
                if data.get(keyword_end..keyword_end + 5) != Some(&[0, 0, 0, 0, 0]) {
                    return Err("iTXt is compressed or carries a language".into());
                }
                let text = |slice: &[u8]| String::from_utf8(slice.to_vec()).map_err(|error| error.to_string());
                texts.push((text(&data[..keyword_end])?, text(&data[keyword_end + 5..])?));
            }
            b"IDAT" => idat.extend_from_slice(data),
            _ => {}
        }
    }
    let (mut at, mut raw) = (2, Vec::new());
    loop {
        let header = *idat.get(at).ok_or("IDAT ends early")?;
        if header & 0b110 != 0 {
            return Err("not a stored deflate block".into());
        }
        let length = usize::from(u16::from_le_bytes([idat[at + 1], idat[at + 2]]));
        raw.extend_from_slice(idat.get(at + 5..at + 5 + length).ok_or("stored block overruns IDAT")?);
        at += 5 + length;
        if header & 1 == 1 {
            break;
        }
    }
    let row = width as usize * 3 + 1;
    if raw.len() != row * height as usize {
        return Err(format!("{} bytes of pixel data for {width}x{height}", raw.len()));
    }
    let pixels = raw
        .chunks(row)
        .flat_map(|line| line[1..].chunks(3).map(|pixel| [pixel[0], pixel[1], pixel[2]]))
        .collect();
    Ok(Frame {
        width,
        height,
        texts,
        pixels,
    })
}
