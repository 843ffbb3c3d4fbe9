//! The other injections: server-side templates (`{{7*7}}`, `${T(java.lang.Runtime)}`), XML
//! external entities, LDAP filters (`*)(uid=*))(|(uid=*`), NoSQL operators (`{"$ne": null}`,
//! `username[$ne]=`), CRLF (`%0d%0aSet-Cookie:`), and server-side includes (`<!--#exec`).

use super::fields::Place;
use super::{position, Finding, Severity, ThreatType};

/// Looks for the other injections in a decoded value (`lower`: its lowercase copy).
/// `encoded_newline`: the value held a percent-encoded line break.
pub fn detect(place: Place, lower: &str, encoded_newline: bool, out: &mut Vec<Finding>) {
    let bytes = lower.as_bytes();
    // Single bytes first (memchr), substrings only where their rarest byte is present.
    if memchr::memchr3(b'{', b'<', b'#', bytes).is_some()
        || memchr::memchr3(b'@', b'*', b'[', bytes).is_some()
    {
        template(lower, out);
    }
    if memchr::memchr(b'<', bytes).is_some() {
        if contains!(lower, "<!") {
            xxe(lower, out);
            ssi(lower, out);
        } else if contains!(lower, "<esi:") {
            ssi(lower, out);
        }
    }
    if memchr::memchr2(b'(', b')', bytes).is_some()
        && (contains!(lower, ")(")
            || contains!(lower, "*)")
            || contains!(lower, "(|(")
            || contains!(lower, "(&("))
    {
        ldap(lower, out);
    }
    if memchr::memchr2(b'$', b'=', bytes).is_some() || contains!(lower, "return") {
        nosql(place, lower, out);
    }
    if memchr::memchr2(b'\r', b'\n', bytes).is_some() {
        crlf(place, lower, encoded_newline, out);
    }
}

/// Inside a template expression, signs that it reaches the runtime.
const TEMPLATE_DANGER: &[&str] = &[
    "__class__",
    "__mro__",
    "__subclasses__",
    "__globals__",
    "__builtins__",
    "__import__",
    "__init__",
    "subclasses",
    ".class.",
    "|filter",
    "'system'",
    "\"system\"",
    "execute\"",
    "?new(",
    "config",
    "self.",
    "self|",
    "self._",
    "request.",
    "request|",
    "lipsum",
    "cycler",
    "joiner",
    "namespace",
    "getclass",
    "forname",
    "runtime",
    "processbuilder",
    "t(java",
    "new java",
    "exec(",
    "system(",
    "popen",
    "os.",
    "subprocess",
    "eval(",
    "|attr",
    "attr(",
    "freemarker",
    ".execute(",
    "_self.env",
    "registerundefinedfiltercallback",
    "getfilter",
    "constructor",
    "global.process",
    "smarty",
    "product.getclass",
    "class.module",
    "java.lang",
    "getenv",
    "$class",
    "velocity",
];

/// Template delimiters: open, close.
const DELIMITERS: &[(&str, &str)] = &[
    ("{{", "}}"),
    ("${", "}"),
    ("#{", "}"),
    ("<%=", "%>"),
    ("<%", "%>"),
    ("{%", "%}"),
    ("*{", "}"),
    ("@{", "}"),
    ("[[", "]]"),
    ("<#", ">"),
    ("{$", "}"),
    ("{php}", "{/php}"),
    ("#set(", ")"),
    ("@(", ")"),
];

