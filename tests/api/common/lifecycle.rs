//! The deletion lifecycle and the audit trail: preview, request, decide, delete, restore, audit.

use super::*;

use crm_service::proto::crm::v1::audit_service_client::AuditServiceClient;
use crm_service::proto::crm::v1::deletion_approval_service_client::DeletionApprovalServiceClient;

pub type Approvals = DeletionApprovalServiceClient<AuthedChannel>;
pub type Audit = AuditServiceClient<AuthedChannel>;

impl TestApp {
    /// DeletionApprovalService as `user` of `tenant` with `roles`.
    pub fn approvals_as(&self, tenant: &str, user: &str, roles: &[&str]) -> Approvals {
        let token = self.token(tenant, user, roles);
        DeletionApprovalServiceClient::with_interceptor(self.channel(), Bearer::new(&token))
    }

    /// DeletionApprovalService as `user` of `tenant` with `roles` and extra list claims (see
    /// `token_with_claims`).
    pub fn approvals_with_claims(
        &self,
        tenant: &str,
        user: &str,
        roles: &[&str],
        claims: &[(&str, &[&str])],
    ) -> Approvals {
        let token = self.token_with_claims(tenant, user, roles, claims);
        DeletionApprovalServiceClient::with_interceptor(self.channel(), Bearer::new(&token))
    }

    /// AuditService as `user` of `tenant` with `roles`.
    pub fn audit_as(&self, tenant: &str, user: &str, roles: &[&str]) -> Audit {
        let token = self.token(tenant, user, roles);
        AuditServiceClient::with_interceptor(self.channel(), Bearer::new(&token))
    }

    /// AuditService as supervisor `auditor` of `acme`.
    pub fn audit(&self) -> Audit {
        self.audit_as("acme", "auditor", &["supervisor"])
    }

    /// The preview of `customer_id`'s deletion, as a sales rep of `acme`.
    pub async fn preview(&self, customer_id: &str) -> pb::DeletionPreview {
        self.customers()
            .preview_delete_customer(pb::PreviewDeleteCustomerRequest {
                customer_id: customer_id.into(),
            })
            .await
            .expect("preview")
            .into_inner()
            .preview
            .unwrap()
    }

    /// Preview, then submit as `rep-1` (a sales rep of `acme`) with `reason`: the PENDING request.
    pub async fn pending_deletion(&self, customer_id: &str, reason: &str) -> pb::DeletionRequest {
        let preview = self.preview(customer_id).await;
        submit(
            &mut self.approvals_as("acme", "rep-1", &["sales_rep"]),
            customer_id,
            &preview.etag,
            reason,
        )
        .await
        .expect("submit")
    }

    /// Preview, submit as `rep-1`, approve as `sup-1`: the APPROVED request.
    pub async fn approved_deletion(&self, customer_id: &str, reason: &str) -> pb::DeletionRequest {
        let pending = self.pending_deletion(customer_id, reason).await;
        approve(
            &mut self.approvals_as("acme", "sup-1", &["supervisor"]),
            &pending.id,
        )
        .await
        .expect("approve")
    }

    /// Preview, submit, approve and execute the deletion of `customer_id` (as `rep-1`, the
    /// requester): the DeleteCustomer response.
    pub async fn delete_customer(&self, customer_id: &str) -> pb::DeleteCustomerResponse {
        let approved = self
            .approved_deletion(customer_id, "no longer needed")
            .await;
        execute(
            &mut self.customers(),
            customer_id,
            &approved.id,
            &approved.preview.as_ref().unwrap().etag,
        )
        .await
        .expect("delete")
    }

    /// A deletion request as anyone of `acme` sees it.
    pub async fn deletion_request(&self, id: &str) -> pb::DeletionRequest {
        self.approvals_as("acme", "reader", &["sales_rep"])
            .get_deletion_request(pb::GetDeletionRequestRequest {
                deletion_request_id: id.into(),
            })
            .await
            .expect("get deletion request")
            .into_inner()
            .deletion_request
            .unwrap()
    }

    /// Every audit event of `acme` matching `filter`, walking all pages.
    pub async fn audit_events(&self, filter: pb::ListAuditEventsRequest) -> Vec<pb::AuditEvent> {
        let mut audit = self.audit();
        let mut request = pb::ListAuditEventsRequest {
            page_size: 1000,
            ..filter
        };
        let mut out = Vec::new();
        loop {
            let page = audit
                .list_audit_events(request.clone())
                .await
                .expect("list audit events")
                .into_inner();
            out.extend(page.audit_events);
            if page.next_page_token.is_empty() {
                return out;
            }
            request.page_token = page.next_page_token;
        }
    }

    /// How many audit events of `acme` have `action` for `customer_id`.
    pub async fn audit_count(&self, customer_id: &str, action: &str) -> usize {
        self.audit_events(pb::ListAuditEventsRequest {
            customer_id: customer_id.into(),
            action: action.into(),
            ..Default::default()
        })
        .await
        .len()
    }

    /// `acme`'s audit chain, verified.
    pub async fn verify_audit(&self) -> pb::VerifyAuditChainResponse {
        self.audit()
            .verify_audit_chain(pb::VerifyAuditChainRequest {})
            .await
            .expect("verify audit chain")
            .into_inner()
    }

