//! Undecodable requests (docs/reliability.md E1, M1, M2): bytes that are not a valid protobuf
//! message of the method's request type are the client's mistake, INVALID_ARGUMENT with reason
//! MALFORMED_REQUEST, never INTERNAL, and nothing is written.
//!
//! The bytes are sent with `tonic::client::Grpc` and a pass-through codec, so they reach the
//! server exactly as written. Decoding happens in the codec, before any database work, so these
//! tests are database-independent and run on SQLite only (plain `#[tokio::test]`s).

use bytes::{Buf, BufMut};
use crm_service::proto::crm::v1 as pb;
use http::uri::PathAndQuery;
use prost::Message;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::{Code, Request, Status};

use crate::common::{
    Db, Kind, TestApp, assert_status, create_record, customer_names, get_record, list_records,
    new_contact, new_customer,
};

/// Sends and receives message bodies as raw bytes.
#[derive(Debug, Clone, Copy, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining()).to_vec()))
    }
}

/// Calls `path` with `body` as the request message, as rep-1 of acme.
async fn call_raw(app: &TestApp, path: &'static str, body: Vec<u8>) -> Result<Vec<u8>, Status> {
    let mut grpc = tonic::client::Grpc::new(app.channel());
    grpc.ready().await.expect("channel ready");
    let mut request = Request::new(body);
    let token = app.token("acme", "rep-1", &["sales_rep"]);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    grpc.unary(request, PathAndQuery::from_static(path), RawCodec)
        .await
        .map(|response| response.into_inner())
}

