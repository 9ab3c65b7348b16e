//! Customers: the rules for creating, reading, listing and updating them. Every call takes the
//! caller, checks its permission first (AIP-211), then validates, then works in the caller's
//! tenant only. Mutations are one write transaction each, idempotent on `request_id`.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::access::{Action, Caller};
use super::audit::Entry;
use super::idempotency::Idempotency;
use super::mutation::{self, Change, Mutation, Operation};
use super::paging::{self, Page, PageTokenKey, QueryFingerprint};
use super::validate::{self, Violations};
use super::{Clock, changed_concurrently, etag_matches};
use crate::error::{Error, FieldViolation, Problem, Result};
use crate::reason;
use crate::store::{self, Store};

pub use super::model::customer::{
    Customer, CustomerQuery, CustomerStatus, LifecycleStage, search_text,
};

/// The writable fields of a customer as a client sent them (enums already decoded; `None` means
/// the client left the enum UNSPECIFIED).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerInput {
    pub name: String,
    pub phone: String,
    pub email: String,
    pub industry: String,
    pub owner_id: String,
    pub lifecycle_stage: Option<LifecycleStage>,
    pub status: Option<CustomerStatus>,
    pub external_ref: String,
    /// Setting it true (or changing it on update) needs `Action::MarkKeyAccount`.
    pub key_account: bool,
}

/// A field UpdateCustomer may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CustomerField {
    Name,
    Phone,
    Email,
    Industry,
    OwnerId,
    LifecycleStage,
    Status,
    ExternalRef,
    KeyAccount,
}

/// Fields a client can read but never write; naming one in an update mask is an error.
const OUTPUT_ONLY: &[&str] = &[
    "id",
    "legal_hold",
    "create_time",
    "update_time",
    "delete_time",
    "purge_time",
    "etag",
    "deletion_id",
];

impl CustomerField {
    /// Parses an `update_mask` path.
    pub fn parse_path(path: &str) -> std::result::Result<Self, String> {
        Ok(match path {
            "name" => Self::Name,
            "phone" => Self::Phone,
            "email" => Self::Email,
            "industry" => Self::Industry,
            "owner_id" => Self::OwnerId,
            "lifecycle_stage" => Self::LifecycleStage,
            "status" => Self::Status,
            "external_ref" => Self::ExternalRef,
            "key_account" => Self::KeyAccount,
            p if OUTPUT_ONLY.contains(&p) => {
                return Err(format!("{p} is output only and cannot be updated"));
            }
            p => {
                let p = crate::error::echo(p);
                return Err(format!("{p} is not a field of Customer"));
            }
        })
    }
}

/// The update mask as field names, for the audit summary (names only, never values).
fn field_names(fields: &[CustomerField]) -> String {
    let name = |f: &CustomerField| match f {
        CustomerField::Name => "name",
        CustomerField::Phone => "phone",
        CustomerField::Email => "email",
        CustomerField::Industry => "industry",
        CustomerField::OwnerId => "owner_id",
        CustomerField::LifecycleStage => "lifecycle_stage",
        CustomerField::Status => "status",
        CustomerField::ExternalRef => "external_ref",
        CustomerField::KeyAccount => "key_account",
    };
    fields.iter().map(name).collect::<Vec<_>>().join(",")
}

impl CustomerQuery {
    /// The free-text fields' rules, naming each field under `prefix` (`filter.` when the query
    /// is a deletion batch's filter).
    pub(crate) fn check(&self, prefix: &str) -> Result<()> {
        let mut v = Violations::new();
        v.text(&format!("{prefix}query"), &self.text, validate::QUERY_MAX);
        v.text(
            &format!("{prefix}industry"),
            &self.industry,
            validate::INDUSTRY_MAX,
        );
        v.text(
            &format!("{prefix}owner_id"),
            &self.owner_id,
            validate::OWNER_ID_MAX,
        );
        v.finish()
    }

    fn fingerprint(&self) -> QueryFingerprint {
        let stage = format!("{:?}", self.lifecycle_stage);
        let status = format!("{:?}", self.status);
        QueryFingerprint::of(&[
            "ListCustomers",
            if self.show_deleted { "deleted" } else { "live" },
            &self.text,
            &self.industry,
            &self.owner_id,
            &stage,
            &status,
        ])
    }
}

