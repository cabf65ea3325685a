//! refcount.
