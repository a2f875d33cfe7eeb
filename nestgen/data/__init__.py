"""Data: image files (this package imports no TensorFlow at import time) and, with the `data` extra, tfds."""