fn validate_input(input: &CustomerInput, only: Option<&[CustomerField]>) -> Result<()> {
    let checks = |field: CustomerField| only.is_none_or(|fields| fields.contains(&field));
    let mut v = Violations::new();
    if checks(CustomerField::Name) {
        v.required_text("customer.name", &input.name, validate::NAME_MAX);
    }
    if checks(CustomerField::Phone) {
        v.phone("customer.phone", &input.phone);
    }
    if checks(CustomerField::Email) {
        v.email("customer.email", &input.email);
    }
    if checks(CustomerField::Industry) {
        v.text("customer.industry", &input.industry, validate::INDUSTRY_MAX);
    }
    if checks(CustomerField::OwnerId) {
        v.text("customer.owner_id", &input.owner_id, validate::OWNER_ID_MAX);
    }
    if checks(CustomerField::ExternalRef) {
        v.text(
            "customer.external_ref",
            &input.external_ref,
            validate::EXTERNAL_REF_MAX,
        );
    }
    if checks(CustomerField::LifecycleStage) && input.lifecycle_stage.is_none() {
        v.add(
            "customer.lifecycle_stage",
            "is required: LEAD, PROSPECT or CUSTOMER",
        );
    }
    if only.is_some() && checks(CustomerField::Status) && input.status.is_none() {
        v.add("customer.status", "is required: ACTIVE or INACTIVE");
    }
    v.finish()
}

fn owner_assignment_forbidden(message: &str) -> Error {
    Error::PermissionDenied(
        Problem::new(reason::OWNER_ASSIGNMENT_FORBIDDEN, message)
            .with("field", "customer.owner_id"),
    )
}

/// Owning a customer is assigned, not taken: naming someone else needs AssignOwner.
fn check_owner_assignment(caller: &Caller, owner_id: &str) -> Result<()> {
    if owner_id.is_empty() || owner_id == caller.subject {
        return Ok(());
    }
    caller.require(Action::AssignOwner).map_err(|_| {
        owner_assignment_forbidden(
            "only a supervisor, an admin or a service may make someone else the owner of a customer",
        )
    })
}

/// The key-account mark decides how many approvers a deletion may need, so only the roles that
/// approve deletions set it: on create when it is set, on update whenever the mask names it (even
/// to the value it has: the caller asked to decide it).
fn check_key_account(caller: &Caller, marking: bool) -> Result<()> {
    if marking {
        caller.require(Action::MarkKeyAccount)?;
    }
    Ok(())
}

/// At most this many customers per BatchCreateCustomers: what one transaction, one request of
/// at most 1 MiB and one answer hold comfortably.
pub const BATCH_CREATE_MAX: usize = 1_000;

/// The number of customers a batch create asks for: 1 to [`BATCH_CREATE_MAX`].
pub fn check_batch_size(requests: usize) -> Result<()> {
    if requests == 0 {
        return Err(Error::invalid_field(
            "requests",
            format!("must hold 1 to {BATCH_CREATE_MAX} requests"),
        ));
    }
    if requests > BATCH_CREATE_MAX {
        return Err(Error::invalid_field(
            "requests",
            format!(
                "holds {requests} requests; at most {BATCH_CREATE_MAX} per call: split the batch"
            ),
        ));
    }
    Ok(())
}

/// The field violations of a batch's items, each field named `requests[i].<field>`, so that an
/// import learns every mistake at once and where it is. All are kept (the batch's size bounds
/// them); the answer names the first ones by item order and counts the rest (see
/// `error::MAX_VIOLATIONS`).
#[derive(Debug, Default)]
pub struct ItemViolations {
    found: Vec<(usize, FieldViolation)>,
}

impl ItemViolations {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn is_empty(&self) -> bool {
        self.found.is_empty()
    }

    /// Adds the violations of an INVALID_ARGUMENT of item `index`; any other error is returned.
    pub fn add(&mut self, index: usize, error: Error) -> Result<()> {
        let Error::InvalidArgument { violations, .. } = error else {
            return Err(error);
        };
        self.found
            .extend(violations.into_iter().map(|v| (index, v)));
        Ok(())
    }