fn template(lower: &str, out: &mut Vec<Finding>) {
    // One pass finds which delimiters open anywhere; only those are followed up.
    static OPENERS: std::sync::OnceLock<super::Needles> = std::sync::OnceLock::new();
    let openers = super::Needles::cached(&OPENERS, || DELIMITERS.iter().map(|(o, _)| *o).collect());
    let present: Vec<usize> = openers
        .first_of_each(lower)
        .into_iter()
        .map(|(index, _)| index)
        .collect();
    if present.is_empty() {
        return;
    }
    let mut best: Option<Finding> = None;
    for (index, (open, close)) in DELIMITERS.iter().enumerate() {
        // `<%` also opens where `<%=` was found (the longest match wins in the scan).
        // Openers overlap (`${{`): a scan that reports one may hide the other.
        let found = present.contains(&index)
            || lower.contains(open)
            || (*open == "<%" && present.iter().any(|i| DELIMITERS[*i].0 == "<%="))
            || (*open == "#set(" && contains!(lower, "#set("));
        if !found {
            continue;
        }
        let mut k = 0;
        while let Some(p) = lower[k..].find(open).map(|p| p + k) {
            k = p + open.len();
            let inner_all = &lower[k..];
            let Some(e) = inner_all.find(close) else {
                // An unclosed expression may still carry a payload.
                if *open != "[[" && *open != "@(" && dangerous(super::prefix(inner_all, 200)) {
                    best = Some(Finding::new(
                        ThreatType::TemplateInjection,
                        Severity::Medium,
                        0.6,
                        p,
                        lower.len().min(p + 80),
                    ));
                }
                break;
            };
            let inner = &inner_all[..e];
            if inner.len() > 500 {
                continue;
            }
            let danger = dangerous(inner);
            let arithmetic = is_arithmetic(inner);
            let plain_open = !matches!(*open, "[[" | "@(" | "#set(");
            // A call handed a system file (`{{ get_user_file("/etc/passwd") }}`): the
            // template is made to read it, whatever the function is called.
            let reads_file = inner.contains('(') && super::traversal::names_sensitive_file(inner);
            let f = if danger && (plain_open || inner.contains('(')) {
                Some((Severity::High, 0.9))
            } else if reads_file {
                Some((Severity::High, 0.85))
            } else if arithmetic {
                Some((Severity::High, 0.8))
            } else {
                None
            };
            if let Some((severity, confidence)) = f {
                let f = Finding::new(
                    ThreatType::TemplateInjection,
                    severity,
                    confidence,
                    p,
                    k + e + close.len(),
                );
                if best
                    .as_ref()
                    .is_none_or(|x| (f.severity, f.confidence) > (x.severity, x.confidence))
                {
                    best = Some(f);
                }
            }
        }
    }
    if let Some(f) = best {
        out.push(f);
    }
}

/// Whether a template expression reaches the runtime: a danger word used as an object
/// (`config.items()`, `self._TemplateReference__context`, `lipsum.__globals__`), or alone
/// (`{{config}}`), not as a plain variable name (`${namespace}`).
fn dangerous(inner: &str) -> bool {
    let whole = inner.trim();
    TEMPLATE_DANGER.iter().any(|d| {
        // `{{config}}`, `{{self}}`: the objects themselves (`${namespace}` is a variable).
        if matches!(whole, "config" | "self" | "request" | "settings") {
            return true;
        }
        let punctuated = d.ends_with(|c: char| !c.is_ascii_alphanumeric());
        inner.match_indices(d).any(|(p, _)| {
            punctuated
                || matches!(
                    inner.as_bytes().get(p + d.len()),
                    Some(b'.' | b'(' | b'[' | b'|' | b'_' | b')')
                )
        })
    })
}

/// `7*7`, `7 * '7'`, `1+1`: an expression a template would evaluate to prove it runs.
fn is_arithmetic(inner: &str) -> bool {
    let t: String = inner
        .chars()
        .filter(|c| !c.is_whitespace() && !matches!(c, '\'' | '"' | '{' | '}' | '(' | ')'))
        .collect();
    let Some(op) = t.find(['*', '+', '-', '/', '%']) else {
        return false;
    };
    let (a, b) = (&t[..op], &t[op + 1..]);
    !a.is_empty()
        && !b.is_empty()
        && a.chars().all(|c| c.is_ascii_digit())
        && b.chars().all(|c| c.is_ascii_digit())
}

