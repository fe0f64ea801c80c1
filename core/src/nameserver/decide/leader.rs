//! Which follower becomes leader when a partition changes leader, and the terms of the change
//! (reference 3.4 and 5.3, OpenMLDB's `SelectLeader` and `UpdateLeaderInfo`; DESIGN 5.2).
//!
//! The kSelectLeader task runs in three steps, and only the middle one is IO:
//! 1. [`ChangeLeaderTerms::after`] the global term: persist `leader_term` as the new global term (`/table/term`).
//! 2. Probe every follower of [`followers_to_probe`] with `FollowOfNoOne` (an empty AppendEntries at
//!    `fence_term`): this fences it against the old leader and returns its offset.
//! 3. [`select_leader`] with the answers.

use std::collections::BTreeMap;

use thiserror::Error;

use crate::proto::nameserver::{PartitionMeta, TermPair};

/// The terms of one leader change, derived from the global term before it (reference 3.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChangeLeaderTerms {
    /// `global + 1`: the term the followers are fenced with (`FollowOfNoOne`). Never a leader's term.
    pub fence_term: u64,
    /// `global + 2`: the new leader's term, and the new global term to persist before probing.
    pub leader_term: u64,
}

impl ChangeLeaderTerms {
    pub fn after(global_term: u64) -> Self {
        Self { fence_term: global_term + 1, leader_term: global_term + 2 }
    }
}

/// A follower's answer to the fencing probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// It answered with its last log offset (and now refuses the old leader's term).
    Offset(u64),
    /// No answer: its tablet is down, partitioned, or refused the probe (e.g. it already has a newer term).
    Unreachable,
}

/// A reachable follower whose log is longer than the chosen leader's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AheadFollower {
    pub endpoint: String,
    pub offset: u64,
}

/// The outcome of a successful leader selection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderChoice {
    /// The new leader: an alive follower that answered the probe.
    pub leader: String,
    /// The new leader's offset. Its first entry in the new term gets `leader_offset + 1`.
    pub leader_offset: u64,
    /// The largest offset among the followers that answered (OpenMLDB's `offset` in `ChangeLeaderData`).
    pub max_offset: u64,
    pub terms: ChangeLeaderTerms,
    /// To append to the partition's `term_offset`: `{leader_term, leader_offset + 1}`.
    pub term_pair: TermPair,
    /// The followers that stay: answered, and not ahead of the leader. These are the new leader's `replicas`
    /// in `ChangeRole`, in partition order.
    pub followers: Vec<String>,
    /// Followers that answered with an offset above the leader's (possible only with a named candidate). Their
    /// extra entries are not in the new history: the caller must take them out of replication (mark them not
    /// alive) and re-add them through the recover-table path, which finds the term mismatch and drops their
    /// data (DESIGN 5.2). Partition order.
    pub ahead: Vec<AheadFollower>,
    /// Alive followers that did not answer: they are not fenced and their offset is unknown, so they must not be
    /// given to the new leader as replicas either; the caller marks them not alive and recovers them once their
    /// tablet is back (DESIGN 5.2). Partition order.
    pub unreachable: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SelectLeaderError {
    #[error("leader {leader} is alive, need not change leader (auto_failover is on)")]
    LeaderIsAlive { leader: String },
    #[error("partition has no follower (a single replica): there is nothing to fail over to")]
    NoFollower,
    #[error(
        "partition has no alive follower: it stays leaderless until a replica is recovered (recoverendpoint, \
         recovertable or recoverdata)"
    )]
    NoAliveFollower,
    #[error("candidate {candidate} is not an alive follower of this partition: name an alive follower or use auto")]
    CandidateNotAliveFollower { candidate: String },
    #[error("candidate {candidate} did not answer the fencing probe: name another alive follower or use auto")]
    CandidateUnreachable { candidate: String },
    #[error(
        "no alive follower answered the fencing probe (unreachable: {}): the partition stays leaderless; retry \
         once one of their tablets is back",
        unreachable.join(", ")
    )]
    NoReachableFollower { unreachable: Vec<String> },
}

