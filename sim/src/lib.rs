//! Deterministic simulations of lvs-hc (filled by the simulation issue).
