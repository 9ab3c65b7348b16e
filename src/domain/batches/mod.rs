//! Deletion batches: many customers under one reason and one decision, worked through in the
//! background and restorable as a whole.
//!
//! - `rules`: who may decide, cancel, run or restore a batch, and when it has lapsed: pure
//!   functions, unit-tested without a database;
//! - `submit`: previews every customer named and records the batch with its items;
//! - `decisions`: approve, reject, cancel, run, and the start of a restore;
//! - `work`: the background worker: claims a RUNNING or RESTORING batch (a lease, so that one
//!   replica works a batch at a time and another takes over when it dies) and works through its
//!   items one chunk, one transaction, at a time. Each customer is deleted and restored exactly as
//!   DeleteCustomer and RestoreCustomer do it (`Deletions::delete_graphs`, `restore_graphs`).

mod decisions;
pub mod rules;
mod submit;
mod work;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use uuid::Uuid;

use super::Clock;
use super::access::{Action, Caller};
use super::approval;
use super::deletion::Deletions;
use super::inbox;
use super::paging::{self, Page, PageTokenKey, QueryFingerprint};
use crate::error::{Error, Result};
use crate::store::{self, Store};

pub use super::model::batch::{
    BatchImpact, BatchItem, BatchProgress, BatchSelection, BatchState, BatchStateFilter,
    DeletionBatch, Exclusion, ItemState,
};

/// The limits of batches, and how their work is paced.
#[derive(Debug, Clone, Copy)]
pub struct BatchSettings {
    /// Customers a batch may name.
    pub max_items: usize,
    /// Open batches (deciding, starting, being worked on) per tenant.
    pub max_open: usize,
    /// Customers per transaction.
    pub chunk_size: usize,
    /// How long a replica's claim on a batch holds without being renewed.
    pub lease: Duration,
    /// How often an idle worker looks for a batch (a batch started on this replica wakes it at
    /// once; this is how one started elsewhere, or left by a dead replica, is found).
    pub poll_interval: Duration,
}

impl Default for BatchSettings {
    fn default() -> Self {
        Self {
            max_items: 1000,
            max_open: 5,
            chunk_size: 50,
            lease: Duration::from_secs(30),
            poll_interval: Duration::from_secs(2),
        }
    }
}

/// Deletion batch operations.
#[derive(Clone)]
pub struct Batches {
    store: Store,
    deletions: Deletions,
    page_key: PageTokenKey,
    clock: Clock,
    settings: BatchSettings,
    /// Wakes this replica's worker when a batch is started or restored here.
    wake: Arc<Notify>,
}

impl Batches {
    pub fn new(
        store: Store,
        deletions: Deletions,
        page_key: PageTokenKey,
        clock: Clock,
        settings: BatchSettings,
    ) -> Self {
        Self {
            store,
            deletions,
            page_key,
            clock,
            settings,
            wake: Arc::new(Notify::new()),
        }
    }

    pub async fn get(&self, caller: &Caller, id: Uuid) -> Result<DeletionBatch> {
        caller.require(Action::Read)?;
        store::batches::find(self.store.conn(), &caller.tenant, id)
            .await?
            .map(|b| b.as_seen(self.clock.now()))
            .ok_or_else(|| Error::not_found("deletion batch", id))
    }

    /// A page of batches, newest first.
    pub async fn list(
        &self,
        caller: &Caller,
        state: Option<BatchState>,
        awaiting_my_decision: bool,
        page_size: i32,
        page_token: &str,
    ) -> Result<Page<DeletionBatch>> {
        caller.require(Action::Read)?;
        let limit = paging::page_size("page_size", page_size)?;
        if awaiting_my_decision {
            inbox::pending_only(state.is_none_or(|s| s == BatchState::Pending), "batches")?;
            return self.awaiting(caller, limit, page_token).await;
        }
        let fingerprint =
            QueryFingerprint::of(&["ListDeletionBatches", state.map_or("any", BatchState::name)]);
        let now = self.clock.now();
        let before = self.open_token(caller, page_token, fingerprint)?;
        let filter = state.map(|s| BatchStateFilter::reading_as(&[s], now));
        let mut batches = store::batches::list(
            self.store.conn(),
            &caller.tenant,
            filter.as_ref(),
            before,
            limit + 1,
        )
        .await?;
        let next_page_token = self.next_token(caller, &mut batches, limit, fingerprint, |b| b.id);
        Ok(Page {
            items: batches.into_iter().map(|b| b.as_seen(now)).collect(),
            next_page_token,
        })
    }

