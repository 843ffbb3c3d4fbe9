//! Where the application will read input from: the URL path, query and form argument names
//! and values, cookies, headers, JSON bodies walked recursively (keys too), with MCP
//! `tools/call` arguments labelled by tool and argument so the policy can judge them, and XML
//! bodies walked into element text and attribute values (roxmltree, DTDs refused).
//!
//! The JSON walk is a serde visitor over the body: strings without escapes are borrowed, no
//! `serde_json::Value` tree is built, and serde_json's recursion limit bounds the depth.

use std::borrow::Cow;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// Where in the request a value sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Place {
    /// The URL path.
    Path,
    /// A query argument's name.
    QueryName,
    /// A query argument's value.
    QueryValue,
    /// A form argument's name (urlencoded or multipart).
    FormName,
    /// A form argument's value.
    FormValue,
    /// A cookie's name.
    CookieName,
    /// A cookie's value.
    CookieValue,
    /// A header's value.
    Header,
    /// A key in a JSON body.
    JsonKey,
    /// A string in a JSON body.
    JsonValue,
    /// An XML element's text or attribute value.
    XmlValue,
    /// A body of another kind (XML, text), whole.
    Body,
}

impl Place {
    /// The prefix used in indicator locations.
    pub fn label(self) -> &'static str {
        match self {
            Place::Path => "path",
            Place::QueryName => "query_name",
            Place::QueryValue => "query",
            Place::FormName => "form_name",
            Place::FormValue => "form",
            Place::CookieName => "cookie_name",
            Place::CookieValue => "cookie",
            Place::Header => "header",
            Place::JsonKey => "json_key",
            Place::JsonValue => "json",
            Place::XmlValue => "xml",
            Place::Body => "body",
        }
    }

    /// Whether `+` means a space here.
    pub fn is_form_encoded(self) -> bool {
        matches!(
            self,
            Place::QueryName | Place::QueryValue | Place::FormName | Place::FormValue
        )
    }
}

/// One value to inspect.
#[derive(Debug, Clone)]
pub struct Field<'a> {
    /// Where it sits.
    pub place: Place,
    /// The argument, header or cookie name, or the JSON path (`params.arguments.query`).
    pub name: Cow<'a, str>,
    /// The value as sent.
    pub raw: Cow<'a, str>,
    /// The MCP tool whose argument this is (`tools/call`).
    pub tool: Option<Cow<'a, str>>,
    /// Where in `name` the tool argument (the top-level key under `params.arguments`) is:
    /// a range rather than a copy, since it is read only when something was found.
    argument_at: Option<(usize, usize)>,
}

impl<'a> Field<'a> {
    fn new(place: Place, name: impl Into<Cow<'a, str>>, raw: impl Into<Cow<'a, str>>) -> Self {
        Field {
            place,
            name: name.into(),
            raw: raw.into(),
            tool: None,
            argument_at: None,
        }
    }

    /// The tool argument this is, or is under (`tools/call`): `sql` for
    /// `params.arguments.sql` and `params.arguments.sql.parts[0]`.
    pub fn argument(&self) -> Option<&str> {
        let (start, end) = self.argument_at?;
        self.name.get(start..end)
    }
}

/// Headers whose values are structured and carry nothing an application interprets as
/// free text (or are secrets that must not be echoed into logs).
const SKIPPED_HEADERS: &[&str] = &[
    "accept",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "authorization",
    "cache-control",
    "connection",
    "content-length",
    "content-type",
    "cookie",
    "dnt",
    "host",
    "if-modified-since",
    "if-none-match",
    "keep-alive",
    "last-event-id",
    "mcp-protocol-version",
    "mcp-session-id",
    "pragma",
    "priority",
    "proxy-authorization",
    "te",
    "upgrade-insecure-requests",
    "x-request-id",
];

