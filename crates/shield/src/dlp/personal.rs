//! Personal data in text: e-mail addresses, phone numbers, payment cards, IBANs and national
//! identifiers.
//!
//! Each type is found by its shape and, where the format has one, confirmed by its checksum:
//! payment cards by the Luhn sum and an issuer's prefix, IBANs by their country's length and the
//! ISO 7064 mod-97 check, US social security numbers by the ranges never issued, Brazilian CPFs
//! by their two check digits, Spanish DNI/NIE by the control letter, UK National Insurance
//! numbers by their prefix letters. A number that fails its checksum is not reported, which is
//! what keeps order numbers, timestamps and ids out.
//!
//! Pure: no I/O, no clock.

use super::{ceil_boundary, floor_boundary};
use regex::Regex;
use std::sync::LazyLock;

/// A personal-data type, each on or off by policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PersonalType {
    /// An e-mail address.
    Email,
    /// A phone number written as one (international `+` form, or grouped national form).
    Phone,
    /// A payment card number (Luhn-valid, a known issuer prefix).
    PaymentCard,
    /// An international bank account number (mod-97 valid).
    Iban,
    /// A national identifier with a checksum or fixed shape (US SSN, UK NINO, BR CPF, ES DNI).
    NationalId,
}

impl PersonalType {
    /// Every type.
    pub const ALL: [PersonalType; 5] = [
        PersonalType::Email,
        PersonalType::Phone,
        PersonalType::PaymentCard,
        PersonalType::Iban,
        PersonalType::NationalId,
    ];

    /// The family name used in findings and the policy.
    pub fn as_str(self) -> &'static str {
        match self {
            PersonalType::Email => "email",
            PersonalType::Phone => "phone",
            PersonalType::PaymentCard => "payment_card",
            PersonalType::Iban => "iban",
            PersonalType::NationalId => "national_id",
        }
    }

    /// The type of this name.
    pub fn from_name(name: &str) -> Option<PersonalType> {
        Self::ALL.into_iter().find(|t| t.as_str() == name)
    }
}

/// Personal data found in a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonalMatch {
    /// What it is.
    pub kind: PersonalType,
    /// Byte range of the value.
    pub start: usize,
    /// End (exclusive).
    pub end: usize,
}

struct Patterns {
    email: Regex,
    card: Regex,
    iban: Regex,
    phone: Regex,
    ssn: Regex,
    nino: Regex,
    cpf: Regex,
    dni: Regex,
}

static PATTERNS: LazyLock<Patterns> = LazyLock::new(|| {
    let re = |p: &str| Regex::new(p).expect("personal-data patterns are valid");
    Patterns {
        email: re(
            r"[A-Za-z0-9](?:[A-Za-z0-9._%+\-]{0,62}[A-Za-z0-9_%+\-])?@[A-Za-z0-9](?:[A-Za-z0-9\-]{0,62}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]{0,62}[A-Za-z0-9])?)*\.[A-Za-z]{2,24}(?-u:\b)",
        ),
        // 13 to 19 digits, in groups separated by single spaces or dashes.
        card: re(r"(?:^|[^0-9\-.])([0-9](?:[ \-]?[0-9]){12,18})(?:[^0-9\-]|$)"),
        iban: re(r"(?-u:\b)([A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]){11,30})(?-u:\b)"),
        // International form, or (NNN) NNN-NNNN / NNN-NNN-NNNN / NNN.NNN.NNNN.
        phone: re(
            r"(?:^|[^\w+])(\+[1-9][0-9]{0,2}[ \-.]?(?:\(?[0-9]{1,4}\)?[ \-.]?){1,4}[0-9]{2,4}|\(?[0-9]{3}\)[ \-.]?[0-9]{3}[ \-.][0-9]{4}|[0-9]{3}[\-.][0-9]{3}[\-.][0-9]{4})(?:[^\w]|$)",
        ),
        ssn: re(r"(?:^|[^\w\-])([0-9]{3}-[0-9]{2}-[0-9]{4})(?:[^\w\-]|$)"),
        nino: re(
            r"(?-u:\b)([A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?[0-9]{2} ?[0-9]{2} ?[0-9]{2} ?[A-D])(?-u:\b)",
        ),
        cpf: re(r"(?:^|[^\w.\-])([0-9]{3}\.[0-9]{3}\.[0-9]{3}-[0-9]{2})(?:[^\w.\-]|$)"),
        dni: re(r"(?-u:\b)([XYZ]?[0-9]{7,8}-?[A-HJ-NP-TV-Z])(?-u:\b)"),
    }
});