    /// The PENDING batches `caller` may decide, oldest first: not their own, routed to them, and
    /// not approved by them yet.
    async fn awaiting(
        &self,
        caller: &Caller,
        limit: u64,
        page_token: &str,
    ) -> Result<Page<DeletionBatch>> {
        caller.require(Action::DecideDeletion)?;
        let fingerprint = QueryFingerprint::of(&[
            "ListDeletionBatches",
            "awaiting_my_decision",
            &caller.subject,
        ]);
        let now = self.clock.now();
        let after = self.open_token(caller, page_token, fingerprint)?;
        let pending = BatchStateFilter::reading_as(&[BatchState::Pending], now);
        let (conn, tenant) = (self.store.conn(), &caller.tenant);
        let (pending, subject) = (&pending, caller.subject.as_str());
        let fetch =
            |after, n| store::batches::list_oldest_not_by(conn, tenant, pending, subject, after, n);
        let keep = |b: &DeletionBatch| approval::awaits(&b.approval, &b.approvals, caller);
        let (batches, next) = inbox::walk(fetch, keep, |b| b.id, after, limit).await?;
        Ok(Page {
            items: batches.into_iter().map(|b| b.as_seen(now)).collect(),
            next_page_token: next
                .map(|id| self.page_key.seal(tenant, fingerprint, id, now.timestamp())),
        })
    }

    /// A page of a batch's items, in submission order.
    pub async fn list_items(
        &self,
        caller: &Caller,
        batch_id: Uuid,
        state: Option<ItemState>,
        page_size: i32,
        page_token: &str,
    ) -> Result<Page<BatchItem>> {
        caller.require(Action::Read)?;
        let conn = self.store.conn();
        if !store::batches::exists(conn, &caller.tenant, batch_id).await? {
            return Err(Error::not_found("deletion batch", batch_id));
        }
        let limit = paging::page_size("page_size", page_size)?;
        let batch = batch_id.to_string();
        let fingerprint = QueryFingerprint::of(&[
            "ListDeletionBatchItems",
            &batch,
            state.map_or("any", ItemState::name),
        ]);
        // A page ends at an item's position; the token seals it as the low bits of a UUID.
        let after = self
            .open_token(caller, page_token, fingerprint)?
            .map(|last| i32::try_from(last.as_u128()).unwrap_or(i32::MAX));
        let mut items =
            store::batches::list_items(conn, &caller.tenant, batch_id, state, after, limit + 1)
                .await?;
        let next_page_token = self.next_token(caller, &mut items, limit, fingerprint, |i| {
            Uuid::from_u128(i.position as u128)
        });
        Ok(Page {
            items,
            next_page_token,
        })
    }

    fn open_token(
        &self,
        caller: &Caller,
        page_token: &str,
        fingerprint: QueryFingerprint,
    ) -> Result<Option<Uuid>> {
        if page_token.is_empty() {
            return Ok(None);
        }
        let now = self.clock.now().timestamp();
        self.page_key
            .open("page_token", page_token, &caller.tenant, fingerprint, now)
            .map(Some)
    }

    /// Cuts `read` (one more than `limit` if there is a next page) to the page and seals the
    /// token of the next one.
    fn next_token<T>(
        &self,
        caller: &Caller,
        read: &mut Vec<T>,
        limit: u64,
        fingerprint: QueryFingerprint,
        key: impl Fn(&T) -> Uuid,
    ) -> Option<String> {
        if read.len() as u64 <= limit {
            return None;
        }
        read.truncate(limit as usize);
        let now = self.clock.now().timestamp();
        read.last().map(|last| {
            self.page_key
                .seal(&caller.tenant, fingerprint, key(last), now)
        })
    }
}
