//! Unit tests of the runner's pure helpers.

use super::*;

/// Missing frames group into contiguous stretches for separate aerender runs.
#[test]
fn stretches_of_missing_frames() {
    let written: BTreeSet<i32> = [3, 4, 7].into_iter().collect();
    assert_eq!(missing_stretches(1, 9, &written), vec![(1, 2), (5, 6), (8, 9)]);
    assert_eq!(missing_stretches(1, 3, &BTreeSet::new()), vec![(1, 3)]);
    let all: BTreeSet<i32> = (1..=3).collect();
    assert!(missing_stretches(1, 3, &all).is_empty());
}

/// Log tails are cut on character boundaries.
#[test]
fn tails_are_cut_safely() {
    assert_eq!(tail_bytes("abcdef", 3), "def");
    assert_eq!(tail_bytes("ééé", 3), "é");
}
