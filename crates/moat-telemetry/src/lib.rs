//! Visibility: audit chain, checkpoints, alerts.
