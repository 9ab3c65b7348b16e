//! Field rules shared by every resource. Lengths are counted in characters (Unicode scalar values),
//! never bytes. Control characters — NUL first of all, which PostgreSQL refuses and SQLite stores —
//! and bidirectional overrides are rejected, so both databases answer the same.

use uuid::Uuid;

use crate::error::{Error, FieldViolation, Result};

/// Collects every violation of a request, so a client learns all its mistakes at once.
#[derive(Debug, Default)]
pub struct Violations(Vec<FieldViolation>);

impl Violations {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.0.push(FieldViolation {
            field: field.into(),
            description: description.into(),
        });
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok(())` if nothing was found, `INVALID_ARGUMENT` naming every field otherwise.
    pub fn finish(self) -> Result<()> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Error::invalid_fields(self.0))
        }
    }

    /// Checks a required single-line text field.
    pub fn required_text(&mut self, field: &str, value: &str, max_chars: usize) {
        if value.trim().is_empty() {
            self.add(field, "is required and must not be blank");
        } else {
            self.text(field, value, max_chars);
        }
    }

    /// Checks an optional single-line text field (empty means unset).
    pub fn text(&mut self, field: &str, value: &str, max_chars: usize) {
        if let Some(problem) = text_problem(value, max_chars) {
            self.add(field, problem);
        }
    }
}

/// Bidirectional embeddings, overrides and isolates: they make text display as something else
/// (the "Trojan Source" trick) and have no place in names or references.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// What is wrong with a single-line text value, if anything.
pub fn text_problem(value: &str, max_chars: usize) -> Option<String> {
    let chars = value.chars().count();
    if chars > max_chars {
        return Some(format!(
            "must be at most {max_chars} characters, got {chars}"
        ));
    }
    if value.contains('\0') {
        return Some("must not contain NUL characters".into());
    }
    if value.chars().any(char::is_control) {
        return Some("must not contain control characters".into());
    }
    if value.chars().any(is_bidi_control) {
        return Some("must not contain bidirectional override characters".into());
    }
    None
}

pub const NAME_MAX: usize = 200;
pub const EMAIL_MAX: usize = 254;
pub const PHONE_MAX: usize = 32;
pub const INDUSTRY_MAX: usize = 100;
pub const OWNER_ID_MAX: usize = 128;
pub const EXTERNAL_REF_MAX: usize = 128;
pub const NUMBER_MAX: usize = 64;
pub const JOB_TITLE_MAX: usize = 100;
pub const QUERY_MAX: usize = 100;

impl Violations {
    pub fn email(&mut self, field: &str, value: &str) {
        if value.is_empty() {
            return;
        }
        if let Some(problem) = text_problem(value, EMAIL_MAX) {
            return self.add(field, problem);
        }
        let well_formed = match value.split_once('@') {
            Some((local, domain)) => {
                !local.is_empty()
                    && !domain.is_empty()
                    && !domain.contains('@')
                    && !value.chars().any(char::is_whitespace)
            }
            None => false,
        };
        if !well_formed {
            self.add(field, "must be an e-mail address of the form local@domain");
        }
    }

    pub fn phone(&mut self, field: &str, value: &str) {
        if value.is_empty() {
            return;
        }
        if let Some(problem) = text_problem(value, PHONE_MAX) {
            return self.add(field, problem);
        }
        let allowed = |c: char| c.is_ascii_digit() || " +()-./".contains(c);
        if !value.chars().all(allowed) || !value.chars().any(|c| c.is_ascii_digit()) {
            self.add(
                field,
                "must be a phone number: digits, spaces and + ( ) - . / only",
            );
        }
    }

    pub fn currency(&mut self, field: &str, value: &str) {
        if value.len() != 3 || !value.chars().all(|c| c.is_ascii_uppercase()) {
            self.add(
                field,
                "must be an ISO 4217 code of three upper-case letters, e.g. EUR",
            );
        }
    }

    pub fn non_negative(&mut self, field: &str, value: i64) {
        if value < 0 {
            self.add(field, "must be 0 or more");
        }
    }
}

/// Parses a resource id (a UUID), naming `field` if it is not one.
pub fn parse_id(field: &str, value: &str) -> Result<Uuid> {
    if value.is_empty() {
        return Err(Error::invalid_field(field, "is required"));
    }
    Uuid::try_parse(value).map_err(|_| Error::invalid_field(field, "must be a UUID"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_are_counted_in_characters() {
        let at_limit = "é".repeat(NAME_MAX);
        assert_eq!(text_problem(&at_limit, NAME_MAX), None);
        let four_byte = "𝄞".repeat(NAME_MAX);
        assert_eq!(text_problem(&four_byte, NAME_MAX), None);
        assert!(text_problem(&format!("{at_limit}x"), NAME_MAX).is_some());
    }

    #[test]
    fn nul_control_and_bidi_characters_are_rejected() {
        for bad in [
            "a\0b",
            "a\u{7}b",
            "line\nbreak",
            "a\u{202E}b",
            "a\u{2066}b",
            "a\u{85}b",
        ] {
            assert!(text_problem(bad, 100).is_some(), "{bad:?} accepted");
        }
    }

    #[test]
    fn emails_phones_and_currencies() {
        let mut v = Violations::new();
        v.email("e", "ana@example.com");
        v.phone("p", "+1 (555) 010-0200");
        v.currency("c", "EUR");
        assert!(v.is_empty());
        for bad in ["ana", "@x", "a@", "a b@x.y", "a@b@c"] {
            let mut v = Violations::new();
            v.email("e", bad);
            assert!(!v.is_empty(), "{bad} accepted");
        }
        let mut v = Violations::new();
        v.phone("p", "call me");
        v.currency("c", "eur");
        assert_eq!(v.0.len(), 2);
    }
}
