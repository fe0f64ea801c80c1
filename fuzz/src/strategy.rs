//! proptest strategies for a [`FuzzCase`]: shapes, flags around their defaults, a workload, and a schedule of up
//! to [`MAX_FAULTS`] faults between 2 s and 30 s. Every part shrinks toward the simplest: fewer faults, shorter
//! faults, the first process, defaults.

use proptest::prelude::*;

use crate::case::{Fault, FlagSet, FuzzCase, Load, Proc, Shape, TimedFault};

pub const MAX_FAULTS: usize = 6;

pub fn shape() -> impl Strategy<Value = Shape> {
    (1usize..=5, 1usize..=3, 1usize..=2, any::<bool>(), 1u32..=8, 1u32..=3, prop::bool::weighted(0.2)).prop_map(
        |(tablets, nameservers, taskmanagers, daemon, partitions, replicas, semisync)| Shape {
            tablets,
            nameservers,
            taskmanagers,
            daemon,
            partitions,
            replicas,
            semisync,
        },
    )
}

pub fn flags() -> impl Strategy<Value = FlagSet> {
    (
        prop_oneof![Just(2000u64), 1000u64..=4000],
        prop_oneof![Just(1000u64), 0u64..=3000],
        prop_oneof![Just(32u64), 1u64..=64],
        prop_oneof![Just(5000u64), 100u64..=5000],
        prop_oneof![Just(3000u64), 500u64..=10_000],
    )
        .prop_map(
            |(
                zk_session_timeout,
                tablet_heartbeat_timeout,
                binlog_sync_batch_size,
                binlog_sync_to_disk_interval,
                restart_delay,
            )| {
                FlagSet {
                    zk_session_timeout,
                    tablet_heartbeat_timeout,
                    binlog_sync_batch_size,
                    binlog_sync_to_disk_interval,
                    restart_delay,
                }
            },
        )
}

pub fn load() -> impl Strategy<Value = Load> {
    (20u32..=200, any::<bool>(), prop::option::weighted(0.3, 200u32..=2000))
        .prop_map(|(rate, reads, import_rows)| Load { rate, reads, import_rows })
}

fn process() -> impl Strategy<Value = Proc> {
    prop_oneof![
        6 => (0u8..5).prop_map(Proc::Tablet),
        2 => (0u8..3).prop_map(Proc::Nameserver),
        1 => (0u8..2).prop_map(Proc::Taskmanager),
    ]
}

fn duration() -> impl Strategy<Value = u64> {
    500u64..=12_000
}

pub fn fault() -> impl Strategy<Value = Fault> {
    prop_oneof![
        4 => process().prop_map(Fault::Crash),
        2 => process().prop_map(Fault::Restart),
        1 => (0u8..5, 1000u64..=15_000).prop_map(|(m, dur_ms)| Fault::MachineRestart { m, dur_ms }),
        2 => (1u16..u16::MAX, duration()).prop_map(|(mask, dur_ms)| Fault::Partition { mask, dur_ms }),
        1 => (process(), duration()).prop_map(|(p, dur_ms)| Fault::Isolate { p, dur_ms }),
        1 => (process(), duration()).prop_map(|(p, dur_ms)| Fault::IsolateFromCoord { p, dur_ms }),
        1 => (process(), process(), duration()).prop_map(|(from, to, dur_ms)| Fault::Clog { from, to, dur_ms }),
        1 => (process(), duration()).prop_map(|(p, dur_ms)| Fault::Pause { p, dur_ms }),
        1 => (200u64..=1500).prop_map(|dur_ms| Fault::PauseCoord { dur_ms }),
        1 => (0u8..5, duration()).prop_map(|(tablet, dur_ms)| Fault::SlowFsync { tablet, dur_ms }),
        1 => (0u8..5, duration()).prop_map(|(tablet, dur_ms)| Fault::WriteError { tablet, dur_ms }),
        1 => (0u8..5).prop_map(|tablet| Fault::CorruptTail { tablet }),
        1 => (0u8..8).prop_map(|pid| Fault::MakeSnapshot { pid }),
        2 => (0u8..=10, 1u64..=150, duration())
            .prop_map(|(loss_pct, latency_ms, dur_ms)| Fault::Network { loss_pct, latency_ms, dur_ms }),
    ]
}

pub fn schedule() -> impl Strategy<Value = Vec<TimedFault>> {
    prop::collection::vec(
        (2000u64..=30_000, fault()).prop_map(|(at_ms, fault)| TimedFault { at_ms, fault }),
        0..=MAX_FAULTS,
    )
}

/// A whole case; `seed` is the simulator's seed.
pub fn case() -> impl Strategy<Value = FuzzCase> {
    (shape(), flags(), load(), schedule(), 1u64..=1_000_000).prop_map(|(shape, flags, load, faults, seed)| FuzzCase {
        shape,
        flags,
        load,
        faults,
        seed,
    })
}
