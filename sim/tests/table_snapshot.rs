//! `mldb-sim table` for fixed seeds, as an insta snapshot: the availability matrix beside the seed's table. A
//! change in what a row shows (a new loss, a slower failover, a row worse than documented) is a diff to review.
#![cfg(madsim)]

use std::path::Path;

use mldb_sim::matrix::{Matrix, TABLE_SCENARIOS};
use mldb_sim::run;
use mldb_sim::scenario;

#[test]
fn the_table_scenarios_are_every_file_of_scenarios_table() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/table");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|f| f.ends_with(".toml"))
        .collect();
    files.sort();
    let mut compiled: Vec<String> = TABLE_SCENARIOS.iter().map(|(n, _)| n.to_string()).collect();
    compiled.sort();
    assert_eq!(files, compiled, "mldb-sim table compiles in scenarios/table: keep matrix::TABLE_SCENARIOS in step");
}

#[test]
fn the_availability_matrix_for_seeds_1_and_2() {
    let mut matrix = Matrix::default();
    for (name, src) in TABLE_SCENARIOS {
        let s = scenario::parse_str(src, name).unwrap_or_else(|e| panic!("{e}"));
        for seed in 1..=2 {
            let r = run::run(&s, seed);
            assert!(r.passed(), "{name} seed {seed}: {:?}", r.failures);
            matrix.add(r.report.as_ref().unwrap());
        }
    }
    assert!(matrix.passed());
    insta::assert_snapshot!("availability_matrix", matrix.render());
}
