//! What the run produced, from sources independent of the control plane's own bookkeeping: the
//! frame files on disk and each agent's `flatrender_agent_frames_rendered_total` counter (the
//! video itself is checked by `export`).

use std::{net::SocketAddr, path::Path};

use crate::http_get;

/// The counter each agent exports for frames it rendered and verified.
pub const FRAMES_RENDERED_METRIC: &str = "flatrender_agent_frames_rendered_total";

/// Frames one node rendered.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeShare {
    /// Node name.
    pub name: String,
    /// Frames from its counter; `None` when its metrics could not be read.
    pub frames: Option<u64>,
}

/// Reads `FRAMES_RENDERED_METRIC` from an agent's `/metrics`.
pub async fn frames_rendered(metrics: SocketAddr) -> Option<u64> {
    let response = http_get(metrics, "/metrics").await?;
    counter_value(&response, FRAMES_RENDERED_METRIC)
}

/// The value of an unlabelled sample `name` in Prometheus text format.
pub fn counter_value(exposition: &str, name: &str) -> Option<u64> {
    exposition.lines().find_map(|line| {
        let value = line.strip_prefix(name)?.strip_prefix(' ')?;
        // Counters may be printed as floats ("40.0"); frames are whole.
        value
            .trim()
            .parse::<f64>()
            .ok()
            .map(|frames| frames.max(0.0).round() as u64)
    })
}

/// Names of the files in `dir` with extension `extension` (the rendered frames), sorted.
pub fn frame_files(dir: &Path, extension: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter(|entry| entry.path().extension().is_some_and(|found| found == extension))
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// `scene-000/ 125 frames, scene-001/ 125 frames`, from each scene's frame count on disk.
pub fn describe_scene_frames(frames_per_scene: &[usize]) -> String {
    if frames_per_scene.iter().all(|frames| *frames == 0) {
        return "no frames left on disk: removed after the encode".to_owned();
    }
    frames_per_scene
        .iter()
        .enumerate()
        .map(|(index, frames)| format!("scene-{index:03}/ {frames} frames"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `demo-node-1 22 frames, demo-node-2 18 frames`.
pub fn describe_shares(shares: &[NodeShare]) -> String {
    shares
        .iter()
        .map(|share| match share.frames {
            Some(frames) => format!("{} {frames} frames", share.name),
            None => format!("{} (metrics unreadable)", share.name),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The unlabelled sample is found whatever its number format; HELP/TYPE lines and other
    /// metrics sharing the prefix are not mistaken for it.
    #[test]
    fn counter_value_reads_the_sample_line_only() {
        let exposition = "HTTP/1.1 200 OK\r\n\r\n\
            # HELP flatrender_agent_frames_rendered Frames rendered and verified.\n\
            # TYPE flatrender_agent_frames_rendered counter\n\
            flatrender_agent_frames_rendered_total_extra 99\n\
            flatrender_agent_frames_rendered_total 22\n";
        assert_eq!(counter_value(exposition, FRAMES_RENDERED_METRIC), Some(22));
        assert_eq!(
            counter_value("flatrender_agent_frames_rendered_total 18.0\n", FRAMES_RENDERED_METRIC),
            Some(18)
        );
        assert_eq!(counter_value("# EOF\n", FRAMES_RENDERED_METRIC), None);
    }

    /// Frames are found by extension and sorted, other files ignored; a missing folder has none.
    #[test]
    fn frame_files_lists_frames_in_order() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["a00001.png", "notes.txt", "a00000.png"] {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        assert_eq!(frame_files(dir.path(), "png"), ["a00000.png", "a00001.png"]);
        assert!(frame_files(&dir.path().join("missing"), "png").is_empty());
    }

    /// Each scene's folder is named with its frames; none at all says they were removed.
    #[test]
    fn scene_frames_are_listed_per_folder() {
        assert_eq!(
            describe_scene_frames(&[125, 124]),
            "scene-000/ 125 frames, scene-001/ 124 frames"
        );
        assert_eq!(
            describe_scene_frames(&[0, 0]),
            "no frames left on disk: removed after the encode"
        );
    }

    /// Each node is named with its frames, or said to be unreadable.
    #[test]
    fn shares_are_listed_per_node() {
        let shares = [
            NodeShare {
                name: "demo-node-1".into(),
                frames: Some(22),
            },
            NodeShare {
                name: "demo-node-2".into(),
                frames: None,
            },
        ];
        assert_eq!(
            describe_shares(&shares),
            "demo-node-1 22 frames, demo-node-2 (metrics unreadable)"
        );
    }
}
