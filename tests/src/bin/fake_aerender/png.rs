//! A minimal PNG encoder: 8-bit RGB, one IDAT made of stored (uncompressed) deflate blocks.
//!
//! Enough to produce files any decoder accepts (signature, IHDR, tEXt, uncompressed iTXt, IDAT,
//! IEND, CRC-32 per chunk, zlib header and Adler-32), without a compression dependency.

const SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
const MAX_STORED_BLOCK: usize = 65_535;

/// CRC-32 (ISO-HDLC, as used by PNG and zip) of `bytes`.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFF_u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

/// Adler-32 checksum of `bytes`, as required at the end of a zlib stream.
pub fn adler32(bytes: &[u8]) -> u32 {
    const MOD_ADLER: u32 = 65_521;
    let (mut low, mut high) = (1_u32, 0_u32);
    for chunk in bytes.chunks(5_552) {
        for &byte in chunk {
            low += u32::from(byte);
            high += low;
        }
        low %= MOD_ADLER;
        high %= MOD_ADLER;
    }
    (high << 16) | low
}

/// Wraps `data` in a zlib stream made only of stored deflate blocks.
pub fn zlib_stored(data: &[u8]) -> Vec<u8> {
    let num_blocks = data.len().div_ceil(MAX_STORED_BLOCK).max(1);
    let mut out = Vec::with_capacity(data.len() + num_blocks * 5 + 6);
    out.extend_from_slice(&[0x78, 0x01]);
    let mut blocks = data.chunks(MAX_STORED_BLOCK).peekable();
    if blocks.peek().is_none() {
        out.extend_from_slice(&[0x01, 0x00, 0x00, 0xFF, 0xFF]);
    }
    while let Some(block) = blocks.next() {
        let is_final = blocks.peek().is_none();
        out.push(u8::from(is_final));
        let len = u16::try_from(block.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(block);
    }
    out.extend_from_slice(&adler32(data).to_be_bytes());
    out
}

fn push_chunk(out: &mut Vec<u8>, kind: &[u8; 4], payload: &[u8]) {
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    let crc_start = out.len();
    out.extend_from_slice(kind);
    out.extend_from_slice(payload);
    let crc = crc32(&out[crc_start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

/// An `iTXt` payload: keyword, no compression, no language, no translated keyword, UTF-8 text.
/// The keyword is written as given (PNG allows 1..79 Latin-1 bytes; callers keep to that).
fn international_text(keyword: &str, text: &str) -> Vec<u8> {
    let mut payload = Vec::with_capacity(keyword.len() + text.len() + 5);
    payload.extend_from_slice(keyword.as_bytes());
    payload.extend_from_slice(&[0, 0, 0, 0, 0]); // end of keyword, flag, method, language, translation
    payload.extend_from_slice(text.as_bytes());
    payload
}

/// Encodes a `width` x `height` RGB image whose pixels come from `pixel(x, y)`, with a `Comment`
/// text chunk and one uncompressed `iTXt` chunk per `(keyword, text)` after it, so any Unicode
/// text survives.
pub fn encode_rgb(
    width: u32,
    height: u32,
    comment: &str,
    texts: &[(String, String)],
    pixel: impl Fn(u32, u32) -> [u8; 3],
) -> Vec<u8> {
    let row_len = width as usize * 3 + 1;
    let mut raw = Vec::with_capacity(row_len * height as usize);
    for y in 0..height {
        raw.push(0); // filter type None
        for x in 0..width {
            raw.extend_from_slice(&pixel(x, y));
        }
    }
    let mut ihdr = Vec::with_capacity(13);
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // depth 8, colour type RGB, deflate, adaptive, no interlace
    let mut text = b"Comment\0".to_vec();
    text.extend_from_slice(comment.as_bytes());

    let mut out = SIGNATURE.to_vec();
    push_chunk(&mut out, b"IHDR", &ihdr);
    push_chunk(&mut out, b"tEXt", &text);
    for (keyword, value) in texts {
        push_chunk(&mut out, b"iTXt", &international_text(keyword, value));
    }
    push_chunk(&mut out, b"IDAT", &zlib_stored(&raw));
    push_chunk(&mut out, b"IEND", &[]);
    out
}

/// The test card for comp frame `frame_number`: a gradient whose hue moves with the frame.
pub fn frame_image(width: u32, height: u32, comp_name: &str, frame_number: i64) -> Vec<u8> {
    frame_card(width, height, comp_name, frame_number, None, &[])
}

/// The test card, or one `fill` colour everywhere, with `texts` as `iTXt` chunks.
pub fn frame_card(
    width: u32,
    height: u32,
    comp_name: &str,
    frame_number: i64,
    fill: Option<[u8; 3]>,
    texts: &[(String, String)],
) -> Vec<u8> {
    let shift = u32::try_from(frame_number.rem_euclid(256)).unwrap_or(0);
    let comment = format!("fake-aerender comp={comp_name} frame={frame_number}");
    encode_rgb(width, height, &comment, texts, |x, y| {
        if let Some(colour) = fill {
            return colour;
        }
        let red = (x * 255 / width.max(1) + shift) % 256;
        let green = (y * 255 / height.max(1)) % 256;
        let blue = (shift * 7) % 256;
        [red as u8, green as u8, blue as u8]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inflate_stored(zlib: &[u8]) -> Vec<u8> {
        assert_eq!(zlib[0] & 0x0F, 8, "deflate method");
        assert_eq!(
            (u16::from(zlib[0]) << 8 | u16::from(zlib[1])) % 31,
            0,
            "zlib header check"
        );
        let mut pos = 2;
        let mut out = Vec::new();
        loop {
            let header = zlib[pos];
            assert_eq!(header & 0b110, 0, "stored block");
            let len = u16::from_le_bytes([zlib[pos + 1], zlib[pos + 2]]);
            let nlen = u16::from_le_bytes([zlib[pos + 3], zlib[pos + 4]]);
            assert_eq!(len, !nlen);
            out.extend_from_slice(&zlib[pos + 5..pos + 5 + len as usize]);
            pos += 5 + len as usize;
            if header & 1 == 1 {
                break;
            }
        }
        let adler = u32::from_be_bytes(zlib[pos..pos + 4].try_into().unwrap());
        assert_eq!(adler, adler32(&out));
        out
    }

    /// The CRC-32 matches the published check value for "123456789".
    #[test]
    fn crc32_matches_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    /// Adler-32 matches the value from RFC 1950's reference implementation for "Wikipedia".
    #[test]
    fn adler32_matches_known_value() {
        assert_eq!(adler32(b"Wikipedia"), 0x11E6_0398);
    }

    /// Data larger than one stored block survives the round trip through several blocks.
    #[test]
    fn zlib_stored_splits_large_data_into_blocks() {
        let data: Vec<u8> = (0..200_000_u32).map(|i| (i % 251) as u8).collect();
        assert_eq!(inflate_stored(&zlib_stored(&data)), data);
        assert!(inflate_stored(&zlib_stored(&[])).is_empty());
    }

    /// Frames without a script keep their exact bytes (the agent's checks and e2e tests see them);
    /// the values pin the encoder's output before `iTXt` support existed.
    #[test]
    fn plain_frames_keep_their_bytes() {
        for (width, height, comp, frame, len, crc) in [
            (64, 36, "Main", 0, 7_067, 0x5031_66B1_u32),
            (7, 3, "Intro \u{fc}", -5, 190, 0xAF60_5715),
        ] {
            let png = frame_image(width, height, comp, frame);
            assert_eq!((png.len(), crc32(&png)), (len, crc), "{comp} {frame}");
        }
    }

    /// `iTXt` chunks carry UTF-8 text after the comment; the other chunks stay as they were.
    #[test]
    fn international_text_chunks_follow_the_comment() {
        let texts = [("field:title".to_owned(), "Grüße \u{2028} \"x\"".to_owned())];
        let pixel = |_, _| [1, 2, 3];
        let plain = encode_rgb(2, 2, "c", &[], pixel);
        let png = encode_rgb(2, 2, "c", &texts, pixel);
        let text_end = 8 + 25 + 12 + b"Comment\0c".len();
        let length = u32::from_be_bytes(png[text_end..text_end + 4].try_into().unwrap()) as usize;
        assert_eq!(&png[text_end + 4..text_end + 8], b"iTXt");
        let payload = &png[text_end + 8..text_end + 8 + length];
        let mut expected = b"field:title\0\0\0\0\0".to_vec();
        expected.extend_from_slice("Grüße \u{2028} \"x\"".as_bytes());
        assert_eq!(payload, expected.as_slice());
        let crc = u32::from_be_bytes(png[text_end + 8 + length..text_end + 12 + length].try_into().unwrap());
        assert_eq!(crc, crc32(&png[text_end + 4..text_end + 8 + length]));
        assert_eq!(&png[text_end + 12 + length..], &plain[text_end..]);
    }

    /// An encoded frame has the PNG signature, a correct IHDR and valid CRCs on every chunk.
    #[test]
    fn encoded_frame_is_a_well_formed_png() {
        let png = frame_image(7, 3, "Main", 12);
        assert_eq!(png[..8], SIGNATURE);
        let mut pos = 8;
        let mut kinds = Vec::new();
        let mut idat = Vec::new();
        while pos < png.len() {
            let len = u32::from_be_bytes(png[pos..pos + 4].try_into().unwrap()) as usize;
            let kind = &png[pos + 4..pos + 8];
            let payload = &png[pos + 8..pos + 8 + len];
            let crc = u32::from_be_bytes(png[pos + 8 + len..pos + 12 + len].try_into().unwrap());
            assert_eq!(crc, crc32(&png[pos + 4..pos + 8 + len]));
            if kind == b"IHDR" {
                assert_eq!(&payload[..8], &[0, 0, 0, 7, 0, 0, 0, 3]);
            }
            if kind == b"IDAT" {
                idat.extend_from_slice(payload);
            }
            kinds.push(String::from_utf8_lossy(kind).into_owned());
            pos += 12 + len;
        }
        assert_eq!(kinds, ["IHDR", "tEXt", "IDAT", "IEND"]);
        assert_eq!(inflate_stored(&idat).len(), (7 * 3 + 1) * 3);
    }
}
