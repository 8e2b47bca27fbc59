//! What the store's write path reserves for a stream's source covers what the source may really hold: the
//! HTTP client's read buffer and the verified stream's hashing backlog (the store cannot name the
//! integrity layer, so the two constants meet here).

/// hyper's largest HTTP/1 read buffer (`DEFAULT_MAX_BUFFER_SIZE`: 8 KiB + 100 × 4 KiB).
const HTTP_READ_BUFFER: u64 = 8192 + 4096 * 100;

#[test]
fn the_source_allowance_covers_the_read_buffer_and_the_hashing_backlog() {
    let reserved = jam::store::write::SOURCE_HELD;
    let held = jam::integrity::MAX_HELD + HTTP_READ_BUFFER;
    assert!(
        reserved >= held,
        "SOURCE_HELD ({reserved}) must cover integrity::MAX_HELD + the HTTP read buffer ({held})"
    );
}
