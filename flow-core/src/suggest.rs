//! "Did you mean" suggestions for misspelt keys and time zone names.

/// Returns up to `limit` candidates closest to `input` by edit distance, nearest first.
///
/// Comparison ignores ASCII case. A candidate is kept only when its distance is at most a third
/// of the longer string's length (at least 1), so unrelated names are never suggested.
pub fn closest<'a>(input: &str, candidates: impl IntoIterator<Item = &'a str>, limit: usize) -> Vec<&'a str> {
    let input_lower = input.to_ascii_lowercase();
    let mut scored: Vec<(usize, &'a str)> = candidates
        .into_iter()
        .filter_map(|candidate| {
            let distance = edit_distance(&input_lower, &candidate.to_ascii_lowercase());
            let allowed = (input.len().max(candidate.len()) / 3).max(1);
            (distance <= allowed).then_some((distance, candidate))
        })
        .collect();
    scored.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(b.1)));
    scored.into_iter().take(limit).map(|(_, name)| name).collect()
}

/// Levenshtein distance over chars.
fn edit_distance(a: &str, b: &str) -> usize {
    let b_chars: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b_chars.len()).collect();
    let mut current = vec![0; b_chars.len() + 1];
    for (i, a_char) in a.chars().enumerate() {
        current[0] = i + 1;
        for (j, b_char) in b_chars.iter().enumerate() {
            let substitution = previous[j] + usize::from(a_char != *b_char);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b_chars.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closest_finds_a_one_letter_typo() {
        assert_eq!(closest("stable_kye", ["name", "stable_key", "schedule"], 3), vec!["stable_key"]);
    }

    #[test]
    fn closest_ignores_case() {
        assert_eq!(closest("america/chicago", ["America/Chicago"], 3), vec!["America/Chicago"]);
    }

    #[test]
    fn closest_suggests_nothing_for_unrelated_input() {
        assert!(closest("xyz", ["name", "stable_key"], 3).is_empty());
    }

    #[test]
    fn edit_distance_counts_insertions_and_substitutions() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
    }
}
