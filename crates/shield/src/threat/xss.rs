//! Cross-site scripting: markup and script that a browser would run if the application echoed
//! the value into a page.
//!
//! Judged in context rather than by words: a tag is only a tag when `<` is directly followed
//! by a tag name (`a < b && c > d` is not markup); an event handler is only one inside a tag
//! or after a quote that closes an attribute (`" onmouseover=`); `javascript:` is only a URL
//! when what follows runs (`javascript:alert(1)`, not "JavaScript: The Good Parts"); script
//! calls (`alert(`, `document.cookie`) count alone as a weak sign and with a breakout
//! (`";alert(1)//`) as an attack.
//!
//! Probes count too when they are a field's whole value: an event handler's name
//! (`onMouseOut`, sent to learn which handlers a filter lets through) and short one-line markup
//! led by a page-level tag (`<head>`, `</style>`, `<input ...>`). A prompt quoting an HTML page
//! is a document, not a probe, and rich-text formatting (`<p>`, `<b>`) is left alone.

use super::{has, position, Finding, Literal, Needles, Severity, Strongest, ThreatType};

/// Tags that run script or load content by themselves.
const ACTIVE_TAGS: &[&str] = &[
    "script", "iframe", "frame", "frameset", "object", "embed", "applet", "base", "isindex", "xss",
    "svg", "math", "portal", "import", "layer", "ilayer", "bgsound", "vmlframe",
];

/// Attributes that load or run something whatever their value looks like (libinjection's
/// black attributes): namespaces that switch the parser to XML/SVG, SVG animation that
/// rewrites another attribute, IE data binding, form and frame sources.
const ACTIVE_ATTRIBUTES: &[&str] = &[
    "xmlns",
    "xlink:href",
    "attributename",
    "datasrc",
    "dataformatas",
    "datafld",
    "formaction",
    "srcdoc",
    "dynsrc",
    "lowsrc",
];

/// What in a `style` attribute or sheet runs code or loads a resource.
const ACTIVE_CSS: &[&str] = &[
    "expression(",
    "@import",
    "behavior:",
    "-moz-binding",
    "url(",
    "javascript:",
];

/// Tags that are harmless without a handler or a script URL, but common carriers.
const CARRIER_TAGS: &[&str] = &[
    "img",
    "image",
    "body",
    "input",
    "video",
    "audio",
    "source",
    "details",
    "marquee",
    "a",
    "div",
    "table",
    "td",
    "style",
    "link",
    "meta",
    "form",
    "button",
    "select",
    "textarea",
    "keygen",
    "html",
    "animate",
    "set",
    "template",
    "span",
    "p",
    "b",
    "i",
    "u",
    "font",
    "br",
    "h1",
    "object",
    "title",
    "head",
    "style",
    "video",
    "track",
    "picture",
    "dialog",
    "menu",
    "noscript",
    "plaintext",
    "listing",
    "xmp",
    "animatetransform",
    "animatemotion",
    "use",
    "foreignobject",
    "discard",
    "feimage",
    "handler",
    "x",
    "abbr",
    "acronym",
    "address",
    "area",
    "article",
    "aside",
    "bdo",
    "big",
    "blink",
    "blockquote",
    "canvas",
    "caption",
    "center",
    "cite",
    "code",
    "col",
    "colgroup",
    "command",
    "content",
    "data",
    "datalist",
    "dd",
    "del",
    "dfn",
    "dir",
    "dl",
    "dt",
    "element",
    "em",
    "fieldset",
    "figcaption",
    "figure",
    "footer",
    "header",
    "hgroup",
    "hr",
    "ins",
    "kbd",
    "label",
    "legend",
    "li",
    "main",
    "map",
    "mark",
    "meter",
    "multicol",
    "nav",
    "nextid",
    "nobr",
    "noembed",
    "noframes",
    "ol",
    "optgroup",
    "option",
    "output",
    "param",
    "pre",
    "progress",
    "q",
    "rb",
    "rp",
    "rt",
    "rtc",
    "ruby",
    "s",
    "samp",
    "section",
    "shadow",
    "small",
    "spacer",
    "strike",
    "strong",
    "sub",
    "summary",
    "sup",
    "tbody",
    "tfoot",
    "th",
    "thead",
    "time",
    "tr",
    "tt",
    "ul",
    "var",
    "wbr",
];

/// Script calls and properties that mean "run this" or "steal that".
const SINKS: &[&str] = &[
    "alert(",
    "alert`",
    "prompt(",
    "confirm(",
    "eval(",
    "document.cookie",
    "document.domain",
    "document.write",
    "document.location",
    "window.location",
    "location.href",
    ".innerhtml",
    "fromcharcode(",
    "settimeout(",
    "setinterval(",
    "constructor(",
    "atob(",
    "import(",
    "fetch(",
    "xmlhttprequest",
    "window[",
    "top[",
    "self[",
];

fn is_tag_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b':' || b == b'_'
}

/// Where the name of the tag whose `<` is at `lt` starts and ends (after a closing tag's `/`);
/// empty when no name follows.
fn tag_name(b: &[u8], lt: usize) -> (usize, usize) {
    let mut j = lt + 1;
    if b.get(j) == Some(&b'/') {
        j += 1;
    }
    let start = j;
    while j < b.len() && is_tag_char(b[j]) {
        j += 1;
    }
    (start, j)
}

