//! Splits a child's byte stream into lines: `\n`, `\r\n` and a lone `\r` each end a line (also
//! when a `\r\n` pair is split across two reads), bytes are decoded as UTF-8 lossily so invalid
//! bytes become U+FFFD and never an error (docs/aerender.md §1, §8; Windows OEM code-page bytes
//! outside ASCII also end up as U+FFFD — the raw log keeps the original bytes).
//! A line longer than [`MAX_LINE_BYTES`] is cut there, so a stream without line ends cannot grow
//! memory without bound.

/// Longest line kept in one piece.
pub(crate) const MAX_LINE_BYTES: usize = 64 * 1024;

/// Incremental line splitter for one stream.
#[derive(Debug, Default)]
pub(crate) struct LineSplitter {
    pending: Vec<u8>,
    /// The previous byte was a `\r` that already ended a line: a following `\n` belongs to it.
    after_carriage_return: bool,
}

impl LineSplitter {
    /// Feeds `bytes`, appending every completed line to `lines`.
    pub(crate) fn push(&mut self, bytes: &[u8], lines: &mut Vec<String>) {
        for &byte in bytes {
            let swallow_newline = std::mem::take(&mut self.after_carriage_return) && byte == b'\n';
            match byte {
                _ if swallow_newline => {}
                b'\n' => lines.push(self.take_line()),
                b'\r' => {
                    lines.push(self.take_line());
                    self.after_carriage_return = true;
                }
                _ => {
                    self.pending.push(byte);
                    if self.pending.len() >= MAX_LINE_BYTES {
                        lines.push(self.take_line());
                    }
                }
            }
        }
    }

    /// The unterminated rest at end of stream, if any.
    pub(crate) fn finish(&mut self) -> Option<String> {
        self.after_carriage_return = false;
        (!self.pending.is_empty()).then(|| self.take_line())
    }

    fn take_line(&mut self) -> String {
        let line = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(chunks: &[&[u8]]) -> Vec<String> {
        let mut splitter = LineSplitter::default();
        let mut lines = Vec::new();
        for chunk in chunks {
            splitter.push(chunk, &mut lines);
        }
        lines.extend(splitter.finish());
        lines
    }

    /// LF, CRLF and lone CR all end lines; empty lines are kept.
    #[test]
    fn every_line_ending_splits() {
        assert_eq!(split(&[b"a\nb\r\nc\rd\n\n"]), ["a", "b", "c", "d", ""]);
        assert_eq!(split(&[b"x\r\ry\n"]), ["x", "", "y"]);
    }

    /// A CRLF pair split across two reads is one line ending, not two.
    #[test]
    fn crlf_across_reads_is_one_ending() {
        assert_eq!(split(&[b"first\r", b"\nsecond\r", b"", b"\n"]), ["first", "second"]);
    }

    /// Lines split across reads are joined; the unterminated tail is returned at the end.
    #[test]
    fn partial_lines_join_and_tail_is_flushed() {
        assert_eq!(split(&[b"PROG", b"RESS: 1\nTot", b"al"]), ["PROGRESS: 1", "Total"]);
    }

    /// Invalid UTF-8 becomes U+FFFD, also when a multi-byte character spans two reads.
    #[test]
    fn invalid_utf8_is_decoded_lossily() {
        assert_eq!(split(&[b"caf\xff\xfe\n"]), ["caf\u{fffd}\u{fffd}"]);
        assert_eq!(split(&[b"\xc3", b"\xa9t\xc3\xa9\n"]), ["\u{e9}t\u{e9}"]);
    }

    /// An endless line is cut at the limit instead of growing without bound.
    #[test]
    fn overlong_lines_are_cut() {
        let long = vec![b'a'; MAX_LINE_BYTES + 10];
        let lines = split(&[&long]);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].len(), MAX_LINE_BYTES);
        assert_eq!(lines[1].len(), 10);
    }
}