/// The replica the metadata names leader when it is the only one so named and it is marked dead: no leader change
/// replaced it (a change marks its new leader), so its log is the newest the partition has.
pub fn sole_dead_leader(replicas: &[PartitionMeta]) -> Option<&PartitionMeta> {
    let mut leaders = replicas.iter().filter(|m| m.is_leader);
    match (leaders.next(), leaders.next()) {
        (Some(l), None) if !l.is_alive => Some(l),
        _ => None,
    }
}

/// The replicas a leader change must fence and ask for their offset, in partition order: the alive replicas that
/// are not marked leader (reference 5.2, `CreateChangeLeaderOP`), and, deliberate changes, the
/// [`sole_dead_leader`] and a named `candidate` marked leader and dead. OpenMLDB never asks a replica marked dead;
/// but a leader marked dead while its tablet seemed gone, with no follower to replace it, may be back with its
/// partition in memory, and its followers unable to lead (the fuzzer's seed 278820: the only follower's tablet had
/// restarted; the partition stayed leaderless for good). A named candidate is an operator's choice (recoverdata
/// names the longest log): a leader mark an earlier change left on it must not stop it (seed 407752). The caller
/// probes those on healthy tablets and reports the others as [`Probe::Unreachable`].
pub fn followers_to_probe(replicas: &[PartitionMeta], candidate: Option<&str>) -> Vec<String> {
    let dead_leader = sole_dead_leader(replicas).map(|m| m.endpoint.as_str());
    replicas
        .iter()
        .filter(|m| {
            let ep = Some(m.endpoint.as_str());
            (m.is_alive && !m.is_leader) || ep == dead_leader || (m.is_leader && !m.is_alive && ep == candidate)
        })
        .map(|m| m.endpoint.clone())
        .collect()
}

/// What refuses a leader selection before any follower is probed: probing raises the followers' term, which only
/// a leader installed with a higher term may follow, so a selection that is bound to fail must not probe.
pub fn precheck_select_leader(
    replicas: &[PartitionMeta],
    candidate: Option<&str>,
    auto_failover: bool,
) -> Result<(), SelectLeaderError> {
    if auto_failover && let Some(leader) = replicas.iter().find(|m| m.is_leader && m.is_alive) {
        return Err(SelectLeaderError::LeaderIsAlive { leader: leader.endpoint.clone() });
    }
    if replicas.len() <= 1 {
        return Err(SelectLeaderError::NoFollower);
    }
    if followers_to_probe(replicas, candidate).is_empty() {
        return Err(SelectLeaderError::NoAliveFollower);
    }
    Ok(())
}

