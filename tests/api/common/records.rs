//! The six record kinds: builders, and one helper per record RPC that works for every kind.

use super::*;

/// The six record kinds, for tests that do the same thing to each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Contact,
    Deal,
    Order,
    Contract,
    Project,
    Activity,
}

impl Kind {
    pub const ALL: [Kind; 6] = [
        Kind::Contact,
        Kind::Deal,
        Kind::Order,
        Kind::Contract,
        Kind::Project,
        Kind::Activity,
    ];

    /// The resource name used in messages and request field paths.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Contact => "contact",
            Kind::Deal => "deal",
            Kind::Order => "order",
            Kind::Contract => "contract",
            Kind::Project => "project",
            Kind::Activity => "activity",
        }
    }
}

/// The fields every record kind shares.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordView {
    pub id: String,
    pub customer_id: String,
    pub etag: String,
    pub deleted: bool,
}

macro_rules! view {
    ($m:expr) => {{
        let m = $m;
        RecordView {
            id: m.id,
            customer_id: m.customer_id,
            etag: m.etag,
            deleted: m.delete_time.is_some(),
        }
    }};
}

pub fn new_contact(customer_id: &str) -> pb::Contact {
    pb::Contact {
        customer_id: customer_id.into(),
        full_name: "Ana Lima".into(),
        email: "ana@example.com".into(),
        phone: "+55 11 5555 0101".into(),
        job_title: "Buyer".into(),
        ..Default::default()
    }
}

pub fn new_deal(customer_id: &str, stage: pb::DealStage) -> pb::Deal {
    pb::Deal {
        customer_id: customer_id.into(),
        title: "Fleet renewal".into(),
        amount_minor: 125_000,
        currency: "EUR".into(),
        stage: stage as i32,
        ..Default::default()
    }
}

pub fn new_order(customer_id: &str, status: pb::OrderStatus) -> pb::Order {
    pb::Order {
        customer_id: customer_id.into(),
        number: "SO-1001".into(),
        amount_minor: 9_900,
        currency: "USD".into(),
        status: status as i32,
        ..Default::default()
    }
}

pub fn new_contract(customer_id: &str, status: pb::ContractStatus) -> pb::Contract {
    pb::Contract {
        customer_id: customer_id.into(),
        number: "C-2027-01".into(),
        status: status as i32,
        end_date: "2027-12-31".into(),
        ..Default::default()
    }
}

pub fn new_project(customer_id: &str, status: pb::ProjectStatus) -> pb::Project {
    pb::Project {
        customer_id: customer_id.into(),
        name: "Warehouse roll-out".into(),
        status: status as i32,
        ..Default::default()
    }
}

pub fn new_activity(customer_id: &str) -> pb::Activity {
    pb::Activity {
        customer_id: customer_id.into(),
        kind: pb::ActivityKind::Call as i32,
        subject: "Kick-off call".into(),
        occur_time: Some(prost_types::Timestamp {
            seconds: 1_767_225_600,
            nanos: 123_456_000,
        }),
        ..Default::default()
    }
}

/// Creates a record of `kind` (in its initial status) for `customer_id`.
pub async fn create_record(
    records: &mut Records,
    kind: Kind,
    customer_id: &str,
) -> Result<RecordView, Status> {
    let c = customer_id;
    Ok(match kind {
        Kind::Contact => view!(
            records
                .create_contact(pb::CreateContactRequest {
                    contact: Some(new_contact(c)),
                    request_id: String::new(),
                })
                .await?
                .into_inner()
                .contact
                .unwrap()
        ),
        Kind::Deal => view!(
            records
                .create_deal(pb::CreateDealRequest {
                    deal: Some(new_deal(c, pb::DealStage::Open)),
                    request_id: String::new(),
                })
                .await?
                .into_inner()
                .deal
                .unwrap()
        ),
        Kind::Order => view!(
            records
                .create_order(pb::CreateOrderRequest {
                    order: Some(new_order(c, pb::OrderStatus::Open)),
                    request_id: String::new(),
                })
                .await?
                .into_inner()
                .order
                .unwrap()
        ),
        Kind::Contract => view!(
            records
                .create_contract(pb::CreateContractRequest {
                    contract: Some(new_contract(c, pb::ContractStatus::Draft)),
                    request_id: String::new(),
                })
                .await?
                .into_inner()
                .contract
                .unwrap()
        ),
        Kind::Project => view!(
            records
                .create_project(pb::CreateProjectRequest {
                    project: Some(new_project(c, pb::ProjectStatus::Active)),
                    request_id: String::new(),
                })
                .await?
                .into_inner()
                .project
                .unwrap()
        ),
        Kind::Activity => view!(
            records
                .create_activity(pb::CreateActivityRequest {
                    activity: Some(new_activity(c)),
                    request_id: String::new(),
                })
                .await?
                .into_inner()
                .activity
                .unwrap()
        ),
    })
}

