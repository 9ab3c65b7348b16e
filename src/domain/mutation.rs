//! One envelope for every mutation: the idempotency look-up and replay, the write transaction (with
//! the call's deadline, which `Store::begin_write` applies), the audit entry, the stored answer,
//! the commit, and the retry when the database broke a conflict or a duplicate won the race.
//! An operation then reads as its rule and its write only.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, Utc};
use serde::{Serialize, de::DeserializeOwned};
use uuid::Uuid;

use super::Clock;
use super::access::Caller;
use super::audit::{self, Entry};
use super::idempotency::{self, Idempotency};
use super::model::record::RecordKind;
use crate::error::{Error, Result};
use crate::store::{Store, WriteTx};

/// A mutation, named as the RPC that asks for it. The name is stored with a `request_id`'s
/// answer and hashed into its fingerprint, so a spelling must never change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    CreateCustomer,
    BatchCreateCustomers,
    UpdateCustomer,
    SubmitDeletionRequest,
    ApproveDeletionRequest,
    RejectDeletionRequest,
    CancelDeletionRequest,
    DeleteCustomer,
    RestoreCustomer,
    PurgeCustomer,
    SetLegalHold,
    SubmitDeletionBatch,
    ApproveDeletionBatch,
    RejectDeletionBatch,
    CancelDeletionBatch,
    RunDeletionBatch,
    RestoreDeletionBatch,
    /// One chunk of a batch's items, worked by the background worker (never idempotent on a
    /// `request_id`: the items' states say what is done).
    WorkDeletionBatch,
    SubmitMergeRequest,
    MergeCustomers,
    UnmergeCustomers,
    UpdateTenantSettings,
    Record(RecordKind, RecordWrite),
}

impl Operation {
    pub fn name(self) -> &'static str {
        match self {
            Operation::CreateCustomer => "CreateCustomer",
            Operation::BatchCreateCustomers => "BatchCreateCustomers",
            Operation::UpdateCustomer => "UpdateCustomer",
            Operation::SubmitDeletionRequest => "SubmitDeletionRequest",
            Operation::ApproveDeletionRequest => "ApproveDeletionRequest",
            Operation::RejectDeletionRequest => "RejectDeletionRequest",
            Operation::CancelDeletionRequest => "CancelDeletionRequest",
            Operation::DeleteCustomer => "DeleteCustomer",
            Operation::RestoreCustomer => "RestoreCustomer",
            Operation::PurgeCustomer => "PurgeCustomer",
            Operation::SetLegalHold => "SetLegalHold",
            Operation::SubmitDeletionBatch => "SubmitDeletionBatch",
            Operation::ApproveDeletionBatch => "ApproveDeletionBatch",
            Operation::RejectDeletionBatch => "RejectDeletionBatch",
            Operation::CancelDeletionBatch => "CancelDeletionBatch",
            Operation::RunDeletionBatch => "RunDeletionBatch",
            Operation::RestoreDeletionBatch => "RestoreDeletionBatch",
            Operation::WorkDeletionBatch => "WorkDeletionBatch",
            Operation::SubmitMergeRequest => "SubmitMergeRequest",
            Operation::MergeCustomers => "MergeCustomers",
            Operation::UnmergeCustomers => "UnmergeCustomers",
            Operation::UpdateTenantSettings => "UpdateTenantSettings",
            Operation::Record(kind, write) => kind.operation_name(write),
        }
    }

    /// What the fingerprint of a `request_id` hashes as the operation. The record RPCs hashed
    /// their method's snake_case name before operations had a type; it stays, so that a retry
    /// sent across an upgrade is still recognised as the same request.
    pub fn fingerprint_label(self) -> &'static str {
        match self {
            Operation::Record(kind, write) => kind.method_name(write),
            other => other.name(),
        }
    }
}

/// How a mutation is asked for.
#[derive(Debug, Clone, Copy)]
pub struct Mutation<'a> {
    pub caller: &'a Caller,
    pub operation: Operation,
    pub key: Option<&'a Idempotency>,
    /// Check everything, write nothing: no replay, no stored answer, the transaction rolled back.
    pub validate_only: bool,
}

impl<'a> Mutation<'a> {
    pub fn new(caller: &'a Caller, operation: Operation, key: Option<&'a Idempotency>) -> Self {
        Self {
            caller,
            operation,
            key,
            validate_only: false,
        }
    }

    pub fn validate_only(self, validate_only: bool) -> Self {
        Self {
            validate_only,
            ..self
        }
    }
}