fn varint(mut value: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

fn tag(field: u64, wire_type: u64) -> Vec<u8> {
    varint((field << 3) | wire_type)
}

/// A length-delimited field holding `payload`.
fn bytes_field(field: u64, payload: &[u8]) -> Vec<u8> {
    let mut out = tag(field, 2);
    out.extend(varint(payload.len() as u64));
    out.extend_from_slice(payload);
    out
}

/// Where a request type keeps its fields, for building broken variants of it.
struct Shape {
    /// The top-level sub-message field (the resource), always field 1.
    message: u64,
    /// A string field inside the sub-message.
    inner_string: u64,
    /// A varint field inside the sub-message (may be an unknown field number: it is still parsed).
    inner_varint: u64,
    /// A top-level string field (request_id or etag).
    top_string: u64,
}

/// The malformed corpus for one request shape: (what, bytes).
fn corpus(s: &Shape) -> Vec<(&'static str, Vec<u8>)> {
    let inner = |payload: Vec<u8>| bytes_field(s.message, &payload);
    let mut cases = vec![
        (
            "invalid UTF-8 in a string of the resource",
            inner(bytes_field(s.inner_string, &[0xC3, 0x28])),
        ),
        (
            "invalid UTF-8 in a top-level string",
            bytes_field(s.top_string, &[0xFF, 0xFE]),
        ),
        (
            "overlong UTF-8 encoding of NUL",
            bytes_field(s.top_string, &[0xC0, 0x80]),
        ),
        (
            "UTF-16 surrogate encoded as UTF-8",
            inner(bytes_field(s.inner_string, &[0xED, 0xA0, 0x80])),
        ),
    ];
    // A length that runs past the end of the message.
    let mut truncated = tag(s.message, 2);
    truncated.extend(varint(16));
    truncated.extend(bytes_field(s.inner_string, b"a"));
    cases.push(("truncated length", truncated));
    let mut inner_truncated = tag(s.inner_string, 2);
    inner_truncated.extend(varint(5));
    inner_truncated.push(b'a');
    cases.push((
        "truncated string inside the resource",
        inner(inner_truncated),
    ));
    let mut overflow = tag(s.message, 2);
    overflow.extend(varint(u64::from(u32::MAX) * 4));
    overflow.push(0);
    cases.push(("length overflow", overflow));
    cases.push(("wire type 7", [tag(s.message, 7), vec![0]].concat()));
    cases.push(("wire type 6", [tag(s.message, 6), vec![0]].concat()));
    cases.push(("tag 0", vec![0x00, 0x01]));
    cases.push(("field number 0 with a length", vec![0x02, 0x00]));
    // A varint of 11 bytes: more than the 10 a 64-bit value can need.
    let eleven = [vec![0xFF; 10], vec![0x01]].concat();
    cases.push((
        "11-byte varint inside the resource",
        inner([tag(s.inner_varint, 0), eleven.clone()].concat()),
    ));
    cases.push((
        "11-byte varint as a tag",
        [vec![0xFF; 10], vec![0x01]].concat(),
    ));
    cases.push((
        "11-byte varint as a length",
        [tag(s.message, 2), eleven].concat(),
    ));
    cases.push((
        "resource field with the wrong wire type",
        [tag(s.message, 0), vec![0x01]].concat(),
    ));
    cases.push(("end group without a start", tag(s.message, 4)));
    // Unknown groups nested past prost's recursion limit of 100.
    let mut deep = Vec::new();
    for _ in 0..150 {
        deep.extend(tag(99, 3));
    }
    for _ in 0..150 {
        deep.extend(tag(99, 4));
    }
    cases.push(("groups nested 150 deep", deep));
    cases
}

/// Sends every corpus case to `path` and asserts each is INVALID_ARGUMENT / MALFORMED_REQUEST.
async fn assert_all_refused(app: &TestApp, path: &'static str, shape: &Shape) -> usize {
    let mut count = 0;
    for (what, body) in corpus(shape) {
        let result = call_raw(app, path, body).await;
        if let Err(status) = &result {
            assert_ne!(status.code(), Code::Internal, "{path}, {what}: {status:?}");
        }
        let status = assert_status(result, Code::InvalidArgument, "MALFORMED_REQUEST");
        assert!(
            !status.message().is_empty(),
            "{path}, {what}: the message should say what is wrong"
        );
        count += 1;
    }
    count
}

/// Named `sqlite::…` like the other suites' SQLite runs (these need no PostgreSQL twin).
mod sqlite {
    use super::*;

    const CUSTOMER: Shape = Shape {
        message: 1,
        inner_string: 2, // Customer.name
        inner_varint: 7, // Customer.lifecycle_stage
        top_string: 2,   // CreateCustomerRequest.request_id
    };

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn undecodable_create_customer_requests_are_invalid_argument_and_store_nothing() {
        let app = TestApp::spawn(Db::Sqlite).await.unwrap();
        // The control: well-formed bytes on the same raw path are accepted.
        let ok = call_raw(
            &app,
            "/crm.v1.CustomerService/CreateCustomer",
            new_customer("Raw but valid").encode_to_vec(),
        )
        .await
        .expect("a valid message is accepted");
        let created = pb::CreateCustomerResponse::decode(ok.as_slice()).unwrap();
        assert_eq!(created.customer.unwrap().name, "Raw but valid");

        let refused =
            assert_all_refused(&app, "/crm.v1.CustomerService/CreateCustomer", &CUSTOMER).await;
        assert_eq!(refused, corpus(&CUSTOMER).len());
        assert_eq!(
            customer_names(&mut app.customers()).await,
            ["Raw but valid"]
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn undecodable_record_requests_are_invalid_argument_and_store_nothing() {
        let app = TestApp::spawn(Db::Sqlite).await.unwrap();
        let customer = app.create_customer("Has records").await;
        let ok = call_raw(
            &app,
            "/crm.v1.RecordService/CreateContact",
            pb::CreateContactRequest {
                contact: Some(new_contact(&customer.id)),
                request_id: String::new(),
            }
            .encode_to_vec(),
        )
        .await
        .expect("a valid message is accepted");
        let contact = pb::CreateContactResponse::decode(ok.as_slice())
            .unwrap()
            .contact
            .unwrap();
        let mut records = app.records();
        let deal = create_record(&mut records, Kind::Deal, &customer.id)
            .await
            .unwrap();

        let contact_shape = Shape {
            message: 1,
            inner_string: 3,  // Contact.full_name
            inner_varint: 15, // unknown to Contact, still parsed
            top_string: 2,    // CreateContactRequest.request_id
        };
        assert_all_refused(&app, "/crm.v1.RecordService/CreateContact", &contact_shape).await;
        let deal_shape = Shape {
            message: 1,
            inner_string: 3, // Deal.title
            inner_varint: 6, // Deal.stage
            top_string: 3,   // UpdateDealRequest.etag
        };
        assert_all_refused(&app, "/crm.v1.RecordService/UpdateDeal", &deal_shape).await;

        let (contacts, _) = list_records(&mut records, Kind::Contact, &customer.id, 0, "", true)
            .await
            .unwrap();
        assert_eq!(contacts.len(), 1);
        assert_eq!(contacts[0].id, contact.id);
        assert_eq!(
            get_record(&mut records, Kind::Deal, &deal.id)
                .await
                .unwrap(),
            deal
        );
    }
}
