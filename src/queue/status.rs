//! `salve queue status`: work items counted by tenant, state and runner, with how long the
//! oldest lease in each group has left (database clock; negative: expired, awaiting takeover).

use std::fmt::Write as _;

use sqlx::Row as _;

use super::{Queue, QueueError};

/// One line of the status table.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusRow {
    pub tenant: String,
    pub state: String,
    /// The runner holding the items (claimed or running), if any.
    pub runner: Option<String>,
    pub items: i64,
    /// Seconds until the soonest lease in the group runs out.
    pub lease_left_s: Option<f64>,
}

/// The status of every item the connected role may see (all, for the controller's role).
pub async fn status(queue: &Queue) -> Result<Vec<StatusRow>, QueueError> {
    let rows = sqlx::query(
        "SELECT tenant, state, owner, count(*) AS items,
                min(extract(epoch FROM lease_until - now()))::float8 AS lease_left
         FROM salve.work
         GROUP BY tenant, state, owner
         ORDER BY tenant, state, owner NULLS FIRST",
    )
    .fetch_all(queue.pool())
    .await
    .map_err(QueueError::db("reading the queue status", None))?;
    rows.iter()
        .map(|r| {
            let state: String = r.try_get("state")?;
            let active = state == "claimed" || state == "running";
            Ok(StatusRow {
                tenant: r.try_get("tenant")?,
                runner: r.try_get::<Option<String>, _>("owner")?.filter(|_| active),
                state,
                items: r.try_get("items")?,
                lease_left_s: r.try_get("lease_left")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(QueueError::db("reading the queue status", None))
}

/// The table, one line per group.
pub fn render(rows: &[StatusRow]) -> String {
    let mut out = format!(
        "{:<16} {:<10} {:<24} {:>6} {:>10}\n",
        "TENANT", "STATE", "RUNNER", "ITEMS", "LEASE"
    );
    for r in rows {
        let lease = r
            .lease_left_s
            .map(|s| {
                if s < 0.0 {
                    format!("expired {:.0}s", -s)
                } else {
                    format!("{s:.0}s")
                }
            })
            .unwrap_or_else(|| "-".into());
        let _ = writeln!(
            out,
            "{:<16} {:<10} {:<24} {:>6} {:>10}",
            r.tenant,
            r.state,
            r.runner.as_deref().unwrap_or("-"),
            r.items,
            lease
        );
    }
    if rows.is_empty() {
        out.push_str("(no work items)\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_expired_leases_and_idle_groups() {
        let rows = [
            StatusRow {
                tenant: "contoso".into(),
                state: "queued".into(),
                runner: None,
                items: 3,
                lease_left_s: None,
            },
            StatusRow {
                tenant: "contoso".into(),
                state: "running".into(),
                runner: Some("r1".into()),
                items: 1,
                lease_left_s: Some(-12.4),
            },
        ];
        let text = render(&rows);
        assert!(text.contains("contoso          queued     -"), "{text}");
        assert!(text.contains("expired 12s"), "{text}");
        assert_eq!(render(&[]).lines().count(), 2);
    }
}