/// Chooses the new leader of a partition from its replicas' metadata and the probe answers of its alive
/// followers (`probes`, by endpoint; a follower missing from it counts as unreachable; other entries are
/// ignored).
///
/// Follows reference 5.3 (kSelectLeader) and 3.4:
/// - with `auto_failover` on, an alive leader makes it fail ("leader is alive");
/// - the candidates are the alive followers (alive, not marked leader); a dead replica is never chosen, except
///   (deliberate changes, see [`followers_to_probe`]) the [`sole_dead_leader`] and a named candidate marked leader;
/// - a named `candidate` (manual `changeleader`) wins regardless of offset, but only if it is an alive follower;
/// - otherwise the follower with the largest offset wins;
/// - the terms: fence at `global_term + 1`, lead at `global_term + 2` ([`ChangeLeaderTerms`]).
///
/// Deliberate changes (DESIGN 5.2):
/// - An unreachable follower is skipped instead of failing the whole op; the op fails only when no alive follower
///   answered, or when the named candidate did not.
/// - Ties on the largest offset go to the first follower in partition order, not to a random one.
/// - The new term starts at `leader_offset + 1`, the leader's next log index (OpenMLDB records `max_offset + 1`,
///   which claims entries a lagging candidate never had). With the term history describing the leader's real
///   log, [`super::match_term_offset`] sees the entries of a follower that was ahead as diverged.
/// - Followers ahead of the chosen leader, and followers that did not answer, are returned apart so that the
///   caller re-syncs them instead of letting them silently keep entries the new leader never had.
pub fn select_leader(
    replicas: &[PartitionMeta],
    probes: &BTreeMap<String, Probe>,
    candidate: Option<&str>,
    global_term: u64,
    auto_failover: bool,
) -> Result<LeaderChoice, SelectLeaderError> {
    precheck_select_leader(replicas, candidate, auto_failover)?;
    let alive = followers_to_probe(replicas, candidate);
    let probe = |e: &str| probes.get(e).copied().unwrap_or(Probe::Unreachable);
    let answered: Vec<(&str, u64)> = alive
        .iter()
        .filter_map(|e| match probe(e) {
            Probe::Offset(o) => Some((e.as_str(), o)),
            Probe::Unreachable => None,
        })
        .collect();
    let unreachable: Vec<String> = alive.iter().filter(|e| probe(e) == Probe::Unreachable).cloned().collect();
    if let Some(c) = candidate {
        if !alive.iter().any(|e| e == c) {
            return Err(SelectLeaderError::CandidateNotAliveFollower { candidate: c.to_string() });
        }
        if probe(c) == Probe::Unreachable {
            return Err(SelectLeaderError::CandidateUnreachable { candidate: c.to_string() });
        }
    }
    let Some(max_offset) = answered.iter().map(|&(_, o)| o).max() else {
        return Err(SelectLeaderError::NoReachableFollower { unreachable });
    };
    let (leader, leader_offset) = match candidate {
        Some(c) => *answered.iter().find(|(e, _)| *e == c).expect("candidate checked above"),
        None => *answered.iter().find(|&&(_, o)| o == max_offset).expect("max of a non-empty list"),
    };
    let terms = ChangeLeaderTerms::after(global_term);
    let others = answered.iter().filter(|(e, _)| *e != leader);
    // A dead leader not chosen is no follower yet: it is recovered (re-added) like any dead replica.
    let dead_leader = |e: &str| replicas.iter().any(|m| m.endpoint == e && m.is_leader && !m.is_alive);
    let followers =
        others.clone().filter(|&&(e, o)| o <= leader_offset && !dead_leader(e)).map(|(e, _)| e.to_string()).collect();
    let ahead = others
        .filter(|&&(_, o)| o > leader_offset)
        .map(|&(e, offset)| AheadFollower { endpoint: e.to_string(), offset })
        .collect();
    Ok(LeaderChoice {
        leader: leader.to_string(),
        leader_offset,
        max_offset,
        terms,
        term_pair: TermPair { term: terms.leader_term, offset: leader_offset + 1 },
        followers,
        ahead,
        unreachable,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(endpoint: &str, is_leader: bool, is_alive: bool) -> PartitionMeta {
        PartitionMeta { endpoint: endpoint.into(), is_leader, is_alive }
    }

    fn probes(list: &[(&str, Probe)]) -> BTreeMap<String, Probe> {
        list.iter().map(|(e, p)| (e.to_string(), *p)).collect()
    }

    #[test]
    fn terms_fence_at_plus_one_and_lead_at_plus_two() {
        assert_eq!(ChangeLeaderTerms::after(7), ChangeLeaderTerms { fence_term: 8, leader_term: 9 });
    }

    #[test]
    fn the_leader_dies_and_the_longest_follower_takes_over() {
        let replicas = [meta("a", true, false), meta("b", false, true), meta("c", false, true)];
        // The dead leader is asked too; its tablet is down, so the caller reports it unreachable.
        assert_eq!(followers_to_probe(&replicas, None), vec!["a", "b", "c"]);
        let answers = probes(&[("a", Probe::Unreachable), ("b", Probe::Offset(9)), ("c", Probe::Offset(12))]);
        let got = select_leader(&replicas, &answers, None, 4, true).unwrap();
        assert_eq!(
            got,
            LeaderChoice {
                leader: "c".into(),
                leader_offset: 12,
                max_offset: 12,
                terms: ChangeLeaderTerms { fence_term: 5, leader_term: 6 },
                term_pair: TermPair { term: 6, offset: 13 },
                followers: vec!["b".into()],
                ahead: vec![],
                unreachable: vec!["a".into()],
            }
        );
    }

    #[test]
    fn an_unreachable_follower_is_skipped_not_fatal() {
        let replicas = [meta("a", true, false), meta("b", false, true), meta("c", false, true)];
        let got = select_leader(&replicas, &probes(&[("c", Probe::Offset(3))]), None, 2, true).unwrap();
        assert_eq!((got.leader.as_str(), got.unreachable), ("c", vec!["a".to_string(), "b".to_string()]));
        assert!(got.followers.is_empty());
        let none = select_leader(&replicas, &probes(&[("b", Probe::Unreachable)]), None, 2, true).unwrap_err();
        assert_eq!(
            none,
            SelectLeaderError::NoReachableFollower { unreachable: vec!["a".into(), "b".into(), "c".into()] }
        );
        assert!(none.to_string().contains("a, b, c"), "{none}");
    }

    #[test]
    fn ties_go_to_the_first_follower_in_partition_order() {
        let replicas = [meta("z", false, true), meta("a", true, false), meta("m", false, true)];
        let got = select_leader(&replicas, &probes(&[("z", Probe::Offset(5)), ("m", Probe::Offset(5))]), None, 0, true)
            .unwrap();
        assert_eq!((got.leader.as_str(), got.followers), ("z", vec!["m".to_string()]));
    }

    #[test]
    fn a_candidate_behind_another_follower_wins_and_the_follower_must_resync() {
        let replicas = [meta("a", true, true), meta("b", false, true), meta("c", false, true), meta("d", false, true)];
        let answers = probes(&[("b", Probe::Offset(10)), ("c", Probe::Offset(7)), ("d", Probe::Offset(7))]);
        // Manual changeleader: auto_failover is off, so the alive leader does not stop it.
        let got = select_leader(&replicas, &answers, Some("c"), 10, false).unwrap();
        assert_eq!((got.leader.as_str(), got.leader_offset, got.max_offset), ("c", 7, 10));
        assert_eq!(got.term_pair, TermPair { term: 12, offset: 8 });
        assert_eq!(got.followers, vec!["d".to_string()]);
        assert_eq!(got.ahead, vec![AheadFollower { endpoint: "b".into(), offset: 10 }]);
    }

    #[test]
    fn a_sole_dead_leader_is_asked_and_may_lead_again() {
        // Marked dead while its tablet seemed gone; the only follower cannot answer (its tablet restarted).
        let replicas = [meta("a", true, false), meta("b", false, true)];
        assert_eq!(sole_dead_leader(&replicas).map(|m| m.endpoint.as_str()), Some("a"));
        assert_eq!(followers_to_probe(&replicas, None), vec!["a", "b"]);
        let got = select_leader(&replicas, &probes(&[("a", Probe::Offset(40))]), None, 6, true).unwrap();
        assert_eq!((got.leader.as_str(), got.leader_offset), ("a", 40));
        assert_eq!(got.term_pair, TermPair { term: 8, offset: 41 });
        assert_eq!(got.unreachable, vec!["b".to_string()]);
        // Behind a follower (it lost a tail): the follower leads, and the old leader is no follower of it yet.
        let got =
            select_leader(&replicas, &probes(&[("a", Probe::Offset(30)), ("b", Probe::Offset(35))]), None, 6, true)
                .unwrap();
        assert_eq!((got.leader.as_str(), got.followers), ("b", vec![]));
        // A leader change already marked another leader: the old dead leader is stale, never asked.
        let changed = [meta("a", true, false), meta("b", true, false), meta("c", false, true)];
        assert_eq!(sole_dead_leader(&changed), None);
        assert_eq!(followers_to_probe(&changed, None), vec!["c"]);
        // An alive leader is no dead leader.
        assert_eq!(sole_dead_leader(&[meta("a", true, true), meta("b", false, true)]), None);
        // Named, a replica marked leader and dead is asked even with another leader mark (recoverdata's choice).
        assert_eq!(followers_to_probe(&changed, Some("a")), vec!["a", "c"]);
        let answers = probes(&[("a", Probe::Offset(50)), ("c", Probe::Offset(40))]);
        let got = select_leader(&changed, &answers, Some("a"), 9, false).unwrap();
        assert_eq!((got.leader.as_str(), got.followers), ("a", vec!["c".to_string()]));
        let only = [meta("a", true, false), meta("b", true, false)];
        assert_eq!(select_leader(&only, &answers, None, 9, false), Err(SelectLeaderError::NoAliveFollower));
        let got = select_leader(&only, &answers, Some("a"), 9, false).unwrap();
        assert_eq!((got.leader.as_str(), got.unreachable), ("a", vec![]));
    }

    #[test]
    fn refusals_name_the_reason() {
        let alive_leader = [meta("a", true, true), meta("b", false, true)];
        let answers = probes(&[("b", Probe::Offset(1))]);
        assert_eq!(
            select_leader(&alive_leader, &answers, None, 0, true),
            Err(SelectLeaderError::LeaderIsAlive { leader: "a".into() })
        );
        assert_eq!(
            select_leader(&[meta("a", true, false)], &answers, None, 0, true),
            Err(SelectLeaderError::NoFollower)
        );
        let dead = [meta("a", true, false), meta("b", false, false), meta("c", true, false)];
        assert_eq!(select_leader(&dead, &answers, None, 0, true), Err(SelectLeaderError::NoAliveFollower));
        assert_eq!(
            select_leader(&alive_leader, &answers, Some("a"), 0, false),
            Err(SelectLeaderError::CandidateNotAliveFollower { candidate: "a".into() })
        );
        assert_eq!(
            select_leader(&dead, &answers, Some("b"), 0, false),
            Err(SelectLeaderError::NoAliveFollower),
            "a dead candidate is never chosen"
        );
        let three = [meta("a", true, false), meta("b", false, true), meta("c", false, true)];
        assert_eq!(
            select_leader(&three, &answers, Some("c"), 0, true),
            Err(SelectLeaderError::CandidateUnreachable { candidate: "c".into() })
        );
    }

    /// The state of one replica in the exhaustive test.
    #[derive(Debug, Clone, Copy)]
    enum R {
        AliveLeader,
        DeadLeader,
        Follower(Probe),
        DeadFollower,
    }

    const STATES: [R; 7] = [
        R::AliveLeader,
        R::DeadLeader,
        R::Follower(Probe::Offset(0)),
        R::Follower(Probe::Offset(1)),
        R::Follower(Probe::Offset(2)),
        R::Follower(Probe::Unreachable),
        R::DeadFollower,
    ];

    /// Every combination of leader/follower, alive/dead and offset/unreachable for 1 to 4 replicas, every
    /// candidate (none, each replica, a stranger) and both auto_failover settings: checks the result against the
    /// rules, independently restated.
    #[test]
    fn exhaustive_over_small_partitions() {
        let mut checked = 0;
        for n in 1..=4u32 {
            for code in 0..7u32.pow(n) {
                let states: Vec<R> = (0..n).map(|i| STATES[(code / 7u32.pow(i) % 7) as usize]).collect();
                let names: Vec<String> = (0..n).map(|i| format!("t{i}")).collect();
                let replicas: Vec<PartitionMeta> = states
                    .iter()
                    .zip(&names)
                    .map(|(s, e)| match s {
                        R::AliveLeader => meta(e, true, true),
                        R::DeadLeader => meta(e, true, false),
                        R::Follower(_) => meta(e, false, true),
                        R::DeadFollower => meta(e, false, false),
                    })
                    .collect();
                // Dead replicas and leaders get answers too: they must be ignored.
                let answers: BTreeMap<String, Probe> = states
                    .iter()
                    .zip(&names)
                    .filter_map(|(s, e)| match s {
                        R::Follower(Probe::Unreachable) => None,
                        R::Follower(p) => Some((e.clone(), *p)),
                        _ => Some((e.clone(), Probe::Offset(99))),
                    })
                    .collect();
                let mut candidates: Vec<Option<&str>> = vec![None, Some("stranger")];
                candidates.extend(names.iter().map(|e| Some(e.as_str())));
                for candidate in candidates {
                    for auto in [false, true] {
                        check(&states, &names, &replicas, &answers, candidate, auto);
                        checked += 1;
                    }
                }
            }
        }
        assert_eq!(checked, (7 + 49 * 2 + 343 * 3 + 2401 * 4) * 2 + (7 + 49 + 343 + 2401) * 2 * 2);
    }

    fn check(
        states: &[R],
        names: &[String],
        replicas: &[PartitionMeta],
        answers: &BTreeMap<String, Probe>,
        candidate: Option<&str>,
        auto: bool,
    ) {
        let ctx = format!("{states:?} candidate={candidate:?} auto={auto}");
        let got = select_leader(replicas, answers, candidate, 20, auto);
        let alive_leader = states.iter().position(|s| matches!(s, R::AliveLeader));
        // The only replica marked leader, dead, is asked too (it answers 99 in this model).
        let leaders: Vec<usize> =
            (0..states.len()).filter(|&i| matches!(states[i], R::AliveLeader | R::DeadLeader)).collect();
        let sole_dead = (leaders.len() == 1 && matches!(states[leaders[0]], R::DeadLeader)).then(|| leaders[0]);
        let named = candidate.and_then(|c| names.iter().position(|e| e == c));
        let followers: Vec<(usize, Probe)> = states
            .iter()
            .enumerate()
            .filter_map(|(i, s)| match s {
                R::Follower(p) => Some((i, *p)),
                R::DeadLeader if sole_dead == Some(i) || named == Some(i) => Some((i, Probe::Offset(99))),
                _ => None,
            })
            .collect();
        let reachable: Vec<(usize, u64)> =
            followers.iter().filter_map(|&(i, p)| if let Probe::Offset(o) = p { Some((i, o)) } else { None }).collect();
        let unreachable: Vec<String> =
            followers.iter().filter(|(_, p)| *p == Probe::Unreachable).map(|(i, _)| names[*i].clone()).collect();
        let cand_idx = candidate.and_then(|c| names.iter().position(|e| e == c));
        let expected_err = if auto && let Some(l) = alive_leader {
            Some(SelectLeaderError::LeaderIsAlive { leader: names[l].clone() })
        } else if states.len() == 1 {
            Some(SelectLeaderError::NoFollower)
        } else if followers.is_empty() {
            Some(SelectLeaderError::NoAliveFollower)
        } else if let Some(c) = candidate
            && !followers.iter().any(|(i, _)| Some(*i) == cand_idx)
        {
            Some(SelectLeaderError::CandidateNotAliveFollower { candidate: c.into() })
        } else if let Some(c) = candidate
            && !reachable.iter().any(|(i, _)| Some(*i) == cand_idx)
        {
            Some(SelectLeaderError::CandidateUnreachable { candidate: c.into() })
        } else if reachable.is_empty() {
            Some(SelectLeaderError::NoReachableFollower { unreachable: unreachable.clone() })
        } else {
            None
        };
        match (got, expected_err) {
            (Err(e), Some(want)) => assert_eq!(e, want, "{ctx}"),
            (Ok(c), Some(want)) => panic!("{ctx}: chose {c:?}, expected {want:?}"),
            (Err(e), None) => panic!("{ctx}: unexpected {e:?}"),
            (Ok(c), None) => {
                let li = names.iter().position(|e| *e == c.leader).unwrap();
                // Alive, reachable follower, or the sole or named dead leader; never another dead replica.
                let dead_ok = sole_dead == Some(li) || (named == Some(li) && matches!(states[li], R::DeadLeader));
                assert!(matches!(states[li], R::Follower(Probe::Offset(_))) || dead_ok, "{ctx}: {c:?}");
                let max = reachable.iter().map(|r| r.1).max().unwrap();
                assert_eq!(c.max_offset, max, "{ctx}");
                match cand_idx {
                    Some(ci) => assert_eq!(li, ci, "{ctx}"),
                    // Max offset, first in partition order.
                    None => assert_eq!(li, reachable.iter().find(|r| r.1 == max).unwrap().0, "{ctx}"),
                }
                let lo = reachable.iter().find(|r| r.0 == li).unwrap().1;
                assert_eq!(c.leader_offset, lo, "{ctx}");
                assert_eq!(c.terms, ChangeLeaderTerms { fence_term: 21, leader_term: 22 }, "{ctx}");
                assert_eq!(c.term_pair, TermPair { term: 22, offset: lo + 1 }, "{ctx}");
                let want_followers: Vec<String> = reachable
                    .iter()
                    .filter(|r| r.0 != li && r.1 <= lo && !matches!(states[r.0], R::DeadLeader))
                    .map(|r| names[r.0].clone())
                    .collect();
                let want_ahead: Vec<AheadFollower> = reachable
                    .iter()
                    .filter(|r| r.1 > lo)
                    .map(|r| AheadFollower { endpoint: names[r.0].clone(), offset: r.1 })
                    .collect();
                assert_eq!(c.followers, want_followers, "{ctx}");
                assert_eq!(c.ahead, want_ahead, "{ctx}");
                assert_eq!(c.unreachable, unreachable, "{ctx}");
                if candidate.is_none() {
                    assert!(c.ahead.is_empty(), "{ctx}: nobody is ahead of the longest follower");
                }
            }
        }
    }
}