/// Builds the patterns; call at start so no request pays for it.
pub fn warm_up() {
    LazyLock::force(&PATTERNS);
}

/// Whether `text` may hold personal data of the enabled types: an `@`, or a run of digits
/// long enough for one of them. False means [`find`] would find nothing.
pub fn may_contain(text: &str, enabled: &[PersonalType]) -> bool {
    let on = |t: PersonalType| enabled.contains(&t);
    if on(PersonalType::Email) && memchr::memchr(b'@', text.as_bytes()).is_some() {
        return true;
    }
    let runs = DigitRuns::of(text.as_bytes());
    (on(PersonalType::PaymentCard) && runs.longest >= 13)
        || (on(PersonalType::Iban) && runs.iban_start)
        || (on(PersonalType::Phone) && (runs.longest >= 10 || runs.plus_run >= 8))
        || (on(PersonalType::NationalId)
            && (runs.longest >= 9 || runs.nino_start || runs.dni_shape))
}

/// Every personal value of the enabled types in `text`, in order, without overlaps.
pub fn find(text: &str, enabled: &[PersonalType]) -> Vec<PersonalMatch> {
    let on = |t: PersonalType| enabled.contains(&t);
    let mut found: Vec<PersonalMatch> = Vec::new();
    let push = |kind: PersonalType, start: usize, end: usize, found: &mut Vec<PersonalMatch>| {
        if !found.iter().any(|f| f.start < end && start < f.end) {
            found.push(PersonalMatch { kind, start, end });
        }
    };
    let p = &*PATTERNS;
    if on(PersonalType::Email) && memchr::memchr(b'@', text.as_bytes()).is_some() {
        for m in p.email.find_iter(text) {
            push(PersonalType::Email, m.start(), m.end(), &mut found);
        }
    }
    // Everything else is made of digits: one pass measures the longest run of digits (single
    // separators allowed, as numbers are printed), and each type's expression runs only when
    // a run is long enough to be one.
    let runs = DigitRuns::of(text.as_bytes());
    if runs.longest < 6 {
        found.sort_by_key(|f| f.start);
        return found;
    }
    // Each expression reads only windows around the runs long enough for its type.
    let windows = |min_digits: usize| -> Vec<(usize, usize)> {
        let mut out: Vec<(usize, usize)> = Vec::new();
        for &(start, end, digits) in &runs.spans {
            if digits < min_digits {
                continue;
            }
            let from = floor_boundary(text, start.saturating_sub(4));
            let to = ceil_boundary(text, (end + 4).min(text.len()));
            match out.last_mut() {
                Some(last) if from <= last.1 => last.1 = last.1.max(to),
                _ => out.push((from, to)),
            }
        }
        if runs.spans_overflowed {
            out = vec![(0, text.len())];
        }
        out
    };
    let scan = |regex: &Regex,
                min_digits: usize,
                kind: PersonalType,
                valid: &dyn Fn(&str) -> bool,
                found: &mut Vec<PersonalMatch>| {
        for (from, to) in windows(min_digits) {
            for caps in regex.captures_iter(&text[from..to]) {
                if let Some(m) = caps.get(1) {
                    if valid(m.as_str()) {
                        push(kind, from + m.start(), from + m.end(), found);
                    }
                }
            }
        }
    };
    if on(PersonalType::PaymentCard) && runs.longest >= 13 {
        scan(
            &p.card,
            13,
            PersonalType::PaymentCard,
            &payment_card,
            &mut found,
        );
    }
    if on(PersonalType::Iban) && runs.iban_start {
        // Letters interrupt an IBAN's digits: read the whole text (rare: the cheap test
        // found a country code, check digits and eleven more characters).
        for caps in p.iban.captures_iter(text) {
            if let Some(m) = caps.get(1) {
                let trimmed = trim_iban(m.as_str());
                if iban(trimmed) {
                    push(
                        PersonalType::Iban,
                        m.start(),
                        m.start() + trimmed.len(),
                        &mut found,
                    );
                }
            }
        }
    }
    if on(PersonalType::NationalId) {
        scan(&p.ssn, 9, PersonalType::NationalId, &ssn, &mut found);
        scan(&p.cpf, 11, PersonalType::NationalId, &cpf, &mut found);
        if runs.nino_start {
            scan(&p.nino, 6, PersonalType::NationalId, &|_| true, &mut found);
        }
        if runs.dni_shape {
            scan(&p.dni, 7, PersonalType::NationalId, &dni, &mut found);
        }
    }
    if on(PersonalType::Phone) && (runs.longest >= 10 || runs.plus_run >= 8) {
        scan(&p.phone, 8, PersonalType::Phone, &phone, &mut found);
    }
    found.sort_by_key(|f| f.start);
    found
}

