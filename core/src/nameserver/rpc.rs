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