/// Looks for XSS in a decoded value (`lower` is its ASCII-lowercase copy).
pub fn detect(text: &str, lower: &str, out: &mut Vec<Finding>) {
    let b = lower.as_bytes();
    let mut best = Strongest::default();
    let mut keep = |f: Finding| best.keep(f);
    // Tags.
    let mut tags = 0usize;
    // Once a tag runs to the end of the value unclosed, every later tag lies inside it: its
    // attributes were read already, and reading them again per tag would be quadratic.
    let mut unclosed_seen = false;
    let mut i = 0;
    // `memchr`, not `str::find`: code has a `<` every few lines (`Vec<u32>`, `a < b`).
    while let Some(p) = memchr::memchr(b'<', &b[i..]).map(|p| p + i) {
        i = p + 1;
        let (name_start, j) = tag_name(b, p);
        if j == name_start || !b[name_start].is_ascii_alphabetic() {
            // `<!--` comments and `<%` are other detectors' business; `< b` is not a tag.
            continue;
        }
        let name = &lower[name_start..j];
        // A tag name ends at whitespace, `/`, `>` or the end of the value.
        let delimited = matches!(
            b.get(j),
            None | Some(b' ' | b'\t' | b'\n' | b'\r' | b'/' | b'>' | 0x0c)
        );
        if !delimited {
            continue;
        }
        tags += 1;
        let fresh = !unclosed_seen;
        let tag_end = if fresh {
            memchr::memchr(b'>', &b[j..]).map_or(b.len(), |e| j + e)
        } else {
            b.len()
        };
        let inside = if fresh { &lower[j..tag_end] } else { "" };
        unclosed_seen |= tag_end == b.len();
        if let Some(h) = handler(inside) {
            keep(Finding::new(
                ThreatType::XssAttack,
                Severity::High,
                0.95,
                p,
                j + h,
            ));
            continue;
        }
        if script_url(inside).is_some() {
            keep(Finding::new(
                ThreatType::XssAttack,
                Severity::High,
                0.9,
                p,
                tag_end,
            ));
            continue;
        }
        // A script scheme as an attribute's value runs whatever follows it, written out or
        // not yet (`<img src="livescript:[code]">`).
        if let Some(at) = scheme_attribute(inside) {
            keep(Finding::new(
                ThreatType::XssAttack,
                Severity::High,
                0.8,
                p,
                j + at,
            ));
            continue;
        }
        // Namespaces are XML's own business in a prefixed element (`<soap:Envelope
        // xmlns:soap=...>`); on an HTML-looking element they switch the parser.
        let xml_element = name.contains(':');
        if let Some((at, end)) = active_attribute(inside, xml_element) {
            keep(Finding::new(
                ThreatType::XssAttack,
                Severity::High,
                0.8,
                p,
                j + end.max(at),
            ));
            continue;
        }
        let local = name.rsplit(':').next().unwrap_or(name);
        if ACTIVE_TAGS.contains(&local) {
            // `<script>`, `<iframe src=...>`: High when it opens properly.
            let closed = tag_end < b.len() || matches!(b.get(j), Some(b' ' | b'/'));
            // "<script> tags go at the end of <body>": a bare opening tag followed by words
            // and no script in sight is the element's name in a sentence.
            let named_in_prose =
                local == "script" && inside.trim().is_empty() && !contains!(lower, "</script") && {
                    let after = super::prefix(&lower[(tag_end + 1).min(lower.len())..], 60);
                    after.starts_with(' ')
                        && after
                            .trim_start()
                            .starts_with(|c: char| c.is_ascii_lowercase())
                        && !after.contains(['(', '=', ';', '`', '{', '\''])
                        && after.split_whitespace().count() >= 3
                };
            let severity = if closed && !named_in_prose {
                Severity::High
            } else {
                Severity::Medium
            };
            keep(Finding::new(
                ThreatType::XssAttack,
                severity,
                0.85,
                p,
                tag_end,
            ));
            continue;
        }
        if matches!(local, "style" | "link" | "meta") {
            // CSS escapes (`@im\port`) are dropped by the CSS parser.
            // A sheet's first few kilobytes: enough for the rule, bounded per tag.
            let rest = super::prefix(&lower[j..], 1024).replace('\\', "");
            let rest = rest.as_str();
            if contains!(rest, "expression(")
                || contains!(rest, "@import")
                || contains!(rest, "behavior:")
                || contains!(rest, "-moz-binding")
                || (local == "meta" && contains!(inside, "http-equiv") && contains!(inside, "url="))
                || (local == "link" && contains!(inside, "rel=import"))
            {
                keep(Finding::new(
                    ThreatType::XssAttack,
                    Severity::High,
                    0.8,
                    p,
                    tag_end,
                ));
                continue;
            }
        }
        if CARRIER_TAGS.contains(&local)
            && tag_end < b.len()
            && (contains!(inside, "src=") || contains!(inside, "href="))
        {
            keep(Finding::new(
                ThreatType::XssAttack,
                Severity::Low,
                0.4,
                p,
                tag_end,
            ));
        }
    }
    // A tag in high-bit ASCII (`¼script¾`: `<` and `>` with the eighth bit set), which
    // a page served as US-ASCII hands to old browsers with the bit dropped.
    for at in memchr::memmem::find_iter(b, "\u{bc}".as_bytes()) {
        let rest = &lower[at + '\u{bc}'.len_utf8()..];
        let rest = rest.strip_prefix('/').unwrap_or(rest);
        let name_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        if ACTIVE_TAGS.contains(&&rest[..name_len]) {
            keep(Finding::new(
                ThreatType::XssAttack,
                Severity::High,
                0.8,
                at,
                (at + 2 + name_len).min(lower.len()),
            ));
            break;
        }
    }
    // An attribute broken out of: `" onmouseover=alert(1)`, `' autofocus onfocus=...`.
    for q in ["\"", "'"] {
        let mut k = 0;
        while let Some(p) = position(&lower[k..], q).map(|p| p + k) {
            k = p + 1;
            let rest = &lower[p + 1..];
            let trimmed = rest.trim_start_matches([' ', '\t', '\n', '\r', '/']);
            if (trimmed.len() == rest.len() && !rest.starts_with('>')) || !trimmed.starts_with("on")
            {
                continue;
            }
            if let Some(h) = handler(super::prefix(rest, 200)) {
                let value = &rest[h..];
                if value
                    .trim_start_matches(['=', ' ', '"', '\''])
                    .bytes()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphabetic() || c == b'(' || c == b'`')
                {
                    keep(Finding::new(
                        ThreatType::XssAttack,
                        Severity::High,
                        0.85,
                        p,
                        p + 1 + h,
                    ));
                }
            }
        }
    }
    // Script URLs anywhere: `javascript:alert(1)`, with whitespace or entities inside the word.
    if let Some((s, e)) = script_url(lower) {
        keep(Finding::new(
            ThreatType::XssAttack,
            Severity::High,
            0.85,
            s,
            e,
        ));
    } else {
        // `jav\tascript:`: whitespace inside the scheme, which browsers skip. Only the few
        // characters around each colon are squeezed, not the whole value.
        let blank = |c: char| matches!(c, ' ' | '\t' | '\n' | '\r' | '\u{b}' | '\u{c}');
        for colon in memchr::memchr_iter(b':', b) {
            let mut from = colon.saturating_sub(48);
            while !lower.is_char_boundary(from) {
                from += 1;
            }
            let mut to = (colon + 48).min(lower.len());
            while !lower.is_char_boundary(to) {
                to -= 1;
            }
            let window = &lower[from..to];
            // Every scheme that runs ends in `t` (javascript, vbscript, livescript) or is
            // `data`; `std::io` and `key: value` need no squeezing.
            let before = lower[from..colon].trim_end_matches(blank);
            if !before.ends_with(['t', 'a']) || !window.contains(blank) {
                continue;
            }
            // Squeezing finds a scheme only where one is spelled, blanks aside, before a
            // colon of the window: checked in place first (code has many `name: type`).
            if !spelled_scheme(window.as_bytes()) {
                continue;
            }
            let squeezed: String = window.chars().filter(|c| !blank(*c)).collect();
            // A tab or a line break inside the scheme's name (`ja&tab;vascript:`) is written
            // only to get past a filter: it counts even with nothing after the colon yet. (A
            // space is a typo: "Java script: ...".)
            let name: String = lower[from..colon]
                .chars()
                .filter(|c| !blank(*c) || *c == ' ')
                .collect();
            let split_scheme = ["javascript", "vbscript", "livescript"]
                .iter()
                .any(|scheme| name.ends_with(scheme) && !before.ends_with(scheme));
            if split_scheme || script_url(&squeezed).is_some() {
                keep(Finding::new(
                    ThreatType::XssAttack,
                    Severity::High,
                    0.8,
                    from,
                    to,
                ));
                break;
            }
        }
    }
    // Script calls.
    let mut sinks = 0;
    let mut first_sink = None;
    static SINK_NEEDLES: std::sync::OnceLock<Needles> = std::sync::OnceLock::new();
    let needles = Needles::cached(&SINK_NEEDLES, || SINKS.to_vec());
    let mut found = needles.first_of_each(lower);
    found.sort_by_key(|(index, _)| *index);
    for (index, p) in found {
        let sink = &SINKS[index];
        {
            // `print(` and `import(` are everyday code: only count them with a breakout.
            let weak = matches!(*sink, "import(" | "fetch(" | "constructor(" | "atob(");
            sinks += if weak { 0 } else { 1 };
            let before = lower[..p].trim_end_matches([' ', '\t']);
            let broke_out = before.is_empty()
                || before.ends_with([
                    '"', '\'', ';', '>', '(', '+', '-', '|', '&', '`', '{', '}', '=',
                ]);
            if broke_out && (!weak || before.ends_with(['"', '\'', '>'])) {
                first_sink = Some((p, p + sink.len(), true));
                break;
            }
            if first_sink.is_none() && !weak {
                first_sink = Some((p, p + sink.len(), false));
            }
        }
    }
    if let Some((s, e, broke_out)) = first_sink {
        // A call as the whole value's start (`alert('x')`, `top["al"+"ert"](1)`), or beside
        // markup, is script.
        let leading = s == 0 && lower.len() > e;
        if (broke_out && s > 0) || leading || tags > 0 {
            keep(Finding::new(
                ThreatType::XssAttack,
                Severity::High,
                0.8,
                s,
                e,
            ));
        } else if broke_out || sinks > 1 {
            keep(Finding::new(
                ThreatType::XssAttack,
                Severity::Medium,
                0.6,
                s,
                e,
            ));
        } else {
            keep(Finding::new(
                ThreatType::XssAttack,
                Severity::Low,
                0.4,
                s,
                e,
            ));
        }
    }
    if let Some((s, e)) = data_uri_markup(text, lower) {
        keep(Finding::new(
            ThreatType::XssAttack,
            Severity::High,
            0.85,
            s,
            e,
        ));
    }
    if let Some(f) = best.into_inner() {
        out.push(f);
    }
}

