//! `moat up --telemetry-off` (hidden; for `bench/telemetry.sh` only): the gateway reports
//! nothing, so a benchmark can measure what a request costs without metrics, function logs,
//! traces, policy-decision counts, or audit records of limit hits and refused invocations
//! (`authorized` keeps the trait's no-op). Never for production: SPEC §5 wants every limit
//! hit and refusal in the audit chain, and this drops them; the node says so at start and
//! records it.

use moat_gateway::{Observer, Route};
use moat_runtime::Report;

pub struct Quiet;

impl Observer for Quiet {
    fn finished(&self, _route: &Route, _request_id: &str, _report: Report) {}
    fn responded(&self, _route: Option<&Route>, _status: u16) {}
    fn limit_hit(&self, _function: &str, _limit: &'static str, _request_id: &str) {}
}
