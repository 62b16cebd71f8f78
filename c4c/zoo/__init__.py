"""A model zoo: one backbone, several decoders, a vocabulary and document frequencies, described by
`manifest.json`. `Zoo` loads one; `random_zoo` writes a random one for tests."""

from .zoo import MANIFEST, DecoderEntry, Zoo, default_select, default_zoo_dir, read_manifest, write_manifest

__all__ = ["Zoo", "DecoderEntry", "read_manifest", "write_manifest", "default_zoo_dir", "default_select", "MANIFEST"]
