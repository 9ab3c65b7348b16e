//! The keys that find a customer's likely duplicates: the same e-mail however it is capitalised,
//! the same phone number however it is written, the same external reference however it is
//! punctuated, a very similar name however misspelled. Each customer row stores its keys (written with the customer, so every write path
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
    /// A very similar name: `name_similarity` of the two `name_key`s at least `NAME_THRESHOLD`.
    Name,
}

/// How similar two names must be to count as the same company's: "Northwind Traders" and
/// "Nortwind Traders" are 0.75, "Northwind Traders" and "Northwind Logistics" 0.36. At 0.5,
/// seeded names that share only their first word and differ in a number were candidates by the
/// hundred (docs/performance.md P15).
pub const NAME_THRESHOLD: Similarity = Similarity { shared: 7, of: 10 };

/// Legal forms dropped from a name's key: "Northwind Ltd" and "Northwind Limited" are one name.
const LEGAL_FORMS: &[&str] = &[
    "ltd",
    "limited",
    "inc",
    "incorporated",
    "gmbh",
    "llc",
    "llp",
    "corp",
    "corporation",
    "co",
    "company",
    "plc",
    "sa",
    "sarl",
    "bv",
    "nv",
    "ag",
    "ab",
    "oy",
    "srl",
    "spa",
    "pty",
    "kg",
];

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

/// The name's key: lower-cased, accents folded (ASCII letters and digits only), every other
/// character a word break, legal forms dropped, words joined by one space; `None` when nothing
/// is left. The key holds only `a-z`, `0-9` and single spaces, so pg_trgm's word splitting and
/// `name_trigrams` see the same words.
pub fn name_key(name: &str) -> Option<String> {
    let folded: String = name
        .chars()
        .flat_map(fold)
        .map(|c| if c.is_ascii_alphanumeric() { c } else { ' ' })
        .collect();
    let words: Vec<&str> = folded
        .split_whitespace()
        .filter(|w| !LEGAL_FORMS.contains(w))
        .collect();
    (!words.is_empty()).then(|| words.join(" "))
}

/// One character, lower-cased and with its accent dropped where it is a Latin letter; other
/// non-ASCII characters become a space. `ß`, `æ`, `ø` and the like spelled as in ASCII.
fn fold(c: char) -> impl Iterator<Item = char> {
    let folded: &str = match c.to_lowercase().next().unwrap_or(c) {
        c @ ('a'..='z' | '0'..='9') => return Some(c).into_iter().chain(None),
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' | 'ą' => "a",
        'ç' | 'ć' | 'č' => "c",
        'ď' | 'đ' => "d",
        'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ę' | 'ě' => "e",
        'ì' | 'í' | 'î' | 'ï' | 'ī' => "i",
        'ł' => "l",
        'ñ' | 'ń' | 'ň' => "n",
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ō' | 'ő' => "o",
        'ř' => "r",
        'ś' | 'š' | 'ş' => "s",
        'ť' | 'ţ' => "t",
        'ù' | 'ú' | 'û' | 'ü' | 'ū' | 'ů' | 'ű' => "u",
        'ý' | 'ÿ' => "y",
        'ź' | 'ż' | 'ž' => "z",
        'ß' => "ss",
        'æ' => "ae",
        'œ' => "oe",
        '\'' | '’' => "",
        _ => " ",
    };
    let mut chars = folded.chars();
    let first = chars.next();
    first.into_iter().chain(chars.next())
}

/// A fraction `shared / of`, compared exactly (no float rounding at the threshold).
#[derive(Debug, Clone, Copy)]
pub struct Similarity {
    pub shared: u32,
    pub of: u32,
}

impl Similarity {
    pub fn value(self) -> f64 {
        if self.of == 0 {
            0.0
        } else {
            f64::from(self.shared) / f64::from(self.of)
        }
    }

    /// Whether this is at least `other`.
    pub fn at_least(self, other: Similarity) -> bool {
        u64::from(self.shared) * u64::from(other.of) >= u64::from(other.shared) * u64::from(self.of)
    }
}

/// A name key's trigrams as pg_trgm makes them: each word padded with two spaces before and one
/// after, every three consecutive characters, each once (sorted).
pub fn name_trigrams(key: &str) -> Vec<[u8; 3]> {
    let mut trigrams = trigrams_in_order(key);
    trigrams.sort_unstable();
    trigrams
}

/// `name_trigrams` in the order they first occur in the key.
fn trigrams_in_order(key: &str) -> Vec<[u8; 3]> {
    let mut trigrams: Vec<[u8; 3]> = Vec::new();
    for word in key.split(' ').filter(|w| !w.is_empty()) {
        let padded: Vec<u8> = [b' ', b' ']
            .into_iter()
            .chain(word.bytes())
            .chain([b' '])
            .collect();
        for w in padded.windows(3) {
            let trigram = [w[0], w[1], w[2]];
            if !trigrams.contains(&trigram) {
                trigrams.push(trigram);
            }
        }
    }
    trigrams
}

