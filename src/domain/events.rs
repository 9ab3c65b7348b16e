//! Customer events: the outbox every audited change of a customer's graph writes in its own
//! transaction, and the ways consumers read it (a page after a sequence, or a stream that replays
//! then follows). A tenant's events are numbered under the audit head's row lock, so sequence
//! order is commit order and there are no gaps.

use std::time::Duration;

use tokio::sync::{broadcast, mpsc};
use uuid::Uuid;

use super::access::{Action, Caller};
use crate::error::{Error, Result};
use crate::reason;
use crate::store::{self, Store};

pub use super::model::event::{CustomerEvent, OutboxEvent};

/// The event an audited action publishes, if it changes a customer's graph or a deletion batch's
/// course. A batch event carries the numbers of its audit summary (`key=value` pairs: ids and
/// counts only, never personal data) as its counts.
pub fn outbox(
    action: &str,
    target_type: &str,
    target_id: Uuid,
    customer_id: Option<Uuid>,
    summary: &str,
) -> Option<OutboxEvent> {
    if let Some(event_type) = batch_event_type(action) {
        return Some(OutboxEvent {
            event_type,
            customer_id: None,
            record_type: target_type.to_owned(),
            record_id: Some(target_id),
            counts: summary_counts(summary),
        });
    }
    let customer_id = customer_id?;
    if action == "deletion_request.escalate" {
        return Some(escalated(customer_id, target_type, target_id, summary));
    }
    let event_type = match action {
        "customer.create" => "CREATED",
        "customer.update" => "UPDATED",
        "customer.delete" => "DELETED",
        "customer.restore" => "RESTORED",
        "customer.purge" => "PURGED",
        "customer.legal_hold.set" | "customer.legal_hold.lift" => "LEGAL_HOLD_CHANGED",
        "deletion_request.submit" => "DELETION_REQUESTED",
        "deletion_request.approve" => "DELETION_APPROVED",
        "deletion_request.reject"
        | "deletion_request.cancel"
        | "deletion_request.stale"
        | "deletion_request.expire" => "DELETION_WITHDRAWN",
        // A record's own writes; `.restore` and `.purge` here are a record deleted on its own
        // coming back or being erased (the customer's own are matched above); a `.move` is
        // audited once for each of the two customers.
        a if [
            ".create", ".update", ".delete", ".restore", ".purge", ".move",
        ]
        .iter()
        .any(|write| a.ends_with(write)) =>
        {
            "RECORD_CHANGED"
        }
        _ => return None,
    };
    let (record_type, record_id) = if target_type == "customer" {
        (String::new(), None)
    } else {
        (target_type.to_owned(), Some(target_id))
    };
    Some(OutboxEvent {
        event_type,
        customer_id: Some(customer_id),
        record_type,
        record_id,
        counts: Vec::new(),
    })
}

/// A request's escalation, on its customer's stream, with the summary's figures.
fn escalated(customer_id: Uuid, target_type: &str, target_id: Uuid, summary: &str) -> OutboxEvent {
    OutboxEvent {
        event_type: "DELETION_ESCALATED",
        customer_id: Some(customer_id),
        record_type: target_type.to_owned(),
        record_id: Some(target_id),
        counts: summary_counts(summary),
    }
}

/// Every event an audited action publishes: a merge or an unmerge publishes one for each of its
/// two customers (the summary names both), anything else what `outbox` says.
pub fn outbox_all(
    action: &str,
    target_type: &str,
    target_id: Uuid,
    customer_id: Option<Uuid>,
    summary: &str,
) -> Vec<OutboxEvent> {
    let event_type = match action {
        "customer.merge" => "MERGED",
        "customer.unmerge" => "UNMERGED",
        _ => {
            return outbox(action, target_type, target_id, customer_id, summary)
                .into_iter()
                .collect();
        }
    };
    let id = |key: &str| {
        summary
            .split_whitespace()
            .find_map(|pair| pair.strip_prefix(key)?.strip_prefix('='))
            .and_then(|id| id.parse::<Uuid>().ok())
    };
    let (Some(duplicate), Some(survivor)) = (id("duplicate_id"), id("survivor_id")) else {
        return Vec::new();
    };
    let counts = summary_counts(summary);
    [
        (duplicate, "survivor", survivor),
        (survivor, "duplicate", duplicate),
    ]
    .into_iter()
    .map(|(customer, other_role, other)| OutboxEvent {
        event_type,
        customer_id: Some(customer),
        record_type: other_role.to_owned(),
        record_id: Some(other),
        counts: counts.clone(),
    })
    .collect()
}

