"""The classifier's data: its train split and eval split, each held in memory (`SplitData`: folders, zips, small
tfds datasets) or streamed (`tf_dataset`), with the batch iterators the trainer reads. A split held in memory
never imports TensorFlow.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import ml_collections

from nestgen.data import pipeline
from nestgen.data.classes import ClassError, label_mapping
from nestgen.data.pipeline import HostSlice
from nestgen.data.sources import SplitData, load_split, parse_data_spec, tf_dataset


def eval_size(config: ml_collections.ConfigDict) -> int:
    """The size images are resized to (shorter side) before the centre image_size view is taken."""
    return max(config.input.image_size, int(round(config.input.image_size / config.input.crop_pct)))


@dataclasses.dataclass
class Split:
    """A split held in memory (`SplitData`) or streamed (`tf_dataset`), with the matching batch iterators."""

    class_names: list[str]
    num_examples: int
    description: str
    memory: SplitData | None = None
    stream: Any = None

    def train_batches(self, config, start: int, total: int, host: HostSlice):
        """This host's uint8 batches of steps start … total - 1 (the order a function of the seed and the step)."""
        common = dict(global_batch=config.global_batch, seed=config.seed, start_step=start, num_steps=total,
                      host=host)
        if self.memory is not None:
            return pipeline.train_batches(self.memory, **common)
        return pipeline.stream_train_batches(
            self.stream, self.num_examples, **common, image_size=config.input.image_size,
            recipe=config.augment.recipe, crop_scale=tuple(config.augment.get("crop_scale", (0.08, 1.0))),
            crop_ratio=tuple(config.augment.get("crop_ratio", (3 / 4, 4 / 3))),
            shuffle_buffer=config.data.shuffle_buffer)

    def eval_batches(self, config, host: HostSlice):
        """This host's part of every example once: normalised float32 centre views, labels and a `mask` of real
        (not padding) rows, in global batches of config.eval_batch."""
        view = dict(image_size=config.input.image_size, mean=tuple(config.input.mean), std=tuple(config.input.std))
        if self.memory is not None:
            return pipeline.eval_batches(self.memory, batch_size=config.eval_batch, **view, host=host)
        return pipeline.stream_eval_batches(self.stream, self.num_examples, batch_size=config.eval_batch,
                                            crop_pct=config.input.crop_pct, **view, host=host)


def load(config: ml_collections.ConfigDict, key: str) -> Split:
    """The split config.data[key] ("train" or "eval"), with its `_split` and `_limit`, in memory or streamed."""
    data = config.data
    spec, split, limit = data[key], data[f"{key}_split"], data[f"{key}_limit"]
    if not data.get("streaming"):
        size = config.input.image_size if key == "train" else eval_size(config)
        memory = load_split(spec, split, data_dir=data.data_dir, cache_dir=data.cache_dir, limit=limit,
                            image_size=size)
        return Split(memory.class_names, len(memory), memory.description, memory=memory)
    stream, num_examples, class_names = tf_dataset(spec, split, data_dir=data.data_dir, cache_dir=data.cache_dir)
    if limit:
        stream, num_examples = stream.take(limit), min(limit, num_examples)
    return Split(class_names, num_examples, f"{parse_data_spec(spec)}[{split}] (streamed)", stream=stream)


def train_and_eval_splits(config: ml_collections.ConfigDict) -> tuple[Split, Split | None]:
    """The train split and the eval split (None without config.data.eval), whose labels are matched to the train
    split's classes by name. Raises ClassError when the eval split has classes the train split lacks, or lists a
    streamed split's classes in another order."""
    train = load(config, "train")
    evaluation = load(config, "eval") if config.data.get("eval") else None
    if evaluation is not None and evaluation.class_names != train.class_names:
        if evaluation.memory is None:
            label_mapping(evaluation.class_names, train.class_names, evaluation.description)  # unknown classes
            raise ClassError(f"{evaluation.description} lists its classes differently from the training data "
                             f"({train.description}); a streamed eval split must have the same class list")
        memory = evaluation.memory.with_classes(train.class_names)
        evaluation = Split(memory.class_names, len(memory), memory.description, memory=memory)
    return train, evaluation
