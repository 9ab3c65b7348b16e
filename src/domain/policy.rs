//! What deleting a customer does to each kind of related record, by state, as one table
//! (docs/design.md section 4). The preview, the submit and the delete all read it; nothing else
//! decides.

use super::model::record::RecordKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Policy {
    /// Soft-deleted with the customer, restored with it.
    Cascade,
    /// Forbids the deletion until the record changes state.
    Block,
    /// Left as it is, for the books; points at the tombstone after a purge.
    Keep,
}

/// One row of the table: records of `kind` in `state` (the stored state name; `None` for kinds
/// without a state) get `policy`. A blocking row says why and what to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub kind: RecordKind,
    pub state: Option<&'static str>,
    pub policy: Policy,
    /// For BLOCK: the blocker's stable reason and what to do about it.
    pub blocker: Option<(&'static str, &'static str)>,
    /// For CASCADE of value still in play: the preview warns.
    pub warns: bool,
}

const fn rule(kind: RecordKind, state: Option<&'static str>, policy: Policy) -> Rule {
    Rule {
        kind,
        state,
        policy,
        blocker: None,
        warns: false,
    }
}

const fn block(
    kind: RecordKind,
    state: &'static str,
    reason: &'static str,
    resolution: &'static str,
) -> Rule {
    Rule {
        kind,
        state: Some(state),
        policy: Policy::Block,
        blocker: Some((reason, resolution)),
        warns: false,
    }
}

use crate::reason;
use Policy::{Cascade, Keep};
use RecordKind as K;

/// The table of docs/design.md section 4. Every (kind, state) the store can hold has exactly one
/// row (a unit test checks it).
pub const RULES: &[Rule] = &[
    rule(K::Contact, None, Cascade),
    rule(K::Activity, None, Cascade),
    Rule {
        kind: K::Deal,
        state: Some("OPEN"),
        policy: Cascade,
        blocker: None,
        warns: true,
    },
    rule(K::Deal, Some("WON"), Cascade),
    rule(K::Deal, Some("LOST"), Cascade),
    block(
        K::Order,
        "OPEN",
        reason::OPEN_ORDER,
        "close or cancel the open orders first",
    ),
    rule(K::Order, Some("PAID"), Keep),
    rule(K::Order, Some("CANCELLED"), Keep),
    block(
        K::Contract,
        "ACTIVE",
        reason::ACTIVE_CONTRACT,
        "let the active contracts expire or terminate them first",
    ),
    rule(K::Contract, Some("DRAFT"), Cascade),
    rule(K::Contract, Some("EXPIRED"), Keep),
    rule(K::Contract, Some("TERMINATED"), Keep),
    block(
        K::Project,
        "ACTIVE",
        reason::ACTIVE_PROJECT,
        "finish the active projects first (mark them DONE)",
    ),
    rule(K::Project, Some("DONE"), Cascade),
];

/// The blocker reason of a customer under legal hold.
pub const LEGAL_HOLD: (&str, &str) = (
    reason::LEGAL_HOLD,
    "an admin must lift the legal hold first",
);

/// The rule for records of `kind` in `state`.
pub fn rule_for(kind: RecordKind, state: Option<&str>) -> Option<&'static Rule> {
    RULES.iter().find(|r| r.kind == kind && r.state == state)
}

/// The states of `kind` that a deletion soft-deletes (`None` in the list: every record of a kind
/// without states).
pub fn cascading_states(kind: RecordKind) -> Vec<Option<&'static str>> {
    RULES
        .iter()
        .filter(|r| r.kind == kind && r.policy == Cascade)
        .map(|r| r.state)
        .collect()
}

/// What a deletion soft-deletes, kind by kind: `cascading_states` of every kind, as the store's
/// cascade takes it (`store::deletion::cascade` applies this list and knows no policy).
pub fn cascading() -> Vec<(RecordKind, Vec<Option<&'static str>>)> {
    RecordKind::ALL
        .into_iter()
        .map(|kind| (kind, cascading_states(kind)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_says_what_design_says() {
        assert_eq!(rule_for(K::Contact, None).unwrap().policy, Cascade);
        assert!(rule_for(K::Deal, Some("OPEN")).unwrap().warns);
        assert_eq!(
            rule_for(K::Order, Some("OPEN")).unwrap().policy,
            Policy::Block
        );
        assert_eq!(rule_for(K::Order, Some("PAID")).unwrap().policy, Keep);
        assert_eq!(
            rule_for(K::Contract, Some("ACTIVE")).unwrap().policy,
            Policy::Block
        );
        assert_eq!(
            rule_for(K::Contract, Some("DRAFT")).unwrap().policy,
            Cascade
        );
        assert_eq!(
            rule_for(K::Contract, Some("TERMINATED")).unwrap().policy,
            Keep
        );
        assert_eq!(
            rule_for(K::Project, Some("ACTIVE")).unwrap().policy,
            Policy::Block
        );
        assert_eq!(rule_for(K::Project, Some("DONE")).unwrap().policy, Cascade);
    }

    #[test]
    fn the_cascade_is_the_table_s_cascade_rows_kind_by_kind() {
        let cascading = cascading();
        let kinds: Vec<RecordKind> = cascading.iter().map(|(kind, _)| *kind).collect();
        assert_eq!(kinds, RecordKind::ALL);
        let states = |kind| &cascading.iter().find(|(k, _)| *k == kind).unwrap().1;
        assert_eq!(states(K::Contact), &[None]);
        assert_eq!(states(K::Deal), &[Some("OPEN"), Some("WON"), Some("LOST")]);
        assert!(states(K::Order).is_empty());
        assert_eq!(states(K::Contract), &[Some("DRAFT")]);
        assert_eq!(states(K::Project), &[Some("DONE")]);
        assert_eq!(states(K::Activity), &[None]);
    }

    #[test]
    fn every_kind_and_state_has_exactly_one_rule() {
        let states: &[(RecordKind, &[Option<&str>])] = &[
            (K::Contact, &[None]),
            (K::Activity, &[None]),
            (K::Deal, &[Some("OPEN"), Some("WON"), Some("LOST")]),
            (K::Order, &[Some("OPEN"), Some("PAID"), Some("CANCELLED")]),
            (
                K::Contract,
                &[
                    Some("DRAFT"),
                    Some("ACTIVE"),
                    Some("EXPIRED"),
                    Some("TERMINATED"),
                ],
            ),
            (K::Project, &[Some("ACTIVE"), Some("DONE")]),
        ];
        let mut covered = 0;
        for (kind, kind_states) in states {
            for state in *kind_states {
                let n = RULES
                    .iter()
                    .filter(|r| r.kind == *kind && r.state == *state)
                    .count();
                assert_eq!(n, 1, "{kind:?} {state:?}");
                covered += 1;
            }
        }
        assert_eq!(covered, RULES.len());
        for r in RULES {
            assert_eq!(r.policy == Policy::Block, r.blocker.is_some(), "{r:?}");
        }
    }
}
