//! The keys that find a customer's likely duplicates: the same e-mail however it is capitalised,
//! the same phone number however it is written, the same external reference however it is
//! punctuated. Each customer row stores its keys (written with the customer, so every write path
//! keeps them), and a look-up is an index probe per key.
//!
//! A phone number is stored as written: international (`+44 20 7946 0000`, `0044 …`) as `+` and
//! its digits, national (`020 7946 0000`) as its digits without the trunk `0`. Which country a
//! national number belongs to is a setting that may change; it is applied when looking up, never
//! stored, so changing it needs no rewrite of the keys.

/// Which of a customer's keys two customers share.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MatchKey {
    ExternalRef,
    Email,
    Phone,
}

/// Fewer digits than this identify nobody (an extension, a short code).
const MIN_PHONE_DIGITS: usize = 6;

/// The e-mail's key: trimmed and lower-cased (ASCII only: the domain part is case-insensitive,
/// and a local part differing only in case is, in practice, the same mailbox).
pub fn email_key(email: &str) -> Option<String> {
    let key = email.trim().to_ascii_lowercase();
    (!key.is_empty()).then_some(key)
}

/// The phone number's key: `+` and the digits of an international number, or the digits of a
/// national one without its trunk `0`; `None` when too short to identify anyone.
pub fn phone_key(phone: &str) -> Option<String> {
    let phone = phone.trim();
    let digits: String = phone.chars().filter(char::is_ascii_digit).collect();
    let key = if phone.starts_with('+') {
        format!("+{digits}")
    } else if let Some(international) = digits.strip_prefix("00") {
        format!("+{international}")
    } else {
        digits.strip_prefix('0').unwrap_or(&digits).to_owned()
    };
    (key.trim_start_matches('+').len() >= MIN_PHONE_DIGITS).then_some(key)
}

/// The external reference's key: letters and digits only, lower-cased (`ERP-00123` and
/// `erp 00123` name the same record of the other system).
pub fn external_ref_key(external_ref: &str) -> Option<String> {
    let key: String = external_ref
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    (!key.is_empty()).then_some(key)
}

/// The stored phone keys that are the same number as `key`, given the country calling code that
/// national numbers belong to (digits, e.g. `44`): the key itself, and its national or
/// international twin.
pub fn same_phone_keys(key: &str, default_country_code: Option<&str>) -> Vec<String> {
    let mut keys = vec![key.to_owned()];
    if let Some(code) = default_country_code {
        match key.strip_prefix('+') {
            Some(international) => {
                if let Some(national) = international.strip_prefix(code) {
                    keys.push(national.to_owned());
                }
            }
            None => keys.push(format!("+{code}{key}")),
        }
    }
    keys
}

/// Whether `code` is a country calling code: 1 to 3 digits, not starting with 0.
pub fn valid_country_code(code: &str) -> bool {
    (1..=3).contains(&code.len())
        && code.chars().all(|c| c.is_ascii_digit())
        && !code.starts_with('0')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_match_whatever_their_case_and_surrounding_space() {
        assert_eq!(
            email_key(" Buyer@Example.COM "),
            email_key("buyer@example.com")
        );
        assert_eq!(email_key("  "), None);
    }

    #[test]
    fn phones_keep_their_country_when_written_and_drop_the_trunk_zero_when_not() {
        assert_eq!(
            phone_key("+44 20 7946 0000").as_deref(),
            Some("+442079460000")
        );
        assert_eq!(
            phone_key("0044 (20) 7946-0000").as_deref(),
            Some("+442079460000")
        );
        assert_eq!(phone_key("020 7946 0000").as_deref(), Some("2079460000"));
        assert_eq!(phone_key("(555) 010-0100").as_deref(), Some("5550100100"));
        assert_eq!(phone_key("+1 23"), None, "too short");
        assert_eq!(phone_key(""), None);
    }

    #[test]
    fn a_national_number_is_its_international_twin_only_in_the_configured_country() {
        let national = phone_key("020 7946 0000").unwrap();
        let international = phone_key("+44 20 7946 0000").unwrap();
        assert!(same_phone_keys(&national, Some("44")).contains(&international));
        assert!(same_phone_keys(&international, Some("44")).contains(&national));
        assert!(!same_phone_keys(&national, Some("33")).contains(&international));
        assert!(!same_phone_keys(&international, Some("33")).contains(&national));
        assert_eq!(same_phone_keys(&national, None), vec![national.clone()]);
    }

    #[test]
    fn external_refs_match_whatever_their_punctuation_and_case() {
        assert_eq!(external_ref_key("ERP-00123"), external_ref_key("erp 00123"));
        assert_ne!(external_ref_key("ERP-00123"), external_ref_key("ERP-00124"));
        assert_eq!(external_ref_key("--"), None);
    }

    #[test]
    fn country_codes_are_one_to_three_digits() {
        assert!(valid_country_code("1") && valid_country_code("44") && valid_country_code("358"));
        assert!(!valid_country_code("") && !valid_country_code("+44"));
        assert!(!valid_country_code("0044") && !valid_country_code("04"));
    }
}
