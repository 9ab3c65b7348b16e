//! The optional relay of customer events to NATS JetStream (on when `CRM_EVENTS_NATS_URL` is set).
//!
//! Each tenant's events are read from the outbox (`customer_event`) in sequence order and
//! published one at a time to `<prefix>.<tenant>.customer.<event type>`, each awaited until
//! JetStream acknowledges it; the tenant's cursor in the database then moves on. Every message
//! carries `Nats-Msg-Id: <tenant>:<sequence>`, so whatever is published again after a crash
//! between an acknowledgement and its cursor update is dropped by the stream's duplicate window.
//! Because a message is only sent once the previous one of its tenant is acknowledged, the stream
//! holds each tenant's events in sequence order, even if two relays overlap for a moment.
//!
//! One replica at a time publishes: the holder of a lease row (`event_relay_lease`) with an
//! expiry it renews. A lease row rather than a PostgreSQL advisory lock because it works the same
//! on both databases (two processes may share one SQLite file), needs no connection held for the
//! process's life, and its expiry bounds how long a dead or stalled leader delays the others.

use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, stream};
use prost::Message as _;
use tokio::sync::broadcast;
use tokio::time::Instant;

use crate::domain::events::{CustomerEvent, EventSignal};
use crate::store::{self, Store};
use crate::telemetry::relay_lag;

/// The lease every replica's relay competes for.
const LEASE_NAME: &str = "customer_events_jetstream";
/// Events read from the outbox per query.
const BATCH: u64 = 500;
/// Acknowledged events between two cursor writes: what a crash can make the relay publish again
/// (and the stream drop as duplicates).
const RECORD_EVERY: usize = 100;
/// How long one publish waits for JetStream's acknowledgement before the relay retries.
const ACK_TIMEOUT: Duration = Duration::from_secs(5);
/// The duplicate window of a stream the relay creates: longer than a relay is expected to stay
/// down after a crash, since re-sends after it would be kept.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(10 * 60);
/// Between attempts to reach NATS, and while the lag is logged during an outage.
const RETRY: Duration = Duration::from_secs(1);
const LOG_LAG_EVERY: Duration = Duration::from_secs(5);

/// Where and how the relay publishes.
#[derive(Debug, Clone)]
pub struct RelaySettings {
    pub url: String,
    /// The JetStream stream, created if absent with the settings of `stream_config`.
    pub stream: String,
    /// The first token of every subject.
    pub subject_prefix: String,
    /// How long the leader's lease lasts without renewal: how soon another replica takes over
    /// from a dead one.
    pub lease: Duration,
}

/// The stream the relay creates when there is none: every subject under the prefix, on disk,
/// limits-based retention (consumers do not remove messages), and the duplicate window that
/// makes re-sends harmless.
pub fn stream_config(settings: &RelaySettings) -> stream::Config {
    stream::Config {
        name: settings.stream.clone(),
        subjects: vec![format!("{}.>", settings.subject_prefix)],
        storage: stream::StorageType::File,
        retention: stream::RetentionPolicy::Limits,
        duplicate_window: DUPLICATE_WINDOW,
        ..Default::default()
    }
}

/// A tenant as one subject token: `.` separates tokens, so it is written `%2E` (tenants have no
/// `%`, so the mapping is one-to-one; the `Crm-Tenant` header has the tenant as is).
pub fn subject_token(tenant: &str) -> String {
    tenant.replace('.', "%2E")
}

pub fn subject(prefix: &str, tenant: &str, event_type: &str) -> String {
    format!(
        "{prefix}.{}.customer.{}",
        subject_token(tenant),
        event_type.to_ascii_lowercase()
    )
}

/// The message id JetStream deduplicates on.
pub fn message_id(tenant: &str, sequence: i64) -> String {
    format!("{tenant}:{sequence}")
}

