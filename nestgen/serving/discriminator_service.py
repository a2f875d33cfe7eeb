"""GradCAT on a NesT discriminator: which blocks of an image make it look real, and which make it look fake.

A NesT discriminator returns one score per image (the logit of "real", with projection conditioning on a class
when conditional), not class logits. `RealScores` presents it to GradCAT as a classifier with one column per
class, D(x, y=k), so `GradCAT.explain(x, target=k)` walks the tree for "real, as class k" unchanged. The "fake"
path is the same traversal on the negated block scores, so this explanation keeps spec.md §4's signed score
(Σ A⊙G): the magnitude score has no direction and would give the same path twice.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from nestgen.convert.checkpoint import Checkpoint
from nestgen.data.images import preprocess, source_box
from nestgen.explain.gradcat import Explanation, GradCAT, PathNode, block_box, traverse
from nestgen.serving.inputs import InputError, Limits, check_class, read_image


class RealScores:
    """A NesT discriminator module seen as a classifier: images → ((B, K) scores D(x, y=k), {"levels": [...]}).

    Unconditional discriminators give one column. The encoder's features do not depend on the class, so the
    levels of the first class stand for all; the gradient of column k reaches them through that class only.
    """

    def __init__(self, module, num_classes: int):
        self.module, self.num_classes = module, num_classes

    def init(self, rng, images):
        labels = jnp.zeros(images.shape[:1], jnp.int32) if self.num_classes else None
        return self.module.init(rng, images, labels)

    def apply(self, variables, images):
        if not self.num_classes:
            scores, inter = self.module.apply(variables, images)
            return scores[:, None], inter  # (B, 1)

        def as_class(k):
            return self.module.apply(variables, images, jnp.full(images.shape[:1], k, jnp.int32))

        scores, inter = jax.vmap(as_class, out_axes=(1, 0))(jnp.arange(self.num_classes))  # scores (B, K)
        return scores, {"levels": [level[0] for level in inter["levels"]]}


@dataclasses.dataclass
class DiscriminatorVerdict:
    """D's score for one image (as `class_name` when conditional), with the real-most and fake-most paths."""

    image: Image.Image  # the S×S input as D saw it
    score: float  # D's logit of "real"
    class_name: str
    real: Explanation  # GradCAT path toward "real"
    fake: Explanation  # the same scores negated: the path of blocks that most push toward "fake"
    source_size: tuple[int, int] | None = None  # (width, height) of the image as uploaded

    def source_box(self, box) -> tuple[int, int, int, int]:
        """A box (top, left, bottom, right) of D's S×S input → the same region in the uploaded image's pixels."""
        return source_box(box, self.source_size or self.image.size, self.image.width)

    @property
    def p_real(self) -> float:
        return float(1.0 / (1.0 + math.exp(-self.score)))


class DiscriminatorService:
    """Explains a NesT discriminator's verdict on uploaded or generated images (inputs scaled to [-1, 1])."""

    def __init__(self, checkpoint: Checkpoint, limits: Limits, generator: Checkpoint | None = None):
        config = checkpoint.config
        if generator is not None and generator.config.image_size != config.image_size:
            raise ValueError(f"{checkpoint.path} takes {config.image_size}px images but the generator makes "
                             f"{generator.config.image_size}px ones")
        self.checkpoint, self.limits, self.image_size = checkpoint, limits, int(config.image_size)
        self.conditional = bool(config.num_classes)
        self.class_names = list(checkpoint.class_names) if self.conditional else ["real"]
        self.explainer = GradCAT(RealScores(checkpoint.build(), config.num_classes), checkpoint.params,
                                 self.class_names, self.image_size, score="signed")
        self._spec = {"image_size": self.image_size, "resize": "bicubic", "crop_pct": 1.0,
                      "mean": [0.5] * 3, "std": [0.5] * 3}  # uint8/255 → [-1, 1]

    def class_index(self, value) -> int:
        """The class to judge an image as (0 for an unconditional discriminator), or InputError."""
        if not self.conditional:
            return 0
        if value is None or value == "":
            raise InputError("this discriminator is class-conditional: choose the class to judge the image as")
        return check_class(value, self.class_names)

    def explain(self, source, class_value) -> DiscriminatorVerdict:
        """An image (path, bytes or PIL image), judged as `class_value` → D's verdict with its real-most and
        fake-most paths; InputError for an unreadable or oversized image or an unknown class."""
        index = self.class_index(class_value)
        picture = read_image(source, self.limits, target_size=self.image_size)
        x = preprocess(picture, self._spec)[None]  # (1, S, S, 3) in [-1, 1]
        real = self.explainer.explain(x, target=index)[0][0]
        fake = dataclasses.replace(real, path=self._path([-s.reshape(-1) for s in real.level_scores],
                                                         real.level_scores))
        shown = np.clip((x[0] + 1.0) * 127.5, 0, 255).round().astype(np.uint8)
        name = self.class_names[index] if self.conditional else ""
        return DiscriminatorVerdict(Image.fromarray(shown), real.logit, name, real, fake,
                                    picture.info.get("source_size", picture.size))

    def _path(self, ranking: list[np.ndarray], scores: list[np.ndarray]) -> list[PathNode]:
        """The traversal of `ranking` (per level, flat), reported with the original block scores."""
        top = len(ranking) - 1
        nodes = []
        for depth, block in enumerate(traverse(ranking)):
            level = top - depth
            grid = scores[level].shape[0]
            nodes.append(PathNode(level, block, block_box(block, grid, self.image_size),
                                  float(scores[level].reshape(-1)[block])))
        return nodes