/// Bytes of a `data:` URI's base64 payload decoded at most.
const DATA_URI_DECODED: usize = 4096;

/// A `data:` URI whose base64 payload is markup that runs, whatever media type it claims
/// (`data:application/x-x509-user-cert;base64,PHNjcmlwdD4...`): the payload (the value as
/// sent: base64 is case-sensitive) is decoded once, at most [`DATA_URI_DECODED`] bytes, and
/// judged by the tag and script-URL rules. An image's or a PDF's bytes decode to no markup.
fn data_uri_markup(text: &str, lower: &str) -> Option<(usize, usize)> {
    let b = text.as_bytes();
    // Positions in `lower` are positions in `text` (an ASCII-lowercase copy); anything else
    // is a caller's mistake, answered with nothing rather than a wrong slice.
    if b.len() != lower.len() {
        return None;
    }
    let mut from = 0;
    while let Some(p) = find!(&lower[from..], "data:") {
        let at = from + p;
        from = at + 5;
        // The media type and its parameters run to the comma.
        let head = &lower.as_bytes()[at + 5..];
        let Some(comma) = head.iter().take(128).position(|c| *c == b',') else {
            continue;
        };
        if !head[..comma].windows(6).any(|w| w == b"base64") {
            continue;
        }
        let start = at + 5 + comma + 1;
        let (decoded, used) = super::decode::base64_prefix(&b[start..], DATA_URI_DECODED);
        let end = start + used;
        let inner = String::from_utf8_lossy(&decoded).to_ascii_lowercase();
        if !inner.contains('<') && !inner.contains("script:") {
            continue;
        }
        let runs = tag_runs(&inner) || script_url(&inner).is_some();
        if runs {
            return Some((at, end));
        }
    }
    None
}