/// Runs the relay until the process ends (the task is aborted on shutdown).
/// `holder` names this process in the lease (`holder_name`).
pub async fn run(store: Store, signal: EventSignal, settings: RelaySettings, holder: String) {
    let mut relay = Relay {
        lease: Lease::new(&settings, holder),
        store,
        settings,
        nats: None,
        logged_lag: None,
        resent: 0,
    };
    let mut wake = signal.subscribe();
    loop {
        let next = match relay.pass().await {
            // Idle, the leader still renews its lease in time.
            Pass::Done => signal.poll.min(relay.lease.renew_every()),
            Pass::More => continue,
            Pass::Retry => RETRY,
            // Not woken by commits: a replica that does not lead only asks for the lease again
            // a third of a lease later, so it takes over within 1⅓ leases of the last renewal.
            Pass::NotLeader => {
                tokio::time::sleep(relay.lease.renew_every()).await;
                continue;
            }
        };
        wait(&mut wake, next).await;
    }
}

/// Ends the relay's lease, if it holds it, so another replica takes over without waiting for it
/// to expire (a clean shutdown).
pub async fn release(store: &Store, holder: &str) {
    if let Err(e) = store::event_relay::release_lease(store.conn(), LEASE_NAME, holder).await {
        tracing::warn!(error = %e, "cannot release the event relay's lease; it will expire");
    }
}

async fn wait(wake: &mut broadcast::Receiver<String>, at_most: Duration) {
    let deadline = tokio::time::sleep(at_most);
    tokio::pin!(deadline);
    tokio::select! {
        () = &mut deadline => {}
        _ = wake.recv() => {}
    }
}

enum Pass {
    /// Caught up.
    Done,
    /// A batch was published and there may be more.
    More,
    /// NATS or the database failed: try again shortly.
    Retry,
    NotLeader,
}

struct Relay {
    store: Store,
    settings: RelaySettings,
    lease: Lease,
    nats: Option<jetstream::Context>,
    /// When the lag was last logged.
    logged_lag: Option<Instant>,
    /// Events sent again that the stream already had, since last logged.
    resent: u64,
}

impl Relay {
    async fn pass(&mut self) -> Pass {
        if !self.lease.hold(&self.store).await {
            relay_lag().set(0, Duration::ZERO);
            return Pass::NotLeader;
        }
        let behind = match store::event_relay::behind(self.store.conn()).await {
            Ok(behind) => behind,
            Err(e) => {
                tracing::warn!(error = %e, "event relay: cannot read the outbox; retrying");
                return Pass::Retry;
            }
        };
        self.measure_lag(&behind).await;
        if behind.is_empty() {
            return Pass::Done;
        }
        let Some(nats) = self.connect().await else {
            return Pass::Retry;
        };
        // A publish without a connection would only wait out its timeout: retry later instead,
        // while the client reconnects by itself.
        if nats.client().connection_state() != async_nats::connection::State::Connected {
            self.log_lag("the connection to NATS is lost; reconnecting");
            return Pass::Retry;
        }
        let mut more = false;
        for tenant in &behind {
            match self
                .publish_tenant(&nats, &tenant.tenant, tenant.published)
                .await
            {
                Ok(full) => more |= full,
                Err(Failed::Nats(e)) => {
                    // Connected, yet refused or unanswered: connect afresh next time, which also
                    // re-creates a stream deleted meanwhile.
                    self.nats = None;
                    self.log_lag(&format!("cannot publish to NATS JetStream: {e}"));
                    return Pass::Retry;
                }
                Err(Failed::Database(e)) => {
                    tracing::warn!(error = %e, "event relay: database error; retrying");
                    return Pass::Retry;
                }
                Err(Failed::LeaseLost) => return Pass::NotLeader,
            }
        }
        if self.logged_lag.take().is_some() {
            tracing::info!("event relay: the backlog is published");
        }
        if self.resent > 0 {
            tracing::info!(
                duplicates = std::mem::take(&mut self.resent),
                "event relay: events sent again (acknowledged before a restart, not yet recorded) were dropped by the stream's duplicate window"
            );
        }
        if more { Pass::More } else { Pass::Done }
    }

