"""Video files -> frames: finding inputs, probing and decoding at 1 fps (decord), CLIP preprocessing."""