    /// `Ok(())` if no item broke a rule, else one INVALID_ARGUMENT naming the fields at fault in
    /// item order.
    pub fn finish(mut self, requests: usize) -> Result<()> {
        if self.is_empty() {
            return Ok(());
        }
        // Stable: an item's own violations keep their order.
        self.found.sort_by_key(|(index, _)| *index);
        let mut invalid_items = self
            .found
            .iter()
            .map(|(index, _)| *index)
            .collect::<Vec<_>>();
        invalid_items.dedup();
        let violations = self
            .found
            .into_iter()
            .map(|(index, v)| FieldViolation {
                field: format!("requests[{index}].{}", v.field),
                description: v.description,
            })
            .collect();
        let mut error = Error::invalid_fields(violations);
        if invalid_items.len() > 1
            && let Error::InvalidArgument { problem, .. } = &mut error
        {
            let fields = problem.message.trim_start_matches("invalid fields: ");
            problem.message = format!(
                "{} of the {requests} requests are invalid; fields: {fields}",
                invalid_items.len()
            );
        }
        Err(error)
    }
}

/// Checks the customers of a batch as `create` checks one, and that no two of them share an
/// external_ref (unique among a tenant's live customers), adding what is wrong to `violations`.
/// `items` are the batch's decodable items with their indexes, in order.
pub fn check_batch_items<'a>(
    items: impl IntoIterator<Item = (usize, &'a CustomerInput)>,
    violations: &mut ItemViolations,
) -> Result<()> {
    let mut first_with_ref = std::collections::HashMap::new();
    for (index, input) in items {
        let mut problems = match validate_input(input, None) {
            Ok(()) => Vec::new(),
            Err(Error::InvalidArgument { violations, .. }) => violations,
            Err(other) => return Err(other),
        };
        if !input.external_ref.is_empty() {
            use std::collections::hash_map::Entry as Seen;
            match first_with_ref.entry(input.external_ref.as_str()) {
                Seen::Occupied(first) => problems.push(FieldViolation {
                    field: "customer.external_ref".into(),
                    description: format!(
                        "is also requests[{}]'s: external_ref is unique among the tenant's live customers",
                        first.get()
                    ),
                }),
                Seen::Vacant(slot) => {
                    slot.insert(index);
                }
            }
        }
        if !problems.is_empty() {
            violations.add(index, Error::invalid_fields(problems))?;
        }
    }
    Ok(())
}

/// A permission error of item `index` of a batch, naming it (metadata `index`, and the field as
/// `requests[i].<field>`).
fn at_item(error: Error, index: usize, field: &str) -> Error {
    match error {
        Error::PermissionDenied(mut problem) => {
            problem.message = format!("requests[{index}]: {}", problem.message);
            problem.metadata.retain(|(key, _)| *key != "field");
            Error::PermissionDenied(
                problem
                    .with("index", index)
                    .with("field", format!("requests[{index}].{field}")),
            )
        }
        other => other,
    }
}

/// A customer as created from `input` by `caller` at `now`: the defaults every create applies.
fn new_customer(
    caller: &Caller,
    now: chrono::DateTime<chrono::Utc>,
    input: &CustomerInput,
) -> Customer {
    Customer {
        id: Uuid::now_v7(),
        name: input.name.clone(),
        phone: input.phone.clone(),
        email: input.email.clone(),
        industry: input.industry.clone(),
        owner_id: if input.owner_id.is_empty() {
            caller.subject.clone()
        } else {
            input.owner_id.clone()
        },
        lifecycle_stage: input.lifecycle_stage.unwrap_or(LifecycleStage::Lead),
        status: input.status.unwrap_or(CustomerStatus::Active),
        external_ref: input.external_ref.clone(),
        legal_hold: false,
        key_account: input.key_account,
        create_time: now,
        update_time: now,
        delete_time: None,
        purge_time: None,
        version: 1,
        deletion_id: None,
    }
}

/// The audit entry of a created customer (one per customer, whether created alone or in a batch).
fn created(customer: &Customer) -> Entry {
    Entry {
        action: "customer.create",
        target_type: "customer",
        target_id: customer.id,
        customer_id: Some(customer.id),
        summary: "created".into(),
    }
}

/// Customer operations, shared by every request.
#[derive(Clone)]
pub struct Customers {
    store: Store,
    page_key: PageTokenKey,
    clock: Clock,
}

impl Customers {
    pub fn new(store: Store, page_key: PageTokenKey, clock: Clock) -> Self {
        Self {
            store,
            page_key,
            clock,
        }
    }

