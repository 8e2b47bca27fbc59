//! The `jam` binary: sets the process's allocator policy, then hands the command line and the process
//! environment to the library.

// `mallopt` is a C call (the workspace lints in Cargo.toml list where `unsafe` is allowed).
#![allow(unsafe_code)]

fn main() -> std::process::ExitCode {
    one_malloc_arena();
    jam::cli::main(jam::config::Env::process())
}

/// Makes glibc's allocator keep one arena instead of one per thread.
///
/// Most of what jam allocates by volume is HTTP read buffers of one size (hyper's, 408 KiB), filled on
/// whichever runtime thread polls the connection and freed on whichever thread finished the part upload
/// or the file write. With an arena per thread, each arena grows to its own high-water mark, and small
/// allocations that land in the holes keep those pages resident. With one arena, the typical bench's peak
/// RSS fell from 63–69 to 52–54 MiB, at the same CPU time (README, "What bounds jam"): jam makes about
/// ten thousand allocations a second, too few for one arena's lock to matter. A library does not set
/// process-wide policy, so this lives in the binary, and only where the allocator is glibc's.
fn one_malloc_arena() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a tunable of the allocator; it is called before any other thread exists.
    // Its result (1 on success) needs no check: on failure glibc keeps its default, which is correct too.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}
