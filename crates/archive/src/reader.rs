//! Streaming tar reader: ustar, GNU and PAX members become [`crate::entry::Item`]s,
//! while every byte that is not file content is handed to a tar-split recorder.

/// Largest single header record (PAX extended header, GNU long name) accepted.
pub const MAX_HEADER_RECORD: u64 = 1024 * 1024;
