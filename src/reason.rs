//! Every `ErrorInfo.reason` the service sends, with its status code and what the client should do:
//! the one place a reason is spelled. Clients branch on these strings, so a reason is never renamed
//! or reused for another meaning. The README's "Error reasons" table and the Python SDK's
//! `crm_client.errors.REASONS` list the same names; a test checks that all three agree.

/// One reason: its name, the gRPC code it comes with, and what it means to a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reason {
    pub name: &'static str,
    pub code: &'static str,
    pub meaning: &'static str,
}

macro_rules! reasons {
    ($($name:ident => $code:literal, $meaning:literal;)*) => {
        $(pub const $name: &str = stringify!($name);)*

        /// Every reason, in the order of the README's table.
        pub const CATALOGUE: &[Reason] = &[
            $(Reason { name: stringify!($name), code: $code, meaning: $meaning },)*
        ];
    };
}

reasons! {
    // The request itself.
    INVALID_FIELD => "INVALID_ARGUMENT", "a field breaks its rule; BadRequest names each field and why";
    MALFORMED_REQUEST => "INVALID_ARGUMENT", "the bytes are not a message of the method's request type";
    METADATA_TOO_LARGE => "INVALID_ARGUMENT", "the call's metadata exceeds 16 KiB";
    REQUEST_ID_REUSED => "INVALID_ARGUMENT", "request_id was used with other arguments: use a new request_id";
    // Identity and permission.
    MISSING_TOKEN => "UNAUTHENTICATED", "no `authorization: Bearer <token>` header";
    INVALID_TOKEN => "UNAUTHENTICATED", "the token is expired, badly signed, or its claims are malformed";
    ROLE_NOT_ALLOWED => "PERMISSION_DENIED", "the token's roles do not allow the call; metadata lists the roles that do";
    SELF_APPROVAL_FORBIDDEN => "PERMISSION_DENIED", "the requester of a deletion cannot decide it";
    NOT_ROUTED_TO_YOU => "PERMISSION_DENIED", "the request is routed to the supervisors of the requester's teams (metadata `teams`) or an admin";
    ADMIN_APPROVAL_REQUIRED => "PERMISSION_DENIED", "the two-person rule needs an admin among the approvers: the remaining approval must be an admin's";
    ALREADY_APPROVED => "FAILED_PRECONDITION", "you approved this request already; the two-person rule needs another approver";
    OWNER_ASSIGNMENT_FORBIDDEN => "PERMISSION_DENIED", "only a supervisor, admin or service may set another owner";
    // Resources.
    NOT_FOUND => "NOT_FOUND", "no such resource in the caller's tenant";
    EXTERNAL_REF_TAKEN => "ALREADY_EXISTS", "another live customer of the tenant has this external_ref";
    CUSTOMER_NOT_DELETED => "ALREADY_EXISTS or FAILED_PRECONDITION", "restore or erase of a customer that is live";
    // Concurrency.
    ETAG_MISMATCH => "ABORTED", "the etag sent is not the current one (metadata currentEtag): read again and retry";
    TRANSACTION_CONFLICT => "ABORTED", "the database broke a conflict between transactions: retry";
    REQUEST_ID_IN_FLIGHT => "ABORTED", "a call with the same request_id is still running: retry to get its answer";
    // The state of what the call acts on.
    CUSTOMER_DELETED => "FAILED_PRECONDITION", "the customer is deleted: restore it first";
    CUSTOMER_HAS_BLOCKERS => "FAILED_PRECONDITION", "something blocks the deletion; PreconditionFailure lists each blocker and its resolution";
    PREVIEW_STALE => "FAILED_PRECONDITION", "the customer's graph changed since the preview: preview again";
    DELETION_ALREADY_REQUESTED => "FAILED_PRECONDITION", "the customer already has an open deletion request";
    DELETION_REQUEST_NOT_PENDING => "FAILED_PRECONDITION", "only a PENDING request can be approved or rejected";
    DELETION_REQUEST_NOT_OPEN => "FAILED_PRECONDITION", "only a PENDING or APPROVED request can be cancelled";
    DELETION_REQUEST_EXPIRED => "FAILED_PRECONDITION", "the request's lifetime passed: submit a new one";
    DELETION_NOT_APPROVED => "FAILED_PRECONDITION", "DeleteCustomer needs an APPROVED request";
    DELETION_BATCH_NOT_PENDING => "FAILED_PRECONDITION", "only a PENDING batch can be approved or rejected";
    DELETION_BATCH_NOT_OPEN => "FAILED_PRECONDITION", "only a PENDING or APPROVED batch can be cancelled";
    DELETION_BATCH_EXPIRED => "FAILED_PRECONDITION", "the batch's lifetime passed undecided or unstarted: submit a new one";
    DELETION_BATCH_NOT_APPROVED => "FAILED_PRECONDITION", "RunDeletionBatch needs an APPROVED batch";
    DELETION_BATCH_NOT_COMPLETED => "FAILED_PRECONDITION", "RestoreDeletionBatch needs a COMPLETED batch";
    TOO_MANY_OPEN_BATCHES => "FAILED_PRECONDITION", "the tenant has as many open batches as allowed (metadata limit): finish, cancel or let one lapse";
    NOTHING_TO_DELETE => "FAILED_PRECONDITION", "every customer of the batch was excluded (the items say why): nothing to approve";
    RESTORE_CONFLICT => "FAILED_PRECONDITION", "a live customer now holds the external_ref (metadata names it)";
    REQUEST_KIND_MISMATCH => "FAILED_PRECONDITION", "a MERGE request is executed by MergeCustomers, a deletion request by DeleteCustomer";
    DELETED_BY_MERGE => "FAILED_PRECONDITION", "the customer was merged into another: UnmergeCustomers brings it back, not RestoreCustomer";
    NOT_MERGED => "FAILED_PRECONDITION", "UnmergeCustomers of a customer no merge deleted";
    RETENTION_EXPIRED => "FAILED_PRECONDITION", "the retention passed: the customer or record is being erased";
    INVALID_STATUS_TRANSITION => "FAILED_PRECONDITION", "the record's status cannot change that way";
    RECORD_NOT_DELETABLE => "FAILED_PRECONDITION", "a business record (order, contract) is cancelled or terminated, not deleted";
    RECORD_DELETED => "FAILED_PRECONDITION", "the record is deleted: restore it first";
    RECORD_NOT_DELETED => "FAILED_PRECONDITION", "restore of a record that is live";
    LEGAL_HOLD => "FAILED_PRECONDITION", "the customer is under legal hold: an admin must lift it first";
    // Blockers of a deletion (in a preview, and in CUSTOMER_HAS_BLOCKERS' violations).
    OPEN_ORDER => "FAILED_PRECONDITION", "an open order blocks the deletion: complete or cancel it";
    ACTIVE_CONTRACT => "FAILED_PRECONDITION", "an active contract blocks the deletion: terminate it or let it expire";
    ACTIVE_PROJECT => "FAILED_PRECONDITION", "an active project blocks the deletion: finish it";
    UNKNOWN_RECORD_STATE => "FAILED_PRECONDITION", "a record in a state the policy table does not know: contact an administrator";
    // The server.
    SERVER_OVERLOADED => "RESOURCE_EXHAUSTED", "too many calls in flight: retry after RetryInfo's delay";
    SERVER_SHUTTING_DOWN => "UNAVAILABLE", "the server is stopping: retry on another replica";
    DATABASE_UNAVAILABLE => "UNAVAILABLE", "the database cannot be reached: retry later";
    DATABASE_BUSY => "UNAVAILABLE", "the database is busy (locks, SQLite's writer): retry with backoff";
    DEADLINE_EXCEEDED => "DEADLINE_EXCEEDED", "the call's deadline passed; a write was rolled back";
    INTERNAL => "INTERNAL", "a bug or an unexpected database failure; the server logged its cause";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_is_listed_once_in_upper_snake_case() {
        let mut seen = std::collections::HashSet::new();
        for reason in CATALOGUE {
            assert!(seen.insert(reason.name), "{} twice", reason.name);
            assert!(
                reason
                    .name
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c == '_'),
                "{}",
                reason.name
            );
            assert!(!reason.meaning.is_empty());
        }
    }

    fn read(path: &str) -> String {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(root.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn the_readme_and_the_python_sdk_list_exactly_these_reasons() {
        let readme = read("README.md");
        let readme_reasons: Vec<&str> = readme
            .lines()
            .skip_while(|line| *line != "### Error reasons")
            .filter_map(|line| line.strip_prefix("| `")?.split_once('`').map(|(n, _)| n))
            .take_while(|name| name.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
            .collect();
        let python = read("clients/python/src/crm_client/errors.py");
        let python_reasons: Vec<&str> = python
            .lines()
            .skip_while(|line| !line.starts_with("REASONS"))
            .skip(1)
            .take_while(|line| *line != "}")
            .filter_map(|line| {
                line.trim()
                    .strip_prefix('"')?
                    .split_once('"')
                    .map(|(n, _)| n)
            })
            .collect();
        let ours: Vec<&str> = CATALOGUE.iter().map(|r| r.name).collect();
        assert_eq!(readme_reasons, ours, "the README's \"Error reasons\" table");
        assert_eq!(python_reasons, ours, "crm_client.errors.REASONS");
    }
}
