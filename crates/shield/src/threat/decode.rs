//! Turning a value into what the application will see: percent-decoding (repeatedly, `%uXXXX`
//! and overlong UTF-8 included), HTML entities, and a Unicode fold (fullwidth forms to ASCII,
//! invisible characters removed), within bounded work.
//!
//! Attackers encode to get past filters that look at the raw bytes: `%252e%252e%252f` is
//! `../` decoded twice, `%c0%af` is an overlong `/` that old decoders accepted, `&#x3C;` is `<`
//! to a browser, `ｓｃｒｉｐｔ` is `script` after NFKC. Each transformation is one linear pass,
//! and there are at most [`MAX_ROUNDS`] percent-decoding rounds and two entity rounds, so the
//! work per value is a small constant times its length whatever it holds.

use std::borrow::Cow;

/// Percent-decoding rounds at most (three encodings deep is already unusual).
pub const MAX_ROUNDS: usize = 4;

/// A value as the application will see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Normalized<'a> {
    /// The decoded text.
    pub text: Cow<'a, str>,
    /// Percent-decoding rounds that changed something (2 or more: double encoding).
    pub rounds: u8,
    /// A NUL byte was present (and removed): a classic truncation trick.
    pub had_nul: bool,
    /// A line break was written percent-encoded (`%0d%0a`): meant for a header or a log line,
    /// whatever kind of value carries it.
    pub encoded_newline: bool,
}

/// Decodes `raw`. `form` treats `+` as a space in the first round (query strings and form
/// bodies).
pub fn normalize(raw: &str, form: bool) -> Normalized<'_> {
    let mut text: Cow<'_, str> = Cow::Borrowed(raw);
    let mut rounds = 0u8;
    let mut encoded_newline = false;
    // Most values hold no `%`, `&` or `+`: one search says so, where each decoding stage
    // would search for its own byte.
    if memchr::memchr3(b'%', b'&', b'+', raw.as_bytes()).is_some() {
        encoded_newline = raw.contains('%') && {
            let lower = raw.to_ascii_lowercase();
            ["%0a", "%0d", "%250a", "%250d", "%u000a", "%u000d"]
                .iter()
                .any(|e| lower.contains(e))
        };
        for round in 0..MAX_ROUNDS {
            let plus = form && round == 0;
            match percent_decode(&text, plus) {
                Some(decoded) => {
                    text = Cow::Owned(decoded);
                    rounds += 1;
                }
                None => break,
            }
        }
        for _ in 0..2 {
            match html_entities(&text) {
                Some(decoded) => text = Cow::Owned(decoded),
                None => break,
            }
        }
    }
    let mut had_nul = false;
    if let Some(folded) = fold(&text, &mut had_nul) {
        text = Cow::Owned(folded);
    }
    Normalized {
        text,
        rounds,
        had_nul,
        encoded_newline,
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// One round of `%XX` and `%uXXXX` decoding; `None` when nothing was encoded.
///
/// Escapes of bytes over 0x7f are decoded as UTF-8 sequences, overlong forms included
/// (`%c0%af` is `/`, as the decoders attackers aimed at read it); an escape that starts no
/// valid sequence is left as written, so it cannot swallow the character after it.
pub fn percent_decode(input: &str, plus_as_space: bool) -> Option<String> {
    let bytes = input.as_bytes();
    let has_work = if plus_as_space {
        memchr::memchr2(b'%', b'+', bytes).is_some()
    } else {
        memchr::memchr(b'%', bytes).is_some()
    };
    if !has_work {
        return None;
    }
    let escaped = |i: usize| -> Option<u8> {
        if bytes.get(i) != Some(&b'%') {
            return None;
        }
        Some(hex(*bytes.get(i + 1)?)? << 4 | hex(*bytes.get(i + 2)?)?)
    };
    let mut out = String::with_capacity(bytes.len());
    let mut changed = false;
    let mut last = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let decoded: Option<(char, usize)> = if b == b'%' {
            match escaped(i) {
                Some(byte) if byte < 0x80 => Some((byte as char, 3)),
                Some(lead) => utf8_escapes(lead, i, &escaped),
                None if matches!(bytes.get(i + 1), Some(b'u' | b'U')) => {
                    let digits: Option<Vec<u8>> = (2..6)
                        .map(|k| bytes.get(i + k).copied().and_then(hex))
                        .collect();
                    digits.map(|d| {
                        let code = d.iter().fold(0u32, |acc, v| acc << 4 | u32::from(*v));
                        (char::from_u32(code).unwrap_or('\u{fffd}'), 6)
                    })
                }
                // `%2%e`: what `%%32%%65` leaves after one round; decoders that drop the
                // stray `%` read `%2e`.
                None if bytes.get(i + 2) == Some(&b'%')
                    && bytes.get(i + 1).copied().and_then(hex).is_some()
                    && bytes.get(i + 3).copied().and_then(hex).is_some() =>
                {
                    let byte = hex(bytes[i + 1]).unwrap_or(0) << 4 | hex(bytes[i + 3]).unwrap_or(0);
                    (byte < 0x80).then_some((byte as char, 4))
                }
                None => None,
            }
        } else if b == b'+' && plus_as_space {
            Some((' ', 1))
        } else {
            None
        };
        match decoded {
            Some((c, used)) => {
                out.push_str(&input[last..i]);
                out.push(c);
                i += used;
                last = i;
                changed = true;
            }
            None => i += 1,
        }
    }
    if !changed {
        return None;
    }
    out.push_str(&input[last..]);
    Some(out)
}

