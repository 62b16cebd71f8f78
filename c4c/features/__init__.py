"""Embeddings on disk: feature files (.pickle/.npz), the resumable extraction journal and engine,
and the in-memory cache the app uses."""