/// What one pass over the bytes says about the digits in a text.
struct DigitRuns {
    /// The most digits in one run, a single separator (space, dash, dot, parenthesis) allowed
    /// between them.
    longest: usize,
    /// The most digits in a run that starts with `+` (an international phone number).
    plus_run: usize,
    /// Two capital letters followed by two digits somewhere (how an IBAN starts).
    iban_start: bool,
    /// Two capital letters, maybe a space, then digits (how a UK NINO starts).
    nino_start: bool,
    /// Seven or eight digits followed by a capital letter (a Spanish DNI or NIE).
    dni_shape: bool,
    /// Runs of six digits or more: start, end (bytes) and digits.
    spans: Vec<(usize, usize, usize)>,
    /// More runs than [`MAX_SPANS`]: the expressions read the whole text.
    spans_overflowed: bool,
}

/// Runs kept for windowed reading; past this, the whole text is read.
const MAX_SPANS: usize = 64;

impl DigitRuns {
    fn of(bytes: &[u8]) -> DigitRuns {
        let mut runs = DigitRuns {
            longest: 0,
            plus_run: 0,
            iban_start: false,
            nino_start: false,
            dni_shape: false,
            spans: Vec::new(),
            spans_overflowed: false,
        };
        let mut run_start = 0;
        let mut last_digit = 0;
        // Digits in the current run (separators allowed), and without a separator.
        let mut current = 0;
        let mut plain = 0;
        let mut plus = false;
        let mut lettered = false;
        let mut separators = 0;
        let upper = |at: usize| bytes.get(at).is_some_and(u8::is_ascii_uppercase);
        let mut i = 0;
        while i < bytes.len() {
            if current == 0 {
                // Between runs nothing is measured: jump to the next digit, eight bytes at a
                // time (most of a text is not digits).
                match next_digit(bytes, i) {
                    Some(at) => i = at,
                    None => break,
                }
            }
            let b = bytes[i];
            if b.is_ascii_digit() {
                last_digit = i;
                if current == 0 {
                    run_start = i;
                    plus = i > 0 && bytes[i - 1] == b'+';
                    let two_letters = |end: usize| end >= 2 && upper(end - 1) && upper(end - 2);
                    lettered =
                        two_letters(i) || (i >= 1 && bytes[i - 1] == b' ' && two_letters(i - 1));
                    // CC, two check digits, then at least 11 letters, digits or spaces.
                    if two_letters(i)
                        && bytes.get(i + 1).is_some_and(u8::is_ascii_digit)
                        && bytes.len() >= i + 13
                        && bytes[i + 2..i + 13]
                            .iter()
                            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || *b == b' ')
                    {
                        runs.iban_start = true;
                    }
                }
                current += 1;
                plain += 1;
                separators = 0;
                runs.longest = runs.longest.max(current);
                if plus {
                    runs.plus_run = runs.plus_run.max(current);
                }
                if lettered && current >= 6 {
                    runs.nino_start = true;
                }
            } else if current > 0 && matches!(b, b' ' | b'-' | b'.' | b'(' | b')') && separators < 2
            {
                if (7..=8).contains(&plain) && b == b'-' && upper(i + 1) {
                    runs.dni_shape = true;
                }
                plain = 0;
                separators += 1;
            } else {
                if (7..=8).contains(&plain) && b.is_ascii_uppercase() {
                    runs.dni_shape = true;
                }
                runs.end_run(current, run_start, last_digit + 1);
                current = 0;
                plain = 0;
                separators = 0;
            }
            i += 1;
        }
        runs.end_run(current, run_start, last_digit + 1);
        runs
    }

    fn end_run(&mut self, digits: usize, start: usize, end: usize) {
        if digits >= 6 {
            if self.spans.len() < MAX_SPANS {
                self.spans.push((start, end, digits));
            } else {
                self.spans_overflowed = true;
            }
        }
    }
}

