//! The mix, measured: each track is its own sine tone (music 220 Hz, sfx 1 kHz, voiceover 3 kHz,
//! each at -18 dBFS in its file), encoded into MOV (PCM, so levels are not blurred by a lossy
//! codec) over three seconds of video, decoded again and measured per tone in windows of whole
//! tenths of a second.

use flatrender_node_agent::encode::Container;
use flatrender_proto::content::{Music, SoundEffect, Voiceover, VoiceoverSource};

use super::*;

/// The level of the test tones in their files: a sine of amplitude 1/8.
const TONE_DB: f64 = -18.06;
/// Below this a tone is absent (the 16-bit noise floor is far lower).
const SILENT_DB: f64 = -70.0;
const MUSIC_HZ: f64 = 220.0;
const SFX_HZ: f64 = 1000.0;
const VOICE_HZ: f64 = 3000.0;

/// Three seconds of video (one 75-frame scene).
fn three_seconds(scratch: &Scratch) -> Vec<SceneFrames> {
    vec![scratch.scene("main", "gray", "64x36", 0, 75, 75)]
}

fn music(asset: &Asset, start_ms: u32, looped: bool, gain: f64) -> Music {
    Music {
        file: asset.clone(),
        start_ms,
        fade_in_ms: 0,
        fade_out_ms: 0,
        looped,
        volume: volume(gain),
    }
}

fn voiceover(asset: &Asset, duck_music: bool) -> Voiceover {
    Voiceover {
        file: asset.clone(),
        source: VoiceoverSource::Upload,
        start_ms: 1000,
        duration_ms: Some(1000),
        volume: volume(1.0),
        duck_music,
    }
}

/// Encodes three seconds with `audio` into MOV and returns the decoded samples.
async fn mixed(scratch: &Scratch, audio: &ProjectAudio, files: &[(Asset, PathBuf)], name: &str) -> Vec<f32> {
    let file_name = format!("{name}.mov");
    let spec = spec_with(
        scratch,
        three_seconds(scratch),
        Container::Mov,
        &file_name,
        Some((audio, files)),
    );
    let (result, _) = run_encode(&spec, &tag(name)).await;
    let video = result.unwrap();
    let samples = decode_audio(&video.path);
    assert_eq!(
        samples.len(),
        3 * 48_000 * 2,
        "the audio is exactly as long as the video"
    );
    samples
}

fn assert_near(actual: f64, expected: f64, tolerance: f64, what: &str) {
    assert!(
        (actual - expected).abs() <= tolerance,
        "{what}: {actual:.2} dB, expected {expected:.2} ± {tolerance} dB"
    );
}

/// Music at volume 0.5 is 6 dB below the same music at 1.0 (amix does not renormalise).
#[tokio::test]
async fn music_at_half_volume_is_six_db_lower() {
    let scratch = Scratch::new();
    let tone = scratch.tone(1, "music.wav", 220, 3.0);
    let mut levels = Vec::new();
    for gain in [1.0, 0.5] {
        let mut audio = no_audio();
        audio.music = Some(music(&tone.0, 0, false, gain));
        let samples = mixed(&scratch, &audio, std::slice::from_ref(&tone), &format!("music-{gain}")).await;
        levels.push(tone_db(&samples, MUSIC_HZ, 0.5, 2.5));
    }
    assert_near(levels[0], TONE_DB, 0.5, "music at 1.0");
    assert_near(levels[0] - levels[1], 6.02, 1.0, "music at 1.0 minus music at 0.5");
}

/// Music starts at its offset; looped, a one-second file plays on to the end; not looped, it
/// stops when the file ends.
#[tokio::test]
async fn music_starts_at_its_offset_and_loops_or_stops() {
    let scratch = Scratch::new();
    let tone = scratch.tone(1, "music.mp3", 220, 1.0);
    for looped in [true, false] {
        let mut audio = no_audio();
        audio.music = Some(music(&tone.0, 500, looped, 1.0));
        let samples = mixed(&scratch, &audio, std::slice::from_ref(&tone), &format!("loop-{looped}")).await;
        assert!(
            tone_db(&samples, MUSIC_HZ, 0.0, 0.4) < SILENT_DB,
            "music before its start"
        );
        assert_near(
            tone_db(&samples, MUSIC_HZ, 0.6, 1.4),
            TONE_DB,
            1.0,
            "music after its start",
        );
        let late = tone_db(&samples, MUSIC_HZ, 1.7, 2.9);
        if looped {
            assert_near(late, TONE_DB, 1.0, "looped music after the file's end");
        } else {
            assert!(late < SILENT_DB, "music after the file's end: {late:.1} dB");
        }
    }
}

/// Fades: in from the music's start, out so that it ends at the video's end (linear: a tenth of a
/// second at each end is about 20 dB down, the middle of a one-second fade about 6 dB).
#[tokio::test]
async fn music_fades_in_and_out_at_the_video_end() {
    let scratch = Scratch::new();
    let tone = scratch.tone(1, "music.wav", 220, 5.0);
    let mut audio = no_audio();
    let mut faded = music(&tone.0, 0, false, 1.0);
    faded.fade_in_ms = 1000;
    faded.fade_out_ms = 1000;
    audio.music = Some(faded);
    let samples = mixed(&scratch, &audio, std::slice::from_ref(&tone), "fades").await;
    let full = tone_db(&samples, MUSIC_HZ, 1.4, 1.6);
    assert_near(full, TONE_DB, 0.5, "between the fades");
    assert!(
        tone_db(&samples, MUSIC_HZ, 0.0, 0.1) < full - 20.0,
        "start of the fade-in"
    );
    assert_near(
        tone_db(&samples, MUSIC_HZ, 0.4, 0.6),
        full - 6.02,
        1.0,
        "middle of the fade-in",
    );
    assert_near(
        tone_db(&samples, MUSIC_HZ, 2.4, 2.6),
        full - 6.02,
        1.0,
        "middle of the fade-out",
    );
    assert!(
        tone_db(&samples, MUSIC_HZ, 2.9, 3.0) < full - 20.0,
        "end of the fade-out"
    );
}

