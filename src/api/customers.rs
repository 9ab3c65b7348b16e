//! `crm.v1.CustomerService`: proto ⇄ domain, nothing else.

use tonic::{Request, Response, Status};

use super::convert::{
    caller, detached, enum_field, from_timestamp, idempotency_key, optional_id, optional_timestamp,
    timestamp,
};
use super::deletion::{blocker_to_proto, impact_to_proto, preview_to_proto};
use crate::domain::customers::{
    self as domain, CustomerField, CustomerInput, CustomerQuery, Customers, ItemViolations,
};
use crate::domain::deletion::{Deletions, MergePreview};
use crate::domain::duplicates::Duplicates;
use crate::domain::export::{ExportChunk, Exports};
use crate::domain::model::matching::MatchKey;
use crate::domain::model::recycle_bin::{BinEntry, BinFilter, DeletedBy};
use crate::domain::mutation::Operation;
use crate::domain::purge::Purges;
use crate::domain::validate::parse_id;
use crate::error::{Error, FieldViolation, Result};
use crate::proto::crm::v1 as pb;
use crate::proto::crm::v1::customer_service_server::CustomerService;

pub struct CustomerApi {
    customers: Customers,
    deletions: Deletions,
    purges: Purges,
    exports: Exports,
    duplicates: Duplicates,
}

impl CustomerApi {
    pub fn new(
        customers: Customers,
        deletions: Deletions,
        purges: Purges,
        exports: Exports,
        duplicates: Duplicates,
    ) -> Self {
        Self {
            customers,
            deletions,
            purges,
            exports,
            duplicates,
        }
    }
}

fn merge_preview_to_proto(p: MergePreview) -> pb::MergePreview {
    pb::MergePreview {
        duplicate_id: p.duplicate_id.to_string(),
        survivor_id: p.survivor_id.to_string(),
        duplicate_etag: p.duplicate_version.to_string(),
        survivor_etag: p.survivor_version.to_string(),
        moves: p
            .moves
            .into_iter()
            .map(|m| pb::RelationImpact {
                policy: pb::DeletionPolicy::Unspecified.into(),
                ..impact_to_proto(m)
            })
            .collect(),
        move_count: p.move_count,
        conflicts: p
            .conflicts
            .into_iter()
            .map(|c| pb::FieldConflict {
                field: c.field,
                duplicate_value: c.duplicate_value,
                survivor_value: c.survivor_value,
            })
            .collect(),
        blockers: p.blockers.into_iter().map(blocker_to_proto).collect(),
    }
}

fn match_to_proto(key: MatchKey) -> i32 {
    match key {
        MatchKey::ExternalRef => pb::DuplicateMatch::ExternalRef,
        MatchKey::Email => pb::DuplicateMatch::Email,
        MatchKey::Phone => pb::DuplicateMatch::Phone,
        MatchKey::Name => pb::DuplicateMatch::Name,
    }
    .into()
}

/// The server stream of ExportCustomer.
pub type ExportStream = std::pin::Pin<
    Box<dyn futures_util::Stream<Item = Result<pb::ExportCustomerResponse, Status>> + Send>,
>;

fn stage_from(stage: pb::LifecycleStage) -> domain::LifecycleStage {
    match stage {
        pb::LifecycleStage::Lead | pb::LifecycleStage::Unspecified => domain::LifecycleStage::Lead,
        pb::LifecycleStage::Prospect => domain::LifecycleStage::Prospect,
        pb::LifecycleStage::Customer => domain::LifecycleStage::Customer,
    }
}

fn status_from(status: pb::CustomerStatus) -> domain::CustomerStatus {
    match status {
        pb::CustomerStatus::Inactive => domain::CustomerStatus::Inactive,
        pb::CustomerStatus::Active | pb::CustomerStatus::Unspecified => {
            domain::CustomerStatus::Active
        }
    }
}

pub(super) fn lifecycle_stage(field: &str, value: i32) -> Result<Option<domain::LifecycleStage>> {
    Ok(enum_field::<pb::LifecycleStage>(field, value)?.map(stage_from))
}