/// The write in progress, handed to the operation's body. It owns a share of the transaction, so
/// the body is an ordinary closure returning a future (`|change| async move { … }`), with no
/// borrow of the envelope's own frame.
pub struct Change<'a> {
    shared: Arc<Shared>,
    pub caller: &'a Caller,
    /// The time of the whole write: every row and audit entry it writes carries this instant.
    pub now: DateTime<Utc>,
    request_id: Option<Uuid>,
}

struct Shared {
    tx: WriteTx,
    commit_on_failure: AtomicBool,
}

impl Change<'_> {
    pub fn tx(&self) -> &WriteTx {
        &self.shared.tx
    }

    /// Appends an audit entry (and its customer event) for this write.
    pub async fn audit(&self, entry: Entry) -> Result<()> {
        audit::record(self.tx(), self.caller, self.request_id, self.now, entry).await
    }

    /// Appends an audit entry for a change the caller did not ask for (a request found lapsed on
    /// the way): it carries no request id.
    pub async fn audit_unasked(&self, entry: Entry) -> Result<()> {
        audit::record(self.tx(), self.caller, None, self.now, entry).await
    }

    /// Keeps what was written so far even though the operation then fails: a request found to
    /// have lapsed is recorded as lapsed, and the call that found it still fails.
    pub fn commit_even_if_failing(&self) {
        self.shared.commit_on_failure.store(true, Ordering::Relaxed);
    }
}

/// Runs `body` as one mutation: replays the stored answer of a `request_id` already done; else
/// runs `body` in a write transaction, stores its answer under the key and commits. An attempt
/// that lost a race to a duplicate of itself, or whose transaction the database broke, runs again
/// (the second run replays the first one's answer), so `body` may run more than once: it must
/// read everything it decides on through `change`.
pub async fn run<'a, T, F, Fut>(
    store: &Store,
    clock: &Clock,
    mutation: Mutation<'a>,
    body: F,
) -> Result<T>
where
    T: Serialize + DeserializeOwned,
    F: Fn(Change<'a>) -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let Mutation {
        caller,
        operation,
        key,
        validate_only,
    } = mutation;
    idempotency::retry_in_flight(|| async {
        let tx = store.begin_write().await?;
        if !validate_only
            && let Some(first) = idempotency::replay(&tx, caller, key, operation.name()).await?
        {
            return Ok(first);
        }
        let shared = Arc::new(Shared {
            tx,
            commit_on_failure: AtomicBool::new(false),
        });
        let outcome = body(Change {
            shared: Arc::clone(&shared),
            caller,
            now: clock.now(),
            request_id: key.map(|k| k.request_id),
        })
        .await;
        // The body's future has completed and dropped its share: the transaction is ours again.
        let Shared {
            tx,
            commit_on_failure,
        } = Arc::into_inner(shared)
            .ok_or_else(|| Error::internal("a mutation's body kept its transaction"))?;
        match outcome {
            // Dropping the transaction rolls it back: nothing was written.
            Ok(answer) if validate_only => Ok(answer),
            Ok(answer) => {
                idempotency::remember(&tx, caller, key, operation.name(), &answer).await?;
                tx.commit().await?;
                Ok(answer)
            }
            Err(refused) => {
                if commit_on_failure.into_inner() {
                    tx.commit().await?;
                }
                Err(refused)
            }
        }
    })
    .await
}

/// The writes of a record, each one RPC per kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordWrite {
    Create = 0,
    Update = 1,
    Delete = 2,
    Restore = 3,
    /// To another customer of the tenant.
    Move = 4,
}