/// Each sfx cue plays at its time, silent before and after, at cue volume × master volume: cues
/// at 1.0 and 0.5 under a master of 0.5 are 6 and 12 dB below the file.
#[tokio::test]
async fn sfx_cues_play_at_their_time_and_volume() {
    let scratch = Scratch::new();
    let cue_file = scratch.tone(2, "cue.wav", 1000, 0.3);
    let cue = |start_ms, gain| SoundEffect {
        file: cue_file.0.clone(),
        start_ms,
        volume: volume(gain),
        label: None,
    };
    let mut audio = no_audio();
    audio.sfx = vec![cue(500, 1.0), cue(1500, 0.5)];
    audio.sfx_volume = volume(0.5);
    let samples = mixed(&scratch, &audio, std::slice::from_ref(&cue_file), "sfx").await;
    assert!(tone_db(&samples, SFX_HZ, 0.0, 0.5) < SILENT_DB, "before the first cue");
    assert_near(tone_db(&samples, SFX_HZ, 0.55, 0.75), TONE_DB - 6.02, 1.0, "first cue");
    assert!(tone_db(&samples, SFX_HZ, 0.8, 1.5) < SILENT_DB, "between the cues");
    assert_near(
        tone_db(&samples, SFX_HZ, 1.55, 1.75),
        TONE_DB - 12.04,
        1.0,
        "second cue",
    );
    assert!(tone_db(&samples, SFX_HZ, 1.8, 3.0) < SILENT_DB, "after the cues");
}

/// The voiceover is heard only when the project has one: from its start, for its duration, and
/// not before or after; without it, nothing at its frequency. Its file is mono (Opus, as browsers
/// record): on each channel it is 3 dB below the file (the equal-power rule).
#[tokio::test]
async fn voiceover_only_when_given_and_cut_to_its_duration() {
    let scratch = Scratch::new();
    let music_tone = scratch.tone(1, "music.wav", 220, 3.0);
    // Browsers record mono: it plays on both channels at -3 dB each.
    let voice = scratch.mono_tone(3, "voice.opus", 3000, 3.0);
    let files = [music_tone.clone(), voice.clone()];
    let mut audio = no_audio();
    audio.music = Some(music(&music_tone.0, 0, true, 1.0));
    let without = mixed(&scratch, &audio, &files, "no-voice").await;
    assert!(
        tone_db(&without, VOICE_HZ, 0.0, 3.0) < SILENT_DB,
        "a voice without a voiceover"
    );
    assert_near(tone_db(&without, MUSIC_HZ, 0.0, 3.0), TONE_DB, 0.5, "the music");

    audio.voiceover = Some(voiceover(&voice.0, false));
    let with = mixed(&scratch, &audio, &files, "voice").await;
    assert!(tone_db(&with, VOICE_HZ, 0.0, 0.9) < SILENT_DB, "voice before its start");
    assert_near(tone_db(&with, VOICE_HZ, 1.1, 1.9), TONE_DB - 3.01, 1.0, "mono voice");
    assert!(
        tone_db(&with, VOICE_HZ, 2.1, 3.0) < SILENT_DB,
        "voice after its duration"
    );
}

/// With `duck_music`, the music is lowered while the voiceover speaks (by more than 6 dB) and
/// untouched before it; without, the music keeps its level throughout.
#[tokio::test]
async fn ducking_lowers_the_music_under_the_voiceover() {
    let scratch = Scratch::new();
    let music_tone = scratch.tone(1, "music.wav", 220, 3.0);
    let voice = scratch.tone(3, "voice.wav", 3000, 3.0);
    let files = [music_tone.clone(), voice.clone()];
    let mut levels = Vec::new();
    for duck in [false, true] {
        let mut audio = no_audio();
        audio.music = Some(music(&music_tone.0, 0, true, 1.0));
        audio.voiceover = Some(voiceover(&voice.0, duck));
        let samples = mixed(&scratch, &audio, &files, &format!("duck-{duck}")).await;
        assert_near(tone_db(&samples, VOICE_HZ, 1.1, 1.9), TONE_DB, 0.5, "the voice itself");
        levels.push((
            tone_db(&samples, MUSIC_HZ, 0.2, 0.8),
            tone_db(&samples, MUSIC_HZ, 1.3, 1.9),
        ));
    }
    let (plain, ducked) = (levels[0], levels[1]);
    assert_near(plain.0, TONE_DB, 0.5, "music before the voice, no ducking");
    assert_near(plain.1, TONE_DB, 0.5, "music under the voice, no ducking");
    assert_near(ducked.0, plain.0, 0.5, "music before the voice, ducking");
    assert!(
        ducked.1 < plain.1 - 6.0,
        "music under the voice: {:.1} dB ducked, {:.1} dB not",
        ducked.1,
        plain.1
    );
}
