//! The records that hang off a customer (contacts, deals, orders, contracts, projects, activities):
//! their fields, status transitions, which may be deleted on their own, and when such a record can
//! be restored (before its purge_time, while its customer is live). Every write also bumps the
//! customer's graph version in the same transaction, taking the customer's row lock, so a
//! deletion that runs concurrently either sees the write or makes it fail (docs/reliability.md M8).

use chrono::{DateTime, NaiveDate, Utc};
use uuid::Uuid;

use super::access::{Action, Caller};
use super::audit::Entry;
use super::idempotency::Idempotency;
use super::mutation::{self, Change, Mutation, Operation, RecordWrite};
use super::paging::{self, Page, PageTokenKey, QueryFingerprint};
use super::tenant_settings::TenantPolicies;
use super::validate::{self, Violations};
use super::{
    Clock, changed_concurrently, chrono_duration, customer_deleted, etag_matches, etag_mismatch,
};
use crate::error::{Error, Problem, Result};
use crate::reason;
use crate::store::{self, GraphBump, Store};

pub use super::model::record::*;

impl RecordKind {
    /// Fields an update mask may name.
    fn updatable(self) -> &'static [&'static str] {
        match self {
            RecordKind::Contact => &["full_name", "email", "phone", "job_title"],
            RecordKind::Deal => &["title", "amount_minor", "currency", "stage"],
            RecordKind::Order => &["number", "amount_minor", "currency", "status"],
            RecordKind::Contract => &["number", "status", "end_date"],
            RecordKind::Project => &["name", "status"],
            RecordKind::Activity => &["kind", "subject", "occur_time"],
        }
    }
}

const OUTPUT_ONLY: &[&str] = &["id", "create_time", "update_time", "delete_time", "etag"];

impl RecordData {
    /// Checks the fields (all of them, or only those named in `only`), naming them as
    /// `<kind>.<field>` the way the request does.
    fn validate(&self, only: Option<&[String]>) -> Result<()> {
        let mut fields = FieldCheck {
            kind: self.kind(),
            only,
            v: Violations::new(),
        };
        match self {
            RecordData::Contact(c) => fields.contact(c),
            RecordData::Deal(d) => fields.deal(d),
            RecordData::Order(o) => fields.order(o),
            RecordData::Contract(c) => fields.contract(c),
            RecordData::Project(p) => fields.project(p),
            RecordData::Activity(a) => fields.activity(a),
        }
        fields.v.finish()
    }

    /// `self` with the fields named in `paths` taken from `patch` (same kind, checked before).
    fn patched(&self, patch: &RecordData, paths: &[String]) -> RecordData {
        let mut next = self.clone();
        for path in paths {
            match (&mut next, patch) {
                (RecordData::Contact(n), RecordData::Contact(p)) => match path.as_str() {
                    "full_name" => n.full_name.clone_from(&p.full_name),
                    "email" => n.email.clone_from(&p.email),
                    "phone" => n.phone.clone_from(&p.phone),
                    _ => n.job_title.clone_from(&p.job_title),
                },
                (RecordData::Deal(n), RecordData::Deal(p)) => match path.as_str() {
                    "title" => n.title.clone_from(&p.title),
                    "amount_minor" => n.amount_minor = p.amount_minor,
                    "currency" => n.currency.clone_from(&p.currency),
                    _ => n.stage = p.stage,
                },
                (RecordData::Order(n), RecordData::Order(p)) => match path.as_str() {
                    "number" => n.number.clone_from(&p.number),
                    "amount_minor" => n.amount_minor = p.amount_minor,
                    "currency" => n.currency.clone_from(&p.currency),
                    _ => n.status = p.status,
                },
                (RecordData::Contract(n), RecordData::Contract(p)) => match path.as_str() {
                    "number" => n.number.clone_from(&p.number),
                    "status" => n.status = p.status,
                    _ => n.end_date.clone_from(&p.end_date),
                },
                (RecordData::Project(n), RecordData::Project(p)) => match path.as_str() {
                    "name" => n.name.clone_from(&p.name),
                    _ => n.status = p.status,
                },
                (RecordData::Activity(n), RecordData::Activity(p)) => match path.as_str() {
                    "kind" => n.kind = p.kind,
                    "subject" => n.subject.clone_from(&p.subject),
                    _ => n.occur_time = p.occur_time,
                },
                _ => {}
            }
        }
        next
    }
}