/// Per kind and write: the RPC's name (the operation its idempotent answers are stored under),
/// its method's name in the generated code, and its audit action.
const WRITE_NAMES: [[(&str, &str, &str); 5]; 6] = [
    [
        ("CreateContact", "create_contact", "contact.create"),
        ("UpdateContact", "update_contact", "contact.update"),
        ("DeleteContact", "delete_contact", "contact.delete"),
        ("RestoreContact", "restore_contact", "contact.restore"),
        ("MoveContact", "move_contact", "contact.move"),
    ],
    [
        ("CreateDeal", "create_deal", "deal.create"),
        ("UpdateDeal", "update_deal", "deal.update"),
        ("DeleteDeal", "delete_deal", "deal.delete"),
        ("RestoreDeal", "restore_deal", "deal.restore"),
        ("MoveDeal", "move_deal", "deal.move"),
    ],
    [
        ("CreateOrder", "create_order", "order.create"),
        ("UpdateOrder", "update_order", "order.update"),
        ("DeleteOrder", "delete_order", "order.delete"),
        ("RestoreOrder", "restore_order", "order.restore"),
        ("MoveOrder", "move_order", "order.move"),
    ],
    [
        ("CreateContract", "create_contract", "contract.create"),
        ("UpdateContract", "update_contract", "contract.update"),
        ("DeleteContract", "delete_contract", "contract.delete"),
        ("RestoreContract", "restore_contract", "contract.restore"),
        ("MoveContract", "move_contract", "contract.move"),
    ],
    [
        ("CreateProject", "create_project", "project.create"),
        ("UpdateProject", "update_project", "project.update"),
        ("DeleteProject", "delete_project", "project.delete"),
        ("RestoreProject", "restore_project", "project.restore"),
        ("MoveProject", "move_project", "project.move"),
    ],
    [
        ("CreateActivity", "create_activity", "activity.create"),
        ("UpdateActivity", "update_activity", "activity.update"),
        ("DeleteActivity", "delete_activity", "activity.delete"),
        ("RestoreActivity", "restore_activity", "activity.restore"),
        ("MoveActivity", "move_activity", "activity.move"),
    ],
];

impl RecordKind {
    fn write_names(self, write: RecordWrite) -> (&'static str, &'static str, &'static str) {
        let row = match self {
            RecordKind::Contact => 0,
            RecordKind::Deal => 1,
            RecordKind::Order => 2,
            RecordKind::Contract => 3,
            RecordKind::Project => 4,
            RecordKind::Activity => 5,
        };
        WRITE_NAMES[row][write as usize]
    }

    /// `CreateContact`, `RestoreDeal`, …
    pub fn operation_name(self, write: RecordWrite) -> &'static str {
        self.write_names(write).0
    }

    /// `create_contact`, `restore_deal`, …
    pub fn method_name(self, write: RecordWrite) -> &'static str {
        self.write_names(write).1
    }

    /// `contact.create`, `deal.restore`, …
    pub fn audit_action(self, write: RecordWrite) -> &'static str {
        self.write_names(write).2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_write_has_its_own_operation_and_action() {
        let mut seen = std::collections::HashSet::new();
        for kind in RecordKind::ALL {
            for write in [
                RecordWrite::Create,
                RecordWrite::Update,
                RecordWrite::Delete,
                RecordWrite::Restore,
                RecordWrite::Move,
            ] {
                let (operation, method, action) = kind.write_names(write);
                assert!(
                    action.starts_with(kind.name()) && method.ends_with(kind.name()),
                    "{kind:?} {write:?}: {action} {method}"
                );
                assert!(seen.insert(operation) && seen.insert(method) && seen.insert(action));
            }
        }
    }

    fn every_operation() -> Vec<Operation> {
        let mut all = vec![
            Operation::CreateCustomer,
            Operation::BatchCreateCustomers,
            Operation::UpdateCustomer,
            Operation::SubmitDeletionRequest,
            Operation::ApproveDeletionRequest,
            Operation::RejectDeletionRequest,
            Operation::CancelDeletionRequest,
            Operation::DeleteCustomer,
            Operation::RestoreCustomer,
            Operation::PurgeCustomer,
            Operation::SetLegalHold,
            Operation::SubmitMergeRequest,
            Operation::MergeCustomers,
            Operation::UnmergeCustomers,
            Operation::UpdateTenantSettings,
        ];
        for kind in RecordKind::ALL {
            for write in [
                RecordWrite::Create,
                RecordWrite::Update,
                RecordWrite::Delete,
                RecordWrite::Restore,
                RecordWrite::Move,
            ] {
                all.push(Operation::Record(kind, write));
            }
        }
        all
    }

    #[test]
    fn every_operation_has_its_own_name_and_fingerprint_label() {
        let operations = every_operation();
        let names: std::collections::HashSet<_> = operations.iter().map(|o| o.name()).collect();
        let labels: std::collections::HashSet<_> =
            operations.iter().map(|o| o.fingerprint_label()).collect();
        assert_eq!(names.len(), operations.len());
        assert_eq!(labels.len(), operations.len());
        // The labels already stored with request ids: the RPC's name, or for the record RPCs
        // their method's name.
        assert_eq!(
            Operation::DeleteCustomer.fingerprint_label(),
            "DeleteCustomer"
        );
        let restore_deal = Operation::Record(RecordKind::Deal, RecordWrite::Restore);
        assert_eq!(restore_deal.name(), "RestoreDeal");
        assert_eq!(restore_deal.fingerprint_label(), "restore_deal");
    }
}
