//! Determinism (DESIGN 8): one seed, one trace, every run. The hash of the trace identifies a run
//! ([`crate::trace::hash_lines`]); two runs of a seed with different hashes mean something outside the simulator
//! (a real clock, OS randomness, hash-map order, a thread) leaked into it.

use super::{Violation, ViolationKind};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeterminismReport {
    pub seed: u64,
    pub first: u64,
    pub second: u64,
    pub violation: Option<Violation>,
}

impl DeterminismReport {
    pub fn same(&self) -> bool {
        self.first == self.second
    }
}

/// Compares the trace hashes of two runs of `seed`.
pub fn check_determinism(seed: u64, first: u64, second: u64) -> DeterminismReport {
    let violation = (first != second).then(|| {
        Violation::new(
            ViolationKind::Nondeterministic,
            None,
            format!(
                "seed {seed} is not deterministic: trace hash {first:016x} on the first run, {second:016x} on the \
                 second; diff the two traces (replay with --trace) to find the first line that differs"
            ),
        )
    });
    DeterminismReport { seed, first, second, violation }
}

/// Where two traces first differ: the line index and each side's line there (`None` past its end); `None` when
/// they are identical.
pub fn first_divergence<'a>(a: &'a [String], b: &'a [String]) -> Option<(usize, Option<&'a str>, Option<&'a str>)> {
    let n = a.len().max(b.len());
    (0..n).find(|&i| a.get(i) != b.get(i)).map(|i| (i, a.get(i).map(String::as_str), b.get(i).map(String::as_str)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_hashes_pass() {
        let r = check_determinism(7, 0xabc, 0xabc);
        assert!(r.same() && r.violation.is_none());
    }

    #[test]
    fn different_hashes_fail_with_both_hashes() {
        let r = check_determinism(7, 0xabc, 0xabd);
        assert!(!r.same());
        let v = r.violation.expect("violation");
        assert_eq!((v.kind, v.pid), (ViolationKind::Nondeterministic, None));
        assert!(v.why.contains("seed 7") && v.why.contains("0000000000000abc") && v.why.contains("0000000000000abd"));
    }

    #[test]
    fn first_divergence_finds_the_line() {
        let a: Vec<String> = ["x", "y", "z"].iter().map(|s| s.to_string()).collect();
        let mut b = a.clone();
        assert_eq!(first_divergence(&a, &b), None);
        b[1] = "Y".into();
        assert_eq!(first_divergence(&a, &b), Some((1, Some("y"), Some("Y"))));
        assert_eq!(first_divergence(&a, &a[..2]), Some((2, Some("z"), None)));
    }
}
