"""Metrics of trained networks: classifier accuracy, and FID, KID, FD_NesT and precision/recall of generators
(the base pieces of FID at the bottom: fid_base ← frechet ← fid_features ← fid_reference ← fid)."""
