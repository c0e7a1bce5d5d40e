//! The FlatRender node agent: the daemon on every After Effects machine.
//!
//! Layout (growing with the node-agent issue):
//! - `aerender_log`: the pure parser of aerender output (both log formats), behind `node-agent parse-log`.

pub mod aerender_log;