/// A UTF-8 sequence (overlong forms accepted) written as escapes from `i`, whose first byte
/// is `lead`: the character and the input bytes it used.
fn utf8_escapes(
    lead: u8,
    i: usize,
    escaped: &dyn Fn(usize) -> Option<u8>,
) -> Option<(char, usize)> {
    let len = match lead {
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf7 => 4,
        0xf8..=0xfb => 5,
        0xfc..=0xfd => 6,
        _ => return None,
    };
    let lead_bits = 7 - len as u32;
    let mut code = u32::from(lead) & ((1 << lead_bits) - 1);
    for k in 1..len {
        let c = escaped(i + 3 * k)?;
        if c & 0xc0 != 0x80 {
            // IIS's decoder (CVE-2000-0884) kept the low six bits of any second byte:
            // `%c0%2e`, `%c0%ee` read `.`, `%c1%1c` reads `\`. Only the separators and the dot
            // are decoded so: they are what such a payload needs, and nothing else is read
            // into a value that is not there.
            let masked = (u32::from(lead) & 0x1f) << 6 | u32::from(c & 0x3f);
            if len == 2 && matches!(masked, 0x2e | 0x2f | 0x5c) {
                return char::from_u32(masked).map(|ch| (ch, 6));
            }
            // `%c0` and `%c1` start no UTF-8 sequence at all; decoders that drop such a byte
            // read the separator escaped after it (`%c0%5c` is `\`).
            if len == 2 && lead <= 0xc1 && matches!(c, b'.' | b'/' | b'\\') {
                return Some((char::from(c), 6));
            }
            return None;
        }
        code = code << 6 | u32::from(c & 0x3f);
    }
    Some((char::from_u32(code).unwrap_or('\u{fffd}'), 3 * len))
}