fn xxe(lower: &str, out: &mut Vec<Finding>) {
    let Some(doctype) = find!(lower, "<!doctype").or_else(|| find!(lower, "<!entity")) else {
        if let Some(p) = find!(lower, "xi:include").or_else(|| find!(lower, "xinclude")) {
            out.push(Finding::new(
                ThreatType::Xxe,
                Severity::High,
                0.8,
                p,
                p + 10,
            ));
        }
        return;
    };
    let rest = &lower[doctype..];
    let entities = rest.matches("<!entity").count();
    let external = contains!(rest, " system")
        || contains!(rest, " public")
        || contains!(rest, "\"system")
        || contains!(rest, "%");
    let (severity, confidence) = if entities > 0 && external {
        if contains!(rest, "file:")
            || contains!(rest, "/etc/")
            || contains!(rest, "expect:")
            || contains!(rest, "php:")
        {
            (Severity::Critical, 0.95)
        } else {
            (Severity::High, 0.9)
        }
    } else if entities >= 3 {
        // Entity expansion (billion laughs).
        (Severity::High, 0.8)
    } else if entities > 0 && declared_entity_used(rest) {
        // An entity declared and referenced in one value: the parser's entity machinery
        // exercised, the first step of every XXE probe (`<!ENTITY foo "x">]><r>&foo;</r>`).
        (Severity::High, 0.75)
    } else if entities > 0 || contains!(rest, " system ") {
        (Severity::Medium, 0.6)
    } else {
        return;
    };
    out.push(Finding::new(
        ThreatType::Xxe,
        severity,
        confidence,
        doctype,
        (doctype + 80).min(lower.len()),
    ));
}

/// Whether an entity declared in `dtd` (`<!entity name ...`) is referenced as `&name;`.
fn declared_entity_used(dtd: &str) -> bool {
    dtd.match_indices("<!entity").any(|(p, decl)| {
        let after = dtd[p + decl.len()..].trim_start();
        let name_len = after
            .bytes()
            .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
            .count();
        name_len > 0 && {
            let reference = format!("&{};", &after[..name_len]);
            dtd.contains(&reference)
        }
    })
}

fn ssi(lower: &str, out: &mut Vec<Finding>) {
    for directive in [
        "exec", "include", "echo", "config", "printenv", "fsize", "flastmod", "set", "if", "elif",
    ] {
        for prefix in ["<!--#", "<!-- #"] {
            let needle = format!("{prefix}{directive}");
            if let Some(p) = position(lower, &needle) {
                let severity = if directive == "exec" || directive == "include" {
                    Severity::Critical
                } else {
                    Severity::High
                };
                out.push(Finding::new(
                    ThreatType::SsiInjection,
                    severity,
                    0.9,
                    p,
                    p + needle.len(),
                ));
                return;
            }
        }
    }
    if let Some(p) = find!(lower, "<esi:") {
        out.push(Finding::new(
            ThreatType::SsiInjection,
            Severity::High,
            0.85,
            p,
            p + 5,
        ));
    }
}

fn ldap(lower: &str, out: &mut Vec<Finding>) {
    let b = lower.as_bytes();
    // `)(` followed by a filter operator or an attribute assertion: a filter broken into.
    let mut k = 0;
    while let Some(p) = find!(&lower[k..], ")(").map(|p| p + k) {
        k = p + 2;
        let mut j = p + 2;
        while j < b.len() && b[j] == b' ' {
            j += 1;
        }
        let operator = matches!(b.get(j), Some(b'|' | b'&' | b'!'));
        let mut w = j;
        while w < b.len() && (b[w].is_ascii_alphanumeric() || b[w] == b'-' || b[w] == b'.') {
            w += 1;
        }
        let assertion = w > j && matches!(b.get(w), Some(b'=' | b'~' | b'>' | b'<'));
        let star_before = p > 0 && b[p - 1] == b'*';
        if operator || (assertion && (star_before || lower[w..].starts_with("=*"))) {
            out.push(Finding::new(
                ThreatType::LdapInjection,
                Severity::High,
                0.85,
                p.saturating_sub(1),
                (w + 2).min(b.len()),
            ));
            return;
        }
    }
    // A whole filter as the value: `(|(uid=*))`, `*)(objectclass=*`.
    for start in ["(|(", "(&(", "*)(", "*))"] {
        if let Some(p) = lower.find(start) {
            if contains!(&lower[p..], "=*")
                || contains!(&lower[p..], "objectclass")
                || start.starts_with('*') && p == 0
            {
                out.push(Finding::new(
                    ThreatType::LdapInjection,
                    Severity::High,
                    0.8,
                    p,
                    (p + 20).min(b.len()),
                ));
                return;
            }
        }
    }
}

