//! The TaskManager's RPCs: one line each.

use crate::proto::taskmanager as pb;
use crate::rpc_method;

rpc_method!(pub SubmitJob, "tm.SubmitJob", pb::SubmitJobRequest => pb::SubmitJobResponse);
rpc_method!(pub ShowJobs, "tm.ShowJobs", pb::ShowJobsRequest => pb::ShowJobsResponse);
rpc_method!(pub ShowJob, "tm.ShowJob", pb::ShowJobRequest => pb::ShowJobResponse);
rpc_method!(pub StopJob, "tm.StopJob", pb::StopJobRequest => pb::StopJobResponse);
