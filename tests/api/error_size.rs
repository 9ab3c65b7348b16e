//! How much an error answer may echo (issue 16): whatever a request holds within the 1 MiB
//! message limit — a field mask of a hundred thousand unknown paths, a path of a megabyte, a
//! megabyte in any text field, id, page token or request_id — its error keeps the real code
//! (INVALID_ARGUMENT naming the field at fault) and its trailers stay under 8 KiB, the size at
//! which gRPC clients start refusing metadata (grpc-core's default hard limit is 16 KiB, and 8 KiB
//! its soft one) and would report RESOURCE_EXHAUSTED instead of the real error.
//!
//! The size is measured from what the client received, as HTTP/2 counts a header list: name +
//! value + 32 bytes for each of grpc-status, grpc-message (percent-encoded), grpc-status-details-bin
//! (base64) and every other metadata entry.

use std::future::Future;
use std::pin::Pin;

use crm_service::proto::crm::v1 as pb;
use crm_service::proto::crm::v1::audit_service_client::AuditServiceClient;
use crm_service::proto::crm::v1::customer_service_client::CustomerServiceClient;
use crm_service::proto::crm::v1::deletion_approval_service_client::DeletionApprovalServiceClient;
use crm_service::proto::crm::v1::record_service_client::RecordServiceClient;
use prost::Message;
use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_types::StatusExt;

use crate::common::{
    Bearer, TestApp, bad_fields, bare_customer, figure, new_activity, new_contact, new_contract,
    new_deal, new_order, new_project, random_id,
};

crate::on_both_databases!(
    an_error_keeps_its_code_and_field_in_under_8_kib_of_trailers_whatever_the_request_holds,
    a_thousand_unknown_update_mask_paths_get_the_real_error_in_under_2_kib,
);

/// What HTTP/2 counts for a header field (RFC 7541 §4.1).
fn field(name: &str, value_len: usize) -> usize {
    name.len() + value_len + 32
}

/// The length of `message` as tonic percent-encodes it into grpc-message: controls, non-ASCII
/// bytes and ` "#%<>`?{}` take three bytes.
fn percent_encoded_len(message: &str) -> usize {
    message
        .bytes()
        .map(|b| {
            if !(0x20..0x7f).contains(&b) || b" \"#%<>`?{}".contains(&b) {
                3
            } else {
                1
            }
        })
        .sum()
}

/// The header list a failed call's status arrived in, in bytes, as HTTP/2 counts it.
pub fn trailer_bytes(status: &Status) -> usize {
    let mut bytes = field("grpc-status", (status.code() as i32).to_string().len());
    if !status.message().is_empty() {
        bytes += field("grpc-message", percent_encoded_len(status.message()));
    }
    if !status.details().is_empty() {
        // Unpadded base64.
        bytes += field(
            "grpc-status-details-bin",
            (status.details().len() * 4).div_ceil(3),
        );
    }
    for (name, value) in status.metadata().clone().into_headers().iter() {
        bytes += field(name.as_str(), value.len());
    }
    bytes
}

/// The budget every error answer stays under.
const TRAILER_BUDGET: usize = 8 * 1024;
/// A string that, with the rest of its request, stays under the 1 MiB message limit. Multi-byte,
/// so that a server that echoed it and cut it by bytes would split a character.
fn big() -> String {
    "é".repeat((1024 * 1024 - 8 * 1024) / 2)
}

/// An update mask that fills a request with distinct unknown paths (about 120,000 of them).
fn many_paths() -> Option<prost_types::FieldMask> {
    let mut paths = Vec::new();
    let mut size = 0;
    while size < 1024 * 1024 - 16 * 1024 {
        let path = format!("no_such_field_{}", paths.len());
        size += path.len() + 3;
        paths.push(path);
    }
    Some(prost_types::FieldMask { paths })
}

/// An update mask of one unknown path of nearly a megabyte.
fn one_long_path() -> Option<prost_types::FieldMask> {
    Some(prost_types::FieldMask { paths: vec![big()] })
}

type Call = Pin<Box<dyn Future<Output = Result<usize, Status>> + Send>>;

