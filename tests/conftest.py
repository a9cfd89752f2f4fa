"""Shared test helpers: the location of ../shared/fixtures, skipping cleanly when it is absent."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURES = REPO_ROOT.parent / "shared" / "fixtures"


def fixture_path(*parts: str) -> Path:
    """Path to a file or folder under ../shared/fixtures; skip the test if it is missing."""
    path = FIXTURES.joinpath(*parts)
    if not path.exists():
        pytest.skip(
            f"test data {path} is absent: these tests need ../shared/fixtures beside the repo"
        )
    return path


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return fixture_path()


def copies(obj: object) -> list:
    """A `copy.deepcopy` of `obj` and a `torch.save` / `torch.load` round trip of it: modules
    holding packed oneDNN weights must rebuild them in both."""
    import copy
    import io

    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    buffer.seek(0)
    return [copy.deepcopy(obj), torch.load(buffer, weights_only=False)]


def _cpu_rules(monkeypatch: pytest.MonkeyPatch, intel: bool) -> None:
    """Route products and attention as on an Intel CPU with AMX (MKL, SDPA) or as on another
    (oneDNN, per-slice attention), whatever CPU runs the tests (`layers.mkl_is_fast`). Every
    route reads the two rules through the `layers` module, so patching it there covers all."""
    from soundformers.models import layers

    monkeypatch.setattr(layers, "mkl_is_fast", lambda: intel)
    monkeypatch.setattr(layers, "sdpa_is_faster", lambda dtype: intel)


@pytest.fixture
def onednn_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """The routes of a CPU where oneDNN and the per-slice attention loops are the faster."""
    _cpu_rules(monkeypatch, intel=False)


@pytest.fixture
def intel_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """The routes of an Intel CPU with AMX: torch's own products (MKL) and SDPA."""
    _cpu_rules(monkeypatch, intel=True)
