//! Simulated machines: an address block, a disk, and the processes placed on it.
//!
//! madsim gives every node exactly one IP, and a process is a node (so it can be killed, restarted and paused on
//! its own). A machine therefore owns the block `10.0.<m>.0/24`, and its k-th process listens on `10.0.<m>.<k>`.
//! Every process of a machine shares the machine's [`SimDisk`]: a process crash leaves the disk's page cache as it
//! was; a machine restart is a power loss of that disk.

use std::net::{IpAddr, Ipv4Addr};

use openmldb::storage::SimDisk;

/// Index of a machine in its cluster.
pub type MachineId = usize;

/// One simulated machine.
#[derive(Clone)]
pub struct Machine {
    pub id: MachineId,
    pub name: String,
    pub disk: SimDisk,
    /// Names of the processes placed here, in placement order.
    pub processes: Vec<String>,
}

impl Machine {
    /// The address of the `slot`-th process (1-based) of machine `id`.
    pub fn process_ip(id: MachineId, slot: usize) -> IpAddr {
        let m = u8::try_from(id).expect("at most 255 machines");
        let s = u8::try_from(slot).expect("at most 254 processes per machine");
        assert!((1..=254).contains(&s), "process slot {slot} out of range");
        IpAddr::V4(Ipv4Addr::new(10, 0, m, s))
    }
}