/// Whether `lower` holds a tag that runs script: `<script>`, an event handler inside a tag,
/// a script URL inside a tag.
fn tag_runs(lower: &str) -> bool {
    let b = lower.as_bytes();
    for p in memchr::memchr_iter(b'<', b) {
        let (name_start, j) = tag_name(b, p);
        if j == name_start || !b[name_start].is_ascii_alphabetic() {
            continue;
        }
        let tag_end = memchr::memchr(b'>', &b[j..]).map_or(b.len(), |e| j + e);
        let inside = &lower[j..tag_end];
        let name = &lower[name_start..j];
        if name == "script" || handler(inside).is_some() || script_url(inside).is_some() {
            return true;
        }
    }
    false
}

/// An event handler attribute (`onload=`, `onerror =`) in `inside`: the offset after `=`.
/// A value that is nothing but an encoded angle bracket (`&#x3c`, `%253C`, `\x3c`): a
/// filter-evasion probe, sent to learn which encoding reaches the page unescaped. `raw` is the
/// value as sent, `text` as decoded.
pub fn encoded_bracket(raw: &str, text: &str, out: &mut Vec<Finding>) {
    let raw = raw.trim();
    let decoded = text.trim();
    let entity_or_percent = matches!(decoded, "<" | ">" | "<>") && raw != decoded;
    let script_escape = raw.len() <= 12 && {
        let lower = raw.to_ascii_lowercase();
        matches!(
            lower.as_str(),
            "\\x3c" | "\\x3e" | "\\u003c" | "\\u003e" | "\\074" | "\\076" | "\\u{3c}" | "\\3c"
        )
    };
    if entity_or_percent || script_escape {
        out.push(Finding::new(
            ThreatType::XssAttack,
            Severity::High,
            0.6,
            0,
            text.len(),
        ));
    }
}

