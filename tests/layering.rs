//! The layers' dependency rule (docs/ARCHITECTURE.md, "Layers"), checked on the source tree:
//! dependencies point one way, api → domain → store, and no layer reaches past the next.
//!
//! - `src/domain/` names no database library (`sea_orm`, `sea_query`, `sqlx`, `rusqlite`), no gRPC
//!   (`tonic`, the generated `crate::proto`) and no store entity (`store::entity`): it talks to
//!   the database only through the store's functions and the domain's own types;
//! - `src/store/` names no domain module but `domain::model`: it persists the domain's values
//!   and applies no domain rule;
//! - `src/domain/model/` names neither the store nor the domain's operations, so that store and
//!   domain never import each other;
//! - `src/error.rs`, under every layer, names no database library and no layer above it;
//! - `src/api/` names neither the store (`crate::store`) nor SeaORM: adapters call the domain.
//!
//! Comments and string literals are not code and are not read. A file that breaks a rule on purpose, for now, is
//! listed in `EXCEPTIONS`; an exception that no longer applies fails the test too, so that the
//! list only ever shrinks.

use std::path::{Path, PathBuf};

/// What the files under a folder must not name.
struct Rule {
    /// A folder, or one file.
    folder: &'static str,
    forbidden: &'static [&'static str],
    why: &'static str,
}

const RULES: &[Rule] = &[
    Rule {
        folder: "src/domain",
        forbidden: &[
            "sea_orm",
            "sea_orm_migration",
            "sea_query",
            "sqlx",
            "rusqlite",
            "tonic",
            "tonic_types",
            "tonic_prost",
            "crate::proto",
            "store::entity",
        ],
        why: "the domain reaches the database only through the store's functions, and knows \
              nothing of gRPC",
    },
    Rule {
        folder: "src/store",
        forbidden: &[
            "domain::access",
            "domain::audit",
            "domain::customers",
            "domain::deletion",
            "domain::events",
            "domain::export",
            "domain::idempotency",
            "domain::mutation",
            "domain::paging",
            "domain::policy",
            "domain::purge",
            "domain::records",
            "domain::validate",
        ],
        why: "the store persists what the domain tells it: it takes the domain's values \
              (`domain::model`) and applies no domain rule",
    },
    Rule {
        folder: "src/domain/model",
        forbidden: &[
            "crate::store",
            "domain::access",
            "domain::audit",
            "domain::customers",
            "domain::deletion",
            "domain::events",
            "domain::export",
            "domain::idempotency",
            "domain::mutation",
            "domain::purge",
            "domain::records",
        ],
        why: "the domain's values are what the store persists: they read and write nothing and \
              depend on no operation, or store and domain would import each other",
    },
    Rule {
        folder: "src/error.rs",
        forbidden: &["sea_orm", "sqlx", "crate::store", "crate::call"],
        why: "the error type sits under every layer; the store translates database failures \
              (`store::db_error`)",
    },
    Rule {
        folder: "src/api",
        forbidden: &["crate::store", "sea_orm"],
        why: "adapters convert and call the domain; they never reach the store",
    },
];

/// Files allowed, for now, to name what their folder's rule forbids: (file, what it names, why).
// None left: the deletion folder's preview takes a `store::Connection`, not a SeaORM trait.
const EXCEPTIONS: &[(&str, &str, &str)] = &[];

#[test]
fn dependencies_point_one_way() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut violations = Vec::new();
    let mut used_exceptions = vec![false; EXCEPTIONS.len()];
    for rule in RULES {
        for file in rust_files(&root.join(rule.folder)) {
            let relative = file
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            let source = std::fs::read_to_string(&file).unwrap();
            for (line, name) in names(&source, rule.forbidden) {
                let excepted = EXCEPTIONS
                    .iter()
                    .position(|(f, n, _)| *f == relative && *n == name);
                match excepted {
                    Some(i) => used_exceptions[i] = true,
                    None => {
                        violations.push(format!("{relative}:{line} names `{name}`: {}", rule.why))
                    }
                }
            }
        }
    }
    for ((file, name, why), used) in EXCEPTIONS.iter().zip(used_exceptions) {
        if !used {
            violations.push(format!(
                "{file} no longer names `{name}` ({why}): remove its entry from EXCEPTIONS in \
                 tests/layering.rs"
            ));
        }
    }
    assert!(
        violations.is_empty(),
        "the layers' dependency rule is broken (docs/ARCHITECTURE.md, \"Layers\"):\n  {}",
        violations.join("\n  ")
    );
}

