//! Customer builders and readers shared by the suites.

use super::*;

pub fn new_customer(name: &str) -> pb::CreateCustomerRequest {
    pb::CreateCustomerRequest {
        customer: Some(pb::Customer {
            name: name.into(),
            email: "buyer@example.com".into(),
            phone: "+1 555 0100".into(),
            industry: "retail".into(),
            lifecycle_stage: pb::LifecycleStage::Prospect as i32,
            ..Default::default()
        }),
        request_id: String::new(),
    }
}

/// A CreateCustomer request with only a name and a stage: no e-mail or phone to match queries.
pub fn bare_customer(name: &str) -> pb::CreateCustomerRequest {
    pb::CreateCustomerRequest {
        customer: Some(pb::Customer {
            name: name.into(),
            lifecycle_stage: pb::LifecycleStage::Lead as i32,
            ..Default::default()
        }),
        request_id: String::new(),
    }
}

pub async fn get_customer(client: &mut Customers, id: &str) -> pb::Customer {
    client
        .get_customer(pb::GetCustomerRequest {
            customer_id: id.into(),
        })
        .await
        .expect("get customer")
        .into_inner()
        .customer
        .unwrap()
}

/// Every customer `request` matches, walking all pages of `page_size`.
pub async fn list_all_customers(
    client: &mut Customers,
    request: pb::ListCustomersRequest,
) -> Vec<pb::Customer> {
    let mut out = Vec::new();
    let mut request = request;
    loop {
        let page = client
            .list_customers(request.clone())
            .await
            .expect("list customers")
            .into_inner();
        out.extend(page.customers);
        if page.next_page_token.is_empty() {
            return out;
        }
        request.page_token = page.next_page_token;
    }
}

/// Names of every live customer of the caller's tenant, in listing order.
pub async fn customer_names(client: &mut Customers) -> Vec<String> {
    list_all_customers(client, pb::ListCustomersRequest::default())
        .await
        .into_iter()
        .map(|c| c.name)
        .collect()
}

impl TestApp {
    /// Copies every row of `table` `copies` times under fresh random ids, in one statement: a cheap
    /// way to get past page-size limits. `columns` are the columns other than `id`; the template
    /// rows must not hold unique values (e.g. external_ref).
    pub async fn clone_rows(&self, table: &str, columns: &[&str], copies: u32) {
        let new_id = match self.db {
            Db::Sqlite => "randomblob(16)",
            Db::Postgres => "gen_random_uuid()",
        };
        let cols = columns.join(", ");
        let picked = columns
            .iter()
            .map(|c| format!("t.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        self.sql(&format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {copies}) \
             INSERT INTO {table} (id, {cols}) SELECT {new_id}, {picked} FROM {table} t CROSS JOIN n"
        ))
        .await;
    }
}

pub const CUSTOMER_COLUMNS: &[&str] = &[
    "tenant_id",
    "name",
    "phone",
    "email",
    "industry",
    "owner_id",
    "lifecycle_stage",
    "status",
    "external_ref",
    "legal_hold",
    "key_account",
    "search_text",
    "create_time",
    "update_time",
    "delete_time",
    "purge_time",
    "deletion_id",
    "version",
];

pub const CONTACT_COLUMNS: &[&str] = &[
    "tenant_id",
    "customer_id",
    "full_name",
    "email",
    "phone",
    "job_title",
    "create_time",
    "update_time",
    "delete_time",
    "deletion_id",
    "version",
];