/// The status transitions the proto documents on each status enum. A status may always stay as
/// it is.
pub fn transition_allowed(from: &RecordData, to: &RecordData) -> bool {
    use ContractStatus as C;
    use DealStage as D;
    use OrderStatus as O;
    use ProjectStatus as P;
    match (from, to) {
        (RecordData::Deal(a), RecordData::Deal(b)) => match (a.stage, b.stage) {
            (x, y) if x == y => true,
            (Some(D::Open), Some(D::Won | D::Lost)) | (Some(D::Won | D::Lost), Some(D::Open)) => {
                true
            }
            _ => false,
        },
        (RecordData::Order(a), RecordData::Order(b)) => match (a.status, b.status) {
            (x, y) if x == y => true,
            (Some(O::Open), Some(O::Paid | O::Cancelled)) => true,
            _ => false,
        },
        (RecordData::Contract(a), RecordData::Contract(b)) => match (a.status, b.status) {
            (x, y) if x == y => true,
            (Some(C::Draft), Some(C::Active | C::Terminated))
            | (Some(C::Active), Some(C::Expired | C::Terminated)) => true,
            _ => false,
        },
        (RecordData::Project(a), RecordData::Project(b)) => match (a.status, b.status) {
            (x, y) if x == y => true,
            (Some(P::Active), Some(P::Done)) | (Some(P::Done), Some(P::Active)) => true,
            _ => false,
        },
        _ => true,
    }
}

/// Whether a record may be deleted on its own. Orders and contracts past DRAFT are business
/// records: they are cancelled or terminated, never deleted.
pub fn deletable_alone(data: &RecordData) -> bool {
    match data {
        RecordData::Order(_) => false,
        RecordData::Contract(c) => c.status == Some(ContractStatus::Draft),
        _ => true,
    }
}

/// Whether a record can be restored on its own now, given whether its customer is deleted. In the
/// order a caller has to deal with them: nothing to restore; the customer first (a record deleted
/// with its customer comes back with it, and no record of a deleted customer may change); too
/// late. The etag is checked after these, like on every other write.
pub fn check_restorable(
    kind: RecordKind,
    record: &Record,
    customer_deleted_now: bool,
    now: DateTime<Utc>,
) -> Result<()> {
    if record.delete_time.is_none() {
        return Err(Error::failed_precondition(
            Problem::new(
                reason::RECORD_NOT_DELETED,
                format!("the {} is live: there is nothing to restore", kind.name()),
            )
            .with("id", record.id),
        ));
    }
    if customer_deleted_now {
        return Err(customer_deleted(record.customer_id));
    }
    if record.purge_time.is_some_and(|t| t <= now) {
        return Err(Error::failed_precondition(
            Problem::new(
                reason::RETENTION_EXPIRED,
                format!(
                    "the {}'s retention has passed: it is being erased and can no longer be restored",
                    kind.name()
                ),
            )
            .with("id", record.id),
        ));
    }
    Ok(())
}

/// Parses the paths of an update mask for `kind`, naming output-only and unknown ones.
pub fn parse_mask(kind: RecordKind, paths: &[String]) -> Result<Vec<String>> {
    let mut v = Violations::new();
    if paths.is_empty() {
        v.add("update_mask", "must name at least one field to change");
    }
    for path in paths {
        if kind.updatable().contains(&path.as_str()) {
            continue;
        }
        let why = if OUTPUT_ONLY.contains(&path.as_str()) {
            format!("{path} is output only and cannot be updated")
        } else if path == "customer_id" {
            "customer_id cannot be changed: a record stays with its customer".to_owned()
        } else {
            let path = crate::error::echo(path);
            format!("{path} is not an updatable field of {}", kind.name())
        };
        v.add("update_mask", why);
    }
    v.finish()?;
    Ok(paths.to_vec())
}

/// The fields of one record being checked: those `only` names, or all.
struct FieldCheck<'a> {
    kind: RecordKind,
    only: Option<&'a [String]>,
    v: Violations,
}