/// The first ASCII digit in `bytes` at or after `from`.
///
/// Eight bytes are tested at once (SWAR): a byte `b < 0x80` is a digit when `b + 0x50` reaches
/// 0x80 (`b >= 0x30`) and `b + 0x46` does not (`b < 0x3A`). The top bit of each byte is masked
/// off first, so no sum carries into the next byte, and bytes with it set (never digits) are
/// dropped after. The byte-by-byte loop this replaces cost about 2 ns a byte.
fn next_digit(bytes: &[u8], from: usize) -> Option<usize> {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let rest = bytes.get(from..)?;
    let mut chunks = rest.chunks_exact(8);
    let mut at = from;
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word);
        let y = x & LOW7;
        let digits = (y + 0x5050_5050_5050_5050) & !(y + 0x4646_4646_4646_4646) & !x & HIGH;
        if digits != 0 {
            return Some(at + (digits.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(u8::is_ascii_digit)
        .map(|p| at + p)
}

/// Luhn-valid, 13 to 19 digits, with the prefix of a card network.
pub fn payment_card(text: &str) -> bool {
    let digits: Vec<u8> = text
        .bytes()
        .filter(u8::is_ascii_digit)
        .map(|d| d - b'0')
        .collect();
    if !(13..=19).contains(&digits.len()) {
        return false;
    }
    // Separators, when present, group the digits as cards are printed (4-4-4-4, 4-6-5).
    let groups: Vec<usize> = text
        .split([' ', '-'])
        .filter(|g| !g.is_empty())
        .map(str::len)
        .collect();
    if groups.len() > 1 && !(groups[0] == 4 && groups.iter().all(|g| (4..=6).contains(g))) {
        return false;
    }
    let prefix = |n: usize| digits[..n].iter().fold(0u32, |a, d| a * 10 + u32::from(*d));
    let issuer = match digits[0] {
        4 => true,                                             // Visa
        5 => (51..=55).contains(&prefix(2)),                   // Mastercard
        2 => (2221..=2720).contains(&prefix(4)),               // Mastercard 2-series
        3 => matches!(prefix(2), 34 | 37 | 35 | 36 | 38 | 30), // Amex, JCB, Diners
        6 => {
            prefix(4) == 6011
                || prefix(2) == 65
                || (644..=649).contains(&prefix(3))
                || prefix(2) == 62
        } // Discover, UnionPay
        _ => false,
    };
    if !issuer || digits.iter().all(|d| *d == digits[0]) {
        return false;
    }
    luhn(&digits)
}

fn luhn(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| {
            let d = u32::from(*d);
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 {
                    x - 9
                } else {
                    x
                }
            } else {
                d
            }
        })
        .sum();
    sum % 10 == 0
}

