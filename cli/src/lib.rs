//! lvs-hc
