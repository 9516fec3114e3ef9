"""Pose files, HamNoSys tokens, the procedural signer, the synthetic corpus and the DataModule."""
