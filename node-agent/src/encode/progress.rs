//! ffmpeg's `-progress` report, parsed: blocks of `key=value` lines, each ended by
//! `progress=continue` (or `progress=end`, the last). A block becomes an [`EncodeProgress`].

use std::time::Duration;

/// Where an encode is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EncodeProgress {
    /// Video frames encoded so far.
    pub frames_done: u64,
    /// Frames the encoded video will have.
    pub total_frames: u64,
    /// How much of the video has been written, once ffmpeg knows.
    pub out_time: Option<Duration>,
    /// ffmpeg's last report (`progress=end`): it is finalising the file.
    pub finished: bool,
}

/// Reads progress lines one at a time.
#[derive(Debug)]
pub struct ProgressParser {
    total_frames: u64,
    frame: Option<u64>,
    out_time: Option<Duration>,
}

impl ProgressParser {
    /// A parser for a video of `total_frames` frames.
    pub fn new(total_frames: u64) -> Self {
        Self {
            total_frames,
            frame: None,
            out_time: None,
        }
    }

    /// Feeds one line of ffmpeg's stdout; returns the report a `progress=` line completes.
    /// Unknown keys and malformed values are ignored (ffmpeg adds keys between versions, and
    /// writes `N/A` or a negative time before the first packet).
    pub fn feed(&mut self, line: &str) -> Option<EncodeProgress> {
        let (key, value) = line.trim().split_once('=')?;
        let value = value.trim();
        match key.trim() {
            "frame" => {
                if let Ok(frame) = value.parse() {
                    self.frame = Some(frame);
                }
            }
            "out_time_us" => {
                self.out_time = value
                    .parse::<i64>()
                    .ok()
                    .and_then(|micros| u64::try_from(micros).ok())
                    .map(Duration::from_micros);
            }
            "progress" => {
                return Some(EncodeProgress {
                    frames_done: self.frame.unwrap_or(0),
                    total_frames: self.total_frames,
                    out_time: self.out_time,
                    finished: value == "end",
                });
            }
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two blocks in ffmpeg 5.1's shape: the first before any packet (`N/A` time), the last
    /// ending with `progress=end`.
    #[test]
    fn blocks_become_reports() {
        let output = "frame=0\nfps=0.00\nstream_0_0_q=0.0\nbitrate=N/A\ntotal_size=0\nout_time_us=N/A\n\
                      out_time_ms=N/A\nout_time=N/A\ndup_frames=0\ndrop_frames=0\nspeed=N/A\nprogress=continue\n\
                      frame=75\nfps=0.00\nstream_0_0_q=-1.0\nbitrate= 129.5kbits/s\ntotal_size=48642\n\
                      out_time_us=3000000\nout_time_ms=3000000\nout_time=00:00:03.000000\ndup_frames=0\n\
                      drop_frames=0\nspeed=4.53x\nprogress=end\n";
        let mut parser = ProgressParser::new(75);
        let reports: Vec<_> = output.lines().filter_map(|line| parser.feed(line)).collect();
        assert_eq!(
            reports,
            vec![
                EncodeProgress {
                    frames_done: 0,
                    total_frames: 75,
                    out_time: None,
                    finished: false
                },
                EncodeProgress {
                    frames_done: 75,
                    total_frames: 75,
                    out_time: Some(Duration::from_secs(3)),
                    finished: true
                },
            ]
        );
    }

    /// A negative start time (before the first packet) is not a time; junk lines change nothing.
    #[test]
    fn junk_and_negative_times_are_ignored() {
        let mut parser = ProgressParser::new(10);
        for line in ["frame=3", "out_time_us=-12000", "no equals sign", "frame=abc", "=", ""] {
            assert_eq!(parser.feed(line), None);
        }
        let report = parser.feed("progress=continue").unwrap();
        assert_eq!(report.frames_done, 3);
        assert_eq!(report.out_time, None);
        assert!(!report.finished);
    }
}
