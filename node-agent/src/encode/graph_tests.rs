//! Unit tests of the filter graph: the exact chains for video and audio, numbers in samples, and
//! no file name anywhere in the graph.

use std::collections::HashMap;
use std::path::PathBuf;

use flatrender_proto::content::{Music, ProjectAudio, Resolution, SoundEffect, Voiceover, VoiceoverSource};
use flatrender_proto::types::ContentHash;

use super::*;
use crate::encode::command::audio_inputs;
use crate::encode::test_support::{asset, scene, volume};

/// Three seconds (two scenes of 1.5 s at 25 fps) at 720p.
fn spec(container: Container) -> EncodeSpec {
    EncodeSpec::new(
        vec![scene("/r/j/scene-000", 0, 38), scene("/r/j/scene-001", 10, 37)],
        25.0,
        Resolution::P720,
        container,
        PathBuf::from("/e/out.mp4"),
    )
    .unwrap()
}

fn music(looped: bool) -> Music {
    Music {
        file: asset(1, "music.mp3"),
        start_ms: 500,
        fade_in_ms: 1000,
        fade_out_ms: 250,
        looped,
        volume: volume(0.5),
    }
}

fn voiceover(duck_music: bool) -> Voiceover {
    Voiceover {
        file: asset(3, "voice.ogg"),
        source: VoiceoverSource::Recording,
        start_ms: 1000,
        duration_ms: Some(1200),
        volume: volume(0.9),
        duck_music,
    }
}

fn cue(start_ms: u32, cue_volume: f64) -> SoundEffect {
    SoundEffect {
        file: asset(2, "whoosh.wav"),
        start_ms,
        volume: volume(cue_volume),
        label: Some("whoosh".to_owned()),
    }
}

fn files() -> HashMap<ContentHash, PathBuf> {
    HashMap::from([
        (ContentHash::from_bytes([1; 32]), PathBuf::from("/c/music;[x]'.mp3")),
        (ContentHash::from_bytes([2; 32]), PathBuf::from("/c/whoosh.wav")),
        (ContentHash::from_bytes([3; 32]), PathBuf::from("/c/voice.ogg")),
    ])
}

fn graph_of(spec: &EncodeSpec) -> Vec<String> {
    filter_graph(spec, &audio_inputs(spec))
        .split(';')
        .map(str::to_owned)
        .collect()
}

/// Each scene is cut to its frame count, fitted (converted with BT.709 to yuv420p in the same
/// scaler; MOV to 10-bit 4:2:2) and padded; scenes are concatenated in play order. Without audio tracks, the
/// audio is a silent bed exactly as long as the video (3 s = 144000 samples).
#[test]
fn video_chains_and_a_silent_bed() {
    let chains = graph_of(&spec(Container::Mp4));
    assert_eq!(
        chains,
        vec![
            "[0:v]trim=end_frame=38,setpts=PTS-STARTPTS,\
             scale=w=1280:h=720:force_original_aspect_ratio=decrease:force_divisible_by=2\
             :out_color_matrix=bt709:out_range=tv,format=yuv420p,\
             pad=w=1280:h=720:x=(ow-iw)/2:y=(oh-ih)/2:color=black,setsar=1[scene0]",
            "[1:v]trim=end_frame=37,setpts=PTS-STARTPTS,\
             scale=w=1280:h=720:force_original_aspect_ratio=decrease:force_divisible_by=2\
             :out_color_matrix=bt709:out_range=tv,format=yuv420p,\
             pad=w=1280:h=720:x=(ow-iw)/2:y=(oh-ih)/2:color=black,setsar=1[scene1]",
            "[scene0][scene1]concat=n=2:v=1:a=0[video]",
            "anullsrc=r=48000:cl=stereo,atrim=end_sample=144000[audio]",
        ]
    );
    let mov = graph_of(&spec(Container::Mov));
    assert!(mov[0].contains(":out_color_matrix=bt709:out_range=tv,format=yuv422p10le,pad="));
}

/// A GIF's palette comes from its own frames in the same graph; it has no audio chains, and a
/// 60 fps composition is sampled to 50 fps first.
#[test]
fn gif_palette_in_one_graph() {
    let chains = graph_of(&spec(Container::Gif));
    assert!(
        chains[0].contains("force_divisible_by=2,pad="),
        "a GIF is scaled in RGB: {}",
        chains[0]
    );
    assert_eq!(chains[2], "[scene0][scene1]concat=n=2:v=1:a=0[frames]");
    assert_eq!(
        chains[3..],
        [
            "[frames]split[gif_analysed][gif_frames]",
            "[gif_analysed]palettegen[gif_palette]",
            "[gif_frames][gif_palette]paletteuse[video]",
        ]
    );
    let fast = EncodeSpec::new(
        vec![scene("/r/j/scene-000", 0, 120)],
        60.0,
        Resolution::P480,
        Container::Gif,
        PathBuf::from("/e/out.gif"),
    )
    .unwrap();
    assert_eq!(graph_of(&fast)[2], "[frames]fps=50,split[gif_analysed][gif_frames]");
    assert!(!filter_graph(&fast, &[]).contains("anullsrc"));
}

