//! The workflows' phases, one module per command and one file per phase.

pub mod init;
pub mod join;
pub mod reset;
