//! Fuzzes the simulator's `tree` parser (Stapler's grammar): any query string gives a tree or a syntax
//! error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(spec) = std::str::from_utf8(data) {
        let _ = jenkins_sim::tree::parse_tree(spec);
    }
});
