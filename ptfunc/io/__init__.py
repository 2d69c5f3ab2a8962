"""Weights and files: safetensors, state-dict name maps, pretrained directories, TensorFlow
checkpoints, listing any checkpoint, and converters from the original formats (:mod:`.convert`)."""

from . import convert
from .inspect import CheckpointSummary, TensorInfo, inspect_checkpoint
from .pretrained import from_pretrained, load_state_dict_file, load_torch_object, save_pretrained
from .safetensors_io import load, load_flat, save
from .state_dict import LoadingInfo, expected_shapes, from_torch_state_dict, to_torch_state_dict
from .tf_checkpoint import CheckpointError, TFCheckpoint, load_tf_checkpoint

__all__ = [
    "save",
    "load",
    "load_flat",
    "from_pretrained",
    "save_pretrained",
    "load_state_dict_file",
    "from_torch_state_dict",
    "to_torch_state_dict",
    "expected_shapes",
    "LoadingInfo",
    "load_torch_object",
    "inspect_checkpoint",
    "CheckpointSummary",
    "TensorInfo",
    "TFCheckpoint",
    "load_tf_checkpoint",
    "CheckpointError",
    "convert",
]
