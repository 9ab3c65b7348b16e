//! Idempotency keys are kept for a window (CRM_IDEMPOTENCY_KEY_TTL), then swept: a retry inside the
//! window gets the first answer, a retry after the sweep is a new request.

use std::time::Duration;

use crm_service::proto::crm::v1 as pb;
use crm_service::store::{Store, StoreConfig};

use crate::common::{TestApp, new_customer, request_id};

crate::on_both_databases!(a_request_id_is_remembered_until_its_window_is_swept);

async fn a_request_id_is_remembered_until_its_window_is_swept(app: TestApp) {
    let key = request_id();
    let create = || pb::CreateCustomerRequest {
        request_id: key.clone(),
        ..new_customer("Windowed Ltd")
    };
    let mut client = app.customers();
    let first = client
        .create_customer(create())
        .await
        .unwrap()
        .into_inner()
        .customer
        .unwrap();
    let retry = client
        .create_customer(create())
        .await
        .unwrap()
        .into_inner()
        .customer
        .unwrap();
    assert_eq!(
        retry, first,
        "inside the window a retry gets the first answer"
    );

    let store = Store::connect(&StoreConfig {
        url: app.database_url.clone(),
        schema: app.schema.clone(),
        max_connections: 1,
        reader_connections: 0,
        acquire_timeout: Duration::from_secs(5),
        session: Default::default(),
    })
    .await
    .unwrap();
    // A sweep whose cutoff is in the future forgets every key, as the sweeper does once the window
    // has passed.
    let cutoff = chrono::Utc::now() + chrono::Duration::seconds(1);
    let forgotten = crm_service::store::idempotency::sweep(store.conn(), cutoff)
        .await
        .unwrap();
    assert!(forgotten >= 1, "the key was swept");

    let after = client
        .create_customer(create())
        .await
        .unwrap()
        .into_inner()
        .customer
        .unwrap();
    assert_ne!(
        after.id, first.id,
        "after the window the same request_id is a new request"
    );
}