    pub async fn create(
        &self,
        caller: &Caller,
        input: CustomerInput,
        key: Option<Idempotency>,
    ) -> Result<Customer> {
        caller.require(Action::Write)?;
        validate_input(&input, None)?;
        check_owner_assignment(caller, &input.owner_id)?;
        check_key_account(caller, input.key_account)?;
        let input = &input;
        mutation::run(
            &self.store,
            &self.clock,
            Mutation::new(caller, Operation::CreateCustomer, key.as_ref()),
            |change| async move { self.create_in(&change, input).await },
        )
        .await
    }

    async fn create_in(&self, change: &Change<'_>, input: &CustomerInput) -> Result<Customer> {
        let customer = new_customer(change.caller, change.now, input);
        store::customers::insert(change.tx().conn(), &change.caller.tenant, &customer).await?;
        change.audit(created(&customer)).await?;
        Ok(customer)
    }

    /// Creates every customer of `inputs` as `create` would, all or nothing, in one write: each
    /// is checked first (the first one a permission forbids fails the call, named by index), then
    /// all are inserted set-based and each gets its own audit entry and event, in order.
    pub async fn batch_create(
        &self,
        caller: &Caller,
        inputs: Vec<CustomerInput>,
        key: Option<Idempotency>,
    ) -> Result<Vec<Customer>> {
        caller.require(Action::Write)?;
        check_batch_size(inputs.len())?;
        let mut violations = ItemViolations::new();
        check_batch_items(inputs.iter().enumerate(), &mut violations)?;
        violations.finish(inputs.len())?;
        for (index, input) in inputs.iter().enumerate() {
            check_owner_assignment(caller, &input.owner_id)
                .map_err(|e| at_item(e, index, "customer.owner_id"))?;
            check_key_account(caller, input.key_account)
                .map_err(|e| at_item(e, index, "customer.key_account"))?;
        }
        let inputs = &inputs;
        mutation::run(
            &self.store,
            &self.clock,
            Mutation::new(caller, Operation::BatchCreateCustomers, key.as_ref()),
            |change| async move { self.batch_create_in(&change, inputs).await },
        )
        .await
    }

    async fn batch_create_in(
        &self,
        change: &Change<'_>,
        inputs: &[CustomerInput],
    ) -> Result<Vec<Customer>> {
        let (caller, conn) = (change.caller, change.tx().conn());
        let refs: Vec<&str> = inputs
            .iter()
            .map(|i| i.external_ref.as_str())
            .filter(|r| !r.is_empty())
            .collect();
        let taken = store::customers::live_external_refs(conn, &caller.tenant, &refs).await?;
        if let Some((index, input)) = inputs
            .iter()
            .enumerate()
            .find(|(_, i)| taken.contains(&i.external_ref))
        {
            return Err(Error::AlreadyExists(
                Problem::new(
                    reason::EXTERNAL_REF_TAKEN,
                    format!(
                        "requests[{index}]: another live customer of this tenant already has this external_ref"
                    ),
                )
                .with("index", index)
                .with("field", format!("requests[{index}].customer.external_ref"))
                .with("externalRef", &input.external_ref),
            ));
        }
        let customers: Vec<Customer> = inputs
            .iter()
            .map(|input| new_customer(caller, change.now, input))
            .collect();
        store::customers::insert_all(conn, &caller.tenant, &customers).await?;
        for customer in &customers {
            change.audit(created(customer)).await?;
        }
        Ok(customers)
    }

    pub async fn get(&self, caller: &Caller, id: Uuid) -> Result<Customer> {
        caller.require(Action::Read)?;
        store::customers::find_fast(&self.store, &caller.tenant, id)
            .await?
            .ok_or_else(|| Error::not_found("customer", id))
    }

    pub async fn list(
        &self,
        caller: &Caller,
        query: CustomerQuery,
        page_size: i32,
        page_token: &str,
    ) -> Result<Page<Customer>> {
        caller.require(Action::Read)?;
        let limit = paging::page_size("page_size", page_size)?;
        query.check("")?;
        let fingerprint = query.fingerprint();
        let now = self.clock.now().timestamp();
        let after = if page_token.is_empty() {
            None
        } else {
            Some(
                self.page_key
                    .open("page_token", page_token, &caller.tenant, fingerprint, now)?,
            )
        };
        // One row more than asked tells whether another page follows, without counting.
        let mut items =
            store::customers::list(&self.store, &caller.tenant, &query, after, limit + 1).await?;
        let next_page_token = if items.len() as u64 > limit {
            items.truncate(limit as usize);
            items.last().map(|last| {
                self.page_key
                    .seal(&caller.tenant, fingerprint, last.id, now)
            })
        } else {
            None
        };
        Ok(Page {
            items,
            next_page_token,
        })
    }

