//! Limits on the shape of JSON request bodies, checked byte by byte while the body is read.
//!
//! A body can cost its parser far more than its size: 400 KB of `[` nested 200,000 deep
//! overflows the stack of a recursive parser (Python's `json` raises `RecursionError`, which an
//! MCP server answers with a crash or a 500), a million keys in one object is a million hash
//! insertions, and a batch of 10,000 JSON-RPC calls is 10,000 calls for the price of one
//! request. No real client comes near the defaults (nesting 64, 100,000 items per array, 10,000
//! keys per object, batches of 100, strings of 8 MiB), so a body past any of them is refused at
//! the door with 400 and a JSON-RPC error (-32600) naming the limit.
//!
//! The checker is a small state machine fed chunk by chunk as the body arrives, so a refused
//! body is never buffered whole and an oversized body that is streamed on past the inspection
//! limit is still checked to its end. It does not validate JSON: a malformed body is the JSON-RPC
//! reader's business. Written here rather than taken from a crate because no streaming JSON
//! reader counts items per container without building them, and the only state needed is one
//! small frame per open container (at most `max_depth` of them).

/// Which limit a body broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JsonLimit {
    /// Containers nested inside each other.
    Depth,
    /// Elements of one array.
    ArrayItems,
    /// Keys of one object.
    ObjectKeys,
    /// Messages of one JSON-RPC batch (a top-level array on an MCP path).
    Batch,
    /// Bytes of one string (as written, escapes counted as written).
    StringBytes,
}

impl JsonLimit {
    /// The setting that changes it.
    pub fn setting(self) -> &'static str {
        match self {
            JsonLimit::Depth => "SECURITY_JSON_MAX_DEPTH",
            JsonLimit::ArrayItems => "SECURITY_JSON_MAX_ARRAY_ITEMS",
            JsonLimit::ObjectKeys => "SECURITY_JSON_MAX_OBJECT_KEYS",
            JsonLimit::Batch => "SECURITY_JSON_MAX_BATCH",
            JsonLimit::StringBytes => "SECURITY_JSON_MAX_STRING_BYTES",
        }
    }

    /// What it limits, in words.
    pub fn describe(self) -> &'static str {
        match self {
            JsonLimit::Depth => "nesting depth",
            JsonLimit::ArrayItems => "elements in one array",
            JsonLimit::ObjectKeys => "keys in one object",
            JsonLimit::Batch => "messages in one JSON-RPC batch",
            JsonLimit::StringBytes => "bytes in one string",
        }
    }
}

/// A body past a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonLimitExceeded {
    /// Which limit.
    pub limit: JsonLimit,
    /// Its value.
    pub max: u64,
}

impl std::fmt::Display for JsonLimitExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "JSON body exceeds the limit of {} {} ({})",
            self.max,
            self.limit.describe(),
            self.limit.setting()
        )
    }
}

/// The limits. A zero means no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonLimits {
    /// Containers nested inside each other.
    pub max_depth: u64,
    /// Elements of one array.
    pub max_array_items: u64,
    /// Keys of one object.
    pub max_object_keys: u64,
    /// Messages of one JSON-RPC batch.
    pub max_batch: u64,
    /// Bytes of one string.
    pub max_string_bytes: u64,
}

impl Default for JsonLimits {
    fn default() -> Self {
        JsonLimits {
            max_depth: 64,
            max_array_items: 100_000,
            max_object_keys: 10_000,
            max_batch: 100,
            max_string_bytes: 8 * 1024 * 1024,
        }
    }
}

fn over(count: u64, max: u64) -> bool {
    max != 0 && count > max
}

#[derive(Debug, Clone, Copy)]
struct Frame {
    array: bool,
    /// Elements (arrays) or keys (objects) seen so far.
    count: u64,
    /// Whether the array has a first element yet (elements = commas + 1 once it has).
    any: bool,
}

