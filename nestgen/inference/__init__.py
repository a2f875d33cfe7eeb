"""Inference with trained networks: generator sampling, classifier prediction, and projection of an image into
the generator's latent space."""
