//! Each checker of DESIGN 8 can fail: a build with a planted bug ([`openmldb::planted`]) runs a scenario that
//! passes on the real build, and the checker meant to catch that bug reports it.
#![cfg(madsim)]

use std::path::Path;

use mldb_sim::check::{Checker, ViolationKind};
use mldb_sim::run::{self, SeedResult};
use mldb_sim::scenario::{self, Scenario};
use openmldb::planted::Planted;

fn scenario_file(dir: &str, name: &str) -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios").join(dir).join(name);
    scenario::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

fn table_scenario(name: &str) -> Scenario {
    scenario_file("table", name)
}

fn kinds(r: &SeedResult) -> Vec<ViolationKind> {
    r.report.as_ref().map(|rep| rep.violations().iter().map(|v| v.kind).collect()).unwrap_or_default()
}

fn checkers(r: &SeedResult) -> Vec<Checker> {
    kinds(r).into_iter().map(|k| k.checker()).collect()
}

#[test]
fn the_unbroken_build_passes_the_scenarios_used_here() {
    for name in ["row1_leader_crash.toml", "one_replica_one_tablet.toml"] {
        let r = run::run(&table_scenario(name), 1);
        assert!(r.passed(), "{name}: {:?} {:?}", r.failures, kinds(&r));
    }
}

#[test]
fn acknowledging_a_write_never_appended_is_caught_by_the_set_oracle_and_the_loss_bound() {
    let planted = Planted { ack_without_append_every: 50, ..Planted::default() };
    let r = run::run_planted(&table_scenario("row1_leader_crash.toml"), 1, planted);
    let k = kinds(&r);
    assert!(!r.passed());
    assert!(k.contains(&ViolationKind::LostOutsideBound) || k.contains(&ViolationKind::LostUnexpectedly), "{k:?}");
    assert!(checkers(&r).contains(&Checker::LossBound), "{k:?}");
}

#[test]
fn a_row_nobody_wrote_is_caught_as_unexpected() {
    let planted = Planted { phantom_row_every: 100, ..Planted::default() };
    let r = run::run_planted(&table_scenario("row1_follower_crash.toml"), 1, planted);
    assert!(kinds(&r).contains(&ViolationKind::Unexpected), "{:?}", kinds(&r));
    assert!(checkers(&r).contains(&Checker::Set));
}

#[test]
fn a_follower_that_diverges_is_caught_by_convergence() {
    let planted = Planted { follower_skips_apply_every: 40, ..Planted::default() };
    let r = run::run_planted(&table_scenario("row1_follower_crash.toml"), 1, planted);
    assert!(kinds(&r).contains(&ViolationKind::RowsDiffer), "{:?}", kinds(&r));
    assert!(checkers(&r).contains(&Checker::Convergence));
}

#[test]
fn a_nameserver_that_never_fails_over_is_worse_than_the_documented_table() {
    let planted = Planted { never_fail_over: true, ..Planted::default() };
    let r = run::run_planted(&table_scenario("row1_leader_crash.toml"), 1, planted);
    assert!(kinds(&r).contains(&ViolationKind::WorseThanDocumented), "{:?}", kinds(&r));
    assert!(checkers(&r).contains(&Checker::Availability));
}

#[test]
fn a_process_wide_counter_in_the_trace_is_caught_by_the_determinism_check() {
    let s = table_scenario("row1_follower_crash.toml");
    let planted = Planted { nondeterministic_trace: true, ..Planted::default() };
    let (a, b) = (run::run_planted(&s, 3, planted), run::run_planted(&s, 3, planted));
    let report = mldb_sim::check::check_determinism(3, a.hash, b.hash);
    assert!(report.violation.is_some(), "the planted counter did not change the hash");
    assert_eq!(report.violation.unwrap().kind.checker(), Checker::Determinism);
    // And without it, the same seed replays.
    let (c, d) = (run::run(&s, 3), run::run(&s, 3));
    assert_eq!(c.hash, d.hash);
}

#[test]
fn an_import_that_writes_its_rows_in_doubt_again_is_caught_as_duplicated() {
    let s = scenario_file("flows", "taskmanager_crash_during_import.toml");
    let planted = Planted { import_without_request_ids: true, ..Planted::default() };
    let r = run::run_planted(&s, 1, planted);
    assert!(kinds(&r).contains(&ViolationKind::Duplicated), "{:?}", kinds(&r));
    assert!(checkers(&r).contains(&Checker::Jobs));
    // The same seed passes on the real build.
    assert!(run::run(&s, 1).passed());
}

