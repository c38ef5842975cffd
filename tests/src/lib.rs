//! Workspace tests live under `tests/`.