pub(super) fn customer_status(field: &str, value: i32) -> Result<Option<domain::CustomerStatus>> {
    Ok(enum_field::<pb::CustomerStatus>(field, value)?.map(status_from))
}

fn input(customer: &pb::Customer) -> Result<CustomerInput> {
    Ok(CustomerInput {
        name: customer.name.clone(),
        phone: customer.phone.clone(),
        email: customer.email.clone(),
        industry: customer.industry.clone(),
        owner_id: customer.owner_id.clone(),
        lifecycle_stage: lifecycle_stage("customer.lifecycle_stage", customer.lifecycle_stage)?,
        status: customer_status("customer.status", customer.status)?,
        external_ref: customer.external_ref.clone(),
        key_account: customer.key_account,
    })
}

/// Output-only fields a client filled in on create: refused by name rather than ignored, so a
/// client that thinks it sets them learns that it does not.
fn reject_output_only(customer: &pb::Customer) -> Result<()> {
    let mut set = Vec::new();
    let mut check = |is_set: bool, field: &str| {
        if is_set {
            set.push(FieldViolation {
                field: format!("customer.{field}"),
                description: "is output only".into(),
            });
        }
    };
    check(!customer.id.is_empty(), "id");
    check(customer.legal_hold, "legal_hold");
    check(customer.create_time.is_some(), "create_time");
    check(customer.update_time.is_some(), "update_time");
    check(customer.delete_time.is_some(), "delete_time");
    check(customer.purge_time.is_some(), "purge_time");
    check(!customer.etag.is_empty(), "etag");
    check(!customer.deletion_id.is_empty(), "deletion_id");
    if set.is_empty() {
        Ok(())
    } else {
        Err(Error::invalid_fields(set))
    }
}

fn bin_entry_to_proto(e: BinEntry) -> pb::DeletedCustomer {
    let (request_id, batch_id) = match e.deleted_by {
        Some(DeletedBy::Request { id }) => (id.to_string(), String::new()),
        Some(DeletedBy::Batch { id }) => (String::new(), id.to_string()),
        None => (String::new(), String::new()),
    };
    pb::DeletedCustomer {
        customer: Some(to_proto(e.customer)),
        requested_by: e.requested_by,
        approved_by: e.approved_by,
        deletion_request_id: request_id,
        deletion_batch_id: batch_id,
        deleted_records: e.deleted_records,
        merged_into_customer_id: e.merged_into.map(|id| id.to_string()).unwrap_or_default(),
    }
}

pub fn to_proto(c: domain::Customer) -> pb::Customer {
    let stage = match c.lifecycle_stage {
        domain::LifecycleStage::Lead => pb::LifecycleStage::Lead,
        domain::LifecycleStage::Prospect => pb::LifecycleStage::Prospect,
        domain::LifecycleStage::Customer => pb::LifecycleStage::Customer,
    };
    let status = match c.status {
        domain::CustomerStatus::Active => pb::CustomerStatus::Active,
        domain::CustomerStatus::Inactive => pb::CustomerStatus::Inactive,
    };
    pb::Customer {
        id: c.id.to_string(),
        etag: c.etag(),
        name: c.name,
        phone: c.phone,
        email: c.email,
        industry: c.industry,
        owner_id: c.owner_id,
        lifecycle_stage: stage as i32,
        status: status as i32,
        external_ref: c.external_ref,
        legal_hold: c.legal_hold,
        key_account: c.key_account,
        create_time: Some(timestamp(c.create_time)),
        update_time: Some(timestamp(c.update_time)),
        delete_time: optional_timestamp(c.delete_time),
        purge_time: optional_timestamp(c.purge_time),
        deletion_id: c.deletion_id.map(|d| d.to_string()).unwrap_or_default(),
    }
}

fn required<'a, T>(field: &str, value: &'a Option<T>) -> Result<&'a T> {
    value
        .as_ref()
        .ok_or_else(|| Error::invalid_field(field, "is required"))
}

