//! Whether a returning replica's log is a prefix of its partition's history (reference 3.4 and 5.6 step 6,
//! OpenMLDB's `MatchTermOffset`).
//!
//! The history is the partition's `term_offset`: for each term, the first log index written in it. A replica
//! reports `(term, offset)`: its last log index, and the term it is on. OpenMLDB's tablets report the term the
//! replica last adopted; ours report the term of the last entry in the binlog (or the meta's term when the
//! binlog is empty). Both readings are handled: a replica that adopted the newest term without receiving an
//! entry in it is recognised by the "newest term starts right after its offset" rule.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Bound;

use crate::proto::nameserver::TermPair;

/// The answer of [`match_term_offset`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TermMatch {
    /// The replica's log is a prefix of the history: it can catch up from the leader as it is.
    Prefix,
    /// Not a prefix, or it cannot be told: the replica's data must be replaced.
    Diverged(Divergence),
}

impl TermMatch {
    pub fn is_prefix(self) -> bool {
        self == TermMatch::Prefix
    }
}

/// Why a replica's log does not match the history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Divergence {
    /// The partition is not loaded and there is nothing on disk (offset 0).
    NoLocalData,
    /// The replica's term is not in the history (e.g. a fencing term, or a term of a history that was replaced).
    UnknownTerm { term: u64 },
    /// The replica's offset is below the start of its own term, and the newest term does not start right after it.
    BeforeTermStart { term: u64, term_start: u64, newest_start: u64 },
    /// A later term started at or below the replica's offset: the replica holds entries the history replaced.
    OverwrittenByLaterTerm { later_term: u64, later_start: u64 },
}

impl fmt::Display for Divergence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Divergence::NoLocalData => write!(f, "no table in memory and no data on disk"),
            Divergence::UnknownTerm { term } => write!(f, "term {term} is not in the partition's term history"),
            Divergence::BeforeTermStart { term, term_start, newest_start } => write!(
                f,
                "offset is below the start {term_start} of its term {term}, and the newest term starts at \
                 {newest_start}"
            ),
            Divergence::OverwrittenByLaterTerm { later_term, later_start } => {
                write!(f, "term {later_term} replaced the history from offset {later_start} on")
            }
        }
    }
}

