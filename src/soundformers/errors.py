"""The exception hierarchy. Every error soundformers raises derives from `SoundformersError`."""

from __future__ import annotations


class SoundformersError(Exception):
    """Root of all soundformers exceptions: catch this to catch any of ours."""


class AudioDecodeError(SoundformersError, ValueError):
    """Audio could not be decoded, or decoded to something unusable (empty, NaN/inf).

    The message names the source (path, URL, or the kind of object given) and what was wrong.
    """


class AudioFetchError(AudioDecodeError):
    """Audio at a URL could not be fetched (offline, timeout, HTTP error, too large)."""


class FeatureError(SoundformersError, ValueError):
    """Inputs to a feature extractor have the wrong shape, rate or length."""


class CheckpointError(SoundformersError):
    """A checkpoint is missing tensors, has unexpected ones, or is in an unknown format."""


class ModelNotFoundError(CheckpointError, FileNotFoundError):
    """A model name could not be resolved to local files (not bundled, not cached, offline)."""


class MetricInputError(SoundformersError, ValueError):
    """The texts given to a metric are unusable: wrong type, or references and hypotheses differ
    in number. The message names the argument and what to pass instead."""


class MissingDependencyError(SoundformersError, ImportError):
    """An optional dependency is needed for this feature; the message names what to install."""


class DatasetError(SoundformersError, ValueError):
    """A dataset operation got unusable input: a bad split name, a metadata file naming files
    that are not there, a column that does not exist, an unknown feature type."""


class DatasetNotFoundError(DatasetError, FileNotFoundError):
    """`load_dataset` found no data: a folder with no audio, a missing file, or a hub id that is
    neither downloadable nor in the local cache."""


class TextToSpeechError(SoundformersError, ValueError):
    """Text-to-speech input is unusable: empty text, text with nothing the voice can pronounce,
    an unknown speaker. The message names the input and what to pass instead."""