/// The full mix: looped music from 0.5 s (24000 samples) cut to the 2.5 s left, faded in over
/// 1 s and out over the last 0.25 s, at 0.5; the voiceover cut to 1.2 s at 0.9 from 1 s, ducking
/// the music through sidechaincompress keyed by the padded voice; two cues of one file (one
/// decoder, split) at cue × master volume; all summed without normalisation over the bed and cut
/// to the video's length.
#[test]
fn full_mix() {
    let audio = ProjectAudio {
        music: Some(music(true)),
        sfx: vec![cue(0, 0.5), cue(2000, 1.0)],
        sfx_volume: volume(0.8),
        voiceover: Some(voiceover(true)),
    };
    let spec = spec(Container::Mp4).with_audio(&audio, &files()).unwrap();
    let chains = graph_of(&spec);
    assert_eq!(
        chains[3..],
        [
            "anullsrc=r=48000:cl=stereo,atrim=end_sample=144000[bed]",
            "[2:a]aresample=48000,aformat=sample_fmts=fltp:channel_layouts=stereo[in2_0]",
            "[3:a]aresample=48000,aformat=sample_fmts=fltp:channel_layouts=stereo[in3_0]",
            "[4:a]aresample=48000,aformat=sample_fmts=fltp:channel_layouts=stereo,asplit=2[in4_0][in4_1]",
            "[in2_0]atrim=end_sample=120000,asetpts=PTS-STARTPTS,\
             afade=type=in:start_sample=0:nb_samples=48000,\
             afade=type=out:start_sample=108000:nb_samples=12000,\
             volume=0.500000,adelay=delays=24000S:all=1[music]",
            "[in3_0]atrim=end_sample=57600,asetpts=PTS-STARTPTS,volume=0.900000,adelay=delays=48000S:all=1[voice]",
            "[voice]asplit=2[voice_mixed][voice_key]",
            "[voice_key]apad[voice_key_padded]",
            "[music][voice_key_padded]sidechaincompress=threshold=0.0178:ratio=5:attack=20:release=400:makeup=1[music_ducked]",
            "[in4_0]atrim=end_sample=144000,asetpts=PTS-STARTPTS,volume=0.400000[sfx0]",
            "[in4_1]atrim=end_sample=48000,asetpts=PTS-STARTPTS,volume=0.800000,adelay=delays=96000S:all=1[sfx1]",
            "[bed][voice_mixed][music_ducked][sfx0][sfx1]amix=inputs=5:duration=first:dropout_transition=0:\
             normalize=0,atrim=end_sample=144000[audio]",
        ]
    );
    let graph = filter_graph(&spec, &audio_inputs(&spec));
    assert!(!graph.contains("/c/"), "a path leaked into the graph: {graph}");
}

/// Without `duck_music` (or without music) nothing is compressed and the voice is mixed as is; a
/// voiceover without a duration plays to the video's end.
#[test]
fn no_ducking_unless_asked_and_possible() {
    let audio = ProjectAudio {
        music: Some(music(false)),
        sfx: vec![],
        sfx_volume: volume(1.0),
        voiceover: Some(voiceover(false)),
    };
    let chains = graph_of(&spec(Container::Webm).with_audio(&audio, &files()).unwrap());
    assert!(chains.iter().all(|chain| !chain.contains("sidechaincompress")));
    assert_eq!(
        chains.last().unwrap(),
        "[bed][voice][music]amix=inputs=3:duration=first:dropout_transition=0:normalize=0,atrim=end_sample=144000[audio]"
    );

    let mut whole_voice = voiceover(true);
    whole_voice.duration_ms = None;
    let voice_only = ProjectAudio {
        music: None,
        sfx: vec![],
        sfx_volume: volume(1.0),
        voiceover: Some(whole_voice),
    };
    let chains = graph_of(&spec(Container::Mp4).with_audio(&voice_only, &files()).unwrap());
    assert!(chains.iter().all(|chain| !chain.contains("sidechaincompress")));
    assert!(
        chains.contains(
            &"[in2_0]atrim=end_sample=96000,asetpts=PTS-STARTPTS,volume=0.900000,adelay=delays=48000S:all=1[voice]"
                .to_owned()
        )
    );
}

/// Fades longer than the music's time are cut to it (the fade-out then starts where the music
/// does); a voiceover longer than the time left is cut at the video's end.
#[test]
fn lengths_are_clamped_to_the_video() {
    let mut long_fades = music(true);
    long_fades.start_ms = 2500;
    long_fades.fade_in_ms = 10_000;
    long_fades.fade_out_ms = 10_000;
    let mut long_voice = voiceover(false);
    long_voice.start_ms = 2900;
    long_voice.duration_ms = Some(60_000);
    let audio = ProjectAudio {
        music: Some(long_fades),
        sfx: vec![],
        sfx_volume: volume(1.0),
        voiceover: Some(long_voice),
    };
    let chains = graph_of(&spec(Container::Mov).with_audio(&audio, &files()).unwrap());
    assert!(
        chains.contains(
            &"[in2_0]atrim=end_sample=24000,asetpts=PTS-STARTPTS,afade=type=in:start_sample=0:nb_samples=24000,\
          afade=type=out:start_sample=0:nb_samples=24000,volume=0.500000,adelay=delays=120000S:all=1[music]"
                .to_owned()
        )
    );
    assert!(
        chains.contains(
            &"[in3_0]atrim=end_sample=4800,asetpts=PTS-STARTPTS,volume=0.900000,adelay=delays=139200S:all=1[voice]"
                .to_owned()
        )
    );
}