/// MongoDB query operators.
const NOSQL_OPERATORS: &[&str] = &[
    "$ne",
    "$eq",
    "$gt",
    "$gte",
    "$lt",
    "$lte",
    "$in",
    "$nin",
    "$regex",
    "$where",
    "$exists",
    "$or",
    "$and",
    "$not",
    "$nor",
    "$expr",
    "$function",
    "$accumulator",
    "$elemmatch",
    "$type",
    "$mod",
    "$all",
    "$size",
    "$text",
    "$search",
    "$lookup",
    "$options",
    "$comment",
    "$natural",
];

fn nosql(place: Place, lower: &str, out: &mut Vec<Finding>) {
    // A JSON key or query parameter name that is an operator (`{"$ne": 1}`, `user[$ne]=`).
    if matches!(
        place,
        Place::JsonKey | Place::QueryName | Place::FormName | Place::CookieName
    ) {
        let key = lower.trim();
        let bare = key
            .rsplit('[')
            .next()
            .map(|k| k.trim_end_matches(']'))
            .unwrap_or(key);
        if NOSQL_OPERATORS.contains(&bare) || NOSQL_OPERATORS.contains(&key) {
            out.push(Finding::new(
                ThreatType::NosqlInjection,
                Severity::High,
                0.9,
                0,
                lower.len(),
            ));
            return;
        }
    }
    // Operators written inside a value: `{"$ne": null}`, `[$ne]=1`, `{$gt: ''}`.
    let operators: &[&str] = if lower.contains('$') {
        NOSQL_OPERATORS
    } else {
        &[]
    };
    for op in operators {
        let mut k = 0;
        while let Some(p) = lower[k..].find(op).map(|p| p + k) {
            k = p + op.len();
            let before = lower[..p].trim_end_matches([' ', '"', '\'']);
            let after = lower[k..].trim_start_matches([' ', '"', '\'']);
            let keyed = (before.ends_with('{') || before.ends_with(',') || before.ends_with('['))
                && (after.starts_with(':') || after.starts_with(']'));
            if keyed || *op == "$where" && after.starts_with([':', '=', '(']) {
                out.push(Finding::new(
                    ThreatType::NosqlInjection,
                    Severity::High,
                    0.85,
                    p,
                    k,
                ));
                return;
            }
        }
    }
    // JavaScript run by the database: `'; return true; var x='`, `' || '1'=='1`.
    static SCRIPT_NEEDLES: std::sync::OnceLock<super::Needles> = std::sync::OnceLock::new();
    let needles = super::Needles::cached(&SCRIPT_NEEDLES, || NOSQL_SCRIPT.to_vec());
    if let Some((index, p)) = needles.first_of_each(lower).first() {
        out.push(Finding::new(
            ThreatType::NosqlInjection,
            Severity::High,
            0.75,
            *p,
            p + NOSQL_SCRIPT[*index].len(),
        ));
    }
}

/// JavaScript a document database would run.
const NOSQL_SCRIPT: &[&str] = &[
    "; return true",
    ";return true",
    ";return 1",
    "return this.",
    "&& this.",
    "|| this.",
    "db.injection",
    ".mapreduce(",
    "'=='",
    "\"==\"",
    "this.password",
    "db.getcollection",
    "db.users.",
    "sleep(5000)",
];

/// Response headers an injected line would set.
const HEADERS: &[&str] = &[
    "set-cookie",
    "location",
    "content-type",
    "content-length",
    "refresh",
    "x-xss-protection",
    "access-control-allow-origin",
    "access-control-allow-credentials",
    "transfer-encoding",
    "content-security-policy",
    "cache-control",
    "host",
    "x-forwarded-for",
    "link",
    "content-disposition",
    "http/1.",
    "x-frame-options",
];