/// IBAN lengths by country (ISO 13616 registry).
const IBAN_LENGTHS: [(&str, usize); 60] = [
    ("AD", 24),
    ("AE", 23),
    ("AL", 28),
    ("AT", 20),
    ("AZ", 28),
    ("BA", 20),
    ("BE", 16),
    ("BG", 22),
    ("BH", 22),
    ("BR", 29),
    ("CH", 21),
    ("CR", 22),
    ("CY", 28),
    ("CZ", 24),
    ("DE", 22),
    ("DK", 18),
    ("DO", 28),
    ("EE", 20),
    ("EG", 29),
    ("ES", 24),
    ("FI", 18),
    ("FO", 18),
    ("FR", 27),
    ("GB", 22),
    ("GE", 22),
    ("GI", 23),
    ("GL", 18),
    ("GR", 27),
    ("GT", 28),
    ("HR", 21),
    ("HU", 28),
    ("IE", 22),
    ("IL", 23),
    ("IS", 26),
    ("IT", 27),
    ("JO", 30),
    ("KW", 30),
    ("KZ", 20),
    ("LB", 28),
    ("LI", 21),
    ("LT", 20),
    ("LU", 20),
    ("LV", 21),
    ("MC", 27),
    ("MD", 24),
    ("ME", 22),
    ("MK", 19),
    ("MR", 27),
    ("MT", 31),
    ("MU", 30),
    ("NL", 18),
    ("NO", 15),
    ("PK", 24),
    ("PL", 28),
    ("PT", 25),
    ("RO", 24),
    ("RS", 22),
    ("SA", 24),
    ("SE", 24),
    ("SI", 19),
];

/// The candidate cut to its country's length (a space-grouped IBAN may run into the next word).
fn trim_iban(text: &str) -> &str {
    let Some(country) = text.get(..2) else {
        return text;
    };
    let Some(&(_, length)) = IBAN_LENGTHS.iter().find(|(c, _)| *c == country) else {
        return text;
    };
    let mut seen = 0;
    for (i, c) in text.char_indices() {
        if c != ' ' {
            seen += 1;
            if seen == length {
                return &text[..i + 1];
            }
        }
    }
    text
}

/// The country's length and the mod-97 check.
pub fn iban(text: &str) -> bool {
    let compact: Vec<u8> = text.bytes().filter(|b| *b != b' ').collect();
    let Some(country) = std::str::from_utf8(compact.get(..2).unwrap_or(&[])).ok() else {
        return false;
    };
    let Some(&(_, length)) = IBAN_LENGTHS.iter().find(|(c, _)| *c == country) else {
        return false;
    };
    if compact.len() != length {
        return false;
    }
    let rearranged = compact[4..].iter().chain(&compact[..4]);
    let mut remainder: u32 = 0;
    for b in rearranged {
        let value = match b {
            b'0'..=b'9' => u32::from(b - b'0'),
            b'A'..=b'Z' => u32::from(b - b'A') + 10,
            _ => return false,
        };
        remainder = if value >= 10 {
            (remainder * 100 + value) % 97
        } else {
            (remainder * 10 + value) % 97
        };
    }
    remainder == 1
}

/// A US SSN in its printed shape, outside the ranges never issued (000, 666, 9xx; 00; 0000).
fn ssn(text: &str) -> bool {
    let parts: Vec<&str> = text.split('-').collect();
    let [area, group, serial] = parts.as_slice() else {
        return false;
    };
    *area != "000"
        && *area != "666"
        && !area.starts_with('9')
        && *group != "00"
        && *serial != "0000"
        // Examples and test values: 123-45-6789, 078-05-1120 (the Woolworth wallet card).
        && text != "123-45-6789"
        && text != "078-05-1120"
}

/// A Brazilian CPF with both check digits right.
fn cpf(text: &str) -> bool {
    let d: Vec<u32> = text
        .bytes()
        .filter(u8::is_ascii_digit)
        .map(|b| u32::from(b - b'0'))
        .collect();
    if d.len() != 11 || d.iter().all(|x| *x == d[0]) {
        return false;
    }
    let check = |n: usize| {
        let sum: u32 = (0..n).map(|i| d[i] * (n as u32 + 1 - i as u32)).sum();
        let r = (sum * 10) % 11;
        if r == 10 {
            0
        } else {
            r
        }
    };
    check(9) == d[9] && check(10) == d[10]
}