/// The base64 at the start of `bytes`, decoded (at most about `max` bytes), and how many
/// input bytes it ran over. Lenient as the decoders payloads aim at are: both alphabets
/// (`+/` and `-_`), padding and the blanks of wrapped lines skipped, a partial last group
/// kept; it stops at the first other byte. Written here rather than taken from a crate:
/// the usual decoders refuse exactly these liberties, and this is all the detector needs.
pub(crate) fn base64_prefix(bytes: &[u8], max: usize) -> (Vec<u8>, usize) {
    let mut decoded = Vec::new();
    let mut bits = 0u32;
    let mut count = 0;
    let mut used = 0;
    for &c in bytes {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            // Padding and the line breaks of wrapped base64 carry nothing.
            b'=' | b'\n' | b'\r' | b' ' | b'\t' => {
                used += 1;
                continue;
            }
            _ => break,
        };
        used += 1;
        bits = bits << 6 | u32::from(v);
        count += 1;
        if count == 4 {
            decoded.extend_from_slice(&[(bits >> 16) as u8, (bits >> 8) as u8, bits as u8]);
            bits = 0;
            count = 0;
            if decoded.len() >= max {
                break;
            }
        }
    }
    match count {
        2 => decoded.push((bits >> 4) as u8),
        3 => decoded.extend_from_slice(&[(bits >> 10) as u8, (bits >> 2) as u8]),
        _ => {}
    }
    (decoded, used)
}

/// Named entities worth knowing (browsers know two thousand; these are the ones that make
/// markup or separators).
const ENTITIES: &[(&str, char)] = &[
    ("lt", '<'),
    ("gt", '>'),
    ("amp", '&'),
    ("quot", '"'),
    ("apos", '\''),
    ("nbsp", ' '),
    ("tab", '\t'),
    ("newline", '\n'),
    ("colon", ':'),
    ("sol", '/'),
    ("bsol", '\\'),
    ("lpar", '('),
    ("rpar", ')'),
    ("semi", ';'),
    ("equals", '='),
    ("period", '.'),
    ("comma", ','),
    ("excl", '!'),
    ("num", '#'),
    ("grave", '`'),
    ("lsqb", '['),
    ("rsqb", ']'),
    ("lcub", '{'),
    ("rcub", '}'),
    ("plus", '+'),
    ("dollar", '$'),
    ("percnt", '%'),
    ("ast", '*'),
    ("vert", '|'),
];

/// One round of HTML entity decoding (`&lt;`, `&#60;`, `&#x3c;`, with or without the `;`,
/// leading zeros allowed); `None` when there was none.
pub fn html_entities(input: &str) -> Option<String> {
    let bytes = input.as_bytes();
    // Allocated at the first entity: code and prose have `&&` and `&str` that are none.
    let mut out: Option<String> = None;
    let mut last = 0;
    let mut i = 0;
    while let Some(p) = memchr::memchr(b'&', &bytes[i..]) {
        i += p;
        if let Some((c, used)) = entity_at(&bytes[i + 1..]) {
            let out = out.get_or_insert_with(|| String::with_capacity(input.len()));
            out.push_str(&input[last..i]);
            out.push(c);
            i += 1 + used;
            last = i;
        } else {
            i += 1;
        }
    }
    let mut out = out?;
    out.push_str(&input[last..]);
    Some(out)
}

/// The entity at the start of `rest` (after the `&`): the character and the bytes used.
fn entity_at(rest: &[u8]) -> Option<(char, usize)> {
    if rest.first() == Some(&b'#') {
        let (radix, start) = match rest.get(1) {
            Some(b'x' | b'X') => (16, 2),
            _ => (10, 1),
        };
        let digits = rest[start..]
            .iter()
            .take(12)
            .take_while(|b| (**b as char).is_digit(radix))
            .count();
        if digits == 0 {
            return None;
        }
        let text = std::str::from_utf8(&rest[start..start + digits]).ok()?;
        let significant = text.trim_start_matches('0');
        let code = if significant.is_empty() {
            0
        } else {
            // Too large for a code point: a replacement character, as browsers do.
            u32::from_str_radix(significant, radix).unwrap_or(u32::MAX)
        };
        let c = char::from_u32(code).unwrap_or('\u{fffd}');
        let mut used = start + digits;
        if rest.get(used) == Some(&b';') {
            used += 1;
        }
        return Some((c, used));
    }
    let name_len = rest
        .iter()
        .take(10)
        .take_while(|b| b.is_ascii_alphabetic())
        .count();
    let name = &rest[..name_len];
    let (_, c) = ENTITIES
        .iter()
        .find(|(n, _)| n.as_bytes().eq_ignore_ascii_case(name))?;
    // Named entities need their `;`, except the old ones browsers accept bare.
    if rest.get(name_len) == Some(&b';') {
        return Some((*c, name_len + 1));
    }
    let bare_ok = ["lt", "gt", "amp", "quot", "nbsp"]
        .iter()
        .any(|n| n.as_bytes().eq_ignore_ascii_case(name));
    bare_ok.then_some((*c, name_len))
}