    pub async fn update(
        &self,
        caller: &Caller,
        id: Uuid,
        fields: Vec<CustomerField>,
        input: CustomerInput,
        etag: String,
        key: Option<Idempotency>,
    ) -> Result<Customer> {
        caller.require(Action::Write)?;
        if fields.is_empty() {
            return Err(Error::invalid_field(
                "update_mask",
                "must name at least one field to change",
            ));
        }
        validate_input(&input, Some(&fields))?;
        if fields.contains(&CustomerField::OwnerId) {
            caller.require(Action::AssignOwner).map_err(|_| {
                owner_assignment_forbidden(
                    "only a supervisor, an admin or a service may change the owner of a customer",
                )
            })?;
        }
        check_key_account(caller, fields.contains(&CustomerField::KeyAccount))?;
        let (fields, input, etag) = (&fields, &input, &etag);
        mutation::run(
            &self.store,
            &self.clock,
            Mutation::new(caller, Operation::UpdateCustomer, key.as_ref()),
            |change| async move { self.update_in(&change, id, fields, input, etag).await },
        )
        .await
    }

    async fn update_in(
        &self,
        change: &Change<'_>,
        id: Uuid,
        fields: &[CustomerField],
        input: &CustomerInput,
        etag: &str,
    ) -> Result<Customer> {
        let (caller, tx) = (change.caller, change.tx());
        let current = store::customers::find_for_update(tx.conn(), &caller.tenant, id)
            .await?
            .ok_or_else(|| Error::not_found("customer", id))?;
        if current.is_deleted() {
            return Err(super::customer_deleted(id));
        }
        if !etag_matches(etag, current.version) {
            return Err(super::etag_mismatch("customer", id, etag, &current.etag()));
        }
        let mut next = current.clone();
        for field in fields {
            match field {
                CustomerField::Name => next.name.clone_from(&input.name),
                CustomerField::Phone => next.phone.clone_from(&input.phone),
                CustomerField::Email => next.email.clone_from(&input.email),
                CustomerField::Industry => next.industry.clone_from(&input.industry),
                CustomerField::OwnerId => next.owner_id.clone_from(&input.owner_id),
                CustomerField::LifecycleStage => {
                    next.lifecycle_stage = input.lifecycle_stage.unwrap_or(current.lifecycle_stage)
                }
                CustomerField::Status => next.status = input.status.unwrap_or(current.status),
                CustomerField::ExternalRef => next.external_ref.clone_from(&input.external_ref),
                CustomerField::KeyAccount => next.key_account = input.key_account,
            }
        }
        next.update_time = change.now;
        next.version = current.version + 1;
        store::customers::update(tx.conn(), &caller.tenant, &next, current.version)
            .await?
            .or_else(|| changed_concurrently("customer", current.id))?;
        change
            .audit(Entry {
                action: "customer.update",
                target_type: "customer",
                target_id: id,
                customer_id: Some(id),
                summary: format!("fields={}", field_names(fields)),
            })
            .await?;
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_only_and_unknown_paths_are_refused_by_name() {
        for path in OUTPUT_ONLY {
            let err = CustomerField::parse_path(path).unwrap_err();
            assert!(err.contains("output only"), "{err}");
        }
        assert!(
            CustomerField::parse_path("tenant")
                .unwrap_err()
                .contains("not a field")
        );
        assert_eq!(
            CustomerField::parse_path("owner_id"),
            Ok(CustomerField::OwnerId)
        );
    }

    #[test]
    fn a_new_customer_needs_a_name_and_a_stage() {
        let err = validate_input(&CustomerInput::default(), None).unwrap_err();
        let Error::InvalidArgument { violations, .. } = err else {
            panic!("{err:?}")
        };
        let fields: Vec<_> = violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(fields, ["customer.name", "customer.lifecycle_stage"]);
    }

    #[test]
    fn an_update_checks_only_the_masked_fields() {
        let input = CustomerInput {
            phone: "+1 555".into(),
            ..Default::default()
        };
        assert!(validate_input(&input, Some(&[CustomerField::Phone])).is_ok());
    }

    #[test]
    fn search_text_is_lower_case() {
        assert_eq!(
            search_text("ÄBC Corp", "X@Y.io", "+1"),
            "äbc corp\u{1}x@y.io\u{1}+1"
        );
    }
}
