"""c4c: CLIP4Caption video captioning with a leave-one-out ensemble of decoders."""
