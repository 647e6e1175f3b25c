"""The checks of `tfds.testing.DatasetBuilderTestCase`, without TensorFlow.

TFDS's own test case subclasses `tf.test.TestCase` and reads splits with `as_dataset`, so it
cannot run here (no TensorFlow). This does what it does with `as_data_source`: forbid `os` and
`open` in the builder modules, build from `dummy_data/` as manual_dir into array_record, check
split sizes, decode every example against the features, check that splits do not overlap and that
a reloaded builder sees the same metadata. It also returns the build log (bad-item counts).
"""

from __future__ import annotations

import logging
import os
import pathlib
from typing import Any
from unittest import mock

import numpy as np
import tensorflow_datasets as tfds

_FORBIDDEN_OS = ("listdir", "walk", "makedirs", "mkdir", "remove", "rename", "stat", "scandir")
_FORBIDDEN_OS_PATH = ("exists", "isdir", "isfile", "getsize", "glob")


def forbid_os_and_open(module_name: str) -> list[Any]:
    """Started patchers making `os` file functions and `open` fail inside `module_name` (what
    the TFDS harness does to builders); stop them when done."""
    err = AssertionError("Use etils.epath in builders, not `os` or `open`.")
    mock_path = mock.Mock(os.path, wraps=os.path)
    mock_path.sep = os.path.sep
    for name in _FORBIDDEN_OS_PATH:
        if hasattr(os.path, name):
            getattr(mock_path, name).side_effect = err
    mock_os = mock.Mock(os, path=mock_path, fspath=os.fspath)
    for name in _FORBIDDEN_OS:
        getattr(mock_os, name).side_effect = err
    builtins = dict(__builtins__ if isinstance(__builtins__, dict) else vars(__builtins__))
    builtins["open"] = mock.Mock(side_effect=err)
    patchers = [mock.patch(f"{module_name}.os", mock_os, create=True),
                mock.patch(f"{module_name}.__builtins__", builtins)]
    for p in patchers:
        p.start()
    return patchers


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def check_builder(builder_cls: type[tfds.core.GeneratorBasedBuilder],
                  config: str | tfds.core.BuilderConfig, splits: dict[str, int],
                  data_dir: pathlib.Path, dummy_data: pathlib.Path | None = None
                  ) -> tuple[dict[str, list[dict[str, Any]]], str]:
    """Builds `config` from dummy data; returns every example per split and the build log."""
    dummy = dummy_data or pathlib.Path(builder_cls.code_path.parent) / "dummy_data"
    assert dummy.exists(), f"Dummy data not found in {dummy}"
    assert builder_cls.MANUAL_DOWNLOAD_INSTRUCTIONS, "manual corpora need download instructions"
    assert tfds.builder_cls(builder_cls.name) is builder_cls, "builder is not registered"

    patchers = forbid_os_and_open(builder_cls.__module__)
    handler = _Collect()
    logging.getLogger("data_builders").addHandler(handler)
    logging.getLogger("data_builders").setLevel(logging.INFO)
    try:
        builder = builder_cls(data_dir=os.fspath(data_dir), config=config)
        original = builder._generate_examples

        def checked(*args, **kwargs):
            for key, example in original(*args, **kwargs):
                assert os.fspath(dummy) not in str(key), f"key {key} holds a local path"
                yield key, example

        with mock.patch.object(builder, "_generate_examples", checked):
            builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
                    manual_dir=os.fspath(dummy), compute_stats=tfds.download.ComputeStatsMode.SKIP))
    finally:
        for p in patchers:
            p.stop()
        logging.getLogger("data_builders").removeHandler(handler)

    assert builder.info.file_format.value == "array_record"
    examples = {split: _read_split(builder, split, n) for split, n in splits.items()}
    assert builder.info.splits.total_num_examples == sum(splits.values())
    ids = [{ex["id"] for ex in exs} for exs in examples.values()]
    for i in range(len(ids)):
        for j in range(i + 1, len(ids)):
            assert not ids[i] & ids[j], f"splits overlap: {ids[i] & ids[j]}"
    reloaded = builder_cls(data_dir=os.fspath(data_dir), config=builder.builder_config)
    for split, n in splits.items():
        assert reloaded.info.splits[split].num_examples == n
    if builder_cls.DEFAULT_BUILDER_CONFIG_NAME:
        assert builder_cls.DEFAULT_BUILDER_CONFIG_NAME in builder_cls.builder_configs
    return examples, "\n".join(handler.lines)


def _read_split(builder: tfds.core.DatasetBuilder, split: str, expected: int
                ) -> list[dict[str, Any]]:
    assert builder.info.splits[split].num_examples == expected, (
            f"split {split}: {builder.info.splits[split].num_examples} examples, "
            f"expected {expected}")
    source = builder.as_data_source(split=split)
    assert len(source) == expected
    tensor_info = builder.info.features.get_tensor_info()
    out = []
    for i in range(len(source)):
        example = source[i]
        assert set(example) == set(tensor_info), (set(example), set(tensor_info))
        for key, info in tensor_info.items():
            value = np.asarray(example[key])
            if info.np_dtype == np.object_:
                assert isinstance(example[key], bytes | str), (key, type(example[key]))
                continue
            if not info.shape and isinstance(example[key], int | float):  # scalars come as Python
                assert value.astype(info.np_dtype) == value, (key, example[key], info.np_dtype)
                continue
            assert value.dtype == info.np_dtype, (key, value.dtype, info.np_dtype)
            assert value.ndim == len(info.shape), (key, value.shape, info.shape)
            for got, want in zip(value.shape, info.shape, strict=True):
                assert want is None or got == want, (key, value.shape, info.shape)
        out.append({k: (v.decode() if isinstance(v, bytes) else v) for k, v in example.items()})
    return out
