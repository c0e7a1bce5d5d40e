//! The project's audio files through the asset cache: downloaded once, checked against their
//! BLAKE3, and pinned until the encode ends. A file that cannot be had fails the attempt with the
//! tracks that use it named as the assignment names them (`audio.music: …`,
//! `audio.sfx[1], audio.sfx[3]: …`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::task::JoinSet;

use flatrender_proto::content::{Asset, ProjectAudio};
use flatrender_proto::types::ContentHash;

use crate::cache::{AssetCache, CacheLease};

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
    let mut fetches = JoinSet::new();
    for (position, file) in wanted.iter().enumerate() {
        let cache = Arc::clone(assets);
        let asset = file.asset.clone();
        fetches.spawn(async move { (position, cache.acquire(&asset).await) });
    }
    let mut fetched = AudioFiles::default();
    while let Some(joined) = fetches.join_next().await {
        let (position, acquired) =
            joined.map_err(|error| format!("fetching the audio files did not finish: {error}"))?;
        let file = &wanted[position];
        match acquired {
            Ok(lease) => {
                let path = lease.project_path().to_path_buf();
                fetched
                    .files
                    .insert(file.asset.hash, std::path::absolute(&path).unwrap_or(path));
                fetched._leases.push(lease);
            }
            // Dropping the set stops waiting for the others (their downloads go on, shared).
            Err(error) => return Err(format!("{}: {error}", file.tracks.join(", "))),
        }
    }
    Ok(fetched)
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