fn batch_event_type(action: &str) -> Option<&'static str> {
    Some(match action {
        "deletion_batch.submit" => "DELETION_BATCH_SUBMITTED",
        "deletion_batch.approve"
        | "deletion_batch.reject"
        | "deletion_batch.cancel"
        | "deletion_batch.expire" => "DELETION_BATCH_DECIDED",
        "deletion_batch.start" | "deletion_batch.restore" => "DELETION_BATCH_STARTED",
        "deletion_batch.complete" | "deletion_batch.restored" => "DELETION_BATCH_COMPLETED",
        "deletion_batch.escalate" => "DELETION_ESCALATED",
        _ => return None,
    })
}

/// The `key=number` pairs of an audit summary, in order.
fn summary_counts(summary: &str) -> Vec<(String, i64)> {
    summary
        .split_whitespace()
        .filter_map(|pair| {
            let (key, value) = pair.split_once('=')?;
            Some((key.to_owned(), value.parse().ok()?))
        })
        .collect()
}

/// Wakes watchers when a tenant may have new events. On PostgreSQL a LISTEN task feeds it from
/// NOTIFY (sent after each commit by `store::notify`); on SQLite nothing does, and watchers poll.
#[derive(Clone)]
pub struct EventSignal {
    tenants: broadcast::Sender<String>,
    /// Set when the server shuts down: watchers end their streams.
    closing: tokio::sync::watch::Sender<bool>,
    /// How long a watcher waits for a signal before it looks anyway: the bounded poll on SQLite,
    /// and on PostgreSQL the safety net for a notification lost while the listener reconnected.
    pub poll: Duration,
}

impl EventSignal {
    pub fn new(poll: Duration) -> Self {
        Self {
            tenants: broadcast::channel(1024).0,
            closing: tokio::sync::watch::channel(false).0,
            poll,
        }
    }

    pub fn notify(&self, tenant: String) {
        let _ = self.tenants.send(tenant);
    }

    /// Ends every watch stream (the server is shutting down).
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    /// The tenants with new events from now on (the JetStream relay's wake-up); a lagging
    /// receiver should look at every tenant.
    pub fn subscribe(&self) -> broadcast::Receiver<String> {
        self.tenants.subscribe()
    }
}

/// Events read per query while replaying.
const BATCH: u64 = 500;

#[derive(Clone)]
pub struct CustomerEvents {
    store: Store,
    signal: EventSignal,
}

impl CustomerEvents {
    pub fn new(store: Store, signal: EventSignal) -> Self {
        Self { store, signal }
    }

    fn check(caller: &Caller, after: i64) -> Result<()> {
        caller.require(Action::ReadEvents)?;
        if after < 0 {
            return Err(Error::invalid_field(
                "after_sequence",
                "must not be negative",
            ));
        }
        Ok(())
    }

    pub async fn list(
        &self,
        caller: &Caller,
        after: i64,
        page_size: i32,
    ) -> Result<Vec<CustomerEvent>> {
        Self::check(caller, after)?;
        let limit = super::paging::page_size("page_size", page_size)?;
        store::audit::events_after(self.store.conn(), &caller.tenant, after, limit).await
    }