/// Adds the path, query arguments, cookies and headers of a request.
pub fn from_head<'a>(
    path: &'a str,
    query: Option<&'a str>,
    headers: &[(&'a str, &'a str)],
    out: &mut Vec<Field<'a>>,
) {
    out.push(Field::new(Place::Path, "", path));
    if let Some(query) = query {
        pairs(query, '&', Place::QueryName, Place::QueryValue, out);
    }
    for (name, value) in headers {
        if name.eq_ignore_ascii_case("cookie") {
            pairs(value, ';', Place::CookieName, Place::CookieValue, out);
            continue;
        }
        // A content type is a media type and parameters; one holding an expression
        // (`%{(#_memberAccess...)}`, Struts' CVE-2017-5638) is read as any other value.
        let trimmed = name.trim();
        let expression = trimmed.eq_ignore_ascii_case("content-type")
            && value.contains(['{', '$', '(', '<', '`']);
        if !expression
            && SKIPPED_HEADERS
                .iter()
                .any(|s| s.eq_ignore_ascii_case(trimmed))
        {
            continue;
        }
        out.push(Field::new(Place::Header, *name, *value));
    }
}

/// `a=1&b=2` (or cookies' `a=1; b=2`) into names and values.
fn pairs<'a>(text: &'a str, separator: char, name: Place, value: Place, out: &mut Vec<Field<'a>>) {
    for pair in text.split(separator) {
        let pair = pair.trim_start();
        if pair.is_empty() {
            continue;
        }
        match pair.split_once('=') {
            Some((n, v)) => {
                if !n.is_empty() {
                    out.push(Field::new(name, n, n));
                }
                if !v.is_empty() {
                    out.push(Field::new(value, n, v));
                }
            }
            None => out.push(Field::new(name, pair, pair)),
        }
    }
}

/// What a body holds, from its content type and first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyShape {
    /// JSON.
    Json,
    /// `application/x-www-form-urlencoded`.
    Form,
    /// `multipart/form-data` with this boundary position in the content type.
    Multipart,
    /// XML (`application/xml`, `text/xml`, `application/soap+xml`, or a body opening with
    /// `<?xml`).
    Xml,
    /// Anything else, inspected whole.
    Text,
}

/// The shape of a body with this content type.
pub fn body_shape(content_type: Option<&str>, body: &[u8]) -> BodyShape {
    let ct = content_type.unwrap_or("").to_ascii_lowercase();
    if super::has(&ct, "json") {
        return BodyShape::Json;
    }
    if ct.starts_with("application/x-www-form-urlencoded") {
        return BodyShape::Form;
    }
    if ct.starts_with("multipart/form-data") {
        return BodyShape::Multipart;
    }
    if super::has(&ct, "xml") {
        return BodyShape::Xml;
    }
    let guessable = ct.is_empty() || ct.starts_with("text/plain");
    let start = body
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(body.len());
    match body.get(start) {
        Some(b'{' | b'[') if guessable => BodyShape::Json,
        Some(b'<') if guessable && body[start..].starts_with(b"<?xml") => BodyShape::Xml,
        _ => BodyShape::Text,
    }
}

/// Adds the values of a body.
pub fn from_body<'a>(body: &'a str, content_type: Option<&'a str>, out: &mut Vec<Field<'a>>) {
    if body.is_empty() {
        return;
    }
    match body_shape(content_type, body.as_bytes()) {
        BodyShape::Json => {
            if !json(body, out) {
                out.push(Field::new(Place::Body, "", body));
            }
        }
        BodyShape::Form => pairs(body, '&', Place::FormName, Place::FormValue, out),
        BodyShape::Multipart => {
            let boundary = content_type
                .and_then(|ct| {
                    ct.split(';')
                        .filter_map(|p| p.trim().split_once('='))
                        .find(|(k, _)| k.trim().eq_ignore_ascii_case("boundary"))
                        .map(|(_, v)| v.trim().trim_matches('"'))
                })
                .unwrap_or("");
            if boundary.is_empty() || !multipart(body, boundary, out) {
                out.push(Field::new(Place::Body, "", body));
            }
        }
        BodyShape::Xml => {
            // The document whole too: a DOCTYPE (XXE) is refused by the parser below and is
            // judged on the raw text, and names of elements and attributes (a Java class
            // as an element) are not in the walked values.
            xml(body, out);
            out.push(Field::new(Place::Body, "", body));
        }
        BodyShape::Text => out.push(Field::new(Place::Body, "", body)),
    }
}

