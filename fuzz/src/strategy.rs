//! proptest strategies for a [`FuzzCase`]: shapes, flags around their defaults, a workload, and a schedule of up
//! to [`MAX_FAULTS`] faults between 2 s and 30 s. Every part shrinks toward the simplest: fewer faults, shorter
//! faults, the first process, defaults.

use proptest::prelude::*;

use crate::case::{CoordDown, Fault, FlagSet, FuzzCase, Load, Proc, Replica, Shape, Then, TimedFault};

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
    // Readers in about 80 % of the cases (a shrink drops them).
    (20u32..=200, prop::bool::weighted(0.8), prop::option::weighted(0.3, 200u32..=2000))
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

/// A coordination-server pause in thousandths of the session timeout: on either side of it, never at it.
fn coord_pause() -> impl Strategy<Value = u16> {
    prop_oneof![300u16..=900, 1050u16..=2000]
}

fn replica() -> impl Strategy<Value = Replica> {
    prop_oneof![
        1 => (0u8..5).prop_map(Replica::Tablet),
        2 => (0u8..8).prop_map(Replica::Leader),
        1 => (0u8..8).prop_map(Replica::Follower),
    ]
}

fn then() -> impl Strategy<Value = Then> {
    prop_oneof![Just(Then::Nothing), Just(Then::Restart), Just(Then::Crash)]
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
        2 => coord_pause().prop_map(|permille| Fault::PauseCoord { permille }),
        2 => (prop_oneof![Just(CoordDown::Crash), Just(CoordDown::Restart), Just(CoordDown::PowerLoss)], coord_pause())
            .prop_map(|(how, permille)| Fault::CoordDown { how, permille }),
        1 => (process(), any::<bool>(), duration())
            .prop_map(|(p, to_coord, dur_ms)| Fault::ClogCoord { p, to_coord, dur_ms }),
        1 => (any::<u8>(), 1u8..=u8::MAX, duration())
            .prop_map(|(ns_mask, tablet_mask, dur_ms)| Fault::NsCut { ns_mask, tablet_mask, dur_ms }),
        1 => (0u8..5, duration()).prop_map(|(tablet, dur_ms)| Fault::SlowFsync { tablet, dur_ms }),
        1 => (0u8..5, duration()).prop_map(|(tablet, dur_ms)| Fault::WriteError { tablet, dur_ms }),
        2 => (replica(), then(), 0u64..=5000)
            .prop_map(|(replica, then, after_ms)| Fault::CorruptTail { replica, then, after_ms }),
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