/// (what, the field the error must name, the call; it yields the request's encoded size).
type Case = (String, String, Call);

/// A case: `$client.$method($request)`, expected to fail naming `$field`.
macro_rules! case {
    ($cases:ident, $what:expr, $field:expr, $client:expr, $method:ident, $request:expr) => {{
        let mut client = $client.clone();
        let request = $request;
        let size = request.encoded_len();
        assert!(size < 1024 * 1024, "{}: {size} bytes", $what);
        $cases.push((
            $what.to_string(),
            $field.to_string(),
            Box::pin(async move { client.$method(request).await.map(|_| size) }) as Call,
        ));
    }};
}

/// A connection whose client accepts header lists of up to 64 MiB, so that what is measured is
/// what the server sent: tonic's own client, like grpc-core, refuses more than 16 KiB by default
/// and reports RESOURCE_EXHAUSTED ("h2 protocol error") in place of the server's answer.
async fn roomy_channel(app: &TestApp) -> Channel {
    Channel::from_shared(format!("http://{}", app.addr))
        .unwrap()
        .http2_max_header_list_size(64 << 20)
        .connect()
        .await
        .expect("connects")
}

/// One request per RPC and per repeated or long field, each at its worst.
async fn worst_cases(app: &TestApp) -> Vec<Case> {
    let token = app.token("acme", "admin-1", &["admin"]);
    let channel = roomy_channel(app).await;
    let customers = CustomerServiceClient::with_interceptor(channel.clone(), Bearer::new(&token));
    let records = RecordServiceClient::with_interceptor(channel.clone(), Bearer::new(&token));
    let approvals =
        DeletionApprovalServiceClient::with_interceptor(channel.clone(), Bearer::new(&token));
    let audit = AuditServiceClient::with_interceptor(channel, Bearer::new(&token));
    let id = random_id();
    let mut cases: Vec<Case> = Vec::new();

    // ---- CustomerService
    for field in [
        "name",
        "phone",
        "email",
        "industry",
        "owner_id",
        "external_ref",
    ] {
        let mut request = bare_customer("Long fields");
        let customer = request.customer.as_mut().unwrap();
        match field {
            "name" => customer.name = big(),
            "phone" => customer.phone = big(),
            "email" => customer.email = big(),
            "industry" => customer.industry = big(),
            "owner_id" => customer.owner_id = big(),
            _ => customer.external_ref = big(),
        }
        let long = request.customer.clone().unwrap();
        case!(
            cases,
            format!("CreateCustomer {field}"),
            format!("customer.{field}"),
            customers,
            create_customer,
            request
        );
        let update = pb::UpdateCustomerRequest {
            customer: Some(pb::Customer {
                id: id.clone(),
                ..long
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec![field.into()],
            }),
            ..Default::default()
        };
        case!(
            cases,
            format!("UpdateCustomer {field}"),
            format!("customer.{field}"),
            customers,
            update_customer,
            update
        );
    }
    case!(
        cases,
        "CreateCustomer request_id",
        "request_id",
        customers,
        create_customer,
        pb::CreateCustomerRequest {
            request_id: big(),
            ..bare_customer("Long request id")
        }
    );
    case!(
        cases,
        "GetCustomer customer_id",
        "customer_id",
        customers,
        get_customer,
        pb::GetCustomerRequest { customer_id: big() }
    );
    for field in ["page_token", "query", "industry", "owner_id"] {
        let mut request = pb::ListCustomersRequest::default();
        match field {
            "page_token" => request.page_token = big(),
            "query" => request.query = big(),
            "industry" => request.industry = big(),
            _ => request.owner_id = big(),
        }
        case!(
            cases,
            format!("ListCustomers {field}"),
            field,
            customers,
            list_customers,
            request
        );
    }
    let rename = |mask| pb::UpdateCustomerRequest {
        customer: Some(pb::Customer {
            id: id.clone(),
            name: "Renamed".into(),
            ..Default::default()
        }),
        update_mask: mask,
        ..Default::default()
    };
    case!(
        cases,
        "UpdateCustomer many paths",
        "update_mask",
        customers,
        update_customer,
        rename(many_paths())
    );
    case!(
        cases,
        "UpdateCustomer one long path",
        "update_mask",
        customers,
        update_customer,
        rename(one_long_path())
    );
    case!(
        cases,
        "UpdateCustomer customer.id",
        "customer.id",
        customers,
        update_customer,
        pb::UpdateCustomerRequest {
            customer: Some(pb::Customer {
                id: big(),
                ..Default::default()
            }),
            ..rename(None)
        }
    );
    case!(
        cases,
        "UpdateCustomer request_id",
        "request_id",
        customers,
        update_customer,
        pb::UpdateCustomerRequest {
            request_id: big(),
            ..rename(Some(prost_types::FieldMask {
                paths: vec!["name".into()]
            }))
        }
    );
    case!(
        cases,
        "PreviewDeleteCustomer customer_id",
        "customer_id",
        customers,
        preview_delete_customer,
        pb::PreviewDeleteCustomerRequest { customer_id: big() }
    );
    let delete = || pb::DeleteCustomerRequest {
        customer_id: id.clone(),
        deletion_request_id: id.clone(),
        etag: "1".into(),
        request_id: String::new(),
    };
    case!(
        cases,
        "DeleteCustomer customer_id",
        "customer_id",
        customers,
        delete_customer,
        pb::DeleteCustomerRequest {
            customer_id: big(),
            ..delete()
        }
    );
    case!(
        cases,
        "DeleteCustomer deletion_request_id",
        "deletion_request_id",
        customers,
        delete_customer,
        pb::DeleteCustomerRequest {
            deletion_request_id: big(),
            ..delete()
        }
    );
    case!(
        cases,
        "DeleteCustomer request_id",
        "request_id",
        customers,
        delete_customer,
        pb::DeleteCustomerRequest {
            request_id: big(),
            ..delete()
        }
    );
    case!(
        cases,
        "RestoreCustomer customer_id",
        "customer_id",
        customers,
        restore_customer,
        pb::RestoreCustomerRequest {
            customer_id: big(),
            ..Default::default()
        }
    );
    case!(
        cases,
        "RestoreCustomer request_id",
        "request_id",
        customers,
        restore_customer,
        pb::RestoreCustomerRequest {
            customer_id: id.clone(),
            request_id: big(),
            ..Default::default()
        }
    );
    case!(
        cases,
        "PurgeCustomer customer_id",
        "customer_id",
        customers,
        purge_customer,
        pb::PurgeCustomerRequest {
            customer_id: big(),
            ..Default::default()
        }
    );
    case!(
        cases,
        "PurgeCustomer request_id",
        "request_id",
        customers,
        purge_customer,
        pb::PurgeCustomerRequest {
            customer_id: id.clone(),
            request_id: big(),
            ..Default::default()
        }
    );
    let hold = || pb::SetLegalHoldRequest {
        customer_id: id.clone(),
        legal_hold: true,
        reason: "case 1".into(),
        request_id: String::new(),
    };
    case!(
        cases,
        "SetLegalHold customer_id",
        "customer_id",
        customers,
        set_legal_hold,
        pb::SetLegalHoldRequest {
            customer_id: big(),
            ..hold()
        }
    );
    case!(
        cases,
        "SetLegalHold reason",
        "reason",
        customers,
        set_legal_hold,
        pb::SetLegalHoldRequest {
            reason: big(),
            ..hold()
        }
    );
    case!(
        cases,
        "SetLegalHold request_id",
        "request_id",
        customers,
        set_legal_hold,
        pb::SetLegalHoldRequest {
            request_id: big(),
            ..hold()
        }
    );
    case!(
        cases,
        "ExportCustomer customer_id",
        "customer_id",
        customers,
        export_customer,
        pb::ExportCustomerRequest { customer_id: big() }
    );

    // ---- RecordService: every text field, the ids, masks, page tokens and request ids.
    macro_rules! record_cases {
        ($kind:ident, $Msg:ident, $new:expr, $id_field:ident,
         $create:ident($CreateReq:ident), $get:ident($GetReq:ident), $list:ident($ListReq:ident),
         $update:ident($UpdateReq:ident), [$($text:ident),*] $(, $delete:ident($DeleteReq:ident))?) => {{
            let resource = || -> pb::$Msg { $new };
            $(
                let request = pb::$CreateReq {
                    $kind: Some(pb::$Msg { $text: big(), ..resource() }),
                    request_id: String::new(),
                };
                case!(cases, concat!(stringify!($create), " ", stringify!($text)),
                    concat!(stringify!($kind), ".", stringify!($text)), records, $create, request);
                let request = pb::$UpdateReq {
                    $kind: Some(pb::$Msg { id: id.clone(), $text: big(), ..Default::default() }),
                    update_mask: Some(prost_types::FieldMask {
                        paths: vec![stringify!($text).into()],
                    }),
                    ..Default::default()
                };
                case!(cases, concat!(stringify!($update), " ", stringify!($text)),
                    concat!(stringify!($kind), ".", stringify!($text)), records, $update, request);
            )*
            case!(cases, concat!(stringify!($create), " customer_id"),
                concat!(stringify!($kind), ".customer_id"), records, $create,
                pb::$CreateReq {
                    $kind: Some(pb::$Msg { customer_id: big(), ..resource() }),
                    request_id: String::new(),
                });
            case!(cases, concat!(stringify!($create), " request_id"), "request_id", records, $create,
                pb::$CreateReq { $kind: Some(resource()), request_id: big() });
            case!(cases, concat!(stringify!($get), " id"), stringify!($id_field), records, $get,
                pb::$GetReq { $id_field: big() });
            case!(cases, concat!(stringify!($list), " customer_id"), "customer_id", records, $list,
                pb::$ListReq { customer_id: big(), ..Default::default() });
            case!(cases, concat!(stringify!($list), " page_token"), "page_token", records, $list,
                pb::$ListReq { customer_id: id.clone(), page_token: big(), ..Default::default() });
            let update = |mask| pb::$UpdateReq {
                $kind: Some(pb::$Msg { id: id.clone(), ..Default::default() }),
                update_mask: mask,
                ..Default::default()
            };
            case!(cases, concat!(stringify!($update), " many paths"), "update_mask", records,
                $update, update(many_paths()));
            case!(cases, concat!(stringify!($update), " one long path"), "update_mask", records,
                $update, update(one_long_path()));
            case!(cases, concat!(stringify!($update), " id"), concat!(stringify!($kind), ".id"),
                records, $update,
                pb::$UpdateReq {
                    $kind: Some(pb::$Msg { id: big(), ..Default::default() }),
                    ..update(None)
                });
            case!(cases, concat!(stringify!($update), " request_id"), "request_id", records, $update,
                pb::$UpdateReq {
                    request_id: big(),
                    ..update(Some(prost_types::FieldMask { paths: vec![] }))
                });
            $(
                case!(cases, concat!(stringify!($delete), " id"), stringify!($id_field), records, $delete,
                    pb::$DeleteReq { $id_field: big(), ..Default::default() });
                case!(cases, concat!(stringify!($delete), " request_id"), "request_id", records, $delete,
                    pb::$DeleteReq { $id_field: id.clone(), request_id: big(), ..Default::default() });
            )?
        }};
    }
    record_cases!(
        contact,
        Contact,
        new_contact(&id),
        contact_id,
        create_contact(CreateContactRequest),
        get_contact(GetContactRequest),
        list_contacts(ListContactsRequest),
        update_contact(UpdateContactRequest),
        [full_name, email, phone, job_title],
        delete_contact(DeleteContactRequest)
    );
    record_cases!(
        deal,
        Deal,
        new_deal(&id, pb::DealStage::Open),
        deal_id,
        create_deal(CreateDealRequest),
        get_deal(GetDealRequest),
        list_deals(ListDealsRequest),
        update_deal(UpdateDealRequest),
        [title, currency],
        delete_deal(DeleteDealRequest)
    );
    record_cases!(
        order,
        Order,
        new_order(&id, pb::OrderStatus::Open),
        order_id,
        create_order(CreateOrderRequest),
        get_order(GetOrderRequest),
        list_orders(ListOrdersRequest),
        update_order(UpdateOrderRequest),
        [number, currency]
    );
    record_cases!(
        contract,
        Contract,
        new_contract(&id, pb::ContractStatus::Draft),
        contract_id,
        create_contract(CreateContractRequest),
        get_contract(GetContractRequest),
        list_contracts(ListContractsRequest),
        update_contract(UpdateContractRequest),
        [number, end_date],
        delete_contract(DeleteContractRequest)
    );
    record_cases!(
        project,
        Project,
        new_project(&id, pb::ProjectStatus::Active),
        project_id,
        create_project(CreateProjectRequest),
        get_project(GetProjectRequest),
        list_projects(ListProjectsRequest),
        update_project(UpdateProjectRequest),
        [name],
        delete_project(DeleteProjectRequest)
    );
    record_cases!(
        activity,
        Activity,
        new_activity(&id),
        activity_id,
        create_activity(CreateActivityRequest),
        get_activity(GetActivityRequest),
        list_activities(ListActivitiesRequest),
        update_activity(UpdateActivityRequest),
        [subject],
        delete_activity(DeleteActivityRequest)
    );

    // ---- DeletionApprovalService
    let submission = || pb::SubmitDeletionRequestRequest {
        customer_id: id.clone(),
        preview_etag: "1".into(),
        reason: "duplicate".into(),
        request_id: String::new(),
    };
    case!(
        cases,
        "SubmitDeletionRequest customer_id",
        "customer_id",
        approvals,
        submit_deletion_request,
        pb::SubmitDeletionRequestRequest {
            customer_id: big(),
            ..submission()
        }
    );
    case!(
        cases,
        "SubmitDeletionRequest reason",
        "reason",
        approvals,
        submit_deletion_request,
        pb::SubmitDeletionRequestRequest {
            reason: big(),
            ..submission()
        }
    );
    case!(
        cases,
        "SubmitDeletionRequest request_id",
        "request_id",
        approvals,
        submit_deletion_request,
        pb::SubmitDeletionRequestRequest {
            request_id: big(),
            ..submission()
        }
    );
    case!(
        cases,
        "GetDeletionRequest deletion_request_id",
        "deletion_request_id",
        approvals,
        get_deletion_request,
        pb::GetDeletionRequestRequest {
            deletion_request_id: big()
        }
    );
    case!(
        cases,
        "ListDeletionRequests page_token",
        "page_token",
        approvals,
        list_deletion_requests,
        pb::ListDeletionRequestsRequest {
            page_token: big(),
            ..Default::default()
        }
    );
    case!(
        cases,
        "ListDeletionRequests customer_id",
        "customer_id",
        approvals,
        list_deletion_requests,
        pb::ListDeletionRequestsRequest {
            customer_id: big(),
            ..Default::default()
        }
    );
    macro_rules! decision_cases {
        ($rpc:ident($Req:ident)) => {{
            let decision = || pb::$Req {
                deletion_request_id: id.clone(),
                comment: "why".into(),
                request_id: String::new(),
            };
            case!(
                cases,
                concat!(stringify!($rpc), " deletion_request_id"),
                "deletion_request_id",
                approvals,
                $rpc,
                pb::$Req {
                    deletion_request_id: big(),
                    ..decision()
                }
            );
            case!(
                cases,
                concat!(stringify!($rpc), " comment"),
                "comment",
                approvals,
                $rpc,
                pb::$Req {
                    comment: big(),
                    ..decision()
                }
            );
            case!(
                cases,
                concat!(stringify!($rpc), " request_id"),
                "request_id",
                approvals,
                $rpc,
                pb::$Req {
                    request_id: big(),
                    ..decision()
                }
            );
        }};
    }
    decision_cases!(approve_deletion_request(ApproveDeletionRequestRequest));
    decision_cases!(reject_deletion_request(RejectDeletionRequestRequest));
    decision_cases!(cancel_deletion_request(CancelDeletionRequestRequest));

    // ---- AuditService
    case!(
        cases,
        "ListAuditEvents page_token",
        "page_token",
        audit,
        list_audit_events,
        pb::ListAuditEventsRequest {
            page_token: big(),
            ..Default::default()
        }
    );
    case!(
        cases,
        "ListAuditEvents customer_id",
        "customer_id",
        audit,
        list_audit_events,
        pb::ListAuditEventsRequest {
            customer_id: big(),
            ..Default::default()
        }
    );
    case!(
        cases,
        "ListAuditEvents action",
        "action",
        audit,
        list_audit_events,
        pb::ListAuditEventsRequest {
            action: big(),
            ..Default::default()
        }
    );
    cases
}