/// Nodes read from one XML body at most; a bigger document is judged whole only.
const MAX_XML_NODES: u32 = 20_000;

/// Walks an XML body into `out`: each element's text and each attribute's value, entities
/// decoded, named by element path (`root/a`, `root/a@probe`): what an application reading
/// the document sees, and where ModSecurity's XML processor looks. False when it does not
/// parse (a DTD included: entities are never expanded here), and then nothing is added.
pub fn xml(body: &str, out: &mut Vec<Field<'_>>) -> bool {
    let options = roxmltree::ParsingOptions {
        allow_dtd: false,
        nodes_limit: MAX_XML_NODES,
        ..roxmltree::ParsingOptions::default()
    };
    let Ok(document) = roxmltree::Document::parse_with_options(body, options) else {
        return false;
    };
    // The nearest few elements name a value: enough to tell `user/name` from `order/name`,
    // and bounded however deep the document nests.
    let path = |node: roxmltree::Node<'_, '_>| {
        let mut names: Vec<&str> = node
            .ancestors()
            .filter(|n| n.is_element())
            .take(4)
            .map(|n| n.tag_name().name())
            .collect();
        names.reverse();
        names.join("/")
    };
    for node in document.descendants() {
        if node.is_element() {
            let mut at = None;
            for attribute in node.attributes() {
                if !attribute.value().trim().is_empty() {
                    let at = at.get_or_insert_with(|| path(node));
                    out.push(Field::new(
                        Place::XmlValue,
                        format!("{at}@{}", attribute.name()),
                        attribute.value().to_string(),
                    ));
                }
            }
        } else if let Some(text) = node
            .text()
            .filter(|t| node.is_text() && !t.trim().is_empty())
        {
            let element = node.parent().map(path).unwrap_or_default();
            out.push(Field::new(Place::XmlValue, element, text.to_string()));
        }
    }
    true
}

/// The parts of a multipart body: each part's name, file name and content. False when it
/// does not parse (then the body is inspected whole).
fn multipart<'a>(body: &'a str, boundary: &str, out: &mut Vec<Field<'a>>) -> bool {
    let delimiter = format!("--{boundary}");
    let mut found = false;
    for part in body.split(delimiter.as_str()).skip(1) {
        if part.starts_with("--") {
            break;
        }
        let part = part.trim_start_matches(['\r', '\n']);
        let Some((head, content)) = part
            .split_once("\r\n\r\n")
            .or_else(|| part.split_once("\n\n"))
        else {
            continue;
        };
        found = true;
        let mut name = "";
        for line in head.lines() {
            let Some((header, value)) = line.split_once(':') else {
                continue;
            };
            if !header.trim().eq_ignore_ascii_case("content-disposition") {
                // Other part headers (Content-Type) can carry payloads too.
                out.push(Field::new(Place::Header, header.trim(), value.trim()));
                continue;
            }
            for param in value.split(';').skip(1) {
                if let Some((k, v)) = param.trim().split_once('=') {
                    let v = v.trim().trim_matches('"');
                    if k.eq_ignore_ascii_case("name") {
                        name = v;
                        out.push(Field::new(Place::FormName, v, v));
                    } else if k.eq_ignore_ascii_case("filename") {
                        out.push(Field::new(Place::FormValue, "filename", v));
                    }
                }
            }
        }
        let content = content
            .strip_suffix("\r\n")
            .or_else(|| content.strip_suffix('\n'))
            .unwrap_or(content);
        if !content.is_empty() {
            out.push(Field::new(Place::FormValue, name, content));
        }
    }
    found
}

