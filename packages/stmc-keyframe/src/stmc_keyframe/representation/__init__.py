"""The 22-joint SMPL-like skeleton and the 205-d SMPL-RIFKE motion representation."""
