"""ptfunc.tree: dotted names, stack/unstack, alias check (reference: optree and plain dicts)."""

from __future__ import annotations

import optree
import pytest
import torch

from ptfunc import tree


def _params():
    return {
        "embeddings": {"weight": torch.arange(6.0).reshape(3, 2)},
        "layer": [
            {"w": torch.ones(2), "b": torch.zeros(1)},
            {"w": torch.full((2,), 2.0), "b": torch.ones(1)},
        ],
    }


def test_flat_names_round_trip():
    p = _params()
    flat = tree.to_flat_dict(p)
    assert set(flat) == {"embeddings.weight", "layer.0.w", "layer.0.b", "layer.1.w", "layer.1.b"}
    back = tree.from_flat_dict(flat)
    assert isinstance(back["layer"], list) and len(back["layer"]) == 2
    assert optree.tree_structure(back) == optree.tree_structure(p)
    assert all(torch.equal(a, b) for a, b in zip(tree.leaves(back), tree.leaves(p), strict=True))


def test_from_flat_dict_rejects_leaf_and_prefix_clash():
    with pytest.raises(ValueError, match="both a leaf and a prefix|nests under a leaf"):
        tree.from_flat_dict({"a": torch.ones(1), "a.b": torch.ones(1)})


def test_stack_unstack():
    trees = [_params() for _ in range(3)]
    stacked = tree.stack(trees)
    assert stacked["layer"][1]["w"].shape == (3, 2)
    back = tree.unstack(stacked)
    assert len(back) == 3
    assert torch.equal(back[2]["embeddings"]["weight"], trees[2]["embeddings"]["weight"])
    with pytest.raises(ValueError):
        tree.stack([])


def test_map_leaves_size_astype():
    p = _params()
    doubled = tree.map(lambda x: 2 * x, p)
    assert torch.equal(doubled["layer"][1]["w"], torch.full((2,), 4.0))
    assert tree.size(p) == 6 + 2 * 3
    assert {x.dtype for x in tree.leaves(tree.astype(p, torch.bfloat16))} == {torch.bfloat16}


def test_alias_check_refuses_shared_tensors():
    w = torch.ones(4, 2)
    with pytest.raises(ValueError, match="share memory"):
        tree.check_no_alias({"a": w, "b": w})
    with pytest.raises(ValueError, match="share memory"):
        tree.check_no_alias({"a": w, "b": w[1:3]})
    base = torch.ones(4, 2)
    tree.check_no_alias({"a": base[:2], "b": base[2:]})  # disjoint views are fine
    tree.check_no_alias(_params())
