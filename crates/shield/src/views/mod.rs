//! What the system shows of itself: the status document and the threat assessment of an
//! address. Read-only views over [`crate::shared::Core`], for the admin API and the library's
//! callers (and the dashboard, as it grows).

mod assessment;
mod offenders;
mod status;

pub(crate) use assessment::threat_assessment;
pub use assessment::{RequestRate, ThreatAssessment};
pub(crate) use offenders::offenders;
pub use offenders::Offender;
pub(crate) use status::status;
pub use status::{ComponentStatus, SecurityStatus};