/// One item of a BatchCreateCustomers decoded as CreateCustomer decodes its request, what is
/// wrong with it added to `violations` (named `requests[i].…`); `None` when it cannot be decoded.
fn batch_item(
    index: usize,
    item: &pb::CreateCustomerRequest,
    violations: &mut ItemViolations,
) -> Result<Option<CustomerInput>> {
    if !item.request_id.is_empty() {
        violations.add(
            index,
            Error::invalid_field(
                "request_id",
                "must be empty: the batch's request_id makes the call idempotent",
            ),
        )?;
    }
    let customer = match required("customer", &item.customer) {
        Ok(customer) => customer,
        Err(missing) => {
            violations.add(index, missing)?;
            return Ok(None);
        }
    };
    if let Err(output_only) = reject_output_only(customer) {
        violations.add(index, output_only)?;
    }
    match input(customer) {
        Ok(input) => Ok(Some(input)),
        Err(undecodable) => {
            violations.add(index, undecodable)?;
            Ok(None)
        }
    }
}

#[tonic::async_trait]
impl CustomerService for CustomerApi {
    async fn create_customer(
        &self,
        request: Request<pb::CreateCustomerRequest>,
    ) -> Result<Response<pb::CreateCustomerResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.into_inner();
        let customer = required("customer", &req.customer)?;
        reject_output_only(customer)?;
        let input = input(customer)?;
        let key = idempotency_key(
            &req.request_id,
            Operation::CreateCustomer,
            &pb::CreateCustomerRequest {
                request_id: String::new(),
                ..req.clone()
            },
        )?;
        let customers = self.customers.clone();
        let created = detached(async move { customers.create(&caller, input, key).await }).await?;
        Ok(Response::new(pb::CreateCustomerResponse {
            customer: Some(to_proto(created)),
        }))
    }

    async fn batch_create_customers(
        &self,
        request: Request<pb::BatchCreateCustomersRequest>,
    ) -> Result<Response<pb::BatchCreateCustomersResponse>, Status> {
        let caller = caller(&request)?;
        let mut req = request.into_inner();
        domain::check_batch_size(req.requests.len())?;
        let mut violations = ItemViolations::new();
        let mut inputs = Vec::with_capacity(req.requests.len());
        for (index, item) in req.requests.iter().enumerate() {
            inputs.push(batch_item(index, item, &mut violations)?);
        }
        if !violations.is_empty() {
            // Every mistake in one answer: the decodable items' rules too.
            let decoded = inputs
                .iter()
                .enumerate()
                .filter_map(|(index, input)| Some((index, input.as_ref()?)));
            domain::check_batch_items(decoded, &mut violations)?;
            violations.finish(req.requests.len())?;
        }
        let inputs: Vec<CustomerInput> = inputs.into_iter().flatten().collect();
        // The fingerprint covers the request without its key: taken out, not cloned (up to
        // 1,000 customers, close to 1 MiB).
        let request_id = std::mem::take(&mut req.request_id);
        let key = idempotency_key(&request_id, Operation::BatchCreateCustomers, &req)?;
        let customers = self.customers.clone();
        let created =
            detached(async move { customers.batch_create(&caller, inputs, key).await }).await?;
        Ok(Response::new(pb::BatchCreateCustomersResponse {
            customers: created.into_iter().map(to_proto).collect(),
        }))
    }

    async fn get_customer(
        &self,
        request: Request<pb::GetCustomerRequest>,
    ) -> Result<Response<pb::GetCustomerResponse>, Status> {
        let caller = caller(&request)?;
        let id = parse_id("customer_id", &request.get_ref().customer_id)?;
        let customer = self.customers.get(&caller, id).await?;
        Ok(Response::new(pb::GetCustomerResponse {
            customer: Some(to_proto(customer)),
        }))
    }

    async fn list_customers(
        &self,
        request: Request<pb::ListCustomersRequest>,
    ) -> Result<Response<pb::ListCustomersResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.into_inner();
        let query = CustomerQuery {
            show_deleted: req.show_deleted,
            text: req.query,
            industry: req.industry,
            owner_id: req.owner_id,
            lifecycle_stage: lifecycle_stage("lifecycle_stage", req.lifecycle_stage)?,
            status: customer_status("status", req.status)?,
        };
        let page = self
            .customers
            .list(&caller, query, req.page_size, &req.page_token)
            .await?;
        Ok(Response::new(pb::ListCustomersResponse {
            customers: page.items.into_iter().map(to_proto).collect(),
            next_page_token: page.next_page_token.unwrap_or_default(),
        }))
    }

    async fn list_deleted_customers(
        &self,
        request: Request<pb::ListDeletedCustomersRequest>,
    ) -> Result<Response<pb::ListDeletedCustomersResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.into_inner();
        let filter = BinFilter {
            requested_by: (!req.requested_by.is_empty()).then_some(req.requested_by),
            deletion_request_id: optional_id("deletion_request_id", &req.deletion_request_id)?,
            deletion_batch_id: optional_id("deletion_batch_id", &req.deletion_batch_id)?,
            purge_before: req
                .purge_before
                .as_ref()
                .map(|t| from_timestamp("purge_before", t))
                .transpose()?,
        };
        let page = self
            .deletions
            .recycle_bin(&caller, filter, req.page_size, &req.page_token)
            .await?;
        Ok(Response::new(pb::ListDeletedCustomersResponse {
            deleted_customers: page.items.into_iter().map(bin_entry_to_proto).collect(),
            next_page_token: page.next_page_token.unwrap_or_default(),
        }))
    }

    async fn list_duplicate_candidates(
        &self,
        request: Request<pb::ListDuplicateCandidatesRequest>,
    ) -> Result<Response<pb::ListDuplicateCandidatesResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.into_inner();
        let customer_id = parse_id("customer_id", &req.customer_id)?;
        let page = self
            .duplicates
            .candidates(&caller, customer_id, req.page_size, &req.page_token)
            .await?;
        Ok(Response::new(pb::ListDuplicateCandidatesResponse {
            candidates: page
                .items
                .into_iter()
                .map(|c| pb::DuplicateCandidate {
                    customer: Some(to_proto(c.customer)),
                    matches: c.matches.into_iter().map(match_to_proto).collect(),
                    score: c.score as i32,
                })
                .collect(),
            next_page_token: page.next_page_token.unwrap_or_default(),
        }))
    }

    async fn preview_merge_customers(
        &self,
        request: Request<pb::PreviewMergeCustomersRequest>,
    ) -> Result<Response<pb::PreviewMergeCustomersResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.get_ref();
        let duplicate_id = parse_id("duplicate_id", &req.duplicate_id)?;
        let survivor_id = parse_id("survivor_id", &req.survivor_id)?;
        let preview = self
            .deletions
            .preview_merge(&caller, duplicate_id, survivor_id)
            .await?;
        Ok(Response::new(pb::PreviewMergeCustomersResponse {
            preview: Some(merge_preview_to_proto(preview)),
        }))
    }

    async fn merge_customers(
        &self,
        request: Request<pb::MergeCustomersRequest>,
    ) -> Result<Response<pb::MergeCustomersResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.into_inner();
        let request_id = parse_id("deletion_request_id", &req.deletion_request_id)?;
        let key = idempotency_key(
            &req.request_id,
            Operation::MergeCustomers,
            &pb::MergeCustomersRequest {
                request_id: String::new(),
                ..req.clone()
            },
        )?;
        let deletions = self.deletions.clone();
        let merged =
            detached(async move { deletions.merge(&caller, request_id, key).await }).await?;
        Ok(Response::new(pb::MergeCustomersResponse {
            survivor: Some(to_proto(merged.survivor)),
            duplicate: Some(to_proto(merged.duplicate)),
            moved_records: merged.moved_records as i64,
            taken_fields: merged.taken_fields,
        }))
    }

    async fn unmerge_customers(
        &self,
        request: Request<pb::UnmergeCustomersRequest>,
    ) -> Result<Response<pb::UnmergeCustomersResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.into_inner();
        let duplicate_id = parse_id("duplicate_id", &req.duplicate_id)?;
        let key = idempotency_key(
            &req.request_id,
            Operation::UnmergeCustomers,
            &pb::UnmergeCustomersRequest {
                request_id: String::new(),
                ..req.clone()
            },
        )?;
        let deletions = self.deletions.clone();
        let validate_only = req.validate_only;
        let unmerged = detached(async move {
            deletions
                .unmerge(&caller, duplicate_id, validate_only, key)
                .await
        })
        .await?;
        Ok(Response::new(pb::UnmergeCustomersResponse {
            duplicate: Some(to_proto(unmerged.duplicate)),
            survivor: Some(to_proto(unmerged.survivor)),
            moved_back_records: unmerged.moved_back_records as i64,
            reverted_fields: unmerged.reverted_fields,
            kept_fields: unmerged
                .kept_fields
                .into_iter()
                .map(|k| pb::KeptField {
                    field: k.field,
                    value: k.value,
                })
                .collect(),
        }))
    }

    async fn update_customer(
        &self,
        request: Request<pb::UpdateCustomerRequest>,
    ) -> Result<Response<pb::UpdateCustomerResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.into_inner();
        let customer = required("customer", &req.customer)?;
        let id = parse_id("customer.id", &customer.id)?;
        let paths = req
            .update_mask
            .as_ref()
            .map(|m| m.paths.clone())
            .unwrap_or_default();
        let mut fields = Vec::with_capacity(paths.len());
        let mut bad = Vec::new();
        for path in &paths {
            match CustomerField::parse_path(path) {
                Ok(field) => fields.push(field),
                Err(why) => bad.push(FieldViolation {
                    field: "update_mask".into(),
                    description: why,
                }),
            }
        }
        if !bad.is_empty() {
            return Err(Error::invalid_fields(bad).into());
        }
        let input = input(customer)?;
        let key = idempotency_key(
            &req.request_id,
            Operation::UpdateCustomer,
            &pb::UpdateCustomerRequest {
                request_id: String::new(),
                ..req.clone()
            },
        )?;
        let etag = req.etag;
        let customers = self.customers.clone();
        let updated = detached(async move {
            customers
                .update(&caller, id, fields, input, etag, key)
                .await
        })
        .await?;
        Ok(Response::new(pb::UpdateCustomerResponse {
            customer: Some(to_proto(updated)),
        }))
    }

    async fn preview_delete_customer(
        &self,
        request: Request<pb::PreviewDeleteCustomerRequest>,
    ) -> Result<Response<pb::PreviewDeleteCustomerResponse>, Status> {
        let caller = caller(&request)?;
        let id = parse_id("customer_id", &request.get_ref().customer_id)?;
        let preview = self.deletions.preview(&caller, id).await?;
        Ok(Response::new(pb::PreviewDeleteCustomerResponse {
            preview: Some(preview_to_proto(preview)),
        }))
    }

    async fn delete_customer(
        &self,
        request: Request<pb::DeleteCustomerRequest>,
    ) -> Result<Response<pb::DeleteCustomerResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.into_inner();
        let customer_id = parse_id("customer_id", &req.customer_id)?;
        let request_id = parse_id("deletion_request_id", &req.deletion_request_id)?;
        let key = idempotency_key(
            &req.request_id,
            Operation::DeleteCustomer,
            &pb::DeleteCustomerRequest {
                request_id: String::new(),
                ..req.clone()
            },
        )?;
        let deletions = self.deletions.clone();
        let etag = req.etag;
        let deleted = detached(async move {
            deletions
                .delete(&caller, customer_id, request_id, etag, key)
                .await
        })
        .await?;
        Ok(Response::new(pb::DeleteCustomerResponse {
            customer: Some(to_proto(deleted.customer)),
            deleted_records: deleted.deleted_records as i64,
        }))
    }

    async fn restore_customer(
        &self,
        request: Request<pb::RestoreCustomerRequest>,
    ) -> Result<Response<pb::RestoreCustomerResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.into_inner();
        let customer_id = parse_id("customer_id", &req.customer_id)?;
        let key = idempotency_key(
            &req.request_id,
            Operation::RestoreCustomer,
            &pb::RestoreCustomerRequest {
                request_id: String::new(),
                ..req.clone()
            },
        )?;
        let deletions = self.deletions.clone();
        let validate_only = req.validate_only;
        let restored = detached(async move {
            deletions
                .restore(&caller, customer_id, validate_only, key)
                .await
        })
        .await?;
        Ok(Response::new(pb::RestoreCustomerResponse {
            customer: Some(to_proto(restored.customer)),
            restored_records: restored.restored_records as i64,
        }))
    }

    async fn purge_customer(
        &self,
        request: Request<pb::PurgeCustomerRequest>,
    ) -> Result<Response<pb::PurgeCustomerResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.into_inner();
        let customer_id = parse_id("customer_id", &req.customer_id)?;
        let key = idempotency_key(
            &req.request_id,
            Operation::PurgeCustomer,
            &pb::PurgeCustomerRequest {
                request_id: String::new(),
                ..req.clone()
            },
        )?;
        let purges = self.purges.clone();
        let validate_only = req.validate_only;
        let erased = detached(async move {
            purges
                .purge_customer(&caller, customer_id, validate_only, key)
                .await
        })
        .await?;
        Ok(Response::new(pb::PurgeCustomerResponse {
            customer_id: erased.customer_id.to_string(),
            erased_records: erased.erased_records as i64,
            kept_records: erased.kept_records as i64,
        }))
    }

    async fn set_legal_hold(
        &self,
        request: Request<pb::SetLegalHoldRequest>,
    ) -> Result<Response<pb::SetLegalHoldResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.into_inner();
        let customer_id = parse_id("customer_id", &req.customer_id)?;
        let key = idempotency_key(
            &req.request_id,
            Operation::SetLegalHold,
            &pb::SetLegalHoldRequest {
                request_id: String::new(),
                ..req.clone()
            },
        )?;
        let purges = self.purges.clone();
        let (hold, reason) = (req.legal_hold, req.reason);
        let customer = detached(async move {
            purges
                .set_legal_hold(&caller, customer_id, hold, reason, key)
                .await
        })
        .await?;
        Ok(Response::new(pb::SetLegalHoldResponse {
            customer: Some(to_proto(customer)),
        }))
    }

    type ExportCustomerStream = ExportStream;

    async fn export_customer(
        &self,
        request: Request<pb::ExportCustomerRequest>,
    ) -> Result<Response<Self::ExportCustomerStream>, Status> {
        let caller = caller(&request)?;
        let id = parse_id("customer_id", &request.get_ref().customer_id)?;
        // A small buffer: the reader's pace bounds how much of the graph is in memory.
        let (tx, rx) = tokio::sync::mpsc::channel(2);
        self.exports.export(&caller, id, tx).await?;
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            let chunk = rx.recv().await?;
            let message = chunk.map_err(Status::from).map(|chunk| match chunk {
                ExportChunk::Customer(c) => pb::ExportCustomerResponse {
                    customer: Some(to_proto(*c)),
                    ..Default::default()
                },
                ExportChunk::Records(kind, records) => super::records::export_chunk(kind, records),
                ExportChunk::DeletionRequests(requests) => pb::ExportCustomerResponse {
                    deletion_requests: requests
                        .into_iter()
                        .map(super::deletion::request_to_proto)
                        .collect(),
                    ..Default::default()
                },
            });
            Some((message, rx))
        });
        Ok(Response::new(Box::pin(stream)))
    }
}
