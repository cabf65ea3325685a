//! Parsing of `/proc/self/mountinfo`.