impl FieldCheck<'_> {
    /// Whether `field` is checked, and its path as the request names it (`<kind>.<field>`).
    fn wants(&self, field: &str) -> Option<String> {
        self.only
            .is_none_or(|fields| fields.iter().any(|f| f == field))
            .then(|| format!("{}.{field}", self.kind.name()))
    }

    fn contact(&mut self, c: &ContactData) {
        if let Some(path) = self.wants("full_name") {
            self.v
                .required_text(&path, &c.full_name, validate::NAME_MAX);
        }
        if let Some(path) = self.wants("email") {
            self.v.email(&path, &c.email);
        }
        if let Some(path) = self.wants("phone") {
            self.v.phone(&path, &c.phone);
        }
        if let Some(path) = self.wants("job_title") {
            self.v.text(&path, &c.job_title, validate::JOB_TITLE_MAX);
        }
    }

    fn deal(&mut self, d: &DealData) {
        if let Some(path) = self.wants("title") {
            self.v.required_text(&path, &d.title, validate::NAME_MAX);
        }
        if let Some(path) = self.wants("amount_minor") {
            self.v.non_negative(&path, d.amount_minor);
        }
        if let Some(path) = self.wants("currency") {
            self.v.currency(&path, &d.currency);
        }
        if let Some(path) = self.wants("stage").filter(|_| d.stage.is_none()) {
            self.v.add(path, "is required: OPEN, WON or LOST");
        }
    }

    fn order(&mut self, o: &OrderData) {
        if let Some(path) = self.wants("number") {
            self.v.required_text(&path, &o.number, validate::NUMBER_MAX);
        }
        if let Some(path) = self.wants("amount_minor") {
            self.v.non_negative(&path, o.amount_minor);
        }
        if let Some(path) = self.wants("currency") {
            self.v.currency(&path, &o.currency);
        }
        if let Some(path) = self.wants("status").filter(|_| o.status.is_none()) {
            self.v.add(path, "is required: OPEN, PAID or CANCELLED");
        }
    }

    fn contract(&mut self, c: &ContractData) {
        if let Some(path) = self.wants("number") {
            self.v.required_text(&path, &c.number, validate::NUMBER_MAX);
        }
        if let Some(path) = self.wants("status").filter(|_| c.status.is_none()) {
            self.v
                .add(path, "is required: DRAFT, ACTIVE, EXPIRED or TERMINATED");
        }
        let not_a_date = !c.end_date.is_empty()
            && (c.end_date.len() != 10
                || NaiveDate::parse_from_str(&c.end_date, "%Y-%m-%d").is_err());
        if let Some(path) = self.wants("end_date").filter(|_| not_a_date) {
            self.v.add(path, "must be a date of the form YYYY-MM-DD");
        }
    }

    fn project(&mut self, p: &ProjectData) {
        if let Some(path) = self.wants("name") {
            self.v.required_text(&path, &p.name, validate::NAME_MAX);
        }
        if let Some(path) = self.wants("status").filter(|_| p.status.is_none()) {
            self.v.add(path, "is required: ACTIVE or DONE");
        }
    }

    fn activity(&mut self, a: &ActivityData) {
        if let Some(path) = self.wants("kind").filter(|_| a.kind.is_none()) {
            self.v
                .add(path, "is required: CALL, EMAIL, MEETING or NOTE");
        }
        if let Some(path) = self.wants("subject") {
            self.v.required_text(&path, &a.subject, validate::NAME_MAX);
        }
        if let Some(path) = self.wants("occur_time").filter(|_| a.occur_time.is_none()) {
            self.v.add(path, "is required");
        }
    }
}

/// Record operations, shared by every request.
#[derive(Clone)]
pub struct Records {
    store: Store,
    page_key: PageTokenKey,
    clock: Clock,
    /// How long a record deleted on its own can be restored before the purger erases it: the
    /// tenant's retention, the customers'.
    policies: TenantPolicies,
}

