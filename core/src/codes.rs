//! OpenMLDB's return codes (`base/status.h`: one enum for tablets and nameservers), carried as [`Status`] codes so
//! every client sees the names and numbers OpenMLDB uses.

use crate::rpc::Status;

/// The return codes the servers answer with. Their numbers are OpenMLDB's, except ours at 190 and up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    TableIsNotExist = 100,
    TableAlreadyExists = 101,
    TableIsLeader = 102,
    TableIsFollower = 103,
    TableIsLoading = 104,
    TableStatusIsNotKnormal = 105,
    TableStatusIsKmakingsnapshot = 106,
    TableStatusIsNotKsnapshotpaused = 107,
    IdxNameNotFound = 108,
    KeyNotFound = 109,
    ReplicatorIsNotExist = 110,
    SnapshotIsNotExist = 111,
    InvalidDimensionParameter = 115,
    PutFailed = 116,
    StLessThanEt = 117,
    ReplicaEndpointAlreadyExists = 119,
    FailToAddReplicaEndpoint = 120,
    ReplicatorRoleIsNotLeader = 121,
    FailToAppendEntriesToReplicator = 122,
    WriteDataFailed = 127,
    SnapshotIsSending = 128,
    TableMetaIsIllegal = 129,
    CreateTableFailed = 131,
    NoFollower = 134,
    /// Not in OpenMLDB (DESIGN 5.1): a leader whose coordination session is in doubt refuses writes. Our own
    /// codes sit at 190 and up, between OpenMLDB's tablet codes (100..~170) and its nameserver codes (300..).
    LeaderFenced = 190,
    /// Not in OpenMLDB: an AppendEntries from an older term than the follower's.
    TermIsLower = 191,
    /// Not in OpenMLDB's enum (its TaskManager is a separate Java service): this TaskManager is a standby.
    TaskManagerIsNotLeader = 192,
    JobIsNotExist = 193,
    /// stopjob of a job that already ended.
    JobIsFinished = 194,
    /// Not in OpenMLDB: a task from a nameserver older than one the tablet already serves (a deposed
    /// nameserver's request that arrived late).
    StaleTask = 195,
    NameserverIsNotLeader = 300,
    AutoFailoverIsEnabled = 301,
    EndpointIsNotExist = 302,
    TabletIsNotHealthy = 303,
    SetZkFailed = 304,
    CreateOpFailed = 305,
    InvalidParameter = 307,
    PidIsNotExist = 308,
    LeaderIsAlive = 309,
    NoAliveFollower = 310,
    PartitionIsAlive = 311,
    OpStatusIsNotKdoingOrKinited = 312,
    DropTableError = 313,
    SetPartitionInfoFailed = 314,
    CreateTableFailedOnTablet = 316,
    PidAlreadyExist = 317,
    SrcEndpointIsNotExistOrNotHealthy = 318,
    DesEndpointIsNotExistOrNotHealthy = 319,
    MigrateFailed = 320,
    NoPidHasUpdate = 321,
}

impl Code {
    /// OpenMLDB's message for the code.
    pub fn message(self) -> &'static str {
        match self {
            Code::TableIsNotExist => "table is not exist",
            Code::TableAlreadyExists => "table already exists",
            Code::TableIsLeader => "table is leader",
            Code::TableIsFollower => "table is follower",
            Code::TableIsLoading => "table is loading",
            Code::TableStatusIsNotKnormal => "table status is not kTableNormal",
            Code::TableStatusIsKmakingsnapshot => "table status is kMakingSnapshot",
            Code::TableStatusIsNotKsnapshotpaused => "table status is not kSnapshotPaused",
            Code::IdxNameNotFound => "idx name not found",
            Code::KeyNotFound => "key not found",
            Code::ReplicatorIsNotExist => "replicator is not exist",
            Code::SnapshotIsNotExist => "snapshot is not exist",
            Code::InvalidDimensionParameter => "invalid dimension parameter",
            Code::PutFailed => "put failed",
            Code::StLessThanEt => "starttime less than endtime",
            Code::ReplicaEndpointAlreadyExists => "replica endpoint already exists",
            Code::FailToAddReplicaEndpoint => "fail to add replica endpoint",
            Code::ReplicatorRoleIsNotLeader => "replicator role is not leader",
            Code::FailToAppendEntriesToReplicator => "fail to append entries to replicator",
            Code::WriteDataFailed => "write data failed",
            Code::SnapshotIsSending => "snapshot is sending",
            Code::TableMetaIsIllegal => "table meta is illegal",
            Code::CreateTableFailed => "create table failed",
            Code::NoFollower => "has no follower",
            Code::LeaderFenced => "leader is fenced: coordination session not confirmed",
            Code::TermIsLower => "term is lower than the follower's",
            Code::TaskManagerIsNotLeader => "taskmanager is not leader",
            Code::JobIsNotExist => "job is not exist",
            Code::JobIsFinished => "job is finished",
            Code::StaleTask => "task from a deposed nameserver",
            Code::NameserverIsNotLeader => "nameserver is not leader",
            Code::AutoFailoverIsEnabled => "auto_failover is enabled",
            Code::EndpointIsNotExist => "endpoint is not exist",
            Code::TabletIsNotHealthy => "tablet is not healthy",
            Code::SetZkFailed => "set zk failed",
            Code::CreateOpFailed => "create op failed",
            Code::InvalidParameter => "invalid parameter",
            Code::PidIsNotExist => "pid is not exist",
            Code::LeaderIsAlive => "leader is alive",
            Code::NoAliveFollower => "no alive follower",
            Code::PartitionIsAlive => "table is alive, need not recover",
            Code::OpStatusIsNotKdoingOrKinited => "op status is not kDoing or kInited",
            Code::DropTableError => "drop table error",
            Code::SetPartitionInfoFailed => "set partition info failed",
            Code::CreateTableFailedOnTablet => "create table failed on tablet",
            Code::PidAlreadyExist => "pid already exist",
            Code::SrcEndpointIsNotExistOrNotHealthy => "src_endpoint is not exist or not healthy",
            Code::DesEndpointIsNotExistOrNotHealthy => "des_endpoint is not exist or not healthy",
            Code::MigrateFailed => "migrate failed",
            Code::NoPidHasUpdate => "no pid has update",
        }
    }

    pub fn status(self) -> Status {
        Status::new(self as i32, self.message())
    }

    /// The code with more detail after OpenMLDB's message.
    pub fn with(self, detail: impl std::fmt::Display) -> Status {
        Status::new(self as i32, format!("{}: {detail}", self.message()))
    }

    pub fn is(self, status: &Status) -> bool {
        status.code == self as i32
    }
}
