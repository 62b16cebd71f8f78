"""Embeddings -> captions: the CLIP4Caption decoder (config, layers, model), beam search, the
prepacked fast decoder, the WordPiece tokenizer and UniVL initialisation."""