/// The streaming checker for one body.
#[derive(Debug, Clone)]
pub struct JsonShapeChecker {
    limits: JsonLimits,
    /// A top-level array is a JSON-RPC batch (MCP paths).
    batch: bool,
    stack: Vec<Frame>,
    in_string: bool,
    escaped: bool,
    string_bytes: u64,
    failed: Option<JsonLimitExceeded>,
}

impl JsonShapeChecker {
    /// A checker; `batch` says a top-level array is a JSON-RPC batch.
    pub fn new(limits: JsonLimits, batch: bool) -> Self {
        JsonShapeChecker {
            limits,
            batch,
            stack: Vec::new(),
            in_string: false,
            escaped: false,
            string_bytes: 0,
            failed: None,
        }
    }

    fn fail(&mut self, limit: JsonLimit, max: u64) -> Result<(), JsonLimitExceeded> {
        let exceeded = JsonLimitExceeded { limit, max };
        self.failed = Some(exceeded);
        Err(exceeded)
    }

    fn count_item(&mut self) -> Result<(), JsonLimitExceeded> {
        let top_level_batch = self.batch && self.stack.len() == 1;
        let Some(frame) = self.stack.last_mut() else {
            return Ok(());
        };
        frame.count += 1;
        let count = frame.count;
        let (limit, max) = if !frame.array {
            (JsonLimit::ObjectKeys, self.limits.max_object_keys)
        } else if top_level_batch {
            (JsonLimit::Batch, self.limits.max_batch)
        } else {
            (JsonLimit::ArrayItems, self.limits.max_array_items)
        };
        if over(count, max) {
            return self.fail(limit, max);
        }
        Ok(())
    }

    /// Reads the next piece of the body; an error once a limit is passed (and for every piece
    /// after).
    pub fn feed(&mut self, chunk: &[u8]) -> Result<(), JsonLimitExceeded> {
        if let Some(failed) = self.failed {
            return Err(failed);
        }
        let mut i = 0;
        while i < chunk.len() {
            if self.in_string {
                // Jump to the next quote or backslash: string contents are most of a body.
                if self.escaped {
                    self.escaped = false;
                    self.string_bytes += 1;
                    i += 1;
                    continue;
                }
                match memchr::memchr2(b'"', b'\\', &chunk[i..]) {
                    None => {
                        self.string_bytes += (chunk.len() - i) as u64;
                        i = chunk.len();
                    }
                    Some(at) => {
                        self.string_bytes += at as u64;
                        i += at;
                        if chunk[i] == b'\\' {
                            self.escaped = true;
                            self.string_bytes += 1;
                        } else {
                            self.in_string = false;
                        }
                        i += 1;
                    }
                }
                if over(self.string_bytes, self.limits.max_string_bytes) {
                    return self.fail(JsonLimit::StringBytes, self.limits.max_string_bytes);
                }
                continue;
            }
            let byte = chunk[i];
            i += 1;
            if byte.is_ascii_whitespace() {
                continue;
            }
            // The first element of an array counts when anything but its end appears.
            if let Some(frame) = self.stack.last_mut() {
                if frame.array && !frame.any && byte != b']' {
                    frame.any = true;
                    self.count_item()?;
                }
            }
            match byte {
                b'"' => {
                    self.in_string = true;
                    self.string_bytes = 0;
                }
                b'{' | b'[' => {
                    if over(self.stack.len() as u64 + 1, self.limits.max_depth) {
                        return self.fail(JsonLimit::Depth, self.limits.max_depth);
                    }
                    self.stack.push(Frame {
                        array: byte == b'[',
                        count: 0,
                        any: false,
                    });
                }
                b'}' | b']' => {
                    self.stack.pop();
                }
                // Commas count array elements after the first; colons count object keys.
                b',' if self.stack.last().is_some_and(|f| f.array) => self.count_item()?,
                b':' if self.stack.last().is_some_and(|f| !f.array) => self.count_item()?,
                _ => {}
            }
        }
        Ok(())
    }
}

