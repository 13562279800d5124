//! Data-loss prevention for what leaves a function.
