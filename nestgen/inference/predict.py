"""Classify images with a loaded checkpoint: one jitted forward, batches padded to a fixed size."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from nestgen.convert.checkpoint import Checkpoint, load_checkpoint
from nestgen.data.images import load_image, preprocess


@dataclasses.dataclass
class Prediction:
    top_k: list[tuple[str, int, float]]  # (class name, class index, probability), most likely first
    logits: np.ndarray  # (num_classes,)


class ClassifierPredictor:
    """Loads a classifier once; `predict` maps images to top-k classes with probabilities and raw logits."""

    def __init__(self, checkpoint: Checkpoint, *, batch_size: int = 32, dtype=jnp.float32):
        self.checkpoint, self.batch_size = checkpoint, batch_size
        model = checkpoint.build(dtype)
        self._forward = jax.jit(lambda params, x: model.apply({"params": params}, x)[0])

    @classmethod
    def from_directory(cls, directory: str | Path, **kwargs) -> ClassifierPredictor:
        return cls(load_checkpoint(directory), **kwargs)

    @property
    def class_names(self) -> list[str]:
        return self.checkpoint.class_names

    def inputs(self, source) -> np.ndarray:
        """A path, bytes or Pillow image → the normalised (S, S, 3) model input. Raises ImageError."""
        spec = self.checkpoint.preprocess
        return preprocess(load_image(source, target_size=int(spec["image_size"])), spec)

    def logits(self, batch: np.ndarray) -> np.ndarray:
        """(B, S, S, 3) normalised inputs → (B, num_classes) float32 logits, in fixed-size chunks (one compile)."""
        out = []
        for start in range(0, len(batch), self.batch_size):
            chunk = batch[start:start + self.batch_size]
            padded = np.zeros((self.batch_size,) + chunk.shape[1:], np.float32)
            padded[: len(chunk)] = chunk
            out.append(np.asarray(self._forward(self.checkpoint.params, padded))[: len(chunk)])
        return np.concatenate(out) if out else np.zeros((0, len(self.class_names)), np.float32)

    def predict(self, batch: np.ndarray, top_k: int = 5) -> list[Prediction]:
        logits = self.logits(batch)
        probs = np.asarray(jax.nn.softmax(logits, axis=-1))
        k = min(top_k, logits.shape[-1])
        results = []
        for row_logits, row_probs in zip(logits, probs, strict=True):
            order = np.argsort(-row_probs, kind="stable")[:k]
            results.append(Prediction([(self.class_names[i], int(i), float(row_probs[i])) for i in order], row_logits))
        return results