    /// Replays the tenant's events after `after`, then follows new ones, into `out` until the
    /// receiver goes away.
    pub async fn watch(
        &self,
        caller: &Caller,
        after: i64,
        out: mpsc::Sender<Result<CustomerEvent>>,
    ) -> Result<()> {
        Self::check(caller, after)?;
        let (store, tenant) = (self.store.clone(), caller.tenant.clone());
        let mut wake = self.signal.tenants.subscribe();
        let mut closing = self.signal.closing.subscribe();
        let poll = self.signal.poll;
        tokio::spawn(async move {
            let mut last = after;
            loop {
                if *closing.borrow_and_update() {
                    let _ = out.send(Err(shutting_down(last))).await;
                    return;
                }
                match store::audit::events_after(store.conn(), &tenant, last, BATCH).await {
                    Ok(rows) => {
                        let caught_up = (rows.len() as u64) < BATCH;
                        for event in rows {
                            last = event.sequence;
                            if out.send(Ok(event)).await.is_err() {
                                return;
                            }
                        }
                        if !caught_up {
                            continue;
                        }
                    }
                    Err(e) => {
                        let _ = out.send(Err(e)).await;
                        return;
                    }
                }
                // Wait for a commit in this tenant, the poll interval, or the client leaving.
                let deadline = tokio::time::sleep(poll);
                tokio::pin!(deadline);
                loop {
                    tokio::select! {
                        () = &mut deadline => break,
                        () = out.closed() => return,
                        _ = closing.changed() => break,
                        signal = wake.recv() => match signal {
                            Ok(t) if t == tenant => break,
                            Ok(_) => continue,
                            // Lagged: signals were dropped; look now.
                            Err(broadcast::error::RecvError::Lagged(_)) => break,
                            Err(broadcast::error::RecvError::Closed) => break,
                        },
                    }
                }
            }
        });
        Ok(())
    }
}

fn shutting_down(last: i64) -> Error {
    Error::Unavailable(
        crate::error::Problem::new(
            reason::SERVER_SHUTTING_DOWN,
            format!(
                "this server is shutting down: watch again (any replica) with after_sequence = {last}"
            ),
        )
        .with("lastSequence", last),
    )
}

