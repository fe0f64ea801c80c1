//! OpenMLDB's nameserver return codes (`base/status.h`), carried as [`Status`] codes.

use crate::rpc::Status;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    TableAlreadyExists = 101,
    TableIsNotExist = 100,
    NameserverIsNotLeader = 300,
    AutoFailoverIsEnabled = 301,
    EndpointIsNotExist = 302,
    TabletIsNotHealthy = 303,
    SetZkFailed = 304,
    InvalidParameter = 307,
    PidIsNotExist = 308,
    DropTableError = 313,
    SetPartitionInfoFailed = 314,
    CreateTableFailedOnTablet = 316,
}

impl Code {
    pub fn message(self) -> &'static str {
        match self {
            Code::TableAlreadyExists => "table already exists",
            Code::TableIsNotExist => "table is not exist",
            Code::NameserverIsNotLeader => "nameserver is not leader",
            Code::AutoFailoverIsEnabled => "auto_failover is enabled",
            Code::EndpointIsNotExist => "endpoint is not exist",
            Code::TabletIsNotHealthy => "tablet is not healthy",
            Code::SetZkFailed => "set zk failed",
            Code::InvalidParameter => "invalid parameter",
            Code::PidIsNotExist => "pid is not exist",
            Code::DropTableError => "drop table error",
            Code::SetPartitionInfoFailed => "set partition info failed",
            Code::CreateTableFailedOnTablet => "create table failed on tablet",
        }
    }
    pub fn status(self) -> Status {
        Status::new(self as i32, self.message())
    }
    pub fn with(self, detail: impl std::fmt::Display) -> Status {
        Status::new(self as i32, format!("{}: {detail}", self.message()))
    }
    pub fn is(self, status: &Status) -> bool {
        status.code == self as i32
    }
}