    /// Publishes the tenant's events after `published`, at most a batch; true if the batch was
    /// full (there may be more).
    async fn publish_tenant(
        &mut self,
        nats: &jetstream::Context,
        tenant: &str,
        published: i64,
    ) -> Result<bool, Failed> {
        let events = store::audit::events_after(self.store.conn(), tenant, published, BATCH)
            .await
            .map_err(Failed::Database)?;
        let full = events.len() as u64 == BATCH;
        let mut unrecorded = None;
        for (n, event) in events.into_iter().enumerate() {
            // Renewed between messages: a relay that lost its lease stops before its next send.
            if !self.lease.hold(&self.store).await {
                self.record(tenant, unrecorded.take()).await?;
                return Err(Failed::LeaseLost);
            }
            match publish(nats, &self.settings.subject_prefix, tenant, &event).await {
                Ok(duplicate) => self.resent += u64::from(duplicate),
                Err(e) => {
                    self.record(tenant, unrecorded.take()).await?;
                    return Err(Failed::Nats(e));
                }
            }
            unrecorded = Some((event.sequence, event.time));
            if (n + 1) % RECORD_EVERY == 0 {
                self.record(tenant, unrecorded.take()).await?;
            }
        }
        self.record(tenant, unrecorded).await?;
        Ok(full)
    }

    async fn record(
        &self,
        tenant: &str,
        last: Option<(i64, chrono::DateTime<chrono::Utc>)>,
    ) -> Result<(), Failed> {
        let Some((sequence, time)) = last else {
            return Ok(());
        };
        store::event_relay::record_published(self.store.conn(), tenant, sequence, time)
            .await
            .map_err(Failed::Database)
    }

    /// The backlog in events, and the age of its oldest event (the first unpublished one of each
    /// tenant, one keyed read per tenant behind).
    async fn measure_lag(&mut self, behind: &[store::event_relay::Behind]) {
        let events: i64 = behind.iter().map(|b| b.latest - b.published).sum();
        let mut oldest: Option<chrono::DateTime<chrono::Utc>> = None;
        for tenant in behind {
            if let Ok(first) =
                store::audit::events_after(self.store.conn(), &tenant.tenant, tenant.published, 1)
                    .await
                && let Some(first) = first.first()
            {
                oldest = Some(oldest.map_or(first.time, |o| o.min(first.time)));
            }
        }
        let lag = oldest
            .and_then(|t| (chrono::Utc::now() - t).to_std().ok())
            .unwrap_or_default();
        relay_lag().set(events.max(0) as u64, lag);
    }

    /// Logs the lag while publishing fails, every few seconds rather than every attempt.
    fn log_lag(&mut self, why: &str) {
        if self
            .logged_lag
            .is_some_and(|at| at.elapsed() < LOG_LAG_EVERY)
        {
            return;
        }
        self.logged_lag = Some(Instant::now());
        let lag = relay_lag();
        tracing::warn!(
            lag_events = lag.events(),
            lag_seconds = lag.lag().as_secs_f64(),
            "event relay behind: {why}; the service keeps serving and the backlog is published once NATS answers"
        );
    }

    /// The JetStream context, connecting (and creating the stream if absent) when there is none.
    async fn connect(&mut self) -> Option<jetstream::Context> {
        if let Some(nats) = &self.nats {
            return Some(nats.clone());
        }
        match connect(&self.settings).await {
            Ok(nats) => {
                tracing::info!(
                    url = %self.settings.url,
                    stream = %self.settings.stream,
                    "event relay connected to NATS JetStream"
                );
                self.nats = Some(nats.clone());
                Some(nats)
            }
            Err(e) => {
                self.log_lag(&format!("cannot reach NATS JetStream: {e}"));
                None
            }
        }
    }
}

enum Failed {
    Nats(String),
    Database(crate::error::Error),
    LeaseLost,
}