/// Whether `fold` changes this non-ASCII character.
fn folds(c: char) -> bool {
    matches!(
        c,
        '\u{ff01}'..='\u{ff5e}'
            | '\u{3000}'
            | '\u{200b}'..='\u{200d}'
            | '\u{2060}'
            | '\u{feff}'
            | '\u{00ad}'
            | '\u{2024}'
            | '\u{fe52}'
            | '\u{2215}'
            | '\u{2044}'
            | '\u{29f8}'
            | '\u{fe68}'
            | '\u{29f5}'
            | '\u{29f9}'
            | '\u{2216}'
            | '\u{efc8}'
            | '\u{f025}'
            | '\u{2039}'
            | '\u{fe64}'
            | '\u{2032}'
            | '\u{2033}'
            | '\u{203a}'
            | '\u{fe65}'
    )
}

/// Fullwidth ASCII to ASCII, a few look-alike slashes and dots to theirs, invisible characters
/// and NUL removed; `None` when the text is plain already.
fn fold(input: &str, had_nul: &mut bool) -> Option<String> {
    // One branch-free pass (it vectorizes) says whether anything may need folding.
    let suspect = input.bytes().fold(false, |seen, b| {
        seen | (b < 0x20 && b != b'\n' && b != b'\r' && b != b'\t')
            | matches!(b, 0xc2 | 0xe2 | 0xe3 | 0xee | 0xef)
    });
    let needs = suspect
        && (input
            .bytes()
            .any(|b| b == 0 || (b < 0x20 && b != b'\n' && b != b'\r' && b != b'\t'))
            // Every character `fold` changes starts with one of these UTF-8 lead bytes.
            || (input
                .bytes()
                .any(|b| matches!(b, 0xc2 | 0xe2 | 0xe3 | 0xee | 0xef))
                && input.chars().any(folds)));
    if !needs {
        return None;
    }
    let mut out = String::with_capacity(input.len());
    let mut changed = false;
    for c in input.chars() {
        let mapped = match c {
            '\0' => {
                *had_nul = true;
                None
            }
            '\u{ff01}'..='\u{ff5e}' => char::from_u32(c as u32 - 0xff01 + 0x21),
            '\u{3000}' => Some(' '),
            '\u{200b}'..='\u{200d}' | '\u{2060}' | '\u{feff}' | '\u{00ad}' => None,
            '\u{2024}' | '\u{fe52}' => Some('.'),
            '\u{2215}' | '\u{2044}' | '\u{29f8}' => Some('/'),
            '\u{fe68}' | '\u{29f5}' | '\u{29f9}' | '\u{2216}' => Some('\\'),
            // IIS's private-use spellings of the separators in old traversal payloads.
            '\u{efc8}' => Some('/'),
            '\u{f025}' => Some('\\'),
            '\u{2039}' | '\u{fe64}' => Some('<'),
            // Primes, as payload lists typeset quotes (`' or '1′='1`).
            '\u{2032}' => Some('\''),
            '\u{2033}' => Some('"'),
            '\u{203a}' | '\u{fe65}' => Some('>'),
            // Vertical tab and form feed are whitespace to SQL, HTML and shells.
            '\u{b}' | '\u{c}' => Some(' '),
            // Other control characters are whitespace to no parser: dropped, as the servers
            // that traversal payloads aim `..%01/` at drop them.
            '\u{1}'..='\u{8}' | '\u{e}'..='\u{1f}' => None,
            other => Some(other),
        };
        if mapped != Some(c) {
            changed = true;
        }
        if let Some(m) = mapped {
            out.push(m);
        }
    }
    changed.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_and_unicode_percent_encodings() {
        assert_eq!(normalize("%252e%252e%252f", false).text, "../");
        assert_eq!(normalize("%252e%252e%252f", false).rounds, 2);
        assert_eq!(normalize("%u002e%u002e%u2215etc", false).text, "../etc");
        assert_eq!(normalize("%c0%ae%c0%ae%c0%afetc", false).text, "../etc");
        assert_eq!(normalize("%e0%80%ae", false).text, ".");
        // IIS's reading of a bad second byte: only separators and dots come out of it.
        assert_eq!(normalize("%c0%2e%c0%2e%c1%1cetc", false).text, "..\\etc");
        assert_eq!(normalize("%c0%ee%c0%ee%c0%2f", false).text, "../");
        assert_eq!(normalize("%c0%e1", false).text, "%c0%e1");
        // A lone `%c0`/`%c1` before an escaped separator, as decoders that drop it read it.
        assert_eq!(normalize("%c0%2e%c0%2e%c0%5cetc", false).text, "..\\etc");
        assert_eq!(normalize("%c0%41", false).text, "%c0A");
        assert_eq!(
            base64_prefix(b"PHNj\ncmlw dA==\">", 64),
            (b"<script".to_vec(), 14)
        );
        assert_eq!(normalize("a+b%20c", true).text, "a b c");
        assert_eq!(normalize("a+b", false).text, "a+b");
        // Not encodings: left alone.
        assert_eq!(
            normalize("100% sure, 50%off", false).text,
            "100% sure, 50%off"
        );
        assert!(matches!(
            normalize("plain text", false).text,
            Cow::Borrowed(_)
        ));
        // Nested five deep stops after four rounds (bounded), with no panic.
        let deep = "%25252525252e";
        assert_eq!(normalize(deep, false).rounds, MAX_ROUNDS as u8);
    }

    #[test]
    fn entities_and_folding() {
        assert_eq!(normalize("&lt;script&gt;", false).text, "<script>");
        assert_eq!(normalize("&#x3C;img&#62;", false).text, "<img>");
        assert_eq!(normalize("&#0000060;a", false).text, "<a");
        assert_eq!(
            normalize("jav&#x09;ascript&colon;", false).text,
            "jav\tascript:"
        );
        assert_eq!(normalize("&amp;lt;", false).text, "<");
        assert_eq!(normalize("Tom &amp Jerry", false).text, "Tom & Jerry");
        assert_eq!(normalize("AT&T and R&D", false).text, "AT&T and R&D");
        assert_eq!(normalize("ｓｃｒｉｐｔ", false).text, "script");
        assert_eq!(normalize("sel\u{200b}ect", false).text, "select");
        let n = normalize("file.php%00.jpg", false);
        assert_eq!(n.text, "file.php.jpg");
        assert!(n.had_nul);
    }

    #[test]
    fn invalid_bytes_never_panic() {
        assert_eq!(normalize("%ff%c0%qf%bg%", false).text, "%ff%c0%qf%bg%");
        // `%%35%%63` is `%5%c` after one round, read as `%5c` by the decoders it aims at.
        assert_eq!(normalize("%%35%%63etc", false).text, "\\etc");
        assert_eq!(normalize("&#xffffffffff;", false).text, "\u{fffd}");
        assert_eq!(normalize("&#;&#x;&", false).text, "&#;&#x;&");
    }
}
