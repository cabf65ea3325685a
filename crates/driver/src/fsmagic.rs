//! fsmagic.