/// What the graph-version bump found; anything but a live customer stops the write.
fn require_live_customer(bump: GraphBump, customer_id: Uuid) -> Result<()> {
    match bump {
        GraphBump::Bumped => Ok(()),
        GraphBump::Missing => Err(Error::not_found("customer", customer_id)),
        GraphBump::Deleted => Err(customer_deleted(customer_id)),
    }
}

fn record_deleted(kind: RecordKind, id: Uuid, verb: &str) -> Error {
    Error::failed_precondition(
        Problem::new(
            reason::RECORD_DELETED,
            format!("the {} is deleted and cannot be {verb}", kind.name()),
        )
        .with("id", id),
    )
}

fn held_records_stay(kind: RecordKind, id: Uuid, customer_id: Uuid) -> Error {
    Error::failed_precondition(
        Problem::new(
            reason::LEGAL_HOLD,
            format!(
                "the {}'s customer is under legal hold: its records stay with it until an admin \
                 lifts the hold",
                kind.name()
            ),
        )
        .with("customerId", customer_id)
        .with("id", id),
    )
}

impl Records {
    pub fn new(
        store: Store,
        page_key: PageTokenKey,
        clock: Clock,
        policies: TenantPolicies,
    ) -> Self {
        Self {
            store,
            page_key,
            clock,
            policies,
        }
    }

    pub async fn create(
        &self,
        caller: &Caller,
        customer_id: Uuid,
        data: RecordData,
        key: Option<Idempotency>,
    ) -> Result<Record> {
        caller.require(Action::Write)?;
        data.validate(None)?;
        let kind = data.kind();
        let (operation, action) = (
            Operation::Record(kind, RecordWrite::Create),
            kind.audit_action(RecordWrite::Create),
        );
        let data = &data;
        mutation::run(
            &self.store,
            &self.clock,
            Mutation::new(caller, operation, key.as_ref()),
            |change| async move {
                let tx = change.tx();
                let now = change.now;
                let bump =
                    store::customers::bump_graph(tx.conn(), &caller.tenant, customer_id).await?;
                require_live_customer(bump, customer_id)?;
                let record = Record {
                    id: Uuid::now_v7(),
                    customer_id,
                    data: data.clone(),
                    create_time: now,
                    update_time: now,
                    delete_time: None,
                    purge_time: None,
                    version: 1,
                };
                store::records::insert(tx.conn(), &caller.tenant, &record).await?;
                change
                    .audit(Entry {
                        action,
                        target_type: record.data.kind().name(),
                        target_id: record.id,
                        customer_id: Some(customer_id),
                        summary: "created".into(),
                    })
                    .await?;
                Ok(record)
            },
        )
        .await
    }

    pub async fn get(&self, caller: &Caller, kind: RecordKind, id: Uuid) -> Result<Record> {
        caller.require(Action::Read)?;
        store::records::find(self.store.conn(), &caller.tenant, kind, id)
            .await?
            .ok_or_else(|| Error::not_found(kind.name(), id))
    }