/// A Spanish DNI (8 digits) or NIE (X/Y/Z and 7 digits) with the right control letter.
fn dni(text: &str) -> bool {
    const LETTERS: &[u8; 23] = b"TRWAGMYFPDXBNJZSQVHLCKE";
    let compact: String = text.chars().filter(|c| *c != '-').collect();
    let (prefix, rest) = match compact.as_bytes().first() {
        Some(b'X') => ("0", &compact[1..]),
        Some(b'Y') => ("1", &compact[1..]),
        Some(b'Z') => ("2", &compact[1..]),
        _ => ("", compact.as_str()),
    };
    if rest.len() < 2 {
        return false;
    }
    let (number, letter) = rest.split_at(rest.len() - 1);
    let digits = format!("{prefix}{number}");
    if digits.len() != 8 {
        return false;
    }
    let Ok(n) = digits.parse::<u32>() else {
        return false;
    };
    letter.as_bytes().first() == Some(&LETTERS[(n % 23) as usize])
}

/// A phone number: 8 to 15 digits (E.164), not a date or a version.
fn phone(text: &str) -> bool {
    let digits = text.bytes().filter(u8::is_ascii_digit).count();
    if !(8..=15).contains(&digits) {
        return false;
    }
    if !text.starts_with('+') && digits != 10 {
        return false;
    }
    // Not one digit repeated (0000000000) or a counting run.
    let d: Vec<u8> = text.bytes().filter(u8::is_ascii_digit).collect();
    !(d.iter().all(|x| *x == d[0]) || d.windows(2).all(|w| w[1] == w[0] + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<&'static str> {
        find(text, &PersonalType::ALL)
            .into_iter()
            .map(|m| m.kind.as_str())
            .collect()
    }

    #[test]
    fn the_next_digit_is_found_eight_bytes_at_a_time_as_one_at_a_time() {
        // Every byte value, at every offset around the eight-byte chunks.
        for probe in 0..=255u8 {
            for len in 0..20 {
                for at in 0..len {
                    let mut bytes = vec![b'x'; len];
                    bytes[at] = probe;
                    for from in 0..=len {
                        let want = bytes
                            .iter()
                            .skip(from)
                            .position(u8::is_ascii_digit)
                            .map(|p| p + from);
                        assert_eq!(next_digit(&bytes, from), want, "{probe} {len} {at} {from}");
                    }
                }
            }
        }
        let text = "héllo wörld ✓ ☃ 7";
        assert_eq!(next_digit(text.as_bytes(), 0), text.find('7'));
    }

    #[test]
    fn checksums_decide() {
        assert!(payment_card("4111 1111 1111 1111"));
        assert!(payment_card("5555-5555-5555-4444"));
        assert!(payment_card("378282246310005"));
        assert!(!payment_card("4111 1111 1111 1112"));
        assert!(!payment_card("1234567812345678"));
        assert!(iban("GB82 WEST 1234 5698 7654 32"));
        assert!(iban("DE89370400440532013000"));
        assert!(!iban("DE89370400440532013001"));
        assert!(cpf("529.982.247-25"));
        assert!(!cpf("529.982.247-26"));
        assert!(dni("12345678Z"));
        assert!(!dni("12345678A"));
    }

    #[test]
    fn values_are_found_in_text() {
        assert_eq!(
            kinds("Contact jane.doe@example.org or +44 20 7946 0958; card 4111-1111-1111-1111."),
            ["email", "phone", "payment_card"]
        );
        assert_eq!(kinds("IBAN: GB82 WEST 1234 5698 7654 32 (main)"), ["iban"]);
        assert_eq!(
            kinds("SSN 536-22-1234, NINO AB 12 34 56 C"),
            ["national_id", "national_id"]
        );
        assert_eq!(kinds("call (415) 555-2671 today"), ["phone"]);
    }

    #[test]
    fn numbers_that_are_not_personal_data_pass() {
        for text in [
            "order 1234567812345678 shipped",
            "2024-03-01T00:00:00.000 volume 73488000",
            "version 1.2.3, build 20240301",
            "id 123-45-6789 is the documentation example",
            "price 999.99, rating 4",
        ] {
            assert!(kinds(text).is_empty(), "{text}: {:?}", kinds(text));
        }
    }
}