/// Every `.rs` file under `dir` (or `dir` itself, a file), in a stable order.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    if dir.is_file() {
        return vec![dir.to_path_buf()];
    }
    let mut out = Vec::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out
}

/// Where the code of `source` names one of `forbidden` (paths of one or more segments), as
/// (line, name). A path is named whole (`domain::policy::RULES`), or through a use group
/// (`domain::{records, policy}`); `sea_orm` is not named by `sea_orm_migration`.
fn names(source: &str, forbidden: &[&'static str]) -> Vec<(usize, &'static str)> {
    let code = without_comments(source);
    let paths = paths(&code);
    let mut found = Vec::new();
    for (offset, path) in paths {
        for name in forbidden {
            let name_segments: Vec<&str> = name.split("::").collect();
            if path
                .windows(name_segments.len())
                .any(|w| w == name_segments.as_slice())
            {
                let line = code[..offset].matches('\n').count() + 1;
                found.push((line, *name));
            }
        }
    }
    found.sort();
    found.dedup();
    found
}

/// `source` with its comments and the contents of its string and character literals blanked out
/// (newlines kept, so offsets keep their lines): only code names things.
fn without_comments(source: &str) -> String {
    let chars: Vec<char> = source.chars().collect();
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    let mut out = String::with_capacity(source.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                match (chars[i], chars.get(i + 1).copied()) {
                    ('/', Some('*')) => {
                        depth += 1;
                        out.push_str("  ");
                        i += 2;
                    }
                    ('*', Some('/')) => {
                        depth -= 1;
                        out.push_str("  ");
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    }
                    (c, _) => {
                        out.push(blank(c));
                        i += 1;
                    }
                }
            }
        } else if c == '"' {
            // A raw string (r"…", r#"…"#) ends at a quote followed by as many #; others at an
            // unescaped quote.
            let hashes = out.chars().rev().take_while(|&h| h == '#').count();
            let raw = out.chars().rev().nth(hashes) == Some('r');
            out.push('"');
            i += 1;
            while i < chars.len() {
                if !raw && chars[i] == '\\' {
                    out.push(' ');
                    out.push(blank(chars.get(i + 1).copied().unwrap_or(' ')));
                    i += 2;
                } else if chars[i] == '"'
                    && (!raw || (1..=hashes).all(|k| chars.get(i + k) == Some(&'#')))
                {
                    out.push('"');
                    i += 1;
                    break;
                } else {
                    out.push(blank(chars[i]));
                    i += 1;
                }
            }
        } else if c == '\'' && (next == Some('\\') || chars.get(i + 2) == Some(&'\'')) {
            // A character literal ('x', '\n', '\u{…}'); a lifetime ('a) has no closing quote.
            out.push('\'');
            i += 1;
            while i < chars.len() {
                if chars[i] == '\\' {
                    out.push_str("  ");
                    i += 2;
                } else if chars[i] == '\'' {
                    out.push('\'');
                    i += 1;
                    break;
                } else {
                    out.push(blank(chars[i]));
                    i += 1;
                }
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// Every path in `code` (identifiers joined by `::`, whitespace allowed around it) as (offset,
/// segments), with use groups expanded: `a::{b, c::{d}}` gives `a::b`, `a::c` and `a::c::d`.
fn paths(code: &str) -> Vec<(usize, Vec<String>)> {
    let tokens = tokens(code);
    let mut out = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        if let Token::Ident(_) = tokens[i].1 {
            // Only the start of a path: not an identifier right after `::`.
            let after_separator = i > 0 && tokens[i - 1].1 == Token::PathSep;
            if !after_separator {
                path_at(&tokens, i, Vec::new(), &mut out);
            }
        }
        i += 1;
    }
    out
}

/// Collects the path starting at token `i` (after `prefix`), and those of any use group in it.
fn path_at(
    tokens: &[(usize, Token)],
    mut i: usize,
    mut prefix: Vec<String>,
    out: &mut Vec<(usize, Vec<String>)>,
) {
    let offset = tokens[i].0;
    while let Token::Ident(ident) = &tokens[i].1 {
        prefix.push(ident.clone());
        out.push((offset, prefix.clone()));
        if tokens.get(i + 1).map(|t| &t.1) != Some(&Token::PathSep) {
            break;
        }
        match tokens.get(i + 2).map(|t| &t.1) {
            Some(Token::Ident(_)) => i += 2,
            Some(Token::Open) => {
                // A use group: each item at its top level continues the prefix.
                let mut j = i + 3;
                let mut item_start = true;
                while let Some((_, token)) = tokens.get(j) {
                    match token {
                        Token::Close => break,
                        Token::Comma => item_start = true,
                        Token::Ident(_) if item_start => {
                            path_at(tokens, j, prefix.clone(), out);
                            item_start = false;
                        }
                        Token::Open => j = matching_close(tokens, j),
                        _ => {}
                    }
                    j += 1;
                }
                break;
            }
            _ => break,
        }
    }
}

fn matching_close(tokens: &[(usize, Token)], open: usize) -> usize {
    let mut depth = 0;
    for (j, (_, token)) in tokens.iter().enumerate().skip(open) {
        match token {
            Token::Open => depth += 1,
            Token::Close => {
                depth -= 1;
                if depth == 0 {
                    return j;
                }
            }
            _ => {}
        }
    }
    tokens.len()
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Ident(String),
    PathSep,
    Open,
    Close,
    Comma,
    Other,
}

/// The tokens that make up paths and use groups, each with its offset; everything else is
/// `Other`.
fn tokens(code: &str) -> Vec<(usize, Token)> {
    let bytes = code.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c.is_ascii_alphabetic() || c == b'_' {
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            out.push((start, Token::Ident(code[start..i].to_owned())));
            continue;
        }
        let token = match c {
            b':' if bytes.get(i + 1) == Some(&b':') => {
                i += 1;
                Token::PathSep
            }
            b'{' => Token::Open,
            b'}' => Token::Close,
            b',' => Token::Comma,
            c if c.is_ascii_whitespace() => {
                i += 1;
                continue;
            }
            _ => Token::Other,
        };
        out.push((i, token));
        i += 1;
    }
    out
}

/// The checker itself: what it must find, and what it must let pass.
#[test]
fn the_checker_finds_what_it_must() {
    let store = RULES[1].forbidden;
    let found = |source: &str, forbidden| {
        names(source, forbidden)
            .into_iter()
            .map(|(line, name)| format!("{line}:{name}"))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        found("use crate::domain::policy;", store),
        ["1:domain::policy"]
    );
    assert_eq!(
        found(
            "x();\nlet s = crate::domain::policy::cascading_states(k);",
            store
        ),
        ["2:domain::policy"]
    );
    assert_eq!(
        found(
            "use crate::domain::{\n    model::record::RecordKind,\n    access::{Caller, Role},\n};",
            store
        ),
        ["3:domain::access"],
        "a use group's item is found on its own line"
    );
    assert_eq!(
        found("use crate::domain::{self, policy as p};", store),
        ["1:domain::policy"]
    );
    assert_eq!(
        found("use crate :: domain :: policy;", store),
        ["1:domain::policy"]
    );
    // Comments, other modules and longer names are not the rule's business.
    assert!(
        found(
            "// calls domain::policy::cascading\n/* domain::access */",
            store
        )
        .is_empty()
    );
    assert!(
        found(
            "use crate::domain::policyholder; use mydomain::policy;",
            store
        )
        .is_empty()
    );
    assert!(found("use crate::domain::model::record::policy_name;", store).is_empty());

    let domain = RULES[0].forbidden;
    assert_eq!(
        found("fn f(c: &impl sea_orm::ConnectionTrait) {}", domain),
        ["1:sea_orm"]
    );
    assert_eq!(found("use tonic::Status;", domain), ["1:tonic"]);
    assert_eq!(
        found(
            "fn f(row: crate::store::entity::customer::Model) {}",
            domain
        ),
        ["1:store::entity"]
    );
    assert_eq!(
        found("use crate::store::{self, entity::customer};", domain),
        ["1:store::entity"]
    );
    assert!(found("use sea_orm_migration::MigratorTrait;", &["sea_orm"]).is_empty());
    // Nor are strings and character literals, which may hold anything (and a `//`).
    assert!(
        found(
            "let s = \"tonic::Status\"; let q = '\"'; let t = r#\"sea_orm\"#; // sea_orm",
            domain
        )
        .is_empty()
    );
    assert_eq!(
        found("let u = \"http://x\"; use tonic::Status;", domain),
        ["1:tonic"]
    );
    assert_eq!(
        found(
            "fn f<'a>(c: &'a str) -> &'a str { c }\nuse sqlx::Row;",
            domain
        ),
        ["2:sqlx"]
    );
}
