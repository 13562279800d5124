//! Supply chain: signatures, SBOMs, advisories.
