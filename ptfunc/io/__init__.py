"""Weights and files: safetensors save/load, state-dict name maps, pretrained directories."""

from .pretrained import from_pretrained, load_state_dict_file, save_pretrained
from .safetensors_io import load, load_flat, save
from .state_dict import LoadingInfo, expected_shapes, from_torch_state_dict, to_torch_state_dict

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
]
