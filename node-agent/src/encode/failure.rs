//! Which input an ffmpeg error is about, read from its stderr lines, so a failed encode names the
//! track (`sfx[1]: does not decode: Invalid data found when processing input`) instead of quoting
//! ffmpeg. The shapes covered, by ffmpeg version:
//! * 5.x, 6.0: `<url>: <reason>` when an input cannot be opened, `<url>: corrupt decoded frame in
//!   stream 0`, `Error while decoding stream #<input>:<stream>: <reason>`;
//! * 6.1 and later: `[in#<input>/<format> @ 0x…] Error opening input: <reason>`,
//!   `Error opening input file <url>.`, and decoder messages from `[aist#<input>:<stream>/…]`
//!   or `[vist#<input>:<stream>/…]`.
//!
//! The first line that names an input wins: ffmpeg reports the cause first, then its
//! consequences.

use super::command::CommandInput;
use super::error::{EncodeError, Tracks};

/// Watches ffmpeg's stderr for the first line about one of its inputs.
#[derive(Debug)]
pub(crate) struct InputFailure<'a> {
    inputs: &'a [CommandInput],
    first: Option<(usize, String)>,
}

impl<'a> InputFailure<'a> {
    /// A watcher for a command with these inputs (input `i` is `inputs[i]`).
    pub fn new(inputs: &'a [CommandInput]) -> Self {
        Self { inputs, first: None }
    }

    /// Feeds one stderr line.
    pub fn feed(&mut self, line: &str) {
        if self.first.is_none() {
            self.first = attribute(line, self.inputs);
        }
    }

    /// Whether a line named an input.
    pub fn found(&self) -> bool {
        self.first.is_some()
    }

    /// The error naming the input's tracks, if a line named one.
    pub fn into_error(self) -> Option<EncodeError> {
        let (index, reason) = self.first?;
        let input = self.inputs.get(index)?;
        let decoding = !reason.contains("No such file") && !reason.contains("Permission denied");
        Some(EncodeError::Input {
            tracks: Tracks(input.tracks.clone()),
            reason: if decoding {
                format!("does not decode: {reason}")
            } else {
                format!("cannot be read: {reason}")
            },
        })
    }
}

/// The input a line is about and ffmpeg's reason, if it names one.
fn attribute(line: &str, inputs: &[CommandInput]) -> Option<(usize, String)> {
    let line = line.trim();
    // The longest URL first, so that `a.mp3` does not claim a line about `a.mp3.wav`.
    let mut by_length: Vec<(usize, &CommandInput)> = inputs.iter().enumerate().collect();
    by_length.sort_by_key(|(_, input)| std::cmp::Reverse(input.url.len()));
    for (index, input) in &by_length {
        if let Some(reason) = line
            .strip_prefix(input.url.as_str())
            .and_then(|rest| rest.strip_prefix(": "))
        {
            return Some((*index, reason.trim().to_owned()));
        }
        if let Some(rest) = line.strip_prefix("Error opening input file ")
            && rest.trim_end_matches('.') == input.url
        {
            return Some((*index, "cannot be opened".to_owned()));
        }
    }
    if let Some(rest) = line.split_once("Error while decoding stream #").map(|(_, rest)| rest) {
        let index = leading_number(rest)?;
        let reason = rest.split_once(": ").map_or("", |(_, reason)| reason).trim();
        return (index < inputs.len()).then(|| (index, reason.to_owned()));
    }
    // `[in#1/mp3 @ 0x…] Error opening input: …`, `[aist#2:0/mp3 @ 0x…] [dec:mp3float @ 0x…] …`.
    for marker in ["[in#", "[aist#", "[vist#", "[ist#"] {
        if let Some(rest) = line.strip_prefix(marker) {
            let index = leading_number(rest)?;
            let reason = message_after_prefixes(line);
            return (index < inputs.len()).then_some((index, reason));
        }
    }
    None
}