    pub async fn list(
        &self,
        caller: &Caller,
        kind: RecordKind,
        customer_id: Uuid,
        show_deleted: bool,
        page_size: i32,
        page_token: &str,
    ) -> Result<Page<Record>> {
        caller.require(Action::Read)?;
        let limit = paging::page_size("page_size", page_size)?;
        let customer = customer_id.to_string();
        let fingerprint = QueryFingerprint::of(&[
            "ListRecords",
            kind.name(),
            &customer,
            if show_deleted { "deleted" } else { "live" },
        ]);
        let now = self.clock.now().timestamp();
        let after = if page_token.is_empty() {
            None
        } else {
            Some(
                self.page_key
                    .open("page_token", page_token, &caller.tenant, fingerprint, now)?,
            )
        };
        let conn = self.store.conn();
        if store::customers::find(conn, &caller.tenant, customer_id)
            .await?
            .is_none()
        {
            return Err(Error::not_found("customer", customer_id));
        }
        let mut items = store::records::list(
            conn,
            &caller.tenant,
            kind,
            customer_id,
            show_deleted,
            after,
            limit + 1,
        )
        .await?;
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
        paths: Vec<String>,
        patch: RecordData,
        etag: String,
        key: Option<Idempotency>,
    ) -> Result<Record> {
        caller.require(Action::Write)?;
        let kind = patch.kind();
        let paths = parse_mask(kind, &paths)?;
        patch.validate(Some(&paths))?;
        let (operation, action) = (
            Operation::Record(kind, RecordWrite::Update),
            kind.audit_action(RecordWrite::Update),
        );
        let (etag, patch, paths) = (&etag, &patch, &paths);
        mutation::run(&self.store, &self.clock, Mutation::new(caller, operation, key.as_ref()), |change| async move {
            let tx = change.tx();
            let current = self.live_record_for_write(tx, caller, kind, id, etag).await?;
            let next_data = current.data.patched(patch, paths);
            if !transition_allowed(&current.data, &next_data) {
                return Err(Error::failed_precondition(
                    Problem::new(
                        reason::INVALID_STATUS_TRANSITION,
                        format!(
                            "this status change is not allowed for a {}: see the transitions documented on its status enum",
                            kind.name()
                        ),
                    )
                    .with("id", id),
                ));
            }
            let now = change.now;
            let bump = store::customers::bump_graph(tx.conn(), &caller.tenant, current.customer_id).await?;
            require_live_customer(bump, current.customer_id)?;
            let next = Record { data: next_data, update_time: now, version: current.version + 1, ..current.clone() };
            store::records::update(tx.conn(), &caller.tenant, &next, current.version)
                .await?
                .or_else(|| changed_concurrently(next.data.kind().name(), next.id))?;
            change.audit(Entry {
                action,
                target_type: kind.name(),
                target_id: id,
                customer_id: Some(next.customer_id),
                summary: format!("fields={}", paths.join(",")),
            })
            .await?;
                        Ok(next)
        })
        .await
    }

    pub async fn delete(
        &self,
        caller: &Caller,
        kind: RecordKind,
        id: Uuid,
        etag: String,
        key: Option<Idempotency>,
    ) -> Result<Record> {
        caller.require(Action::Write)?;
        let (operation, action) = (
            Operation::Record(kind, RecordWrite::Delete),
            kind.audit_action(RecordWrite::Delete),
        );
        let etag = &etag;
        mutation::run(&self.store, &self.clock, Mutation::new(caller, operation, key.as_ref()), |change| async move {
            let tx = change.tx();
            let current = self.live_record_for_write(tx, caller, kind, id, etag).await?;
            if !deletable_alone(&current.data) {
                return Err(Error::failed_precondition(
                    Problem::new(
                        reason::RECORD_NOT_DELETABLE,
                        format!(
                            "this {} is a business record and cannot be deleted: cancel or terminate it instead",
                            kind.name()
                        ),
                    )
                    .with("id", id),
                ));
            }
            let now = change.now;
            let bump = store::customers::bump_graph(tx.conn(), &caller.tenant, current.customer_id).await?;
            require_live_customer(bump, current.customer_id)?;
            let retention = self.policies.effective_in(&change).await?.retention;
            let next = Record {
                delete_time: Some(now),
                purge_time: Some(now + chrono_duration(retention)),
                update_time: now,
                version: current.version + 1,
                ..current.clone()
            };
            store::records::update(tx.conn(), &caller.tenant, &next, current.version)
                .await?
                .or_else(|| changed_concurrently(next.data.kind().name(), next.id))?;
            change.audit(Entry {
                action,
                target_type: kind.name(),
                target_id: id,
                customer_id: Some(next.customer_id),
                summary: "deleted".into(),
            })
            .await?;
                        Ok(next)
        })
        .await
    }

