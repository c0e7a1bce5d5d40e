//! A saved project's content on the node (docs/content.md §3): the scene's values go into a
//! working copy of the template through a generated script, run by our After Effects startup
//! hook in the same launch as the render. The cached template is never modified.
//!
//! Layout, a file per concern: `script` (the generated `apply.jsx`: one data line, then the static
//! apply code of `apply.jsx`), `hook` (installing and checking `flatrender_hook.jsx`, which
//! teaches the stock renderer `-r <script>`).

pub mod hook;
pub mod script;
