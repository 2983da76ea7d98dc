//! Checks of core attributes (seed 002's patterns and bounds) and of custom
//! attributes against a tenant's schema.