pub async fn get_record(records: &mut Records, kind: Kind, id: &str) -> Result<RecordView, Status> {
    let id = id.to_owned();
    Ok(match kind {
        Kind::Contact => view!(
            records
                .get_contact(pb::GetContactRequest { contact_id: id })
                .await?
                .into_inner()
                .contact
                .unwrap()
        ),
        Kind::Deal => view!(
            records
                .get_deal(pb::GetDealRequest { deal_id: id })
                .await?
                .into_inner()
                .deal
                .unwrap()
        ),
        Kind::Order => view!(
            records
                .get_order(pb::GetOrderRequest { order_id: id })
                .await?
                .into_inner()
                .order
                .unwrap()
        ),
        Kind::Contract => view!(
            records
                .get_contract(pb::GetContractRequest { contract_id: id })
                .await?
                .into_inner()
                .contract
                .unwrap()
        ),
        Kind::Project => view!(
            records
                .get_project(pb::GetProjectRequest { project_id: id })
                .await?
                .into_inner()
                .project
                .unwrap()
        ),
        Kind::Activity => view!(
            records
                .get_activity(pb::GetActivityRequest { activity_id: id })
                .await?
                .into_inner()
                .activity
                .unwrap()
        ),
    })
}

/// One page of a customer's records of `kind`, and the next page's token.
pub async fn list_records(
    records: &mut Records,
    kind: Kind,
    customer_id: &str,
    page_size: i32,
    page_token: &str,
    show_deleted: bool,
) -> Result<(Vec<RecordView>, String), Status> {
    macro_rules! list {
        ($method:ident, $Req:ident, $field:ident) => {{
            let page = records
                .$method(pb::$Req {
                    customer_id: customer_id.into(),
                    page_size,
                    page_token: page_token.into(),
                    show_deleted,
                })
                .await?
                .into_inner();
            (
                page.$field.into_iter().map(|m| view!(m)).collect(),
                page.next_page_token,
            )
        }};
    }
    Ok(match kind {
        Kind::Contact => list!(list_contacts, ListContactsRequest, contacts),
        Kind::Deal => list!(list_deals, ListDealsRequest, deals),
        Kind::Order => list!(list_orders, ListOrdersRequest, orders),
        Kind::Contract => list!(list_contracts, ListContractsRequest, contracts),
        Kind::Project => list!(list_projects, ListProjectsRequest, projects),
        Kind::Activity => list!(list_activities, ListActivitiesRequest, activities),
    })
}

/// Changes a plain text field of a record (never its status), unconditionally.
pub async fn touch_record(
    records: &mut Records,
    kind: Kind,
    id: &str,
) -> Result<RecordView, Status> {
    let id = id.to_owned();
    Ok(match kind {
        Kind::Contact => view!(
            records
                .update_contact(pb::UpdateContactRequest {
                    contact: Some(pb::Contact {
                        id,
                        job_title: "Head of Buying".into(),
                        ..Default::default()
                    }),
                    update_mask: mask(&["job_title"]),
                    etag: String::new(),
                    request_id: String::new(),
                })
                .await?
                .into_inner()
                .contact
                .unwrap()
        ),
        Kind::Deal => view!(
            records
                .update_deal(pb::UpdateDealRequest {
                    deal: Some(pb::Deal {
                        id,
                        title: "Fleet renewal, phase 2".into(),
                        ..Default::default()
                    }),
                    update_mask: mask(&["title"]),
                    etag: String::new(),
                    request_id: String::new(),
                })
                .await?
                .into_inner()
                .deal
                .unwrap()
        ),
        Kind::Order => view!(
            records
                .update_order(pb::UpdateOrderRequest {
                    order: Some(pb::Order {
                        id,
                        number: "SO-1001-B".into(),
                        ..Default::default()
                    }),
                    update_mask: mask(&["number"]),
                    etag: String::new(),
                    request_id: String::new(),
                })
                .await?
                .into_inner()
                .order
                .unwrap()
        ),
        Kind::Contract => view!(
            records
                .update_contract(pb::UpdateContractRequest {
                    contract: Some(pb::Contract {
                        id,
                        number: "C-2027-01-B".into(),
                        ..Default::default()
                    }),
                    update_mask: mask(&["number"]),
                    etag: String::new(),
                    request_id: String::new(),
                })
                .await?
                .into_inner()
                .contract
                .unwrap()
        ),
        Kind::Project => view!(
            records
                .update_project(pb::UpdateProjectRequest {
                    project: Some(pb::Project {
                        id,
                        name: "Warehouse roll-out, wave 2".into(),
                        ..Default::default()
                    }),
                    update_mask: mask(&["name"]),
                    etag: String::new(),
                    request_id: String::new(),
                })
                .await?
                .into_inner()
                .project
                .unwrap()
        ),
        Kind::Activity => view!(
            records
                .update_activity(pb::UpdateActivityRequest {
                    activity: Some(pb::Activity {
                        id,
                        subject: "Kick-off call (moved)".into(),
                        ..Default::default()
                    }),
                    update_mask: mask(&["subject"]),
                    etag: String::new(),
                    request_id: String::new(),
                })
                .await?
                .into_inner()
                .activity
                .unwrap()
        ),
    })
}

