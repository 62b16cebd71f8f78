"""Frames -> embeddings: the CLIP image tower (`Backbone`), with a fast CPU path."""