/// DOM event handler names (HTML, SVG, SMIL, vendor and legacy IE ones, Flash's
/// `FSCommand`): what an attacker sends alone to learn which handlers a filter lets through.
/// Sorted (binary search; a test holds it).
const EVENT_HANDLERS: &[&str] = &[
    "fscommand",
    "onabort",
    "onactivate",
    "onafterprint",
    "onafterscriptexecute",
    "onafterupdate",
    "onanimationcancel",
    "onanimationend",
    "onanimationiteration",
    "onanimationstart",
    "onauxclick",
    "onbeforeactivate",
    "onbeforecopy",
    "onbeforecut",
    "onbeforedeactivate",
    "onbeforeeditfocus",
    "onbeforeinput",
    "onbeforematch",
    "onbeforepaste",
    "onbeforeprint",
    "onbeforescriptexecute",
    "onbeforetoggle",
    "onbeforeunload",
    "onbeforeupdate",
    "onbegin",
    "onblur",
    "onbounce",
    "oncancel",
    "oncanplay",
    "oncanplaythrough",
    "oncellchange",
    "onchange",
    "onclick",
    "onclose",
    "oncommand",
    "oncontextlost",
    "oncontextmenu",
    "oncontextrestored",
    "oncontrolselect",
    "oncopy",
    "oncuechange",
    "oncut",
    "ondataavailable",
    "ondatasetchanged",
    "ondatasetcomplete",
    "ondblclick",
    "ondeactivate",
    "ondevicemotion",
    "ondeviceorientation",
    "ondrag",
    "ondragdrop",
    "ondragend",
    "ondragenter",
    "ondragexit",
    "ondragleave",
    "ondragover",
    "ondragstart",
    "ondrop",
    "ondurationchange",
    "onemptied",
    "onend",
    "onended",
    "onerror",
    "onerrorupdate",
    "onfilterchange",
    "onfinish",
    "onfocus",
    "onfocusin",
    "onfocusout",
    "onformdata",
    "onfullscreenchange",
    "onfullscreenerror",
    "ongotpointercapture",
    "onhashchange",
    "onhelp",
    "oninput",
    "oninvalid",
    "onkeydown",
    "onkeypress",
    "onkeyup",
    "onlanguagechange",
    "onlayoutcomplete",
    "onload",
    "onloadeddata",
    "onloadedmetadata",
    "onloadend",
    "onloadstart",
    "onlosecapture",
    "onlostpointercapture",
    "onmediacomplete",
    "onmediaerror",
    "onmessage",
    "onmessageerror",
    "onmousedown",
    "onmouseenter",
    "onmouseleave",
    "onmousemove",
    "onmouseout",
    "onmouseover",
    "onmouseup",
    "onmousewheel",
    "onmove",
    "onmoveend",
    "onmovestart",
    "onmozfullscreenchange",
    "onmozfullscreenerror",
    "onmozpointerlockchange",
    "onoffline",
    "ononline",
    "onorientationchange",
    "onoutofsync",
    "onpagehide",
    "onpagereveal",
    "onpageshow",
    "onpageswap",
    "onpaste",
    "onpause",
    "onplay",
    "onplaying",
    "onpointercancel",
    "onpointerdown",
    "onpointerenter",
    "onpointerleave",
    "onpointermove",
    "onpointerout",
    "onpointerover",
    "onpointerrawupdate",
    "onpointerup",
    "onpopstate",
    "onprogress",
    "onpropertychange",
    "onratechange",
    "onreadystatechange",
    "onredo",
    "onrejectionhandled",
    "onrepeat",
    "onreset",
    "onresize",
    "onresizeend",
    "onresizestart",
    "onresume",
    "onreverse",
    "onrowdelete",
    "onrowenter",
    "onrowexit",
    "onrowinserted",
    "onrowsdelete",
    "onrowsenter",
    "onrowsinserted",
    "onscroll",
    "onscrollend",
    "onscrollsnapchange",
    "onscrollsnapchanging",
    "onsearch",
    "onsecuritypolicyviolation",
    "onseek",
    "onseeked",
    "onseeking",
    "onselect",
    "onselectionchange",
    "onselectstart",
    "onshow",
    "onslotchange",
    "onstalled",
    "onstart",
    "onstop",
    "onstorage",
    "onsubmit",
    "onsuspend",
    "onsyncrestored",
    "ontimeerror",
    "ontimeupdate",
    "ontoggle",
    "ontouchcancel",
    "ontouchend",
    "ontouchmove",
    "ontouchstart",
    "ontrackchange",
    "ontransitioncancel",
    "ontransitionend",
    "ontransitionrun",
    "ontransitionstart",
    "onundo",
    "onunhandledrejection",
    "onunload",
    "onurlflip",
    "onvisibilitychange",
    "onvolumechange",
    "onwaiting",
    "onwebkitanimationend",
    "onwebkitanimationiteration",
    "onwebkitanimationstart",
    "onwebkitfullscreenchange",
    "onwebkitmouseforcedown",
    "onwebkitmouseforcewillbegin",
    "onwebkitplaybacktargetavailabilitychanged",
    "onwebkittransitionend",
    "onwebkitwillrevealbottom",
    "onwheel",
    "seeksegmenttime",
];

/// A value that is an event handler's name and nothing else (`onMouseOut`), or an assignment
/// to one (`onerror=alert;throw 1`, which runs where the value lands in a script): a filter
/// probe or a payload. A known handler name is not a word of prose ("online", "once" are not
/// in the list), and a field holding exactly one is a probe; inside text or code the name is
/// judged in context instead (a tag, a quote that closes an attribute).
pub fn handler_probe(lower: &str, out: &mut Vec<Finding>) {
    let value = lower.trim_start();
    let b = value.as_bytes();
    // Every name starts `on`, but for Flash's `fscommand` and SMIL's `seeksegmenttime`.
    if b.len() < 5 || !matches!(&b[..2], b"on" | b"fs" | b"se") {
        return;
    }
    let name_end = b
        .iter()
        .position(|c| !c.is_ascii_alphabetic())
        .unwrap_or(b.len());
    let rest = value[name_end..].trim();
    if !(rest.is_empty() || rest.starts_with('=')) {
        return;
    }
    if EVENT_HANDLERS.binary_search(&&value[..name_end]).is_ok() {
        out.push(Finding::new(
            ThreatType::XssAttack,
            Severity::High,
            0.6,
            lower.len() - value.len(),
            lower.len() - value.len() + name_end,
        ));
    }
}