#[test]
fn a_tablet_that_keeps_a_broken_binlog_loaded_is_caught_by_the_availability_oracle_and_convergence() {
    let s = scenario_file("flows", "disk_write_errors_fail_over.toml");
    let planted = Planted { keep_broken_partitions: true, ..Planted::default() };
    let r = run::run_planted(&s, 1, planted);
    let found = checkers(&r);
    assert!(found.contains(&Checker::Convergence), "{:?} {:?}", kinds(&r), r.failures);
    // Nothing failed over: the scenario's showopstatus step finds no leader change.
    assert!(r.failures.iter().any(|f| f.contains("kChangeLeaderOP")), "{:?}", r.failures);
    // The same seed passes on the real build.
    let real = run::run(&s, 1);
    assert!(real.passed(), "{:?} {:?}", real.failures, kinds(&real));
}

#[test]
fn a_leader_reloaded_in_its_old_term_is_caught_as_diverged_replicas() {
    let s = scenario_file("design", "reload_takes_a_new_term.toml");
    let planted = Planted { reload_in_the_same_term: true, ..Planted::default() };
    let r = run::run_planted(&s, 1, planted);
    // The kept follower log and the reloaded leader agree on the offset and differ in rows: the convergence
    // checker reports it even though the table promises no automatic recovery for this row (every replica was
    // offline); the writes the follower then never received are lost outside the bound.
    let found = kinds(&r);
    assert!(found.contains(&ViolationKind::RowsDiffer), "{found:?} {:?}", r.failures);
    assert!(found.contains(&ViolationKind::LostOutsideBound), "{found:?}");
    // The same seed passes on the real build.
    let real = run::run(&s, 1);
    assert!(real.passed(), "{:?} {:?}", real.failures, kinds(&real));
}

fn oracle_scenario(name: &str) -> Scenario {
    scenario_file("oracle", name)
}

#[test]
fn a_leader_that_keeps_acknowledging_after_its_session_expired_is_caught_by_the_acks_checker() {
    let s = oracle_scenario("leader_paused_past_its_session.toml");
    let planted = Planted { ack_after_session_expired: true, ..Planted::default() };
    let r = run::run_planted(&s, 1, planted);
    assert!(kinds(&r).contains(&ViolationKind::DeposedAck), "{:?} {:?}", kinds(&r), r.failures);
    assert!(checkers(&r).contains(&Checker::Acks));
    let real = run::run(&s, 1);
    assert!(real.passed(), "{:?} {:?}", real.failures, kinds(&real));
}

#[test]
fn reads_served_by_a_deposed_leader_are_caught_as_stale() {
    let s = oracle_scenario("leader_paused_past_its_session.toml");
    let planted = Planted { stale_leader_reads: true, ack_after_session_expired: true, ..Planted::default() };
    let r = run::run_planted(&s, 1, planted);
    assert!(kinds(&r).contains(&ViolationKind::StaleRead), "{:?} {:?}", kinds(&r), r.failures);
    assert!(checkers(&r).contains(&Checker::Reads));
}

#[test]
fn a_semisync_leader_that_acknowledges_before_replicating_is_caught() {
    let s = scenario_file("design", "semisync_leader_crash.toml");
    let planted = Planted { semisync_ack_unreplicated: true, ..Planted::default() };
    let r = run::run_planted(&s, 1, planted);
    assert!(kinds(&r).contains(&ViolationKind::SemisyncUnreplicated), "{:?} {:?}", kinds(&r), r.failures);
    assert!(checkers(&r).contains(&Checker::Acks));
    let real = run::run(&s, 1);
    assert!(real.passed(), "{:?} {:?}", real.failures, kinds(&real));
}

#[test]
fn a_leader_choice_that_takes_the_shortest_log_is_caught_by_the_loss_bound() {
    let s = oracle_scenario("lagging_follower_is_not_chosen.toml");
    let planted = Planted { leader_choice_shortest_log: true, ..Planted::default() };
    let r = run::run_planted(&s, 1, planted);
    assert!(kinds(&r).contains(&ViolationKind::LaggingLeader), "{:?} {:?}", kinds(&r), r.failures);
    assert!(checkers(&r).contains(&Checker::LossBound));
    let real = run::run(&s, 1);
    assert!(real.passed(), "{:?} {:?}", real.failures, kinds(&real));
}

#[test]
fn a_failover_that_waits_30_seconds_is_caught_by_the_window_check() {
    let s = table_scenario("row1_leader_crash.toml");
    let planted = Planted { failover_delay_ms: 30_000, ..Planted::default() };
    let r = run::run_planted(&s, 1, planted);
    assert!(kinds(&r).contains(&ViolationKind::WindowTooLong), "{:?} {:?}", kinds(&r), r.failures);
    assert!(checkers(&r).contains(&Checker::Availability));
}
