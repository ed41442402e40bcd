//! What a server's high availability looks like beyond its copies' roles: the record salve
//! keeps on the host while a server is in maintenance, passive copies catching up after the
//! server comes back, content indexes, the transport queue and non-replicated databases.
//!
//! Rules modelled (each named with the Windows/Exchange behaviour behind it):
//! - **Copies catch up after a restart.** While a DAG member is down, the active copies
//!   elsewhere keep generating transaction logs; when it comes back its passive copies show
//!   the backlog as `CopyQueueLength` (logs not yet copied), which drains as the Microsoft
//!   Exchange Replication service ships them (`Get-MailboxDatabaseCopyStatus`, "Monitor
//!   database availability groups" on Microsoft Learn). The scenario's `resync` gives the
//!   backlog and the rate (logs per simulated minute); rate 0 never drains.
//! - **Content index.** `Get-MailboxDatabaseCopyStatus` reports `ContentIndexState`
//!   (`Healthy`, `Failed`, `Crawling`, ...) per copy on Exchange 2013/2016; the scenario's
//!   `content_index_failed` lists copies whose index is not Healthy.
//! - **Transport queue.** Messages wait in the server's queues (`Get-Queue`) until delivered;
//!   `Redirect-Message -Target` hands them to the target server's queue.
//! - **Non-replicated databases.** A standalone server's databases (and a DAG database with
//!   one copy) are mounted where they are and cannot be moved: `Move-ActiveMailboxDatabase`
//!   needs another copy.

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use salve_contract::contract::MaintenanceRecord;

/// A restart's backlog of logs on each passive copy, and how fast it drains.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resync {
    /// Logs behind on each passive copy when the server comes back.
    pub logs: u64,
    /// Logs copied per simulated minute; 0 never catches up.
    pub per_minute: u64,
}

/// The server's high-availability state besides its copies (see the module doc).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HaState {
    /// `C:\salve\maintenance.json`: what salve recorded when it put the server into
    /// maintenance, until leave restored it.
    #[serde(default)]
    pub record: Option<MaintenanceRecord>,
    /// The backlog each restart leaves (scenario `resync`); none: copies are current at once.
    #[serde(default)]
    pub resync: Option<Resync>,
    /// When the server last came back, while its passive copies still catch up.
    #[serde(default)]
    pub catching_up_since: Option<Timestamp>,
    /// Databases whose copy here has a content index that is not Healthy.
    #[serde(default)]
    pub content_index_failed: Vec<String>,
    /// Messages in this server's transport queues.
    #[serde(default)]
    pub transport_queue: u64,
}

impl HaState {
    /// The server came back from a restart at `at`: its passive copies start catching up.
    pub fn came_back(&mut self, at: Timestamp) {
        if self.resync.is_some() {
            self.catching_up_since = Some(at);
        }
    }

    /// Each passive copy's queue at `now` (`None`: nothing to catch up, leave queues alone).
    pub fn backlog(&mut self, now: Timestamp) -> Option<u64> {
        let (resync, since) = (self.resync?, self.catching_up_since?);
        let minutes = u64::try_from(
            now.duration_since(since)
                .max(SignedDuration::ZERO)
                .as_secs()
                / 60,
        )
        .unwrap_or(0);
        let left = resync
            .logs
            .saturating_sub(resync.per_minute.saturating_mul(minutes));
        if left == 0 {
            self.catching_up_since = None;
        }
        Some(left)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backlog_drains_at_its_rate_and_a_zero_rate_never_does() {
        let t0 = Timestamp::from_second(1_615_363_200).unwrap();
        let at = |m: i64| t0.saturating_add(SignedDuration::from_mins(m)).unwrap();
        let mut ha = HaState {
            resync: Some(Resync {
                logs: 412,
                per_minute: 100,
            }),
            ..HaState::default()
        };
        assert_eq!(ha.backlog(at(1)), None, "nothing before a restart");
        ha.came_back(t0);
        assert_eq!(ha.backlog(at(2)), Some(212));
        assert_eq!(ha.backlog(at(5)), Some(0));
        assert_eq!(ha.backlog(at(6)), None, "caught up, then left alone");
        ha.resync = Some(Resync {
            logs: 412,
            per_minute: 0,
        });
        ha.came_back(t0);
        assert_eq!(ha.backlog(at(600)), Some(412));
    }
}