/// Elements that restructure the page they land in (a document, a form, a style sheet, an
/// XML island), which rich-text formatting never sends.
const PAGE_TAGS: &[&str] = &[
    "html",
    "head",
    "body",
    "style",
    "link",
    "meta",
    "base",
    "title",
    "form",
    "input",
    "button",
    "textarea",
    "select",
    "keygen",
    "xml",
    "template",
    "frameset",
    "noframes",
    "noscript",
    "marquee",
    "plaintext",
    "xmp",
    "listing",
    "dialog",
    "portal",
    "image",
    "svg",
    "math",
];

/// Markup sent as a field's value: a short, one-line value that starts with a tag, one of
/// whose tags restructures the page (`<head>`, `</style>`, `<input name=...>`, `<xml src=...>`):
/// a probe for where the field's output lands. Formatting (`<p>`, `<b>`, `<a href>`) is what
/// rich-text editors send and stays allowed; a document (many lines: a prompt quoting an HTML
/// page, an XML configuration) is the application's content, and is judged by the other rules
/// only (scripts, handlers, script URLs). Not for whole bodies either.
pub fn markup_probe(lower: &str, out: &mut Vec<Finding>) {
    let value = lower.trim();
    if !value.starts_with('<') || value.len() > 256 || value.contains(['\n', '\r']) {
        return;
    }
    // Markup, not a sentence that opens with a tag's name ("<script> tags go at the end of
    // <body>"): a few words at most outside the tags.
    let mut words = 0;
    let mut in_tag = false;
    let mut in_word = false;
    for c in value.bytes() {
        match c {
            b'<' => in_tag = true,
            b'>' => in_tag = false,
            _ if !in_tag => {
                let letter = c.is_ascii_alphanumeric();
                words += usize::from(letter && !in_word);
                in_word = letter;
                continue;
            }
            _ => {}
        }
        in_word = false;
    }
    if words > 3 {
        return;
    }
    let offset = lower.len() - lower.trim_start().len();
    let b = value.as_bytes();
    for (p, _) in value.match_indices('<') {
        let (start, j) = tag_name(b, p);
        let name = &value[start..j];
        let local = name.rsplit(':').next().unwrap_or(name);
        let delimited = matches!(b.get(j), None | Some(b' ' | b'\t' | b'/' | b'>' | 0x0c));
        // SVG and XML-namespace elements (`<svg:mask>`, `<xml:namespace>`) switch the parser.
        let foreign = name.starts_with("svg:") || name.starts_with("xml:");
        if delimited && (PAGE_TAGS.contains(&local) || foreign) {
            out.push(Finding::new(
                ThreatType::XssAttack,
                Severity::High,
                0.6,
                offset + p,
                offset + j,
            ));
            return;
        }
    }
}

/// Each attribute in the inside of a tag (after its name): `(name, value, start, end)`;
/// the value is empty for a bare attribute. Quoted values may hold spaces.
fn attributes(inside: &str) -> Vec<(&str, &str, usize, usize)> {
    let b = inside.as_bytes();
    let mut found = Vec::new();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\n' | b'\r' | b'/' | 0x0c) {
            i += 1;
        }
        let start = i;
        while i < b.len() && !matches!(b[i], b' ' | b'\t' | b'\n' | b'\r' | b'/' | b'=' | 0x0c) {
            i += 1;
        }
        let name = &inside[start..i];
        let mut j = i;
        while j < b.len() && matches!(b[j], b' ' | b'\t' | b'\n' | b'\r') {
            j += 1;
        }
        let mut value = "";
        if b.get(j) == Some(&b'=') {
            j += 1;
            while j < b.len() && matches!(b[j], b' ' | b'\t' | b'\n' | b'\r') {
                j += 1;
            }
            let value_start = j;
            match b.get(j) {
                Some(&q) if q == b'"' || q == b'\'' || q == b'`' => {
                    let close = inside[j + 1..]
                        .find(q as char)
                        .map_or(b.len(), |e| j + 1 + e);
                    value = &inside[j + 1..close];
                    j = (close + 1).min(b.len());
                }
                _ => {
                    while j < b.len() && !matches!(b[j], b' ' | b'\t' | b'\n' | b'\r') {
                        j += 1;
                    }
                    value = &inside[value_start..j];
                }
            }
            i = j;
        }
        if !name.is_empty() {
            found.push((name, value, start, i));
        }
        if i == start {
            i += 1;
        }
    }
    found
}

/// An attribute that runs or loads whatever it says (`xmlns`, `xlink:href`, `datasrc`, a
/// `style` with `url(`/`expression(`): where it starts and ends inside the tag.
fn active_attribute(inside: &str, xml_element: bool) -> Option<(usize, usize)> {
    attributes(inside)
        .into_iter()
        .find_map(|(name, value, start, end)| {
            let namespace = name == "xmlns" || name.starts_with("xmlns:");
            let active = (ACTIVE_ATTRIBUTES.contains(&name) && !namespace)
                || (namespace && !xml_element)
                || (name == "style" && {
                    // CSS escapes (`\65 xpression`) are dropped by the CSS parser.
                    let css = value.replace('\\', "");
                    ACTIVE_CSS.iter().any(|c| has(&css, c))
                });
            active.then_some((start, end))
        })
}

