//! clone wrappers.
