//! How strong a query's results are, told honestly: where the scores drop sharply (an
//! adaptive cut, "7 strong matches"), and where each hit stands among the query's results.

use crate::service::Hit;

/// Fewest results in which a cut is looked for.
const MIN_RESULTS: usize = 4;
/// A drop is sharp when it is this many times the median step between neighbours ...
/// (both measured on the fashion sample: see the README, "Steering a search, measured")
const SHARP: f32 = 5.0;
/// ... and at least this much similarity.
const MIN_DROP: f32 = 0.06;

/// The number of strong matches: the results before the sharpest drop of `scores` (in
/// rank order, best first), when that drop stands out from the steps around it.
pub fn strong_matches(scores: &[f32]) -> Option<usize> {
    if scores.len() < MIN_RESULTS {
        return None;
    }
    let drops: Vec<f32> = scores.windows(2).map(|w| w[0] - w[1]).collect();
    let mut sorted = drops.clone();
    sorted.sort_by(f32::total_cmp);
    let median = sorted[sorted.len() / 2].max(0.0);
    // The cut leaves at least one result below it, so drops[i] keeps i + 1 results.
    let (at, drop) = drops.iter().copied().enumerate().max_by(|a, b| a.1.total_cmp(&b.1))?;
    (drop >= MIN_DROP && drop >= SHARP * median).then_some(at + 1)
}

/// [`strong_matches`] of a query's hits, by the ranking's scores (which are in order).
pub fn strong_hits(hits: &[Hit]) -> Option<usize> {
    strong_matches(&hits.iter().map(|h| h.rank_score).collect::<Vec<_>>())
}

/// "1 strong match", "7 strong matches": the cut in words.
pub fn describe(strong: usize) -> String {
    format!("{strong} strong {}", if strong == 1 { "match" } else { "matches" })
}

/// Each score's place between the lowest (0) and the highest (1) of the results; all 1
/// when they are equal.
pub fn standing(scores: &[f32]) -> Vec<f32> {
    let hi = scores.iter().copied().fold(f32::MIN, f32::max);
    let lo = scores.iter().copied().fold(f32::MAX, f32::min);
    scores.iter().map(|&s| if hi > lo { (s - lo) / (hi - lo) } else { 1.0 }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sharp_drop_is_a_cut_and_an_even_slope_is_not() {
        assert_eq!(strong_matches(&[0.9, 0.89, 0.88, 0.87, 0.7, 0.69, 0.68, 0.67]), Some(4));
        assert_eq!(strong_matches(&[0.9, 0.88, 0.86, 0.84, 0.82, 0.80]), None);
        // Too small a drop to mean anything, however it stands out.
        assert_eq!(strong_matches(&[0.9, 0.9, 0.9, 0.89, 0.89, 0.89]), None);
        assert_eq!(strong_matches(&[0.9, 0.5, 0.4]), None);
    }

    #[test]
    fn standing_spans_the_results() {
        assert_eq!(standing(&[0.9, 0.8, 0.7]).iter().map(|v| (v * 10.0).round()).collect::<Vec<_>>(), [10.0, 5.0, 0.0]);
        assert_eq!(standing(&[0.5, 0.5]), [1.0, 1.0]);
        assert!(standing(&[]).is_empty());
    }
}
