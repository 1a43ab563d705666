//! Cross-service impact analysis: suspect deployments and their blast radius, from spans alone.
