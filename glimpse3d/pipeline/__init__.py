"""The stages of docs/architecture.md ("The pipeline") with pluggable backends, and the resumable runner."""