    /// Moves a live record to another live customer of the tenant: the record keeps its id and
    /// fields, and both customers' graph versions move on, so a deletion previewed on either is
    /// stale. A customer under legal hold keeps its records: moving one away would let a
    /// deletion of the other customer take what the hold preserves.
    pub async fn move_to(
        &self,
        caller: &Caller,
        kind: RecordKind,
        id: Uuid,
        target: Uuid,
        etag: String,
        key: Option<Idempotency>,
    ) -> Result<Record> {
        caller.require(Action::MoveRecord)?;
        let (operation, action) = (
            Operation::Record(kind, RecordWrite::Move),
            kind.audit_action(RecordWrite::Move),
        );
        let etag = &etag;
        mutation::run(
            &self.store,
            &self.clock,
            Mutation::new(caller, operation, key.as_ref()),
            |change| async move {
                let tx = change.tx();
                let current = self
                    .movable_record(tx, caller, kind, id, target, etag)
                    .await?;
                let source = current.customer_id;
                for customer in [source, target] {
                    let bump =
                        store::customers::bump_graph(tx.conn(), &caller.tenant, customer).await?;
                    require_live_customer(bump, customer)?;
                }
                let next = Record {
                    customer_id: target,
                    update_time: change.now,
                    version: current.version + 1,
                    ..current.clone()
                };
                store::records::move_to(tx.conn(), &caller.tenant, &next, current.version)
                    .await?
                    .or_else(|| changed_concurrently(kind.name(), id))?;
                // Once in each customer's trail, so each one's events tell of the move.
                for customer in [source, target] {
                    change
                        .audit(Entry {
                            action,
                            target_type: kind.name(),
                            target_id: id,
                            customer_id: Some(customer),
                            summary: format!("from={source} to={target}"),
                        })
                        .await?;
                }
                Ok(next)
            },
        )
        .await
    }

    /// The record to move, with both customers locked (in id order, as a merge locks them):
    /// the record live and at the expected etag, both customers live, the source not held.
    async fn movable_record(
        &self,
        tx: &store::WriteTx,
        caller: &Caller,
        kind: RecordKind,
        id: Uuid,
        target: Uuid,
        etag: &str,
    ) -> Result<Record> {
        let (conn, tenant) = (tx.conn(), &caller.tenant);
        let found = store::records::find(conn, tenant, kind, id)
            .await?
            .ok_or_else(|| Error::not_found(kind.name(), id))?;
        let source = found.customer_id;
        if source == target {
            return Err(Error::invalid_field(
                "target_customer_id",
                format!("is the customer the {} already belongs to", kind.name()),
            ));
        }
        let (first, second) = (source.min(target), source.max(target));
        let mut locked = Vec::with_capacity(2);
        for customer_id in [first, second] {
            let customer = store::customers::find_for_update(conn, tenant, customer_id)
                .await?
                .ok_or_else(|| Error::not_found("customer", customer_id))?;
            if customer.is_deleted() {
                return Err(customer_deleted(customer_id));
            }
            locked.push(customer);
        }
        if locked.iter().any(|c| c.id == source && c.legal_hold) {
            return Err(held_records_stay(kind, id, source));
        }
        // Read again under the customers' locks, which every write of either graph takes first.
        let current = store::records::find(conn, tenant, kind, id)
            .await?
            .ok_or_else(|| Error::not_found(kind.name(), id))?;
        if current.customer_id != source {
            return Err(changed_concurrently(kind.name(), id));
        }
        if current.delete_time.is_some() {
            return Err(record_deleted(kind, id, "moved"));
        }
        if !etag_matches(etag, current.version) {
            return Err(etag_mismatch(kind.name(), id, etag, &current.etag()));
        }
        Ok(current)
    }

    /// Brings back a record deleted on its own, before its purge_time. Supervisor or admin.
    /// `validate_only` runs every check and writes nothing.
    pub async fn restore(
        &self,
        caller: &Caller,
        kind: RecordKind,
        id: Uuid,
        etag: String,
        validate_only: bool,
        key: Option<Idempotency>,
    ) -> Result<Record> {
        caller.require(Action::Restore)?;
        let (operation, action) = (
            Operation::Record(kind, RecordWrite::Restore),
            kind.audit_action(RecordWrite::Restore),
        );
        let etag = &etag;
        mutation::run(
            &self.store,
            &self.clock,
            Mutation::new(caller, operation, key.as_ref()).validate_only(validate_only),
            |change| async move {
                let (tx, now) = (change.tx(), change.now);
                let current = self.restorable_record(&change, kind, id, etag).await?;
                if validate_only {
                    // Dropping the transaction rolls back: nothing was written.
                    return Ok(current);
                }
                let bump =
                    store::customers::bump_graph(tx.conn(), &caller.tenant, current.customer_id)
                        .await?;
                require_live_customer(bump, current.customer_id)?;
                let next = Record {
                    delete_time: None,
                    purge_time: None,
                    update_time: now,
                    version: current.version + 1,
                    ..current.clone()
                };
                store::records::update(tx.conn(), &caller.tenant, &next, current.version)
                    .await?
                    .or_else(|| changed_concurrently(next.data.kind().name(), next.id))?;
                change
                    .audit(Entry {
                        action,
                        target_type: kind.name(),
                        target_id: id,
                        customer_id: Some(next.customer_id),
                        summary: "restored".into(),
                    })
                    .await?;
                Ok(next)
            },
        )
        .await
    }

