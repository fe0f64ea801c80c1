//! The nameserver's return codes: OpenMLDB's one enum, in [`crate::codes`].

pub use crate::codes::Code;