/// Walks a JSON body into `out`; false when it is not JSON. Tool arguments of JSON-RPC
/// `tools/call` messages (single or batched) are labelled with their tool and argument.
pub fn json<'a>(body: &'a str, out: &mut Vec<Field<'a>>) -> bool {
    let start = out.len();
    let mut walker = Walker {
        out,
        // Room for the usual depth (`params.arguments.options.tags[1]`) without regrowing.
        path: String::with_capacity(96),
    };
    let mut de = serde_json::Deserializer::from_str(body);
    if (Node {
        walker: &mut walker,
    })
    .deserialize(&mut de)
    .is_err()
        || de.end().is_err()
    {
        out.truncate(start);
        return false;
    }
    label_tool_arguments(&mut out[start..]);
    true
}

/// Finds each message's `params.name` (the tool) and labels the fields under its
/// `params.arguments`.
fn label_tool_arguments(fields: &mut [Field<'_>]) {
    // Message prefixes ("" for a single message, "[i]." in a batch) and their tools. The
    // usual request has one message: no allocation then (an empty prefix is not one, and
    // the tool is borrowed from the body when it has no escapes).
    let mut tools: Vec<(String, Cow<'_, str>)> = Vec::new();
    for f in fields.iter() {
        if f.place != Place::JsonValue {
            continue;
        }
        if let Some(prefix) = f.name.strip_suffix("params.name") {
            if prefix.is_empty() || (prefix.starts_with('[') && prefix.ends_with("].")) {
                tools.push((prefix.to_string(), f.raw.clone()));
            }
        }
    }
    for f in fields.iter_mut() {
        for (prefix, tool) in &tools {
            let Some(rest) = f
                .name
                .strip_prefix(prefix.as_str())
                .and_then(|r| r.strip_prefix("params.arguments"))
            else {
                continue;
            };
            if rest.is_empty() {
                f.tool = Some(tool.clone());
                continue;
            }
            if !rest.starts_with('.') {
                continue;
            }
            // The argument runs from after the dot to the next `.` or `[`.
            let start = f.name.len() - rest.len() + 1;
            let end = f.name.as_bytes()[start..]
                .iter()
                .position(|b| matches!(b, b'.' | b'['))
                .map_or(f.name.len(), |p| start + p);
            f.tool = Some(tool.clone());
            f.argument_at = Some((start, end));
            break;
        }
    }
}

/// A JSON key that is a plain identifier (`arguments`, `max-results`): nothing to judge, and an
/// MCP request has a dozen, so it is not listed (no path copied for it). `__proto__`,
/// `constructor` and `prototype` are identifiers that pollute prototypes: listed.
pub(crate) fn plain_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 64
        && key
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
        && !key.starts_with("__")
        && !matches!(key, "constructor" | "prototype")
}

/// A map key, borrowed from the body when it has no escapes (serde's own `Cow<str>` always
/// copies: an allocation per key).
struct Key;

impl<'de> DeserializeSeed<'de> for Key {
    type Value = Cow<'de, str>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Cow<'de, str>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(v.to_string()))
    }
}

struct Walker<'o, 'a> {
    out: &'o mut Vec<Field<'a>>,
    path: String,
}

struct Node<'w, 'o, 'a> {
    walker: &'w mut Walker<'o, 'a>,
}

