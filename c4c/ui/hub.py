"""Where the app's model zoo comes from: `C4C_ZOO`, a local folder or a Hugging Face Hub repo id.

Locally `C4C_ZOO` is a folder (default: the shipped `weights/demo`). On Spaces it may also be a Hub
repo id (`owner/name`, optionally `owner/name@revision`), fetched once with
`huggingface_hub.snapshot_download`; offline, or when the repo cannot be fetched, a one-line ZooError
says what to do instead of a traceback."""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..errors import ZooError
from ..zoo import MANIFEST, default_zoo_dir

__all__ = ["resolve_zoo", "looks_like_repo_id", "ENV_VAR"]

ENV_VAR = "C4C_ZOO"
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+(@[\w./-]+)?$")


def looks_like_repo_id(spec: str) -> bool:
    """`owner/name[@rev]` and not an explicit path (./x, ../x, /x, ~/x, C:\\x)."""
    return bool(_REPO_ID.match(spec)) and not spec.startswith((".", "/", "~")) and "\\" not in spec


def resolve_zoo(spec: str | None = None) -> Path:
    """The zoo folder to load: `spec` (default: $C4C_ZOO, else weights/demo) as a local folder if one
    exists there, else as a Hub repo id downloaded (or found in the local Hub cache)."""
    spec = spec if spec is not None else os.environ.get(ENV_VAR, "")
    if not spec.strip():
        return default_zoo_dir()
    spec = spec.strip()
    path = Path(spec).expanduser()
    # `weights/x` is a local path when `weights/` exists here, even if `x` does not (yet).
    if path.exists() or Path(spec.split("/", 1)[0]).is_dir() or not looks_like_repo_id(spec):
        return path  # the Zoo loader reports a missing or broken folder precisely
    return _download(spec)


def _download(spec: str) -> Path:
    repo_id, _, revision = spec.partition("@")
    hint = (f"download it where there is a network (`hf download {repo_id} --local-dir weights/zoo`) "
            f"and set {ENV_VAR}=weights/zoo")
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise ZooError(f"{ENV_VAR}={spec} looks like a Hugging Face Hub repo id, but huggingface_hub is not "
                       f"installed; `pip install huggingface_hub`, or {hint}") from None
    from huggingface_hub.errors import LocalEntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError
    try:
        folder = Path(snapshot_download(repo_id=repo_id, revision=revision or None))
    except LocalEntryNotFoundError:
        # Raised when offline (HF_HUB_OFFLINE=1 or no connection) and the repo is not in the local cache.
        raise ZooError(f"{ENV_VAR}={spec}: the Hugging Face Hub cannot be reached (offline?) and this repo is "
                       f"not in the local cache; {hint}") from None
    except (RepositoryNotFoundError, RevisionNotFoundError) as e:
        raise ZooError(f"{ENV_VAR}={spec}: no such Hub repo or revision ({type(e).__name__}); check the id, "
                       "or log in (HF_TOKEN) if it is private") from None
    except OSError as e:  # connection errors, disk full, ...
        raise ZooError(f"{ENV_VAR}={spec}: downloading from the Hugging Face Hub failed ({e}); {hint}") from None
    if not (folder / MANIFEST).is_file():
        raise ZooError(f"{ENV_VAR}={spec}: the Hub repo has no {MANIFEST} at its top level; it is not a c4c "
                       "model zoo")
    return folder