/// pg_trgm's `similarity`: shared trigrams over the trigrams of either name.
pub fn name_similarity(a: &str, b: &str) -> Similarity {
    let (a, b) = (name_trigrams(a), name_trigrams(b));
    let shared = a.iter().filter(|t| b.binary_search(t).is_ok()).count() as u32;
    Similarity {
        shared,
        of: a.len() as u32 + b.len() as u32 - shared,
    }
}

/// Groups of `key`'s trigrams such that every name at least `threshold` similar to it holds all
/// the trigrams of one group at least (an index finds those names by AND within a group, OR
/// across groups). A similar name shares at least `threshold` of the union, so at least that
/// share `m` of the key's own `n` trigrams, and misses at most `n - m` of them: with `n - m + 1`
/// disjoint groups, one is missed by none. Dealt round-robin in the order they occur in the name,
/// a group mixes trigrams from its start and its end, which are seldom common together: dealt in
/// sorted order, one group of a seeded name held only trigrams of its first word, which 1 in 320
/// names share, and SQLite's look-up took 27 ms on 20,000 customers instead of under 2.
pub fn name_trigram_groups(key: &str, threshold: Similarity) -> Vec<Vec<[u8; 3]>> {
    let trigrams = trigrams_in_order(key);
    let n = trigrams.len() as u64;
    // The smallest m with m / n >= threshold.
    let m = (n * u64::from(threshold.shared)).div_ceil(u64::from(threshold.of.max(1)));
    let groups = (n - m.min(n) + 1).min(n.max(1)) as usize;
    let mut out = vec![Vec::new(); groups];
    for (i, trigram) in trigrams.into_iter().enumerate() {
        out[i % groups].push(trigram);
    }
    out.retain(|g| !g.is_empty());
    out
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
    fn names_match_whatever_their_case_accents_punctuation_and_legal_form() {
        assert_eq!(
            name_key("  Northwind  Traders, Ltd. ").as_deref(),
            Some("northwind traders")
        );
        assert_eq!(
            name_key("NORTHWIND TRADERS LIMITED"),
            name_key("Northwind Traders")
        );
        assert_eq!(
            name_key("Müller & Söhne GmbH").as_deref(),
            Some("muller sohne")
        );
        assert_eq!(name_key("Smith&Sons").as_deref(), Some("smith sons"));
        assert_eq!(name_key("Straße-Bau AG").as_deref(), Some("strasse bau"));
        assert_eq!(name_key("O'Brien Co").as_deref(), Some("obrien"));
        assert_eq!(name_key("Ltd."), None, "only a legal form");
        assert_eq!(name_key("  !! "), None);
    }

    #[test]
    fn trigrams_and_similarity_are_pg_trgms() {
        // SELECT show_trgm('cat'): {"  c"," ca","at ",cat}
        let cat: Vec<[u8; 3]> = vec![*b"  c", *b" ca", *b"at ", *b"cat"];
        assert_eq!(name_trigrams("cat"), cat);
        // SELECT similarity('northwind traders', 'nortwind traders') = 0.75
        let s = name_similarity("northwind traders", "nortwind traders");
        assert_eq!((s.shared, s.of), (15, 20));
        assert!(s.at_least(NAME_THRESHOLD));
        // SELECT similarity('northwind traders', 'southwind logistics') = 0.15151515
        let s = name_similarity("northwind traders", "southwind logistics");
        assert_eq!((s.shared, s.of), (5, 33));
        assert!(!s.at_least(NAME_THRESHOLD));
        assert!(name_similarity("a", "a").at_least(Similarity { shared: 1, of: 1 }));
    }

    #[test]
    fn every_similar_enough_name_holds_one_whole_group_of_trigrams() {
        let key = "northwind traders";
        let groups = name_trigram_groups(key, NAME_THRESHOLD);
        for other in [
            "nortwind traders",
            "northwind trader",
            "northwnd traders",
            "northwind traders group",
        ] {
            let similar = name_similarity(key, other).at_least(NAME_THRESHOLD);
            let theirs = name_trigrams(other);
            let found = groups
                .iter()
                .any(|g| g.iter().all(|t| theirs.binary_search(t).is_ok()));
            assert!(!similar || found, "{other}: similar but in no group");
        }
        assert_eq!(name_trigram_groups("ab", NAME_THRESHOLD).len(), 1);
    }

    #[test]
    fn country_codes_are_one_to_three_digits() {
        assert!(valid_country_code("1") && valid_country_code("44") && valid_country_code("358"));
        assert!(!valid_country_code("") && !valid_country_code("+44"));
        assert!(!valid_country_code("0044") && !valid_country_code("04"));
    }
}
