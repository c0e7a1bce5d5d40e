//! A saved project's content on the node (docs/content.md §3): the scene's values go into a
//! working copy of the template through a generated script, run by our After Effects startup
//! hook in the same launch as the render. The cached template is never modified.
//!
//! Layout, a file per concern: `script` (the generated `apply.jsx`: one data line, then the static
//! apply code of `apply.jsx`), `hook` (installing and checking `flatrender_hook.jsx`, which
//! teaches the stock renderer `-r <script>`), `workdir` (the per-render working folder: the
//! template's project copied, footage and assets linked), `prepare` (all of it for one chunk:
//! the scene validated, its assets fetched and pinned, the folder and the script written).

pub mod hook;
mod prepare;
pub mod script;
pub mod workdir;

pub use prepare::{PrepareFailure, PreparedScene, SceneJob, prepare};
