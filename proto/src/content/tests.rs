//! Validation of scene content and audio: every refusal names its exact field.

use super::*;
use crate::pb::field_value::Value;

const HASH: &str = "aa00000000000000000000000000000000000000000000000000000000000001";

fn asset(url: &str) -> pb::Asset {
    pb::Asset {
        url: url.into(),
        blake3_hex: HASH.into(),
        size_bytes: 10,
        file_name: String::new(),
    }
}

fn field(key: &str, value: Value) -> pb::FieldValue {
    pb::FieldValue {
        key: key.into(),
        layer_name: "Title".into(),
        property: String::new(),
        value: Some(value),
    }
}

fn error(fields: Vec<pb::FieldValue>) -> String {
    fields_from_wire(&fields, "scenes[1]").unwrap_err().to_string()
}

/// Each kind converts to its domain value and back to the same wire value.
#[test]
fn every_kind_round_trips() {
    let wire = vec![
        field("headline", Value::Text("\"); app.quit(); //".into())),
        field("price", Value::Number(9.5)),
        field("badge", Value::Boolean(true)),
        field("brand", Value::Color("#ff8000".into())),
        field("plan", Value::Select("Pro".into())),
        field("logo", Value::Image(asset("https://cdn.example.com/u/logo.png?sig=1"))),
        field("clip", Value::Video(asset("https://cdn.example.com/clip.mp4"))),
        field("jingle", Value::Audio(asset("https://cdn.example.com/a/jingle.wav#t"))),
        field("hero", Value::Character("Char_Bob".into())),
    ];
    let fields = fields_from_wire(&wire, "scenes[0]").unwrap();
    let kinds: Vec<_> = fields.iter().map(|f| f.value.kind()).collect();
    assert_eq!(
        kinds,
        [
            "text",
            "number",
            "boolean",
            "color",
            "select",
            "image",
            "video",
            "audio",
            "character"
        ]
    );
    assert_eq!(
        fields[3].value,
        FieldValue::Color(Color {
            r: 255,
            g: 128,
            b: 0,
            a: 255
        })
    );
    assert_eq!(fields[5].value.asset().unwrap().file_name, "logo.png");
    assert_eq!(fields[7].value.asset().unwrap().file_name, "jingle.wav");
    let back: Vec<_> = fields.iter().map(Field::to_wire).collect();
    assert_eq!(back[0], wire[0]);
    assert_eq!(back[3].value, Some(Value::Color("#FF8000FF".into())));
    // What the control plane sends reads back to the same values on the node.
    assert_eq!(fields_from_wire(&back, "scene").unwrap(), fields);
}

/// The bad-input table: each case names its exact field.
#[test]
fn bad_fields_name_their_field() {
    let cases: Vec<(Vec<pb::FieldValue>, &str)> = vec![
        (
            vec![field("headline", Value::Color("#12345".into()))],
            "scenes[1].fields[\"headline\"].color:",
        ),
        (
            vec![field("headline", Value::Color("#GG0000".into()))],
            "scenes[1].fields[\"headline\"].color:",
        ),
        (vec![field("1bad", Value::Text("x".into()))], "scenes[1].fields[0].key:"),
        (
            vec![field("a", Value::Text("x".into())), field("a", Value::Text("y".into()))],
            "scenes[1].fields[\"a\"]: duplicate key",
        ),
        (
            vec![pb::FieldValue {
                value: None,
                ..field("a", Value::Text(String::new()))
            }],
            "scenes[1].fields[\"a\"].value: is required",
        ),
        (
            vec![field("n", Value::Number(f64::NAN))],
            "scenes[1].fields[\"n\"].number: must be finite",
        ),
        (
            vec![field("t", Value::Text("x".repeat(MAX_TEXT_CHARS + 1)))],
            "scenes[1].fields[\"t\"].text: must be at most",
        ),
        (
            vec![field("img", Value::Image(asset("ftp://cdn.example.com/logo.png")))],
            "scenes[1].fields[\"img\"].image.url:",
        ),
        (
            vec![field("img", Value::Image(asset("https://cdn.example.com/")))],
            "scenes[1].fields[\"img\"].image.file_name: is required",
        ),
        (
            vec![field(
                "img",
                Value::Image(pb::Asset {
                    size_bytes: 0,
                    ..asset("https://cdn.example.com/a.png")
                }),
            )],
            "scenes[1].fields[\"img\"].image.size_bytes:",
        ),
        (
            vec![field(
                "img",
                Value::Image(pb::Asset {
                    file_name: "../etc/passwd".into(),
                    ..asset("https://cdn.example.com/a.png")
                }),
            )],
            "scenes[1].fields[\"img\"].image.file_name:",
        ),
        (
            vec![pb::FieldValue {
                layer_name: String::new(),
                ..field("t", Value::Text("x".into()))
            }],
            "scenes[1].fields[\"t\"].layer_name: is required",
        ),
        (
            vec![pb::FieldValue {
                property: "Effects>>Slider".into(),
                ..field("t", Value::Number(1.0))
            }],
            "scenes[1].fields[\"t\"].property:",
        ),
        (
            vec![field("c", Value::Character(String::new()))],
            "scenes[1].fields[\"c\"].character: is required",
        ),
    ];
    for (fields, expected) in cases {
        let message = error(fields);
        assert!(
            message.starts_with(expected),
            "{message:?} should start with {expected:?}"
        );
    }
    let too_many: Vec<_> = (0..=MAX_FIELDS_PER_SCENE)
        .map(|i| field(&format!("f{i}"), Value::Boolean(true)))
        .collect();
    assert!(error(too_many).starts_with("scenes[1].fields: must have at most"));
}

