//! Who may do what (docs/design.md section 2): the caller of every domain call and the one table of
//! permissions. Function-level checks only; object-level rules (the requester never approves their
//! own request) live with the operation they guard, inside its transaction.

use std::collections::BTreeMap;

use crate::error::{Error, Problem, Result};
use crate::reason;

/// A role from the token's `roles` claim. Unknown role names are ignored, which means denied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    SalesRep,
    Supervisor,
    Admin,
    /// An internal service calling on its own behalf.
    Service,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::SalesRep, Role::Supervisor, Role::Admin, Role::Service];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::SalesRep => "sales_rep",
            Role::Supervisor => "supervisor",
            Role::Admin => "admin",
            Role::Service => "service",
        }
    }

    pub fn parse(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|role| role.as_str() == name)
    }
}

/// The authenticated caller, taken from a verified token and nowhere else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// Tenant every read and write of the call is scoped to.
    pub tenant: String,
    /// The user or service id (`sub`).
    pub subject: String,
    pub roles: Vec<Role>,
    /// Role names the token carried that this server does not know (a few, shortened): they
    /// grant nothing, and a refusal names them, since a misspelt role looks like a missing one.
    pub unknown_roles: Vec<String>,
    /// The token's claims that are strings or lists of strings, by name (bounded): which of them
    /// name the caller's teams is the tenant's setting.
    pub claims: BTreeMap<String, Vec<String>>,
    /// W3C trace id of the call (from `traceparent`), empty if it carried none; audit events keep it.
    pub trace_id: String,
}

/// Something a caller may be allowed to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Read customers and their records.
    Read,
    /// Create and update customers and records.
    Write,
    /// Make someone other than yourself the owner of a customer.
    AssignOwner,
    /// Mark a customer as a key account, or clear the mark.
    MarkKeyAccount,
    /// Ask for a customer's deletion.
    SubmitDeletion,
    /// Approve or reject someone else's deletion request.
    DecideDeletion,
    /// Cancel or execute a deletion request you made yourself.
    ActOnOwnDeletion,
    /// Cancel or execute anyone's deletion request.
    ActOnAnyDeletion,
    /// Move a record from one customer to another.
    MoveRecord,
    /// Restore a deleted customer, or a record deleted on its own.
    Restore,
    /// Read the audit trail.
    ReadAudit,
    /// Erase a deleted customer now; set or lift a legal hold.
    Erase,
    /// Export a customer's whole graph.
    Export,
    /// Follow the tenant's customer event stream.
    ReadEvents,
    /// Read and change the tenant's settings (retention, request lifetime, two-person rule…).
    ManageSettings,
}

impl Action {
    fn name(self) -> &'static str {
        match self {
            Action::Read => "read customers",
            Action::Write => "write customers",
            Action::AssignOwner => "assign a customer to another owner",
            Action::MarkKeyAccount => "mark a customer as a key account or clear the mark",
            Action::SubmitDeletion => "request a customer's deletion",
            Action::DecideDeletion => "approve or reject deletion requests",
            Action::ActOnOwnDeletion => "cancel or execute your deletion requests",
            Action::ActOnAnyDeletion => "cancel or execute other people's deletion requests",
            Action::MoveRecord => "move records from one customer to another",
            Action::Restore => "restore deleted customers and records",
            Action::ReadAudit => "read the audit trail",
            Action::Erase => "erase customers or set legal holds",
            Action::Export => "export customers",
            Action::ReadEvents => "read the customer event stream",
            Action::ManageSettings => "read or change the tenant's settings",
        }
    }
}

/// The roles allowed each action (docs/design.md section 2). Anything not listed is denied.
const PERMISSIONS: &[(Action, &[Role])] = &[
    (Action::Read, &Role::ALL),
    (Action::Write, &Role::ALL),
    (
        Action::AssignOwner,
        &[Role::Supervisor, Role::Admin, Role::Service],
    ),
    // The mark can decide how many approvers a deletion needs (the tenant's two-person rule), so
    // it is set by the roles that approve deletions, not by those who ask for them.
    (Action::MarkKeyAccount, &[Role::Supervisor, Role::Admin]),
    (Action::SubmitDeletion, &Role::ALL),
    // Never their own request: that separation of duties is checked on the request itself.
    (Action::DecideDeletion, &[Role::Supervisor, Role::Admin]),
    (
        Action::ActOnOwnDeletion,
        &[Role::SalesRep, Role::Supervisor, Role::Admin],
    ),
    (Action::ActOnAnyDeletion, &[Role::Supervisor, Role::Admin]),
    // Changes two customers' graphs, which may belong to two different owners.
    (
        Action::MoveRecord,
        &[Role::Supervisor, Role::Admin, Role::Service],
    ),
    (Action::Restore, &[Role::Supervisor, Role::Admin]),
    (Action::ReadAudit, &[Role::Supervisor, Role::Admin]),
    (Action::Erase, &[Role::Admin]),
    (Action::Export, &[Role::Supervisor, Role::Admin]),
    (
        Action::ReadEvents,
        &[Role::Service, Role::Supervisor, Role::Admin],
    ),
    // The settings decide how every deletion of the tenant is approved and how long deleted data
    // is kept: the tenant's administrators' call, not a supervisor's.
    (Action::ManageSettings, &[Role::Admin]),
];

pub fn allowed_roles(action: Action) -> &'static [Role] {
    PERMISSIONS
        .iter()
        .find(|(a, _)| *a == action)
        .map(|(_, roles)| *roles)
        .unwrap_or(&[])
}

