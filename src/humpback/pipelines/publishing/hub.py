"""Push export folders (a dataset's Parquet and card) and model folders to the Hugging Face Hub.

Off unless ``publish.datasets`` or ``publish.models`` name something; the token comes from the
environment variable ``publish.token_env``, else from huggingface_hub's own lookup (``HF_TOKEN``,
the token ``hf auth login`` stored), never from the configuration. Without network it fails with one
line that says so.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
from pathlib import Path

from huggingface_hub import HfApi, get_token

from humpback.params import PublishParams

logger = logging.getLogger(__name__)

#: what the Hub client raises when the Hub cannot be reached or refuses (its errors are OSErrors;
#: its HTTP layer, httpx or, in huggingface_hub 2, httpx2, has an error class of its own)
NETWORK_ERRORS = (
    OSError,
    *(importlib.import_module(name).HTTPError for name in ("httpx", "httpx2") if importlib.util.find_spec(name)),
)


class PublishError(RuntimeError):
    """Publishing cannot start or cannot reach the Hub; the message says which and what to do."""


def _folders(publish: PublishParams) -> list[tuple[str, str, Path]]:
    """(repo type, repo id, folder) of everything to push, each folder checked before any upload."""
    planned = [("dataset", repo, Path(publish.export_dir) / name) for name, repo in publish.datasets.items()]
    planned += [("model", repo, Path(publish.models_dir) / name) for name, repo in publish.models.items()]
    for _, _, folder in planned:
        if not (folder / "README.md").is_file():
            raise PublishError(f"{folder} has no README.md (card): run the pipeline that makes it first")
    return planned


def publish_to_hub(publish: PublishParams) -> dict:
    """Create each repository (private unless ``publish.private`` is false) and upload its folder.

    Returns:
        One receipt per repository: its type, id, the folder pushed and the commit URL.
    """
    if not publish.datasets and not publish.models:
        raise PublishError("publishing is off: name exports in publish.datasets or models in publish.models")
    planned = _folders(publish)
    token = os.environ.get(publish.token_env) or get_token()
    if not token:
        raise PublishError(
            f"no Hub token: set the environment variable {publish.token_env} (a write token) or run `hf auth login`"
        )
    api = HfApi(endpoint=publish.endpoint, token=token)
    receipts = []
    for repo_type, repo_id, folder in planned:
        try:
            api.create_repo(repo_id, repo_type=repo_type, private=publish.private, exist_ok=True)
            commit = api.upload_folder(
                folder_path=str(folder),
                repo_id=repo_id,
                repo_type=repo_type,
                commit_message=f"humpback: {folder.name}",
            )
        except NETWORK_ERRORS as error:
            raise PublishError(
                f"could not publish {folder} to {publish.endpoint} ({repo_type} {repo_id}): "
                f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
            ) from None
        logger.info("published %s to %s %s", folder, repo_type, repo_id)
        receipts.append({"repo_type": repo_type, "repo_id": repo_id, "folder": str(folder), "commit": str(commit)})
    return {"published": receipts}
