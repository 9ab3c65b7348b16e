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
            // Stopped early or not, the snapshot is read-only: ending it is all that is left.
            let _ = send_graph(tx.conn(), &tenant, customer, &out).await;
            drop(tx);
        });
        Ok(())
    }
}

/// Sending ended early: the receiver went away, or an error was sent as the last item.
struct Stopped;

type Out = mpsc::Sender<Result<ExportChunk>>;

async fn send(out: &Out, chunk: Result<ExportChunk>) -> std::result::Result<(), Stopped> {
    let failed = chunk.is_err();
    out.send(chunk).await.map_err(|_| Stopped)?;
    if failed { Err(Stopped) } else { Ok(()) }
}

/// The customer, then its records kind by kind, then its deletion requests, in chunks.
async fn send_graph(
    conn: &impl store::Connection,
    tenant: &str,
    customer: Customer,
    out: &Out,
) -> std::result::Result<(), Stopped> {
    let id = customer.id;
    send(out, Ok(ExportChunk::Customer(Box::new(customer)))).await?;
    for kind in RecordKind::ALL {
        let mut after = None;
        loop {
            let records =
                match store::records::list(conn, tenant, kind, id, true, after, CHUNK).await {
                    Ok(records) if records.is_empty() => break,
                    Ok(records) => records,
                    Err(e) => return send(out, Err(e)).await,
                };
            let full = records.len() as u64 == CHUNK;
            after = records.last().map(|r| r.id);
            send(out, Ok(ExportChunk::Records(kind, records))).await?;
            if !full {
                break;
            }
        }
    }
    send_requests(conn, tenant, id, out).await
}

/// Each request with the state a reader sees (lapsed ones as EXPIRED or STALE), as
/// GetDeletionRequest would give it.
async fn send_requests(
    conn: &impl store::Connection,
    tenant: &str,
    id: Uuid,
    out: &Out,
) -> std::result::Result<(), Stopped> {
    let now = super::Clock::system().now();
    let mut before = None;
    loop {
        let read = match store::deletion::list_requests(conn, tenant, None, Some(id), before, CHUNK)
            .await
        {
            Ok(read) if read.is_empty() => return Ok(()),
            Ok(read) => read,
            Err(e) => return send(out, Err(e)).await,
        };
        let full = read.len() as u64 == CHUNK;
        before = read.last().map(|r| r.request.id);
        let requests = read.into_iter().map(|r| r.as_seen(now)).collect();
        send(out, Ok(ExportChunk::DeletionRequests(requests))).await?;
        if !full {
            return Ok(());
        }
    }
}