fn handler(inside: &str) -> Option<usize> {
    let b = inside.as_bytes();
    let mut k = 0;
    while let Some(p) = find!(&inside[k..], "on").map(|p| p + k) {
        k = p + 2;
        // Preceded by a separator (whitespace, `/`, a quote), as attributes are.
        let separated = p == 0
            || matches!(
                b[p - 1],
                b' ' | b'\t' | b'\n' | b'\r' | b'/' | b'"' | b'\'' | 0x0c | b';'
            );
        if !separated {
            continue;
        }
        let mut j = p + 2;
        while j < b.len() && b[j].is_ascii_alphabetic() {
            j += 1;
        }
        if j - (p + 2) < 3 {
            continue;
        }
        while j < b.len() && matches!(b[j], b' ' | b'\t' | b'\n' | b'\r') {
            j += 1;
        }
        if b.get(j) == Some(&b'=') {
            return Some(j + 1);
        }
    }
    None
}

/// A `javascript:` / `vbscript:` / `data:text/html` URL that runs something.
/// Where a script scheme (`javascript:`, `vbscript:`, `livescript:`) opens an attribute's
/// value inside a tag (after `=`, quoted or not), blanks inside the scheme's name skipped.
fn scheme_attribute(inside: &str) -> Option<usize> {
    let b = inside.as_bytes();
    memchr::memchr_iter(b'=', b).find_map(|eq| {
        let mut v = eq + 1;
        while v < b.len() && matches!(b[v], b' ' | b'\t' | b'\n' | b'\r' | b'"' | b'\'' | b'`') {
            v += 1;
        }
        let mut name = [0u8; 11];
        let mut n = 0;
        for c in b[v..]
            .iter()
            .copied()
            .filter(|c| !matches!(c, b'\t' | b'\n' | b'\r'))
            .take(name.len())
        {
            name[n] = c;
            n += 1;
        }
        ["javascript:", "vbscript:", "livescript:"]
            .iter()
            .any(|scheme| name[..n].starts_with(scheme.as_bytes()))
            .then_some(v)
    })
}

/// Whether `script` or `data` stands before some colon of `window`, blanks between the
/// letters skipped (`jav\tascript:`): the only way `script_url` can find a scheme in the
/// window once its blanks are squeezed out.
fn spelled_scheme(window: &[u8]) -> bool {
    let blank = |b: u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c);
    memchr::memchr_iter(b':', window).any(|colon| {
        let mut letters = window[..colon].iter().rev().copied().filter(|b| !blank(*b));
        let mut last = [0u8; 6];
        for slot in last.iter_mut().rev() {
            *slot = letters.next().unwrap_or(0);
        }
        &last == b"script" || &last[2..] == b"data"
    })
}

