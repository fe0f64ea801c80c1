//! Which op queue an op joins (reference 4.2, OpenMLDB's `AddOPData`).

/// The queue of a local op of partition `pid`: `pid % concurrency` when `0 < concurrency < max_concurrency`,
/// otherwise `pid % max_concurrency`. So every op of one pid made with the same concurrency lands in the same
/// queue and runs in order (and so do unrelated partitions with the same remainder).
///
/// `max_concurrency` is the number of queues, `name_server_task_max_concurrency`. Follows reference 4.2; the one
/// difference is that OpenMLDB has `name_server_task_concurrency_for_replica_cluster` more queues for
/// multi-cluster ops, which this system does not have, so the queue count is `max_concurrency` itself (with
/// `concurrency == max_concurrency` both formulas give the same queue).
///
/// Panics if `max_concurrency` is 0: there would be no queue to join (the flag is validated at startup).
pub fn queue_index(pid: u32, concurrency: u32, max_concurrency: u32) -> usize {
    assert!(max_concurrency > 0, "name_server_task_max_concurrency must be at least 1");
    let queues = if concurrency > 0 && concurrency < max_concurrency { concurrency } else { max_concurrency };
    (pid % queues) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_pid_same_queue_and_in_range_exhaustively() {
        for max in 1..=10u32 {
            for concurrency in 0..=12u32 {
                for pid in 0..40u32 {
                    let q = queue_index(pid, concurrency, max);
                    assert!(q < max as usize, "pid={pid} c={concurrency} max={max}: {q}");
                    let want = if (1..max).contains(&concurrency) { pid % concurrency } else { pid % max };
                    assert_eq!(q, want as usize);
                }
            }
        }
    }

    #[test]
    fn reference_examples() {
        // Default concurrency 2 of 8 queues: pid parity.
        assert_eq!((0..6).map(|p| queue_index(p, 2, 8)).collect::<Vec<_>>(), vec![0, 1, 0, 1, 0, 1]);
        // addreplica uses concurrency 1: always queue 0.
        assert_eq!(queue_index(7, 1, 8), 0);
        // 0 or too large: spread over every queue.
        assert_eq!(queue_index(13, 0, 8), 5);
        assert_eq!(queue_index(13, 20, 8), 5);
    }

    #[test]
    #[should_panic(expected = "name_server_task_max_concurrency")]
    fn zero_queues_is_a_configuration_bug() {
        queue_index(0, 0, 0);
    }
}
