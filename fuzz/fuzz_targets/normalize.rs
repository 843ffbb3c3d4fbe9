//! The decoders alone: percent (repeated, `%u`, overlong UTF-8), entities, folding.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_shield::threat::decode;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for form in [false, true] {
        let n = decode::normalize(&text, form);
        assert!(n.text.len() <= text.len() * 4 + 4);
    }
});
