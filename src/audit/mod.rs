//! Auditing the archive: [`verify`] checks that what the manifests promise is in the store (and, deep,
//! that the bytes still hash right); [`retention`] deletes the builds a policy no longer keeps.

pub mod retention;
pub mod verify;
