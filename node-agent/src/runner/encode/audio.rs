//! The project's audio files through the asset cache: downloaded once, checked against their
//! BLAKE3, and pinned until the encode ends. A file that cannot be had fails the attempt with the
//! tracks that use it named as the assignment names them (`audio.music: …`,
//! `audio.sfx[1], audio.sfx[3]: …`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use flatrender_proto::content::{Asset, ProjectAudio};
use flatrender_proto::types::ContentHash;

use crate::cache::{AcquireAllError, AssetCache, CacheLease};

/// The audio files on this node, pinned while this lives.
#[derive(Debug, Default)]
pub(super) struct AudioFiles {
    /// Each asset's file (absolute), by BLAKE3.
    pub files: HashMap<ContentHash, PathBuf>,
    _leases: Vec<CacheLease>,
}

/// One file and the tracks that play it.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Wanted {
    pub asset: Asset,
    /// `audio.music`, `audio.sfx[1]`, `audio.voiceover`.
    pub tracks: Vec<String>,
}

/// Every distinct file of `audio`, in track order (music, cues, voiceover), with its tracks.
pub(super) fn wanted(audio: &ProjectAudio) -> Vec<Wanted> {
    let tracks = audio
        .music
        .iter()
        .map(|music| ("audio.music".to_owned(), &music.file))
        .chain(
            audio
                .sfx
                .iter()
                .enumerate()
                .map(|(index, cue)| (format!("audio.sfx[{index}]"), &cue.file)),
        )
        .chain(
            audio
                .voiceover
                .iter()
                .map(|voice| ("audio.voiceover".to_owned(), &voice.file)),
        );
    let mut wanted: Vec<Wanted> = Vec::new();
    for (track, asset) in tracks {
        match wanted.iter_mut().find(|file| file.asset.hash == asset.hash) {
            Some(file) => file.tracks.push(track),
            None => wanted.push(Wanted {
                asset: asset.clone(),
                tracks: vec![track],
            }),
        }
    }
    wanted
}

/// Acquires every file at once; the first failure names its tracks.
pub(super) async fn fetch(assets: &Arc<AssetCache>, audio: &ProjectAudio) -> Result<AudioFiles, String> {
    let wanted = wanted(audio);
    let assets_wanted: Vec<Asset> = wanted.iter().map(|file| file.asset.clone()).collect();
    let leases = assets
        .acquire_all(&assets_wanted)
        .await
        .map_err(|failure| match failure {
            AcquireAllError::Failed { position, error } => format!("{}: {error}", wanted[position].tracks.join(", ")),
            AcquireAllError::Unfinished(_) => format!("the audio files: {failure}"),
        })?;
    let files = wanted
        .iter()
        .zip(&leases)
        .map(|(file, lease)| {
            let path = lease.project_path().to_path_buf();
            (file.asset.hash, std::path::absolute(&path).unwrap_or(path))
        })
        .collect();
    Ok(AudioFiles { files, _leases: leases })
}

#[cfg(test)]
mod tests {
    use flatrender_proto::content::{Music, SoundEffect, Voiceover, VoiceoverSource};
    use flatrender_proto::types::{HttpUrl, Volume};

    use super::*;

    fn asset(byte: u8) -> Asset {
        Asset {
            url: HttpUrl::parse(&format!("https://cdn.example/{byte}"), "url").unwrap(),
            hash: ContentHash::from_bytes([byte; 32]),
            size_bytes: 10,
            file_name: format!("{byte}.wav"),
        }
    }

    fn cue(byte: u8) -> SoundEffect {
        SoundEffect {
            file: asset(byte),
            start_ms: 0,
            volume: Volume::new(1.0, "v").unwrap(),
            label: None,
        }
    }

    /// One download per distinct file, naming every track that plays it, in track order.
    #[test]
    fn files_are_wanted_once_with_their_tracks() {
        let audio = ProjectAudio {
            music: Some(Music {
                file: asset(1),
                start_ms: 0,
                fade_in_ms: 0,
                fade_out_ms: 0,
                looped: true,
                volume: Volume::new(1.0, "v").unwrap(),
            }),
            sfx: vec![cue(2), cue(3), cue(2)],
            sfx_volume: Volume::new(1.0, "v").unwrap(),
            voiceover: Some(Voiceover {
                file: asset(1),
                source: VoiceoverSource::Upload,
                start_ms: 0,
                duration_ms: None,
                volume: Volume::new(1.0, "v").unwrap(),
                duck_music: true,
            }),
        };
        let tracks: Vec<(u8, Vec<String>)> = wanted(&audio)
            .into_iter()
            .map(|file| (file.asset.hash.as_bytes()[0], file.tracks))
            .collect();
        assert_eq!(
            tracks,
            vec![
                (1, vec!["audio.music".to_owned(), "audio.voiceover".to_owned()]),
                (2, vec!["audio.sfx[0]".to_owned(), "audio.sfx[2]".to_owned()]),
                (3, vec!["audio.sfx[1]".to_owned()]),
            ]
        );
    }
}