fn crlf(place: Place, lower: &str, encoded_newline: bool, out: &mut Vec<Finding>) {
    // Free text (JSON strings, bodies) has line breaks; URLs and headers never should, and
    // nobody percent-encodes one into a sentence.
    let structured = encoded_newline
        || matches!(
            place,
            Place::Path
                | Place::QueryName
                | Place::QueryValue
                | Place::Header
                | Place::CookieName
                | Place::CookieValue
        );
    let b = lower.as_bytes();
    for p in memchr::memchr2_iter(b'\r', b'\n', b) {
        let line = lower[p + 1..].trim_start_matches(['\r', '\n', ' ', '\t']);
        // Every header name starts with a letter; lines of prose and code mostly do too, but
        // this skips blank lines, indentation runs and lines of punctuation at once.
        if !line.starts_with(|c: char| c.is_ascii_lowercase()) {
            continue;
        }
        let first = line.as_bytes()[0];
        let header = HEADERS.iter().find(|h| {
            h.as_bytes().first() == Some(&first)
                && line.starts_with(*h)
                && line[h.len()..].trim_start().starts_with([':', ' ', '/'])
                && !h.is_empty()
        });
        if let Some(h) = header {
            let severity = if structured {
                Severity::High
            } else {
                Severity::Medium
            };
            out.push(Finding::new(
                ThreatType::CrlfInjection,
                severity,
                0.85,
                p,
                (p + 1 + h.len()).min(b.len()),
            ));
            return;
        }
        if structured && place == Place::Path {
            out.push(Finding::new(
                ThreatType::CrlfInjection,
                Severity::High,
                0.7,
                p,
                p + 1,
            ));
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(place: Place, raw: &str) -> Option<(ThreatType, Severity)> {
        let normalized = super::super::decode::normalize(raw, false);
        let lower = normalized.text.to_ascii_lowercase();
        let mut out = Vec::new();
        detect(place, &lower, normalized.encoded_newline, &mut out);
        out.into_iter()
            .map(|f| (f.threat, f.severity))
            .max_by_key(|(_, s)| *s)
    }

    #[test]
    fn injections_of_each_kind() {
        use ThreatType::*;
        for (raw, kind) in [
            ("{{7*7}}", TemplateInjection),
            ("${{7*7}}", TemplateInjection),
            ("{{config.items()}}", TemplateInjection),
            ("${T(java.lang.Runtime).getRuntime().exec('id')}", TemplateInjection),
            ("<%= 7 * 7 %>", TemplateInjection),
            ("{{''.__class__.__mro__[1].__subclasses__()}}", TemplateInjection),
            ("{{ get_user_file(\"/etc/passwd\") }}", TemplateInjection),
            ("<!DOCTYPE x [<!ENTITY foo \"aaaaaa\">]><root>&foo;</root>", Xxe),
            ("{{ read(\"C:\\boot.ini\") }}", TemplateInjection),
            ("<?xml version=\"1.0\"?><!DOCTYPE x [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]><x>&xxe;</x>", Xxe),
            ("*)(uid=*))(|(uid=*", LdapInjection),
            ("admin)(&(password=*))", LdapInjection),
            ("{\"$ne\": null}", NosqlInjection),
            ("'; return true; var x='", NosqlInjection),
            ("<!--#exec cmd=\"/bin/ls /\" -->", SsiInjection),
            ("/%0d%0aSet-Cookie:crlf=injection", CrlfInjection),
            ("/%25%30aSet-Cookie:crlf=injection", CrlfInjection),
        ] {
            let got = found(Place::QueryValue, raw);
            assert!(
                got.as_ref().is_some_and(|(t, s)| *t == kind && *s >= Severity::High),
                "{raw:?}: {got:?}"
            );
        }
        // A percent-encoded line break in a JSON string is meant for a header.
        assert_eq!(
            found(Place::JsonValue, "%0d%0aSet-Cookie: a=b"),
            Some((CrlfInjection, Severity::High))
        );
        assert_eq!(
            found(Place::JsonKey, "$gt").map(|(t, _)| t),
            Some(NosqlInjection)
        );
        assert_eq!(
            found(Place::QueryName, "username[$ne]").map(|(t, _)| t),
            Some(NosqlInjection)
        );
    }

    #[test]
    fn templates_and_text_that_look_alike() {
        for benign in [
            "Hello {{name}}, welcome",
            "echo ${HOME}/bin",
            "cost is $5 or $10",
            "(a)(b) and (c)",
            "price list:\nContent is king",
            "[[1, 2], [3, 4]]",
            "<!-- a comment -->",
            "f(x)(y) = z",
            "{{ format(\"passwd\") }} shows the label",
        ] {
            let got = found(Place::JsonValue, benign);
            assert!(
                got.as_ref().is_none_or(|(_, s)| *s < Severity::High),
                "{benign:?}: {got:?}"
            );
        }
    }
}