fn leading_number(text: &str) -> Option<usize> {
    let digits: String = text.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// The message after ffmpeg's `[context @ 0x…]` prefixes.
fn message_after_prefixes(line: &str) -> String {
    let mut rest = line;
    while let Some(after) = rest.strip_prefix('[').and_then(|inner| inner.split_once("] ")) {
        rest = after.1;
    }
    // `Error opening input: Invalid data found…`: the reason is after the last colon.
    rest.rsplit_once(": ")
        .map_or(rest, |(_, reason)| reason)
        .trim()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::error::Track;

    fn inputs() -> Vec<CommandInput> {
        vec![
            CommandInput {
                url: "file:/r/job/scene-000/out_%05d.png".to_owned(),
                tracks: vec![Track::SceneFrames(0)],
            },
            CommandInput {
                url: "file:/cache/music.mp3".to_owned(),
                tracks: vec![Track::Music],
            },
            CommandInput {
                url: "file:/cache/whoosh.wav".to_owned(),
                tracks: vec![Track::SoundEffect(0), Track::SoundEffect(2)],
            },
            CommandInput {
                url: "file:/cache/music.mp3.wav".to_owned(),
                tracks: vec![Track::Voiceover],
            },
        ]
    }

    fn error_of(lines: &[&str]) -> Option<String> {
        let inputs = inputs();
        let mut watcher = InputFailure::new(&inputs);
        for line in lines {
            watcher.feed(line);
        }
        watcher.into_error().map(|error| error.to_string())
    }

    /// ffmpeg 5.1: an input that cannot be opened is named by its URL, the longest match wins.
    #[test]
    fn open_failures_name_the_input_by_url() {
        assert_eq!(
            error_of(&["file:/cache/music.mp3: Invalid data found when processing input"]).as_deref(),
            Some("music: does not decode: Invalid data found when processing input")
        );
        assert_eq!(
            error_of(&["file:/cache/music.mp3.wav: No such file or directory"]).as_deref(),
            Some("voiceover: cannot be read: No such file or directory")
        );
        assert_eq!(
            error_of(&["file:/cache/whoosh.wav: corrupt decoded frame in stream 0"]).as_deref(),
            Some("sfx[0], sfx[2]: does not decode: corrupt decoded frame in stream 0")
        );
    }

    /// ffmpeg 5.1: decode errors name the input by index; the first attributable line wins.
    #[test]
    fn decode_errors_name_the_input_by_index() {
        assert_eq!(
            error_of(&[
                "[png @ 0x5581] Invalid PNG signature 0x00.",
                "Error while decoding stream #0:0: Invalid data found when processing input",
                "Error while decoding stream #1:0: Invalid data found when processing input",
            ])
            .as_deref(),
            Some("scene 0 frames: does not decode: Invalid data found when processing input")
        );
        assert_eq!(error_of(&["Error while decoding stream #9:0: Invalid data"]), None);
    }

    /// ffmpeg 6.1 and 7: `in#`/`aist#` prefixes and the `Error opening input file` line.
    #[test]
    fn newer_shapes_name_the_input() {
        assert_eq!(
            error_of(&[
                "[in#2/wav @ 0x55d0] Error opening input: Invalid data found when processing input",
                "Error opening input file file:/cache/whoosh.wav.",
            ])
            .as_deref(),
            Some("sfx[0], sfx[2]: does not decode: Invalid data found when processing input")
        );
        assert_eq!(
            error_of(&["Error opening input file file:/cache/music.mp3."]).as_deref(),
            Some("music: does not decode: cannot be opened")
        );
        assert_eq!(
            error_of(&[
                "[aist#1:0/mp3 @ 0x55d0] [dec:mp3float @ 0x55d1] Error submitting packet to decoder: Invalid data found when processing input"
            ])
            .as_deref(),
            Some("music: does not decode: Invalid data found when processing input")
        );
    }

    /// Lines about no input (the filter graph, the muxer) name nothing.
    #[test]
    fn other_lines_name_nothing() {
        assert_eq!(
            error_of(&[
                "[Parsed_amix_12 @ 0x55] Value 0 for parameter 'inputs' out of range",
                "Error initializing complex filters.",
                "Conversion failed!",
            ]),
            None
        );
    }
}
