//! OpenMLDB's tablet return codes (`base/status.h`), carried as [`Status`] codes so clients see the same names.

use crate::rpc::Status;

/// The return codes a tablet answers with. Their numbers are OpenMLDB's.
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
    /// codes use 190 and up, which OpenMLDB leaves free.
    LeaderFenced = 190,
    /// Not in OpenMLDB: an AppendEntries from an older term than the follower's.
    TermIsLower = 191,
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