impl<'de: 'a, 'a> DeserializeSeed<'de> for Node<'_, '_, 'a> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de: 'a, 'a> Visitor<'de> for Node<'_, '_, 'a> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JSON")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<(), E> {
        let name = self.walker.path.clone();
        self.walker.out.push(Field::new(Place::JsonValue, name, v));
        Ok(())
    }

    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        let name = self.walker.path.clone();
        self.walker
            .out
            .push(Field::new(Place::JsonValue, name, v.to_string()));
        Ok(())
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let base = self.walker.path.len();
        let mut index = 0usize;
        let mut digits = [0u8; 20];
        loop {
            // `[index]`, written without the formatting machinery (an array of strings pays
            // this per element).
            let mut n = index;
            let mut d = digits.len();
            loop {
                d -= 1;
                digits[d] = b'0' + (n % 10) as u8;
                n /= 10;
                if n == 0 {
                    break;
                }
            }
            self.walker.path.push('[');
            // ASCII digits: always UTF-8.
            self.walker
                .path
                .push_str(std::str::from_utf8(&digits[d..]).unwrap_or("0"));
            self.walker.path.push(']');
            let more = seq.next_element_seed(Node {
                walker: self.walker,
            })?;
            self.walker.path.truncate(base);
            if more.is_none() {
                return Ok(());
            }
            index += 1;
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let base = self.walker.path.len();
        while let Some(key) = map.next_key_seed(Key)? {
            if base > 0 {
                self.walker.path.push('.');
            }
            self.walker.path.push_str(&key);
            if !plain_key(&key) {
                let name = self.walker.path.clone();
                self.walker.out.push(Field::new(Place::JsonKey, name, key));
            }
            map.next_value_seed(Node {
                walker: self.walker,
            })?;
            self.walker.path.truncate(base);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(fields: &[Field<'_>]) -> Vec<(Place, String, String)> {
        fields
            .iter()
            .map(|f| (f.place, f.name.to_string(), f.raw.to_string()))
            .collect()
    }

    #[test]
    fn query_cookies_and_headers() {
        let mut out = Vec::new();
        from_head(
            "/a/b",
            Some("q=1+2&flag&=x&n="),
            &[
                ("User-Agent", "curl/8"),
                ("Cookie", "a=1; b=2"),
                ("Accept", "*/*"),
            ],
            &mut out,
        );
        assert_eq!(
            names(&out),
            vec![
                (Place::Path, "".into(), "/a/b".into()),
                (Place::QueryName, "q".into(), "q".into()),
                (Place::QueryValue, "q".into(), "1+2".into()),
                (Place::QueryName, "flag".into(), "flag".into()),
                (Place::QueryValue, "".into(), "x".into()),
                (Place::QueryName, "n".into(), "n".into()),
                (Place::Header, "User-Agent".into(), "curl/8".into()),
                (Place::CookieName, "a".into(), "a".into()),
                (Place::CookieValue, "a".into(), "1".into()),
                (Place::CookieName, "b".into(), "b".into()),
                (Place::CookieValue, "b".into(), "2".into()),
            ]
        );
    }

    #[test]
    fn array_elements_are_named_by_index() {
        let items: Vec<String> = (0..12).map(|i| format!("\"v{i}\"")).collect();
        let body = format!("{{\"list\":[{}],\"x\":[[\"deep\"]]}}", items.join(","));
        let mut out = Vec::new();
        assert!(json(&body, &mut out));
        let name = |raw: &str| {
            out.iter()
                .find(|f| f.raw == raw)
                .map(|f| f.name.to_string())
        };
        assert_eq!(name("v0").as_deref(), Some("list[0]"));
        assert_eq!(name("v10").as_deref(), Some("list[10]"));
        assert_eq!(name("v11").as_deref(), Some("list[11]"));
        assert_eq!(name("deep").as_deref(), Some("x[0][0]"));
    }

    #[test]
    fn json_rpc_tool_arguments_are_labelled_in_batches_too() {
        let body = r#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"arguments":{"sql":"select 1","opts":{"deep":["x"]}},"name":"run_sql"}},
                      {"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"search","arguments":{"q":"caf\u00e9"}}}]"#;
        let mut out = Vec::new();
        assert!(json(body, &mut out));
        let sql = out.iter().find(|f| f.raw == "select 1").expect("sql value");
        assert_eq!(sql.name, "[0].params.arguments.sql");
        assert_eq!(sql.tool.as_deref(), Some("run_sql"));
        assert_eq!(sql.argument(), Some("sql"));
        let deep = out.iter().find(|f| f.raw == "x").expect("deep");
        assert_eq!(deep.name, "[0].params.arguments.opts.deep[0]");
        assert_eq!(deep.argument(), Some("opts"));
        let q = out.iter().find(|f| f.raw == "café").expect("escaped");
        assert_eq!(q.tool.as_deref(), Some("search"));
        // Plain identifiers as keys are not listed; anything else is.
        assert!(!out
            .iter()
            .any(|f| f.place == Place::JsonKey && f.raw == "deep"));
        let mut odd = Vec::new();
        assert!(json(
            r#"{"a":{"$where":"x","__proto__":{},"b c":1}}"#,
            &mut odd
        ));
        let keys: Vec<&str> = odd
            .iter()
            .filter(|f| f.place == Place::JsonKey)
            .map(|f| &*f.name)
            .collect();
        assert_eq!(keys, ["a.$where", "a.__proto__", "a.b c"]);
        let method = out.iter().find(|f| f.name == "[1].method").expect("method");
        assert_eq!(method.tool, None);
    }

    #[test]
    fn bodies_by_content_type() {
        let mut out = Vec::new();
        from_body(
            "a=1&b=%3Cx",
            Some("application/x-www-form-urlencoded"),
            &mut out,
        );
        assert_eq!(out[3].raw, "%3Cx");
        let mut out = Vec::new();
        let body = "--XX\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.php\"\r\nContent-Type: text/plain\r\n\r\nhello\r\n--XX--\r\n";
        from_body(body, Some("multipart/form-data; boundary=XX"), &mut out);
        let got = names(&out);
        assert!(
            got.contains(&(Place::FormValue, "f".into(), "hello".into())),
            "{got:?}"
        );
        assert!(got.contains(&(Place::FormValue, "filename".into(), "a.php".into())));
        let mut out = Vec::new();
        from_body("{not json", Some("application/json"), &mut out);
        assert_eq!(
            names(&out),
            vec![(Place::Body, "".into(), "{not json".into())]
        );
        let mut out = Vec::new();
        from_body("<?xml version=\"1.0\"?><a/>", Some("text/xml"), &mut out);
        assert_eq!(out[0].place, Place::Body);
    }

    #[test]
    fn xml_bodies_are_walked_into_text_and_attribute_values() {
        let body = "<?xml version=\"1.0\"?><root><a probe=\"1 &quot;x\">t&lt;1</a>\n <b/></root>";
        let mut out = Vec::new();
        from_body(body, Some("application/xml"), &mut out);
        let got = names(&out);
        assert!(
            got.contains(&(Place::XmlValue, "root/a@probe".into(), "1 \"x".into())),
            "{got:?}"
        );
        assert!(
            got.contains(&(Place::XmlValue, "root/a".into(), "t<1".into())),
            "{got:?}"
        );
        // Whitespace between elements is not a value; the document is also judged whole.
        assert_eq!(got.len(), 3, "{got:?}");
        assert_eq!(out[2].place, Place::Body);
        // Sniffed without a content type; a DTD is not parsed (entities never expand).
        let mut out = Vec::new();
        from_body("<?xml version=\"1.0\"?><x>v</x>", None, &mut out);
        assert_eq!(out[0].place, Place::XmlValue);
        let mut out = Vec::new();
        let xxe = "<?xml version=\"1.0\"?><!DOCTYPE x [<!ENTITY e SYSTEM \"file:///etc/passwd\">]><x>&e;</x>";
        from_body(xxe, Some("text/xml"), &mut out);
        assert_eq!(names(&out), vec![(Place::Body, "".into(), xxe.into())]);
    }

    #[test]
    fn deep_json_is_refused_not_a_stack_overflow() {
        let body = "[".repeat(100_000);
        let mut out = Vec::new();
        assert!(!json(&body, &mut out));
        assert!(out.is_empty());
    }
}
