//! Helpers of `agora_interop.rs`: node/npm tooling and random inputs.

pub mod inputs;
pub mod node;