async fn an_error_keeps_its_code_and_field_in_under_8_kib_of_trailers_whatever_the_request_holds(
    app: TestApp,
) {
    let cases = worst_cases(&app).await;
    let count = cases.len();
    let mut failures = Vec::new();
    let mut largest = (0, String::new());
    for (what, field, call) in cases {
        match call.await {
            Ok(size) => failures.push(format!("{what}: accepted ({size} bytes)")),
            Err(status) => {
                let bytes = trailer_bytes(&status);
                if bytes > largest.0 {
                    largest = (bytes, what.clone());
                }
                let fields = bad_fields(&status);
                if status.code() != Code::InvalidArgument
                    || !fields.contains(&field)
                    || bytes >= TRAILER_BUDGET
                {
                    failures.push(format!(
                        "{what}: {:?} naming {:?} (wanted {field}) in {bytes} bytes of trailers",
                        status.code(),
                        fields.iter().take(3).collect::<Vec<_>>(),
                    ));
                }
            }
        }
    }
    figure(format!(
        "{count} worst-case requests; largest error answer {} bytes of trailers ({})",
        largest.0, largest.1
    ));
    assert!(
        failures.is_empty(),
        "{} of {count} cases:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

async fn a_thousand_unknown_update_mask_paths_get_the_real_error_in_under_2_kib(app: TestApp) {
    let customer = app.create_customer("Masked").await;
    let paths: Vec<String> = (0..1000).map(|i| format!("unknown_{i}")).collect();
    let request = pb::UpdateCustomerRequest {
        customer: Some(pb::Customer {
            id: customer.id.clone(),
            name: "Renamed".into(),
            ..Default::default()
        }),
        update_mask: Some(prost_types::FieldMask { paths }),
        ..Default::default()
    };
    let size = request.encoded_len();
    let token = app.token("acme", "rep-1", &["sales_rep"]);
    // What the server sends, measured by a client that takes it all in.
    let mut roomy =
        CustomerServiceClient::with_interceptor(roomy_channel(&app).await, Bearer::new(&token));
    let status = roomy
        .update_customer(request.clone())
        .await
        .expect_err("unknown paths");
    let bytes = trailer_bytes(&status);
    figure(format!(
        "UpdateCustomer with 1,000 unknown update_mask paths ({size} bytes): {bytes} bytes of trailers"
    ));
    assert_eq!(status.code(), Code::InvalidArgument, "{}", status.message());
    assert!(bytes < 2048, "{bytes} bytes");
    // A client with tonic's default limit (16 KiB) gets the real answer too.
    let status = app
        .customers()
        .update_customer(request)
        .await
        .expect_err("unknown paths");
    assert_eq!(status.code(), Code::InvalidArgument, "{}", status.message());
    let violations = status
        .get_error_details()
        .bad_request()
        .map(|b| b.field_violations.clone())
        .unwrap_or_default();
    // The first ten are named, each with its path; the message counts the rest.
    assert_eq!(violations.len(), 10, "{violations:?}");
    assert!(violations.iter().all(|v| v.field == "update_mask"));
    assert!(
        violations[0].description.contains("unknown_0"),
        "{:?}",
        violations[0]
    );
    assert!(
        status.message().contains("990 more"),
        "{}",
        status.message()
    );
    // Nothing changed.
    let after = crate::common::get_customer(&mut app.customers(), &customer.id).await;
    assert_eq!(after, customer);
}
