"""Uploading a saved model folder to the Hugging Face Hub (``bioscan5m push``) with ``huggingface_hub``.

The folder is uploaded as it is (weights, config, tokenizer files, model card, metrics) in one commit,
without the training checkpoints (optimizer states, several times the model's size) or temporary files.
"""

from __future__ import annotations

import os
from pathlib import Path

from bioscan5m.errors import BioscanError
from bioscan5m.models.dna import CONFIG_FILE

#: Left out of an upload: the engine's resumable checkpoints and hidden (temporary) files.
IGNORED = ["checkpoints/*", ".*", "**/.*"]


def push_model(directory: str | os.PathLike[str], repo_id: str, *, private: bool = False, token: str | None = None,
               endpoint: str | None = None, commit_message: str | None = None) -> str:
    """Create the model repository ``repo_id`` (``user/name``; kept when it exists) and upload ``directory``
    into it; returns the commit's URL. token: a Hub access token (default: the one ``hf auth login`` saved or
    ``HF_TOKEN``). endpoint: another Hub server (default: huggingface.co or ``HF_ENDPOINT``)."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    directory = Path(directory)
    if not directory.is_dir():
        raise BioscanError("no such model folder", path=directory)
    if not (directory / CONFIG_FILE).is_file():
        raise BioscanError(f"not a saved model folder (no {CONFIG_FILE})", path=directory)
    try:
        validate_repo_id(repo_id)
    except HFValidationError as error:
        raise BioscanError(f"bad repository id {repo_id!r}: {error}", value=repo_id) from None
    if repo_id.count("/") != 1:
        raise BioscanError(f"bad repository id {repo_id!r}: write it as owner/name", value=repo_id)
    api = HfApi(endpoint=endpoint, token=token)
    message = commit_message or f"Upload {directory.name} with bioscan5m"
    try:
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        commit = api.upload_folder(folder_path=directory, repo_id=repo_id, repo_type="model",
                                   commit_message=message, ignore_patterns=IGNORED)
    except (OSError, ValueError) as error:  # HTTP errors and unreachable servers; a model card the Hub refuses
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise BioscanError(f"upload to {repo_id!r} failed: {first_line}", value=repo_id) from None
    return str(commit.commit_url)
