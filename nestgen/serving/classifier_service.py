"""The classifier service: one classifier checkpoint, loaded once, answering one image at a time with its top-k,
the GradCAT explanation of a class and Grad-CAM (`nestgen.explain.gradcat.grad_cam`) for comparison.

Bad input raises `InputError` (`inputs.py`) with a one-line reason; nothing here knows about Gradio.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from PIL import Image

from nestgen.convert.checkpoint import Checkpoint
from nestgen.data.images import preprocess, source_box
from nestgen.explain.gradcat import DEFAULT_SCORE, Explanation, GradCAT, grad_cam
from nestgen.inference.predict import ClassifierPredictor
from nestgen.serving.inputs import Limits, check_class, read_image

PREDICTED = "(predicted)"  # the target that explains the predicted class
FLAT_STD = 3.0  # pixel standard deviation (0-255) below which an input is called one flat colour


@dataclasses.dataclass
class Classification:
    """One classified image: what the model saw, its top-k, the GradCAT explanation and Grad-CAM of the target."""

    image: Image.Image  # the S×S input as the model saw it (denormalised)
    top_k: list[tuple[str, int, float]]  # (class name, index, probability), most likely first
    explanation: Explanation
    gradcam: np.ndarray  # (H_0, W_0): Grad-CAM of level 0
    predicted: bool  # the explained class is the predicted one
    source_size: tuple[int, int]  # (width, height) of the image as uploaded
    warnings: list[str] = dataclasses.field(default_factory=list)  # why the answer may mean little
    crop_pct: float = 1.0  # the preprocessing's centre crop, to map boxes back onto the upload

    def source_box(self, box) -> tuple[int, int, int, int]:
        """A box (top, left, bottom, right) of the S×S input → the same region in the uploaded image's pixels."""
        return source_box(box, self.source_size, self.image.width, self.crop_pct)


def input_warnings(source_size: tuple[int, int], shown: np.ndarray, image_size: int) -> list[str]:
    """Warnings for inputs a classifier answers anyway but whose answer says little: images much smaller than its
    input (a 1×1 upload is enlarged to S×S) and (nearly) flat images. `shown` is the uint8 (S, S, 3) input."""
    warnings, (width, height) = [], source_size
    if min(width, height) < image_size / 2:
        warnings.append(f"the image is only {width}×{height} pixels: it was enlarged to {image_size}×{image_size}, "
                        "so there is little for the classifier to see")
    if float(shown.reshape(-1, 3).std(axis=0).max()) < FLAT_STD:  # every channel (nearly) constant
        warnings.append("the image is (nearly) one flat colour: there is nothing to recognise, whatever the "
                        "scores say")
    return warnings


class ClassifierService:
    """Top-k classification, GradCAT and Grad-CAM of one classifier checkpoint, at batch 1."""

    def __init__(self, checkpoint: Checkpoint, limits: Limits, score: str = DEFAULT_SCORE):
        self.checkpoint, self.limits, self.score = checkpoint, limits, score
        self.image_size = int(checkpoint.preprocess["image_size"])
        self.predictor = ClassifierPredictor(checkpoint, batch_size=1)
        self.model = checkpoint.build()
        self.explainer = GradCAT(self.model, checkpoint.params, checkpoint.class_names, self.image_size, score)

    @property
    def class_names(self) -> list[str]:
        return self.checkpoint.class_names

    def target_index(self, target) -> int | None:
        """'(predicted)', empty or None → None; a class name or index → its index; InputError otherwise."""
        if target is None or target in ("", PREDICTED):
            return None
        return check_class(target, self.class_names)

    def classify(self, source, target=None, top_k: int = 5) -> Classification:
        """An image (path, bytes or PIL image) and the class to explain (None: the predicted one) → its
        Classification; InputError for an unreadable or oversized image or an unknown class."""
        target = self.target_index(target)
        picture = read_image(source, self.limits, target_size=self.image_size)
        spec = self.checkpoint.preprocess
        x = preprocess(picture, spec)[None]  # (1, S, S, 3)
        shown = np.clip((x[0] * np.asarray(spec["std"]) + np.asarray(spec["mean"])) * 255, 0, 255)
        shown = shown.round().astype(np.uint8)  # (S, S, 3): what the model saw
        prediction = self.predictor.predict(x, top_k)[0]
        index = prediction.top_k[0][1] if target is None else target
        explanation = self.explainer.explain(x, target=index)[0][0]
        cam = grad_cam(self.model, self.checkpoint.params, x, [index], level=0)[0]  # (H_0, W_0)
        size = picture.info.get("source_size", picture.size)  # the upload's own pixels (not a reduced JPEG decode)
        return Classification(Image.fromarray(shown), prediction.top_k, explanation, cam,
                              target is None or target == prediction.top_k[0][1], size,
                              input_warnings(size, shown, self.image_size), float(spec.get("crop_pct", 1.0)))