impl Caller {
    /// The values of the token's claim `name` (none when the token lacks it).
    pub fn claim(&self, name: &str) -> &[String] {
        self.claims.get(name).map_or(&[], Vec::as_slice)
    }

    pub fn may(&self, action: Action) -> bool {
        let allowed = allowed_roles(action);
        self.roles.iter().any(|role| allowed.contains(role))
    }

    /// `PERMISSION_DENIED` unless one of the caller's roles allows `action`.
    pub fn require(&self, action: Action) -> Result<()> {
        if self.may(action) {
            return Ok(());
        }
        let needed: Vec<&str> = allowed_roles(action).iter().map(|r| r.as_str()).collect();
        if self.unknown_roles.is_empty() {
            return Err(Error::PermissionDenied(
                Problem::new(
                    reason::ROLE_NOT_ALLOWED,
                    format!(
                        "your roles do not allow you to {}; needs one of: {}",
                        action.name(),
                        needed.join(", ")
                    ),
                )
                .with("requiredRoles", needed.join(",")),
            ));
        }
        let unknown: Vec<String> = self
            .unknown_roles
            .iter()
            .map(|r| format!("{r:?}"))
            .collect();
        let known: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
        Err(Error::PermissionDenied(
            Problem::new(
                reason::ROLE_NOT_ALLOWED,
                format!(
                    "this server does not recognise the role(s) {} in your token (it knows: {}); \
                     to {} you need one of: {}",
                    unknown.join(", "),
                    known.join(", "),
                    action.name(),
                    needed.join(", ")
                ),
            )
            .with("requiredRoles", needed.join(","))
            .with("unknownRoles", self.unknown_roles.join(","))
            .with("knownRoles", known.join(",")),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(roles: &[Role]) -> Caller {
        Caller {
            tenant: "t".into(),
            subject: "u".into(),
            roles: roles.to_vec(),
            unknown_roles: Vec::new(),
            claims: BTreeMap::new(),
            trace_id: String::new(),
        }
    }

    #[test]
    fn every_role_reads_and_writes() {
        for role in Role::ALL {
            assert!(caller(&[role]).may(Action::Read));
            assert!(caller(&[role]).may(Action::Write));
        }
    }

    #[test]
    fn only_supervisor_admin_and_service_assign_owners() {
        assert!(!caller(&[Role::SalesRep]).may(Action::AssignOwner));
        for role in [Role::Supervisor, Role::Admin, Role::Service] {
            assert!(caller(&[role]).may(Action::AssignOwner));
        }
    }

    #[test]
    fn only_supervisor_and_admin_mark_key_accounts() {
        for role in Role::ALL {
            assert_eq!(
                caller(&[role]).may(Action::MarkKeyAccount),
                matches!(role, Role::Supervisor | Role::Admin),
                "{role:?}"
            );
        }
        let Err(Error::PermissionDenied(problem)) =
            caller(&[Role::SalesRep, Role::Service]).require(Action::MarkKeyAccount)
        else {
            panic!("a sales rep with the service role may not mark key accounts");
        };
        assert!(
            problem
                .metadata
                .contains(&("requiredRoles", "supervisor,admin".to_owned()))
        );
    }

    #[test]
    fn deletion_roles_follow_design_section_2() {
        let only = |action: Action, roles: &[Role]| {
            for role in Role::ALL {
                assert_eq!(
                    caller(&[role]).may(action),
                    roles.contains(&role),
                    "{action:?} {role:?}"
                );
            }
        };
        only(Action::DecideDeletion, &[Role::Supervisor, Role::Admin]);
        only(
            Action::ActOnOwnDeletion,
            &[Role::SalesRep, Role::Supervisor, Role::Admin],
        );
        only(Action::ActOnAnyDeletion, &[Role::Supervisor, Role::Admin]);
        only(Action::Restore, &[Role::Supervisor, Role::Admin]);
        only(Action::ReadAudit, &[Role::Supervisor, Role::Admin]);
        only(Action::SubmitDeletion, &Role::ALL);
        only(Action::Erase, &[Role::Admin]);
    }

    #[test]
    fn only_admins_manage_the_tenant_settings() {
        for role in Role::ALL {
            assert_eq!(
                caller(&[role]).may(Action::ManageSettings),
                role == Role::Admin,
                "{role:?}"
            );
        }
    }

    #[test]
    fn a_caller_without_known_roles_may_do_nothing() {
        let nobody = caller(&[]);
        for action in [Action::Read, Action::Write, Action::AssignOwner] {
            assert!(matches!(
                nobody.require(action),
                Err(Error::PermissionDenied(_))
            ));
        }
    }

    #[test]
    fn a_refusal_names_the_roles_the_server_does_not_know() {
        let mut misspelt = caller(&[]);
        misspelt.unknown_roles = vec!["salesrep".into()];
        let Err(Error::PermissionDenied(problem)) = misspelt.require(Action::Read) else {
            panic!("a caller without known roles may not read");
        };
        assert_eq!(problem.reason, reason::ROLE_NOT_ALLOWED);
        assert_eq!(
            problem.message,
            "this server does not recognise the role(s) \"salesrep\" in your token (it knows: \
             sales_rep, supervisor, admin, service); to read customers you need one of: \
             sales_rep, supervisor, admin, service"
        );
        assert!(
            problem
                .metadata
                .contains(&("unknownRoles", "salesrep".to_owned()))
        );
    }
}
