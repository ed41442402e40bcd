//! `salve queue tenant`: a tenant's settings in the queue — its concurrency cap (work items
//! claimed or running at once across all its runners) and the runner roles that serve it
//! (mapped in `deploy/roles.sql`, read by row-level security).

use super::{Queue, QueueError};

/// A tenant as the queue knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    pub name: String,
    pub max_concurrency: i32,
    pub roles: Vec<String>,
}

impl Queue {
    /// Create the tenant or change its cap; `None` leaves the cap as it is (a new tenant gets
    /// the default). Returns the tenant as stored.
    pub async fn set_tenant(
        &self,
        name: &str,
        max_concurrency: Option<i32>,
    ) -> Result<Tenant, QueueError> {
        let err = |doing| QueueError::db(doing, None);
        sqlx::query(
            "INSERT INTO salve.tenants (name, max_concurrency) VALUES ($1, coalesce($2, 50))
             ON CONFLICT (name) DO UPDATE
                 SET max_concurrency = coalesce($2, tenants.max_concurrency)",
        )
        .bind(name)
        .bind(max_concurrency)
        .execute(&self.pool)
        .await
        .map_err(err("saving the tenant"))?;
        let (max_concurrency, roles): (i32, Vec<String>) = sqlx::query_as(
            "SELECT t.max_concurrency,
                    coalesce(array_agg(r.role::text ORDER BY r.role)
                        FILTER (WHERE r.role IS NOT NULL), '{}')
             FROM salve.tenants t LEFT JOIN salve.tenant_roles r ON r.tenant = t.name
             WHERE t.name = $1 GROUP BY t.max_concurrency",
        )
        .bind(name)
        .fetch_one(&self.pool)
        .await
        .map_err(err("reading the tenant"))?;
        Ok(Tenant {
            name: name.to_string(),
            max_concurrency,
            roles,
        })
    }
}

impl std::fmt::Display for Tenant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let roles = if self.roles.is_empty() {
            "none yet (see deploy/roles.sql)".to_string()
        } else {
            self.roles.join(", ")
        };
        write!(
            f,
            "tenant {}: at most {} host(s) at once; runner roles: {roles}",
            self.name, self.max_concurrency
        )
    }
}