    /// Every record of `customer_id`'s graph, deleted ones included, field by field.
    pub async fn snapshot(&self, customer_id: &str) -> Snapshot {
        let mut r = self.records_as("acme", "snapshotter", &["supervisor"]);
        macro_rules! all {
            ($rpc:ident, $Req:ident, $field:ident) => {{
                let mut out = Vec::new();
                let mut page_token = String::new();
                loop {
                    let page = r
                        .$rpc(pb::$Req {
                            customer_id: customer_id.into(),
                            page_size: 1000,
                            page_token: page_token.clone(),
                            show_deleted: true,
                        })
                        .await
                        .expect("list records")
                        .into_inner();
                    out.extend(page.$field);
                    if page.next_page_token.is_empty() {
                        break out;
                    }
                    page_token = page.next_page_token;
                }
            }};
        }
        Snapshot {
            contacts: all!(list_contacts, ListContactsRequest, contacts),
            deals: all!(list_deals, ListDealsRequest, deals),
            orders: all!(list_orders, ListOrdersRequest, orders),
            contracts: all!(list_contracts, ListContractsRequest, contracts),
            projects: all!(list_projects, ListProjectsRequest, projects),
            activities: all!(list_activities, ListActivitiesRequest, activities),
        }
    }
}

/// A customer's whole graph of records, deleted ones included.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub contacts: Vec<pb::Contact>,
    pub deals: Vec<pb::Deal>,
    pub orders: Vec<pb::Order>,
    pub contracts: Vec<pb::Contract>,
    pub projects: Vec<pb::Project>,
    pub activities: Vec<pb::Activity>,
}

impl Snapshot {
    /// (kind, id, delete_time) of every record.
    pub fn rows(&self) -> Vec<(&'static str, String, Option<prost_types::Timestamp>)> {
        let mut out = Vec::new();
        macro_rules! rows {
            ($field:ident, $kind:literal) => {
                out.extend(
                    self.$field
                        .iter()
                        .map(|m| ($kind, m.id.clone(), m.delete_time)),
                )
            };
        }
        rows!(contacts, "contact");
        rows!(deals, "deal");
        rows!(orders, "order");
        rows!(contracts, "contract");
        rows!(projects, "project");
        rows!(activities, "activity");
        out
    }

    /// How many records are live.
    pub fn live(&self) -> usize {
        self.rows().iter().filter(|r| r.2.is_none()).count()
    }
}

/// SubmitDeletionRequest without a request_id.
pub async fn submit(
    approvals: &mut Approvals,
    customer_id: &str,
    preview_etag: &str,
    reason: &str,
) -> Result<pb::DeletionRequest, Status> {
    Ok(approvals
        .submit_deletion_request(pb::SubmitDeletionRequestRequest {
            customer_id: customer_id.into(),
            preview_etag: preview_etag.into(),
            reason: reason.into(),
            request_id: String::new(),
        })
        .await?
        .into_inner()
        .deletion_request
        .unwrap())
}

/// ApproveDeletionRequest without a comment or request_id.
pub async fn approve(approvals: &mut Approvals, id: &str) -> Result<pb::DeletionRequest, Status> {
    Ok(approvals
        .approve_deletion_request(pb::ApproveDeletionRequestRequest {
            deletion_request_id: id.into(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .deletion_request
        .unwrap())
}

/// RejectDeletionRequest with `comment`.
pub async fn reject(
    approvals: &mut Approvals,
    id: &str,
    comment: &str,
) -> Result<pb::DeletionRequest, Status> {
    Ok(approvals
        .reject_deletion_request(pb::RejectDeletionRequestRequest {
            deletion_request_id: id.into(),
            comment: comment.into(),
            request_id: String::new(),
        })
        .await?
        .into_inner()
        .deletion_request
        .unwrap())
}

/// CancelDeletionRequest without a comment.
pub async fn cancel(approvals: &mut Approvals, id: &str) -> Result<pb::DeletionRequest, Status> {
    Ok(approvals
        .cancel_deletion_request(pb::CancelDeletionRequestRequest {
            deletion_request_id: id.into(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .deletion_request
        .unwrap())
}

/// DeleteCustomer without a request_id.
pub async fn execute(
    customers: &mut Customers,
    customer_id: &str,
    deletion_request_id: &str,
    etag: &str,
) -> Result<pb::DeleteCustomerResponse, Status> {
    Ok(customers
        .delete_customer(pb::DeleteCustomerRequest {
            customer_id: customer_id.into(),
            deletion_request_id: deletion_request_id.into(),
            etag: etag.into(),
            request_id: String::new(),
        })
        .await?
        .into_inner())
}

/// RestoreCustomer without a request_id.
pub async fn restore(
    customers: &mut Customers,
    customer_id: &str,
    validate_only: bool,
) -> Result<pb::RestoreCustomerResponse, Status> {
    Ok(customers
        .restore_customer(pb::RestoreCustomerRequest {
            customer_id: customer_id.into(),
            validate_only,
            request_id: String::new(),
        })
        .await?
        .into_inner())
}

/// The PreconditionFailure violations of an error, as (type, subject).
pub fn precondition_subjects(status: &Status) -> Vec<(String, String)> {
    status
        .get_error_details()
        .precondition_failure()
        .map(|p| {
            p.violations
                .iter()
                .map(|v| (v.r#type.clone(), v.subject.clone()))
                .collect()
        })
        .unwrap_or_default()
}
