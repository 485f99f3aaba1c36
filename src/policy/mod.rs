//! Policies: YAML rules parsed with their locations, and a pure evaluator.