/// Decides whether a replica whose log ends at `offset` in `term` is a prefix of the history `term_offset`.
/// `has_table` says whether the report came from a loaded partition (memory) or from disk.
///
/// Follows reference 5.6 step 6, branch by branch:
/// - `!has_table && offset == 0`: mismatch (nothing local to keep);
/// - `term` not in the history: mismatch;
/// - the term starts after `offset`: match only if the newest term starts at exactly `offset + 1` (the replica
///   adopted the newest term before receiving an entry in it); otherwise mismatch;
/// - a later term starts at or below `offset`: mismatch;
/// - otherwise: match.
///
/// As in OpenMLDB, the history is read as a map by term (the first pair of a repeated term wins), so "later" and
/// "newest" mean by term number.
///
/// Deliberate change: OpenMLDB compares with the start of the *next* term only. Here every later term counts.
/// The two agree while term starts only grow; they differ once a leader change records a start below an earlier
/// one, which [`super::select_leader`] does when a named candidate lags (DESIGN 5.2: the term starts at the
/// leader's real next index). Then an entry the replica holds may have been replaced by a term after the next,
/// and only this check sees it.
pub fn match_term_offset(term_offset: &[TermPair], has_table: bool, term: u64, offset: u64) -> TermMatch {
    // !has_table && offset == 0: mismatch.
    if !has_table && offset == 0 {
        return TermMatch::Diverged(Divergence::NoLocalData);
    }
    let mut starts = BTreeMap::new();
    for tp in term_offset {
        starts.entry(tp.term).or_insert(tp.offset);
    }
    // term not in history: mismatch.
    let Some(&term_start) = starts.get(&term) else {
        return TermMatch::Diverged(Divergence::UnknownTerm { term });
    };
    // The term's start offset > offset: match only if the latest term starts at exactly offset + 1.
    if term_start > offset {
        let (_, &newest_start) = starts.last_key_value().expect("holds `term`");
        return if newest_start == offset + 1 {
            TermMatch::Prefix
        } else {
            TermMatch::Diverged(Divergence::BeforeTermStart { term, term_start, newest_start })
        };
    }
    // A later term starts at or below offset: mismatch (OpenMLDB: the next term only).
    let later = starts.range((Bound::Excluded(term), Bound::Unbounded));
    if let Some((&later_term, &later_start)) = later.into_iter().find(|&(_, &start)| start <= offset) {
        return TermMatch::Diverged(Divergence::OverwrittenByLaterTerm { later_term, later_start });
    }
    // No later term, or every later term starts after offset: match.
    TermMatch::Prefix
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history(pairs: &[(u64, u64)]) -> Vec<TermPair> {
        pairs.iter().map(|&(term, offset)| TermPair { term, offset }).collect()
    }

    #[test]
    fn every_branch_of_the_reference() {
        use Divergence::*;
        use TermMatch::*;
        // Created in term 1; leader changes to term 3 at offset 11 and to term 5 at offset 20.
        let h = history(&[(1, 0), (3, 11), (5, 20)]);
        #[rustfmt::skip]
        let cases: &[(&str, bool, u64, u64, TermMatch)] = &[
            ("not loaded, nothing on disk", false, 1, 0, Diverged(NoLocalData)),
            ("not loaded, nothing on disk, any term", false, 5, 0, Diverged(NoLocalData)),
            ("loaded, empty log in the creation term", true, 1, 0, Prefix),
            ("a term never given", true, 2, 7, Diverged(UnknownTerm { term: 2 })),
            ("a fencing term (odd, never a leader's)", true, 4, 15, Diverged(UnknownTerm { term: 4 })),
            ("inside term 1, before term 3", true, 1, 10, Prefix),
            ("term 1 entry where term 3 starts", true, 1, 11, Diverged(OverwrittenByLaterTerm { later_term: 3, later_start: 11 })),
            ("term 1 entries deep into term 5", true, 1, 25, Diverged(OverwrittenByLaterTerm { later_term: 3, later_start: 11 })),
            ("inside term 3", true, 3, 15, Prefix),
            ("term 3 entry where term 5 starts", true, 3, 20, Diverged(OverwrittenByLaterTerm { later_term: 5, later_start: 20 })),
            ("inside the newest term", true, 5, 25, Prefix),
            ("at the start of the newest term", true, 5, 20, Prefix),
            ("adopted the newest term, no entry in it yet", true, 5, 19, Prefix),
            ("adopted term 3 early, but term 5 followed", true, 3, 10, Diverged(BeforeTermStart { term: 3, term_start: 11, newest_start: 20 })),
            ("adopted the newest term far too early", true, 5, 12, Diverged(BeforeTermStart { term: 5, term_start: 20, newest_start: 20 })),
            ("from disk (snapshot) inside term 3", false, 3, 15, Prefix),
            ("from disk, term 1 entries replaced", false, 1, 11, Diverged(OverwrittenByLaterTerm { later_term: 3, later_start: 11 })),
        ];
        for &(what, has_table, term, offset, want) in cases {
            assert_eq!(match_term_offset(&h, has_table, term, offset), want, "{what}");
        }
        assert_eq!(match_term_offset(&[], true, 1, 3), Diverged(UnknownTerm { term: 1 }));
    }

    #[test]
    fn the_first_pair_of_a_repeated_term_wins_and_order_is_by_term() {
        let h = history(&[(3, 11), (1, 0), (3, 40)]);
        assert_eq!(match_term_offset(&h, true, 3, 12), TermMatch::Prefix);
        assert_eq!(
            match_term_offset(&h, true, 1, 11),
            TermMatch::Diverged(Divergence::OverwrittenByLaterTerm { later_term: 3, later_start: 11 })
        );
    }

    /// The deliberate change: a lagging candidate made term 5 start at 10, below term 3's start.
    #[test]
    fn a_term_after_the_next_that_starts_lower_is_seen() {
        let h = history(&[(1, 0), (3, 11), (5, 10)]);
        // OpenMLDB looks at term 3 only (starts at 11 > 10) and would call this a match.
        assert_eq!(
            match_term_offset(&h, true, 1, 10),
            TermMatch::Diverged(Divergence::OverwrittenByLaterTerm { later_term: 5, later_start: 10 })
        );
        assert_eq!(match_term_offset(&h, true, 1, 9), TermMatch::Prefix);
    }

    #[test]
    fn divergences_read_as_sentences() {
        let d = Divergence::OverwrittenByLaterTerm { later_term: 5, later_start: 20 };
        assert_eq!(d.to_string(), "term 5 replaced the history from offset 20 on");
        assert!(Divergence::NoLocalData.to_string().contains("no data on disk"));
    }
}
