//! lvs-hc's kernel adapters (filled by the kernel issue).