/// Deletes a record; `None` for orders, which have no delete.
pub async fn delete_record(
    records: &mut Records,
    kind: Kind,
    id: &str,
) -> Option<Result<RecordView, Status>> {
    let id = id.to_owned();
    let etag = String::new();
    let request_id = String::new();
    let result = match kind {
        Kind::Order => return None,
        Kind::Contact => records
            .delete_contact(pb::DeleteContactRequest {
                contact_id: id,
                etag,
                request_id,
            })
            .await
            .map(|r| view!(r.into_inner().contact.unwrap())),
        Kind::Deal => records
            .delete_deal(pb::DeleteDealRequest {
                deal_id: id,
                etag,
                request_id,
            })
            .await
            .map(|r| view!(r.into_inner().deal.unwrap())),
        Kind::Contract => records
            .delete_contract(pb::DeleteContractRequest {
                contract_id: id,
                etag,
                request_id,
            })
            .await
            .map(|r| view!(r.into_inner().contract.unwrap())),
        Kind::Project => records
            .delete_project(pb::DeleteProjectRequest {
                project_id: id,
                etag,
                request_id,
            })
            .await
            .map(|r| view!(r.into_inner().project.unwrap())),
        Kind::Activity => records
            .delete_activity(pb::DeleteActivityRequest {
                activity_id: id,
                etag,
                request_id,
            })
            .await
            .map(|r| view!(r.into_inner().activity.unwrap())),
    };
    Some(result)
}

/// A writer racing a deletion: waits at `barrier`, reads the customer `warmup` times (so that
/// either side can win the race), then adds `writes` contacts to it, returning each outcome.
pub fn spawn_contact_writer(
    mut records: Records,
    mut customers: Customers,
    customer_id: String,
    barrier: std::sync::Arc<tokio::sync::Barrier>,
    warmup: usize,
    writes: usize,
) -> tokio::task::JoinHandle<Vec<Result<pb::Contact, Status>>> {
    tokio::spawn(async move {
        barrier.wait().await;
        for _ in 0..warmup {
            let _ = customers
                .get_customer(pb::GetCustomerRequest {
                    customer_id: customer_id.clone(),
                })
                .await;
        }
        let mut results = Vec::new();
        for _ in 0..writes {
            results.push(
                records
                    .create_contact(pb::CreateContactRequest {
                        contact: Some(new_contact(&customer_id)),
                        request_id: String::new(),
                    })
                    .await
                    .map(|r| r.into_inner().contact.unwrap()),
            );
        }
        results
    })
}

/// Moves a record of `kind` to `target` (MoveContact, MoveDeal, …).
pub async fn move_record(
    records: &mut Records,
    kind: Kind,
    id: &str,
    target: &str,
    etag: &str,
    request_id: &str,
) -> Result<RecordView, Status> {
    macro_rules! move_to {
        ($method:ident, $Req:ident, $id_field:ident, $field:ident) => {
            view!(
                records
                    .$method(pb::$Req {
                        $id_field: id.into(),
                        target_customer_id: target.into(),
                        etag: etag.into(),
                        request_id: request_id.into(),
                    })
                    .await?
                    .into_inner()
                    .$field
                    .unwrap()
            )
        };
    }
    Ok(match kind {
        Kind::Contact => move_to!(move_contact, MoveContactRequest, contact_id, contact),
        Kind::Deal => move_to!(move_deal, MoveDealRequest, deal_id, deal),
        Kind::Order => move_to!(move_order, MoveOrderRequest, order_id, order),
        Kind::Contract => move_to!(move_contract, MoveContractRequest, contract_id, contract),
        Kind::Project => move_to!(move_project, MoveProjectRequest, project_id, project),
        Kind::Activity => move_to!(move_activity, MoveActivityRequest, activity_id, activity),
    })
}