async fn connect(settings: &RelaySettings) -> Result<jetstream::Context, String> {
    // Once connected, the client reconnects by itself, without limit.
    let client = async_nats::ConnectOptions::new()
        .name("crm-service event relay")
        .connection_timeout(ACK_TIMEOUT)
        .connect(settings.url.as_str())
        .await
        .map_err(|e| e.to_string())?;
    let mut context = jetstream::new(client);
    context.set_timeout(ACK_TIMEOUT);
    context
        .get_or_create_stream(stream_config(settings))
        .await
        .map_err(|e| format!("stream {}: {e}", settings.stream))?;
    Ok(context)
}

/// Publishes one event and waits for JetStream to store it; true if the stream already had it
/// (sent before a crash, and not yet recorded), and dropped it as a duplicate.
async fn publish(
    nats: &jetstream::Context,
    prefix: &str,
    tenant: &str,
    event: &CustomerEvent,
) -> Result<bool, String> {
    let mut headers = HeaderMap::new();
    headers.insert("Nats-Msg-Id", message_id(tenant, event.sequence).as_str());
    headers.insert("Content-Type", "application/x-protobuf");
    headers.insert("Crm-Message-Type", "crm.v1.CustomerEvent");
    headers.insert("Crm-Tenant", tenant);
    headers.insert("Crm-Sequence", event.sequence.to_string().as_str());
    headers.insert("Crm-Event-Type", event.event_type.as_str());
    let subject = subject(prefix, tenant, &event.event_type);
    let payload = crate::api::events::to_proto(event.clone()).encode_to_vec();
    let ack = nats
        .publish_with_headers(subject, headers, payload.into())
        .await
        .map_err(|e| e.to_string())?
        .await
        .map_err(|e| e.to_string())?;
    Ok(ack.duplicate)
}

/// This process's claim on the relay lease, renewed a third of the way through.
struct Lease {
    holder: String,
    length: Duration,
    /// Until when this process may publish: the lease's expiry as of its last renewal, measured
    /// on the monotonic clock from before the renewal was asked for.
    valid_until: Option<Instant>,
    renewed: Option<Instant>,
}

impl Lease {
    fn new(settings: &RelaySettings, holder: String) -> Self {
        Self {
            holder,
            length: settings.lease,
            valid_until: None,
            renewed: None,
        }
    }

    fn renew_every(&self) -> Duration {
        self.length / 3
    }

    /// Whether this process holds the lease, taking or renewing it when due.
    async fn hold(&mut self, store: &Store) -> bool {
        let now = Instant::now();
        if self.renewed.is_some_and(|at| now < at + self.renew_every())
            && self.valid_until.is_some_and(|until| now < until)
        {
            return true;
        }
        let wall = chrono::Utc::now().timestamp_millis();
        let taken = store::event_relay::take_lease(
            store.conn(),
            LEASE_NAME,
            &self.holder,
            wall,
            wall + self.length.as_millis() as i64,
        )
        .await;
        match taken {
            Ok(true) => {
                if self.valid_until.is_none_or(|until| now >= until) {
                    tracing::info!(holder = %self.holder, "event relay: this replica publishes");
                }
                self.valid_until = Some(now + self.length);
                self.renewed = Some(now);
            }
            Ok(false) => {
                if self.valid_until.is_some_and(|until| now < until) {
                    tracing::warn!("event relay: the lease passed to another replica");
                }
                self.valid_until = None;
                self.renewed = None;
            }
            // Still ours until it expires; renewal is tried again at the next message.
            Err(e) => tracing::warn!(error = %e, "event relay: cannot renew the lease"),
        }
        self.valid_until.is_some_and(|until| Instant::now() < until)
    }
}

/// Who holds the lease: this process, distinct from its own earlier lives.
pub fn holder_name() -> String {
    format!("{}-{}", std::process::id(), uuid::Uuid::now_v7())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_name_the_tenant_as_one_token() {
        assert_eq!(
            subject("crm", "acme", "RECORD_CHANGED"),
            "crm.acme.customer.record_changed"
        );
        assert_eq!(
            subject("crm", "eu.acme", "CREATED"),
            "crm.eu%2Eacme.customer.created"
        );
        assert_eq!(message_id("eu.acme", 42), "eu.acme:42");
    }
}