/// Feeds `signal` from PostgreSQL NOTIFY until the process ends, reconnecting on failure. Does
/// nothing on SQLite, where watchers poll.
pub async fn listen(store: Store, signal: EventSignal) {
    if !store.is_postgres() {
        return;
    }
    loop {
        let Some(connected) = store.postgres_listener().await else {
            return;
        };
        match connected {
            Ok(mut listener) => {
                if let Err(e) = listener.listen(store::audit::EVENTS_CHANNEL).await {
                    tracing::warn!(error = %e, "cannot LISTEN for customer events; retrying");
                } else {
                    loop {
                        match listener.recv().await {
                            Ok(notification) => signal.notify(notification.payload().to_owned()),
                            Err(e) => {
                                tracing::warn!(error = %e, "customer event listener lost; reconnecting");
                                break;
                            }
                        }
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot connect the customer event listener; retrying")
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_audited_graph_change_maps_to_an_event() {
        let (c, r) = (Uuid::now_v7(), Uuid::now_v7());
        let kind = |action: &str, target: &str| {
            outbox(action, target, r, Some(c), "").map(|o| o.event_type)
        };
        assert_eq!(kind("customer.create", "customer"), Some("CREATED"));
        assert_eq!(kind("customer.update", "customer"), Some("UPDATED"));
        assert_eq!(kind("contact.delete", "contact"), Some("RECORD_CHANGED"));
        assert_eq!(kind("order.update", "order"), Some("RECORD_CHANGED"));
        assert_eq!(kind("deal.restore", "deal"), Some("RECORD_CHANGED"));
        assert_eq!(kind("activity.purge", "activity"), Some("RECORD_CHANGED"));
        let restored = outbox("project.restore", "project", r, Some(c), "").unwrap();
        assert_eq!(
            (restored.record_type.as_str(), restored.record_id),
            ("project", Some(r))
        );
        assert_eq!(
            kind("deletion_request.submit", "deletion_request"),
            Some("DELETION_REQUESTED")
        );
        assert_eq!(
            kind("deletion_request.approve", "deletion_request"),
            Some("DELETION_APPROVED")
        );
        for withdrawn in ["reject", "cancel", "stale", "expire"] {
            let action = format!("deletion_request.{withdrawn}");
            assert_eq!(
                kind(&action, "deletion_request"),
                Some("DELETION_WITHDRAWN")
            );
        }
        assert_eq!(kind("customer.delete", "customer"), Some("DELETED"));
        assert_eq!(kind("customer.restore", "customer"), Some("RESTORED"));
        assert_eq!(kind("customer.purge", "customer"), Some("PURGED"));
        assert_eq!(
            kind("customer.legal_hold.set", "customer"),
            Some("LEGAL_HOLD_CHANGED")
        );
        let record = outbox("deal.create", "deal", r, Some(c), "").unwrap();
        assert_eq!(
            (record.record_type.as_str(), record.record_id),
            ("deal", Some(r))
        );
        assert_eq!(
            outbox("customer.create", "customer", c, Some(c), "")
                .unwrap()
                .record_id,
            None
        );
    }

    #[test]
    fn a_merge_publishes_one_event_for_each_customer_naming_the_other() {
        let (d, s, m) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let summary =
            format!("duplicate_id={d} survivor_id={s} merge_id={m} moved=7 taken_fields=2");
        let events = outbox_all("customer.merge", "customer", d, Some(d), &summary);
        let seen: Vec<_> = events
            .iter()
            .map(|e| {
                (
                    e.event_type,
                    e.customer_id,
                    e.record_type.as_str(),
                    e.record_id,
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                ("MERGED", Some(d), "survivor", Some(s)),
                ("MERGED", Some(s), "duplicate", Some(d)),
            ]
        );
        let counts = [("moved".to_owned(), 7), ("taken_fields".to_owned(), 2)];
        assert!(events.iter().all(|e| e.counts == counts));
        let unmerged = outbox_all("customer.unmerge", "customer", d, Some(d), &summary);
        assert!(unmerged.iter().all(|e| e.event_type == "UNMERGED") && unmerged.len() == 2);
        // Anything else publishes what `outbox` says.
        assert_eq!(
            outbox_all("customer.update", "customer", d, Some(d), "").len(),
            1
        );
    }

    #[test]
    fn a_batch_event_names_the_batch_and_carries_the_numbers_of_its_summary() {
        let batch = Uuid::now_v7();
        let event = outbox(
            "deletion_batch.complete",
            "deletion_batch",
            batch,
            None,
            "deleted=3 stale=1 note=x blocked=0",
        )
        .unwrap();
        assert_eq!(event.event_type, "DELETION_BATCH_COMPLETED");
        assert_eq!(event.customer_id, None);
        assert_eq!(
            (event.record_type.as_str(), event.record_id),
            ("deletion_batch", Some(batch))
        );
        assert_eq!(
            event.counts,
            [
                ("deleted".to_owned(), 3),
                ("stale".to_owned(), 1),
                ("blocked".to_owned(), 0)
            ]
        );
        for (action, kind) in [
            ("deletion_batch.submit", "DELETION_BATCH_SUBMITTED"),
            ("deletion_batch.reject", "DELETION_BATCH_DECIDED"),
            ("deletion_batch.expire", "DELETION_BATCH_DECIDED"),
            ("deletion_batch.restore", "DELETION_BATCH_STARTED"),
            ("deletion_batch.restored", "DELETION_BATCH_COMPLETED"),
        ] {
            let event = outbox(action, "deletion_batch", batch, None, "").unwrap();
            assert_eq!(event.event_type, kind, "{action}");
        }
        // Without a customer, nothing but a batch's actions publishes.
        assert!(outbox("customer.update", "customer", batch, None, "").is_none());
    }
}
