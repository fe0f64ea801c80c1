//! The nameserver's RPCs: one line each.

use crate::proto::nameserver as pb;
use crate::rpc_method;

rpc_method!(pub CreateTable, "ns.CreateTable", pb::CreateTableRequest => pb::GeneralResponse);
rpc_method!(pub DropTable, "ns.DropTable", pb::DropTableRequest => pb::GeneralResponse);
rpc_method!(pub ShowTable, "ns.ShowTable", pb::ShowTableRequest => pb::ShowTableResponse);
rpc_method!(pub ShowTablet, "ns.ShowTablet", pb::ShowTabletRequest => pb::ShowTabletResponse);
rpc_method!(pub ShowNameServer, "ns.ShowNameServer", pb::ShowNameServerRequest => pb::ShowNameServerResponse);
rpc_method!(pub ConfGet, "ns.ConfGet", pb::ConfGetRequest => pb::ConfGetResponse);
rpc_method!(pub ConfSet, "ns.ConfSet", pb::ConfSetRequest => pb::GeneralResponse);
rpc_method!(pub ShowOpStatus, "ns.ShowOPStatus", pb::ShowOpStatusRequest => pb::ShowOpStatusResponse);
rpc_method!(pub OfflineEndpoint, "ns.OfflineEndpoint", pb::OfflineEndpointRequest => pb::GeneralResponse);
rpc_method!(pub RecoverEndpoint, "ns.RecoverEndpoint", pb::RecoverEndpointRequest => pb::GeneralResponse);
rpc_method!(pub ChangeLeader, "ns.ChangeLeader", pb::ChangeLeaderRequest => pb::GeneralResponse);
rpc_method!(pub RecoverTable, "ns.RecoverTable", pb::RecoverTableRequest => pb::GeneralResponse);
rpc_method!(pub UpdateTableAlive, "ns.UpdateTableAliveStatus", pb::UpdateTableAliveRequest => pb::GeneralResponse);
rpc_method!(pub AddReplica, "ns.AddReplicaNS", pb::ReplicaChangeRequest => pb::GeneralResponse);
rpc_method!(pub DelReplica, "ns.DelReplicaNS", pb::ReplicaChangeRequest => pb::GeneralResponse);
rpc_method!(pub Migrate, "ns.Migrate", pb::MigrateRequest => pb::GeneralResponse);
rpc_method!(pub MakeSnapshot, "ns.MakeSnapshotNS", pb::MakeSnapshotNsRequest => pb::GeneralResponse);
rpc_method!(pub CancelOp, "ns.CancelOP", pb::CancelOpRequest => pb::GeneralResponse);
rpc_method!(pub DeleteOp, "ns.DeleteOP", pb::DeleteOpRequest => pb::GeneralResponse);