    /// The record to restore, locked: deleted on its own, within its retention, its customer
    /// live, and carrying the expected etag.
    async fn restorable_record(
        &self,
        change: &Change<'_>,
        kind: RecordKind,
        id: Uuid,
        etag: &str,
    ) -> Result<Record> {
        let (conn, tenant) = (change.tx().conn(), &change.caller.tenant);
        let found = store::records::find(conn, tenant, kind, id)
            .await?
            .ok_or_else(|| Error::not_found(kind.name(), id))?;
        // The customer's row lock first, as every write of its graph takes it, then the record
        // read again under its own lock: a purger pass erasing it at this moment has either
        // committed (NOT_FOUND) or will skip it (SKIP LOCKED), never both restore and erase.
        let customer = store::customers::find_for_update(conn, tenant, found.customer_id).await?;
        let current = store::records::find_for_update(conn, tenant, kind, id)
            .await?
            .ok_or_else(|| Error::not_found(kind.name(), id))?;
        // An erased customer (no row found) is a deleted one.
        let customer_is_deleted = customer.is_none_or(|c| c.is_deleted());
        check_restorable(kind, &current, customer_is_deleted, change.now)?;
        if !etag_matches(etag, current.version) {
            return Err(etag_mismatch(kind.name(), id, etag, &current.etag()));
        }
        Ok(current)
    }

    /// The record to change: it must exist, be live and carry the expected etag.
    async fn live_record_for_write(
        &self,
        tx: &store::WriteTx,
        caller: &Caller,
        kind: RecordKind,
        id: Uuid,
        etag: &str,
    ) -> Result<Record> {
        let found = store::records::find(tx.conn(), &caller.tenant, kind, id)
            .await?
            .ok_or_else(|| Error::not_found(kind.name(), id))?;
        // Writers of one customer's graph take turns on the customer's row (the lock bump_graph
        // takes anyway), and only then read the record's state: a concurrent write to it has
        // committed by then and is seen, rather than failing this one as if its etag were stale,
        // and the status transition is checked against the latest status.
        let customer =
            store::customers::find_for_update(tx.conn(), &caller.tenant, found.customer_id).await?;
        // The customer's state first: a record its deletion took reads as "customer deleted"
        // (restore the customer), not as a record deleted on its own.
        if customer.as_ref().is_some_and(|c| c.is_deleted()) {
            return Err(customer_deleted(found.customer_id));
        }
        let current = store::records::find(tx.conn(), &caller.tenant, kind, id)
            .await?
            .ok_or_else(|| Error::not_found(kind.name(), id))?;
        if current.delete_time.is_some() {
            return Err(record_deleted(kind, id, "changed"));
        }
        if !etag_matches(etag, current.version) {
            return Err(etag_mismatch(kind.name(), id, etag, &current.etag()));
        }
        Ok(current)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(status: OrderStatus) -> RecordData {
        RecordData::Order(OrderData {
            status: Some(status),
            ..Default::default()
        })
    }

    fn contract(status: ContractStatus) -> RecordData {
        RecordData::Contract(ContractData {
            status: Some(status),
            ..Default::default()
        })
    }

    #[test]
    fn order_transitions() {
        use OrderStatus::*;
        assert!(transition_allowed(&order(Open), &order(Paid)));
        assert!(transition_allowed(&order(Open), &order(Cancelled)));
        assert!(!transition_allowed(&order(Paid), &order(Open)));
        assert!(!transition_allowed(&order(Cancelled), &order(Paid)));
    }

    #[test]
    fn contract_transitions() {
        use ContractStatus::*;
        assert!(transition_allowed(&contract(Draft), &contract(Active)));
        assert!(transition_allowed(&contract(Active), &contract(Expired)));
        assert!(!transition_allowed(&contract(Expired), &contract(Active)));
        assert!(!transition_allowed(&contract(Draft), &contract(Expired)));
    }

    #[test]
    fn only_draft_contracts_and_no_orders_are_deletable_alone() {
        assert!(deletable_alone(&contract(ContractStatus::Draft)));
        assert!(!deletable_alone(&contract(ContractStatus::Active)));
        assert!(!deletable_alone(&order(OrderStatus::Paid)));
        assert!(deletable_alone(
            &RecordData::Contact(ContactData::default())
        ));
    }

    fn deleted_contact(purge_time: Option<DateTime<Utc>>) -> Record {
        let now = Utc::now();
        Record {
            id: Uuid::now_v7(),
            customer_id: Uuid::now_v7(),
            data: RecordData::Contact(ContactData::default()),
            create_time: now,
            update_time: now,
            delete_time: Some(now),
            purge_time,
            version: 2,
        }
    }

    fn refusal(result: Result<()>) -> Option<&'static str> {
        match result {
            Ok(()) => None,
            Err(Error::FailedPrecondition { problem, .. }) => Some(problem.reason),
            Err(other) => panic!("not a precondition failure: {other:?}"),
        }
    }