/// Checks a whole body at once.
pub fn check(body: &[u8], limits: JsonLimits, batch: bool) -> Result<(), JsonLimitExceeded> {
    JsonShapeChecker::new(limits, batch).feed(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> JsonLimits {
        JsonLimits {
            max_depth: 4,
            max_array_items: 3,
            max_object_keys: 2,
            max_batch: 2,
            max_string_bytes: 5,
        }
    }

    fn limit_of(body: &str, batch: bool) -> Option<JsonLimit> {
        check(body.as_bytes(), limits(), batch)
            .err()
            .map(|e| e.limit)
    }

    #[test]
    fn within_limits_passes() {
        for body in [
            r#"{"a":[1,2,3],"b":{"c":"12345"}}"#,
            r#"[[[1]]]"#,
            r#"[]"#,
            r#"{}"#,
            r#"[1, 2 ,3 ]"#,
            r#"{"x":"[{,:"}"#,
            r#""\"\"""#,
        ] {
            assert_eq!(limit_of(body, false), None, "{body}");
        }
    }

    #[test]
    fn each_limit_is_named() {
        assert_eq!(limit_of("[[[[[1]]]]]", false), Some(JsonLimit::Depth));
        assert_eq!(limit_of("[1,2,3,4]", false), Some(JsonLimit::ArrayItems));
        assert_eq!(
            limit_of(r#"{"a":1,"b":2,"c":3}"#, false),
            Some(JsonLimit::ObjectKeys)
        );
        assert_eq!(limit_of(r#"[{},{},{}]"#, true), Some(JsonLimit::Batch));
        assert_eq!(limit_of(r#"[{},{},{}]"#, false), None);
        assert_eq!(
            limit_of(r#"{"a":"123456"}"#, false),
            Some(JsonLimit::StringBytes)
        );
        // Escapes count as written: six bytes.
        assert_eq!(
            limit_of(r#"{"a":"\\\\\\"}"#, false),
            Some(JsonLimit::StringBytes)
        );
        // Structure inside a string is text.
        assert_eq!(limit_of(r#"{"a":"[[[["}"#, false), None);
    }

    #[test]
    fn chunks_split_anywhere_agree_with_the_whole() {
        let bodies = [
            r#"{"a":[1,2,3],"b":{"c":"12\"45"}}"#,
            r#"[[[[[1]]]]]"#,
            r#"{"a":"1\\2\\3"}"#,
            r#"[1,2,3,4]"#,
        ];
        for body in bodies {
            let whole = check(body.as_bytes(), limits(), false);
            for split in 0..body.len() {
                let mut checker = JsonShapeChecker::new(limits(), false);
                let (a, b) = body.as_bytes().split_at(split);
                let result = checker.feed(a).and_then(|_| checker.feed(b));
                assert_eq!(result, whole, "{body} split at {split}");
            }
        }
    }

    #[test]
    fn a_deep_body_is_refused_at_the_limit_not_after_reading_it() {
        let body = "[".repeat(200_000);
        let mut checker = JsonShapeChecker::new(JsonLimits::default(), true);
        let err = checker.feed(body.as_bytes()).expect_err("too deep");
        assert_eq!(err.limit, JsonLimit::Depth);
        assert_eq!(err.max, 64);
        assert!(checker.stack.len() <= 64);
        assert!(err.to_string().contains("SECURITY_JSON_MAX_DEPTH"));
        // And stays refused.
        assert!(checker.feed(b"]").is_err());
    }

    #[test]
    fn zero_means_no_limit() {
        let none = JsonLimits {
            max_depth: 0,
            max_array_items: 0,
            max_object_keys: 0,
            max_batch: 0,
            max_string_bytes: 0,
        };
        assert!(check("[".repeat(1000).as_bytes(), none, true).is_ok());
    }
}
