"""The stages of DESIGN §1 with pluggable backends, and the resumable runner."""
