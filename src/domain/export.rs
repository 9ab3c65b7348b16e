//! ExportCustomer: the whole graph of a customer — the customer, every record (live and deleted)
//! and its deletion requests — read in one snapshot and handed out in bounded chunks, so memory
//! stays flat whatever the size of the graph.

use tokio::sync::mpsc;
use uuid::Uuid;

use super::access::{Action, Caller};
use super::customers::Customer;
use super::deletion::DeletionRequest;
use super::records::{Record, RecordKind};
use crate::error::{Error, Result};
use crate::store::{self, Store};

/// Records per chunk: 500 records of the largest kind stay well under 1 MiB.
pub const CHUNK: u64 = 500;

/// One piece of an export.
#[derive(Debug, Clone)]
pub enum ExportChunk {
    Customer(Box<Customer>),
    Records(RecordKind, Vec<Record>),
    DeletionRequests(Vec<DeletionRequest>),
}

#[derive(Clone)]
pub struct Exports {
    store: Store,
}

impl Exports {
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// Checks the caller and the customer, then sends the graph chunk by chunk into `out`,
    /// stopping early if the receiver goes away. The first error (permission, NOT_FOUND) is
    /// returned before anything is sent.
    pub async fn export(
        &self,
        caller: &Caller,
        id: Uuid,
        out: mpsc::Sender<Result<ExportChunk>>,
    ) -> Result<()> {
        caller.require(Action::Export)?;
        let tx = self.store.begin_snapshot().await?;
        let customer = store::customers::find(tx.conn(), &caller.tenant, id)
            .await?
            .ok_or_else(|| Error::not_found("customer", id))?;
        let tenant = caller.tenant.clone();
        tokio::spawn(async move {
            let send = |chunk| out.send(chunk);
            if send(Ok(ExportChunk::Customer(Box::new(customer))))
                .await
                .is_err()
            {
                return;
            }
            for kind in RecordKind::ALL {
                let mut after = None;
                loop {
                    let page =
                        store::records::list(tx.conn(), &tenant, kind, id, true, after, CHUNK)
                            .await;
                    match page {
                        Ok(records) if records.is_empty() => break,
                        Ok(records) => {
                            let full = records.len() as u64 == CHUNK;
                            after = records.last().map(|r| r.id);
                            if send(Ok(ExportChunk::Records(kind, records))).await.is_err() {
                                return;
                            }
                            if !full {
                                break;
                            }
                        }
                        Err(e) => {
                            let _ = send(Err(e)).await;
                            return;
                        }
                    }
                }
            }
            // Each request with the state a reader sees (lapsed ones as EXPIRED or STALE), as
            // GetDeletionRequest would give it.
            let now = super::Clock::system().now();
            let mut before = None;
            loop {
                match store::deletion::list_requests(
                    tx.conn(),
                    &tenant,
                    None,
                    Some(id),
                    before,
                    CHUNK,
                )
                .await
                {
                    Ok(requests) if requests.is_empty() => break,
                    Ok(read) => {
                        let full = read.len() as u64 == CHUNK;
                        before = read.last().map(|r| r.request.id);
                        let requests = read.into_iter().map(|r| r.as_seen(now)).collect();
                        if send(Ok(ExportChunk::DeletionRequests(requests)))
                            .await
                            .is_err()
                            || !full
                        {
                            break;
                        }
                    }
                    Err(e) => {
                        let _ = send(Err(e)).await;
                        break;
                    }
                }
            }
            // Read-only: ending the snapshot is all that is left to do.
            drop(tx);
        });
        Ok(())
    }
}