fn script_url(lower: &str) -> Option<(usize, usize)> {
    if !contains!(lower, "script:") && !contains!(lower, "data:") {
        return None;
    }
    static SCHEMES: [Literal; 6] = [
        Literal::new("javascript:"),
        Literal::new("vbscript:"),
        Literal::new("livescript:"),
        Literal::new("data:text/html"),
        Literal::new("data:image/svg+xml"),
        Literal::new("data:application/x-javascript"),
    ];
    for literal in &SCHEMES {
        let scheme = literal.as_str();
        let mut k = 0;
        while let Some(p) = literal.find(&lower[k..]).map(|p| p + k) {
            k = p + scheme.len();
            let after = lower[k..].trim_start_matches([' ', '\t']);
            let word: &str = after.split([' ', '\n', '\t']).next().unwrap_or("");
            let runs = scheme.starts_with("data:")
                || word.contains('(')
                || word.contains('`')
                || word.contains('=')
                || word.starts_with("//")
                || word.starts_with("javascript:");
            if runs {
                return Some((p, (k + word.len()).min(lower.len())));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn severity(text: &str) -> Option<Severity> {
        let mut out = Vec::new();
        let text = super::super::decode::normalize(text, false)
            .text
            .to_string();
        detect(&text, &text.to_ascii_lowercase(), &mut out);
        out.first().map(|f| f.severity)
    }

    #[test]
    fn markup_in_a_base64_data_uri_runs_whatever_type_it_claims() {
        for attack in [
            "<a href=\"data:application/x-x509-user-cert;\nbase64\n,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==\">X</a>",
            "data:application/octet-stream;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+",
            "<embed src=\"data:foo/bar;base64,PGltZyBzcmM9eCBvbmVycm9yPWFsZXJ0KDEpPg==\">",
        ] {
            let mut out = Vec::new();
            detect(attack, &attack.to_ascii_lowercase(), &mut out);
            assert!(
                out.iter().any(|f| f.severity >= Severity::High),
                "missed {attack:?}: {out:?}"
            );
        }
        for benign in [
            "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk",
            "data:text/plain;base64,PGI+Ym9sZDwvYj4=",
            "data:application/json;base64,eyJhIjogMX0=",
        ] {
            let mut out = Vec::new();
            detect(benign, &benign.to_ascii_lowercase(), &mut out);
            assert!(
                out.iter().all(|f| f.severity < Severity::High),
                "false alarm on {benign:?}: {out:?}"
            );
        }
    }

    #[test]
    fn markup_and_script_are_found() {
        for attack in [
            "<script>alert(1)</script>",
            "<SCRIPT>a=/XSS/",
            "<img src=x onerror=alert(1)>",
            "<svg/onload=alert(1)>",
            "<IMG SRC=\"jav\tascript:alert(5461);\">",
            "\"><script src=//evil.example/x.js></script>",
            "\" onmouseover=\"alert(1)",
            "';alert(String.fromCharCode(88,83,83))//",
            "<a href=\"javascript:alert(1)\">x</a>",
            "&lt;iframe src=javascript:alert(1)&gt;",
            "<body onload=alert('XSS')>",
            "<details open ontoggle=alert(1)>",
            "javascript:alert(document.cookie)",
            "<LINK REL=\"stylesheet\" HREF=\"javascript:javascript:alert(7367);\">",
            "<div style=\"width: expression(alert(1))\">",
            "<img \u{0}src=x onerror=\"javascript:alert(1)\">",
            // Attributes that load or run whatever their value (libinjection's black list).
            "<html xmlns:xss>",
            "<a xmlns:xlink=\"http://www.w3.org/1999/xlink\" xlink:href=\"?\">",
            "<set attributeName=\"xlink:href\" begin=\"accessKey(a)\" to=\"//example.com/?a\" />",
            "<SPAN DATASRC=\"#xss\" DATAFLD=\"B\" DATAFORMATAS=\"HTML\"></SPAN>",
            "<button formaction=//evil.example>x</button>",
            "<div style=\"background:url(test5.svg)\">PRESS ENTER</div>",
            "<x style=\"behavior:url(#default#time2)\">",
            "ja&tab;vascript:",
            "v&newline;b&tab;s&newline;c&newline;r&tab;i&tab;p&newline;t&colon;:",
            "<IMG SRC=\"livescript:[code]\">",
            "<a href=\"vbscript:MsgBox 1\">x</a>",
            "<a href=ja&#09;vascript:x>",
            "\u{bc}script\u{be}alert(\u{a2}XSS\u{a2})\u{bc}/script\u{be}",
        ] {
            assert!(
                severity(attack).is_some_and(|s| s >= Severity::High),
                "missed {attack:?}: {:?}",
                severity(attack)
            );
        }
    }

    #[test]
    fn probes_sent_as_a_field_are_attacks() {
        let judge = |value: &str| {
            let lower = value.to_ascii_lowercase();
            let mut out = Vec::new();
            handler_probe(&lower, &mut out);
            markup_probe(&lower, &mut out);
            out.first().map(|f| f.severity)
        };
        for probe in [
            "onMouseOut",
            "onerror=",
            "onerror=alert;throw 1",
            " onbeforescriptexecute ",
            "FSCommand",
            "<head>",
            "</style>",
            "<body>Hello</body>",
            "<input name=\"password\" type=\"password\" value=\"secret\" />",
            "<div id=\"53\"><xml id=\"xss\" src=\"test.htc\"></xml>",
            "<svg:mask id=\"m\">",
        ] {
            assert_eq!(judge(probe), Some(Severity::High), "missed {probe:?}");
        }
        for benign in [
            "online",
            "once upon a time",
            "onClick handler docs",
            "onload is fired when the page loads",
            "on",
            "<p>Thanks for the quick reply!</p>",
            "<b>bold</b> and <a href=\"https://example.com\">a link</a>",
            "Use the <form> element for this",
            "<script> tags should be placed at the end of <body>",
            // A document quoted in a prompt is content, not a probe.
            "<!DOCTYPE html>\n<html>\n<head>\n<title>Trip</title>\n</head>\n</html>",
            "<config>\n  <meta>\n    <version>2</version>\n  </meta>\n</config>",
            "<",
        ] {
            assert_eq!(judge(benign), None, "flagged {benign:?}");
        }
        assert!(EVENT_HANDLERS.windows(2).all(|w| w[0] < w[1]), "sorted");
    }

    #[test]
    fn an_encoded_bracket_alone_is_a_probe() {
        let probe = |raw: &str, decoded: &str| {
            let mut out = Vec::new();
            encoded_bracket(raw, decoded, &mut out);
            out.first().map(|f| f.severity)
        };
        assert_eq!(probe("&#x3c", "<"), Some(Severity::High));
        assert_eq!(probe("%253C", "<"), Some(Severity::High));
        assert_eq!(probe("\\x3c", "\\x3c"), Some(Severity::High));
        // Typed as itself, or inside text: not a probe.
        assert_eq!(probe("<", "<"), None);
        assert_eq!(probe("a &lt; b", "a < b"), None);
    }

    #[test]
    fn code_and_prose_are_not_markup() {
        for benign in [
            "a < b && c > d",
            "if (x<y) { return x; }",
            "JavaScript: The Good Parts",
            "I wrote it in Java script: it works",
            "<script> tags should be placed at the end of <body>",
            "Where do <script> elements go in a page?",
            "Use the <b>bold</b> tag",
            "see <https://example.com/docs>",
            "1alert(1)",
            "We went on and on = forever",
            "print(\"hello\")",
            "Vec<String>",
            "I'd like to learn about onboarding",
            "<div style=\"color: red\">note</div>",
            "<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\">",
            "<?xml version=\"1.0\"?><xml><item>1</item></xml>",
            "\u{bc} cup of sugar and \u{be} cup of flour",
            "<a href=\"https://example.com/javascript:guide\">the guide</a>",
            "<input value=\"see javascript: the good parts\">",
        ] {
            assert!(
                severity(benign).is_none_or(|s| s < Severity::High),
                "false alarm on {benign:?}: {:?}",
                severity(benign)
            );
        }
    }
}
