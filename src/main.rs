//! The `jam` binary: sets the process's allocator policy, then hands the command line and the process
//! environment to the library.

// `mallopt` is a C call (the workspace lints in Cargo.toml list where `unsafe` is allowed).
#![allow(unsafe_code)]

fn main() -> std::process::ExitCode {
    allocator_policy();
    jam::cli::main(jam::config::Env::process())
}

/// Sets glibc's allocator to keep one arena, and to keep the memory it has instead of handing it back
/// and faulting it in again.
///
/// - **One arena instead of one per thread.** Most of what jam allocates by volume is HTTP read buffers
///   of one size (hyper's, 408 KiB), filled on whichever runtime thread polls the connection and freed
///   on whichever thread finished the part upload or the file write. With an arena per thread, each
///   arena grows to its own high-water mark, and small allocations that land in the holes keep those
///   pages resident. With one arena, the typical bench's peak RSS fell from 63–69 to 52–54 MiB, at the
///   same CPU time (README, "What bounds jam"): jam makes about ten thousand allocations a second, too
///   few for one arena's lock to matter.
/// - **Fixed mmap and trim thresholds** (1 MiB and 16 MiB). By default glibc returns the top of the heap
///   to the kernel whenever a little more than two read buffers are free there, so the next buffers
///   fault their pages in again: about 55,000 page faults per GiB mirrored into a directory, against
///   5,000 with these thresholds (kernel time 0.75 → 0.62 s per GiB). Peak memory stays bounded by the
///   buffer budget; what is kept is at most 16 MiB that jam would fault in again anyway. Setting one
///   threshold ends glibc's own adjustment of both, so both are set: buffers up to 1 MiB come from the
///   heap (glibc's adjustment would settle at the read buffer's size), larger ones are mapped.
///
/// A library does not set process-wide policy, so this lives in the binary, and only where the
/// allocator is glibc's.
fn allocator_policy() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets tunables of the allocator; it is called before any other thread exists.
    // Its result (1 on success) needs no check: on failure glibc keeps its default, which is correct too.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 16 << 20);
    }
}
