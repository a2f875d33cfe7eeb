"""Weights in and out: nestgen checkpoint directories, official Flax NesT checkpoints, timm NesT weights."""