/// Colours take both forms and either case; alpha defaults to opaque.
#[test]
fn colours_parse_both_forms() {
    assert_eq!(Color::parse("#0a0B0c", "c").unwrap().to_hex(), "#0A0B0CFF");
    assert_eq!(Color::parse("#0a0B0c80", "c").unwrap().a, 0x80);
    for bad in ["0A0B0C", "#0A0B0", "#0A0B0C0", "#0A0B0C0D0E", "#+1+2+3", "#é0000"] {
        assert!(Color::parse(bad, "c").is_err(), "{bad}");
    }
    assert_eq!(Color::parse("#FF0000", "c").unwrap().to_unit(), [1.0, 0.0, 0.0, 1.0]);
}

fn sound(start_ms: i32) -> pb::SoundEffect {
    pb::SoundEffect {
        file: Some(asset("https://cdn.example.com/boom.wav")),
        start_ms,
        volume: None,
        label: String::new(),
    }
}

/// Audio: defaults, and every refusal names its field (a cue after the end of the video too).
#[test]
fn audio_validates_times_and_volumes() {
    let audio = pb::ProjectAudio {
        music: Some(pb::Music {
            file: Some(asset("https://cdn.example.com/m.mp3")),
            start_ms: 0,
            fade_in_ms: 500,
            fade_out_ms: 1000,
            r#loop: None,
            volume: Some(0.4),
        }),
        sfx: vec![sound(1000), sound(9999)],
        sfx_volume: None,
        voiceover: Some(pb::Voiceover {
            file: Some(asset("https://cdn.example.com/vo.wav")),
            source: pb::VoiceoverSource::Tts as i32,
            start_ms: 200,
            duration_ms: 0,
            volume: None,
            duck_music: None,
        }),
    };
    let parsed = ProjectAudio::from_wire(&audio, 10_000.0, "audio").unwrap();
    let music = parsed.music.as_ref().unwrap();
    assert!(music.looped);
    assert_eq!(music.volume.get(), 0.4);
    assert_eq!(parsed.sfx_volume.get(), 1.0);
    let voice = parsed.voiceover.as_ref().unwrap();
    assert!(voice.duck_music);
    assert_eq!(voice.duration_ms, None);
    assert_eq!(
        ProjectAudio::from_wire(&parsed.to_wire(), 10_000.0, "audio").unwrap(),
        parsed
    );

    let refuse = |audio: pb::ProjectAudio, expected: &str| {
        let message = ProjectAudio::from_wire(&audio, 10_000.0, "audio")
            .unwrap_err()
            .to_string();
        assert!(
            message.starts_with(expected),
            "{message:?} should start with {expected:?}"
        );
    };
    refuse(
        pb::ProjectAudio {
            sfx: vec![sound(0), sound(10_000)],
            ..audio.clone()
        },
        "audio.sfx[1].start_ms: must be before the end of the video",
    );
    refuse(
        pb::ProjectAudio {
            sfx: vec![sound(-1)],
            ..audio.clone()
        },
        "audio.sfx[0].start_ms: must be >= 0",
    );
    refuse(
        pb::ProjectAudio {
            sfx_volume: Some(1.5),
            ..audio.clone()
        },
        "audio.sfx_volume:",
    );
    let mut bad = audio.clone();
    bad.music.as_mut().unwrap().volume = Some(-0.1);
    refuse(bad, "audio.music.volume:");
    let mut bad = audio.clone();
    bad.music.as_mut().unwrap().fade_out_ms = -5;
    refuse(bad, "audio.music.fade_out_ms:");
    let mut bad = audio.clone();
    bad.voiceover.as_mut().unwrap().source = 0;
    refuse(bad, "audio.voiceover.source:");
    let mut bad = audio.clone();
    bad.voiceover.as_mut().unwrap().file = None;
    refuse(bad, "audio.voiceover.file: is required");
    let mut bad = audio.clone();
    bad.voiceover.as_mut().unwrap().duration_ms = -1;
    refuse(bad, "audio.voiceover.duration_ms:");
    refuse(
        pb::ProjectAudio {
            sfx: (0..=MAX_SOUND_EFFECTS).map(|_| sound(0)).collect(),
            ..audio
        },
        "audio.sfx: must have at most",
    );
}
