//! The tablet's RPCs: one line each.

use crate::proto::tablet as pb;
use crate::rpc_method;

rpc_method!(pub Put, "tablet.Put", pb::PutRequest => pb::PutResponse);
rpc_method!(pub Get, "tablet.Get", pb::GetRequest => pb::GetResponse);
rpc_method!(pub Scan, "tablet.Scan", pb::ScanRequest => pb::ScanResponse);
rpc_method!(pub Delete, "tablet.Delete", pb::DeleteRequest => pb::DeleteResponse);
rpc_method!(pub Dump, "tablet.Dump", pb::DumpRequest => pb::DumpResponse);
rpc_method!(pub AppendEntries, "tablet.AppendEntries", pb::AppendEntriesRequest => pb::AppendEntriesResponse);
rpc_method!(pub CreateTable, "tablet.CreateTable", pb::CreateTableRequest => pb::GeneralResponse);
rpc_method!(pub LoadTable, "tablet.LoadTable", pb::LoadTableRequest => pb::GeneralResponse);
rpc_method!(pub DropTable, "tablet.DropTable", pb::TablePidRequest => pb::GeneralResponse);
rpc_method!(pub GetTableStatus, "tablet.GetTableStatus", pb::GetTableStatusRequest => pb::GetTableStatusResponse);
rpc_method!(pub ChangeRole, "tablet.ChangeRole", pb::ChangeRoleRequest => pb::GeneralResponse);
rpc_method!(pub AddReplica, "tablet.AddReplica", pb::ReplicaRequest => pb::GeneralResponse);
rpc_method!(pub DelReplica, "tablet.DelReplica", pb::ReplicaRequest => pb::GeneralResponse);
rpc_method!(pub MakeSnapshot, "tablet.MakeSnapshot", pb::MakeSnapshotRequest => pb::GeneralResponse);
rpc_method!(pub PauseSnapshot, "tablet.PauseSnapshot", pb::TablePidRequest => pb::GeneralResponse);
rpc_method!(pub RecoverSnapshot, "tablet.RecoverSnapshot", pb::TablePidRequest => pb::GeneralResponse);
rpc_method!(pub SendSnapshot, "tablet.SendSnapshot", pb::SendSnapshotRequest => pb::GeneralResponse);
rpc_method!(pub InstallSnapshot, "tablet.InstallSnapshot", pb::InstallSnapshotRequest => pb::GeneralResponse);
rpc_method!(pub GetTermPair, "tablet.GetTermPair", pb::TablePidRequest => pb::GetTermPairResponse);
rpc_method!(pub GetLogOffset, "tablet.GetLogOffset", pb::TablePidRequest => pb::GetTermPairResponse);
rpc_method!(pub GetFollower, "tablet.GetFollower", pb::TablePidRequest => pb::GetFollowerResponse);
rpc_method!(pub DeleteBinlog, "tablet.DeleteBinlog", pb::TablePidRequest => pb::GeneralResponse);
rpc_method!(pub GetTaskStatus, "tablet.GetTaskStatus", pb::GetTaskStatusRequest => pb::GetTaskStatusResponse);
rpc_method!(pub DeleteOpTask, "tablet.DeleteOPTask", pb::DeleteOpTaskRequest => pb::GeneralResponse);