    #[test]
    fn a_record_is_restorable_only_while_deleted_with_a_live_customer_before_its_purge_time() {
        let now = Utc::now();
        let later = now + chrono::Duration::days(30);
        let kind = RecordKind::Contact;
        let restorable = deleted_contact(Some(later));
        assert_eq!(
            refusal(check_restorable(kind, &restorable, false, now)),
            None
        );
        let live = Record {
            delete_time: None,
            purge_time: None,
            ..restorable.clone()
        };
        assert_eq!(
            refusal(check_restorable(kind, &live, false, now)),
            Some(reason::RECORD_NOT_DELETED)
        );
        // A live record of a deleted customer (kept for the books) is still "not deleted".
        assert_eq!(
            refusal(check_restorable(kind, &live, true, now)),
            Some(reason::RECORD_NOT_DELETED)
        );
        assert_eq!(
            refusal(check_restorable(kind, &restorable, true, now)),
            Some(reason::CUSTOMER_DELETED)
        );
        // The customer comes first, even past the record's purge_time: restoring it is the step.
        let due = deleted_contact(Some(now));
        assert_eq!(
            refusal(check_restorable(kind, &due, true, now)),
            Some(reason::CUSTOMER_DELETED)
        );
        assert_eq!(
            refusal(check_restorable(kind, &due, false, now)),
            Some(reason::RETENTION_EXPIRED)
        );
        assert_eq!(
            refusal(check_restorable(
                kind,
                &due,
                false,
                now - chrono::Duration::microseconds(1)
            )),
            None,
            "until the instant itself"
        );
        // No purge_time at all: never expires.
        assert_eq!(
            refusal(check_restorable(kind, &deleted_contact(None), false, later)),
            None
        );
    }

    #[test]
    fn masks_name_output_only_and_immutable_fields() {
        assert!(parse_mask(RecordKind::Deal, &["stage".into()]).is_ok());
        for bad in ["etag", "customer_id", "nope"] {
            assert!(
                parse_mask(RecordKind::Deal, &[bad.into()]).is_err(),
                "{bad}"
            );
        }
        assert!(parse_mask(RecordKind::Deal, &[]).is_err());
    }

    #[test]
    fn contract_end_dates_are_iso_dates() {
        let with_date = |d: &str| {
            RecordData::Contract(ContractData {
                number: "C-1".into(),
                status: Some(ContractStatus::Draft),
                end_date: d.into(),
            })
        };
        assert!(with_date("2027-02-28").validate(None).is_ok());
        assert!(with_date("").validate(None).is_ok());
        for bad in ["2027-02-30", "2027-2-1", "tomorrow"] {
            assert!(with_date(bad).validate(None).is_err(), "{bad}");
        }
    }
}
